//! A real Garage (S3-compatible object store) for the tests, on loopback, in
//! a temporary directory, with a bucket and a key made by the setup; killed
//! when dropped. Shared by every test crate that tests packs on object
//! storage, and by the upload benchmark (`coffre_testkit::garage`, feature
//! `store`).
//!
//! | type | what | for |
//! | --- | --- | --- |
//! | [`Garage`] | one node, `replication_factor = 1` | packs on object storage: backup, restore, GC, verify, rebuild, the store down |
//! | [`Cluster`] | three nodes replicating each other (`replication_factor = 3`, quorum 2), each its own process and S3 endpoint | one node lost or back during a backup (`client/tests/garage_cluster.rs`) |
//!
//! Both drive `garage` processes through `node.rs` (configuration, start,
//! kill, the command line, the log shown when something fails).
//!
//! The `garage` binary (2.x, built with `cargo install --locked garage
//! --no-default-features --features bundled-libs,sqlite`, which `.ci/run`
//! does when it is absent) is looked for in `$COFFRE_GARAGE`, on `PATH`,
//! then in `~/.cargo/bin`. If it is missing the test FAILS with how to
//! install it: a test of object storage never passes without one.

mod cluster;
mod node;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coffre_store::{PackStorage, S3Config};

pub use cluster::{Cluster, NODES};
use node::{Node, Settings};

/// The region of the test cluster.
pub const REGION: &str = "garage";

/// The bucket the setup makes.
const BUCKET: &str = "coffre-test";

/// A running single-node Garage.
#[derive(Debug)]
pub struct Garage {
    // Declared before `dir`: the process is killed before its folder goes.
    node: Node,
    _dir: tempfile::TempDir,
    /// The S3 API's port on 127.0.0.1.
    pub s3_port: u16,
    /// The bucket the setup made.
    pub bucket: String,
    /// The key allowed to read and write it.
    pub key_id: String,
    /// Its secret.
    pub secret: String,
}

/// The garage binary, or a failure that says how to get one.
pub fn garage_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("COFFRE_GARAGE").map(PathBuf::from) {
        if p.is_file() {
            return p;
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("garage");
            if p.is_file() {
                return p;
            }
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cargo/bin/garage");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the garage binary (2.x) is not installed, and this test needs a real Garage: install it \
         with `cargo install --locked garage --no-default-features --features bundled-libs,sqlite` \
         (.ci/run does it), or point COFFRE_GARAGE at it"
    );
}

/// 32 random bytes in hex (std's hasher keys are random per process).
fn random_hex32() -> String {
    use std::hash::{BuildHasher, Hasher};
    (0..4)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// Makes bucket [`BUCKET`] and a key that reads and writes it, through
/// `node` (whose cluster has its layout): (key id, secret).
fn make_bucket(node: &Node) -> (String, String) {
    node.cli(&["bucket", "create", BUCKET]);
    let key = node.cli(&["key", "create", "coffre-test-key"]);
    let field = |label: &str| {
        key.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {label:?} in `garage key create`'s output:\n{key}"))
    };
    let access = (field("Key ID:"), field("Secret key:"));
    node.cli(&[
        "bucket",
        "allow",
        "--read",
        "--write",
        "--owner",
        BUCKET,
        "--key",
        "coffre-test-key",
    ]);
    access
}

/// `s3://BUCKET/PREFIX?endpoint=ENDPOINT&region=garage`.
fn url(bucket: &str, endpoint: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}?endpoint={endpoint}&region={REGION}")
}

/// Waits until `node`'s S3 API is open and lists the bucket through
/// `storage` (which points at it): the layout is live there and the key
/// known. Fails with the node's log.
fn wait_bucket(node: &Node, storage: &PackStorage) {
    node.wait_s3_port();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = coffre_store::storage::check(storage) {
        assert!(
            Instant::now() < deadline,
            "Garage's bucket does not answer at {}: {e}\n{}",
            node.endpoint(),
            node.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Garage {
    /// Starts a new cluster with bucket `coffre-test` and a key for it.
    pub fn start() -> Garage {
        let bin = garage_binary();
        let dir = tempfile::tempdir().unwrap();
        let mut node = Node::new(
            &bin,
            dir.path().to_path_buf(),
            Settings {
                replication_factor: 1,
                rpc_secret: random_hex32(),
                bootstrap_peers: Vec::new(),
            },
        );
        node.spawn();
        let address = node.address();
        let id = address.split('@').next().unwrap();
        node.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", id]);
        node.cli(&["layout", "apply", "--version", "1"]);
        let (key_id, secret) = make_bucket(&node);
        let garage = Garage {
            s3_port: node.s3_port,
            node,
            _dir: dir,
            bucket: BUCKET.into(),
            key_id,
            secret,
        };
        garage.wait_s3();
        garage
    }

    /// The S3 API's URL.
    pub fn endpoint(&self) -> String {
        self.node.endpoint()
    }

    /// `s3://coffre-test/PREFIX?endpoint=...&region=garage`.
    pub fn url(&self, prefix: &str) -> String {
        url(&self.bucket, &self.endpoint(), prefix)
    }

    /// Pack storage in this cluster's bucket, under `prefix`.
    pub fn storage(&self, prefix: &str) -> PackStorage {
        PackStorage::S3(S3Config::parse(&self.url(prefix), &self.key_id, &self.secret).unwrap())
    }

    /// Runs `garage -c CONF ARGS...`, retrying while the node starts;
    /// returns its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        self.node.cli(args)
    }

    fn wait_s3(&self) {
        wait_bucket(&self.node, &self.storage(""));
    }

    /// Kills the node (SIGKILL, as a crash or a cut network would look).
    pub fn stop(&mut self) {
        self.node.kill();
    }

    /// Starts the node again on the same directories and ports.
    pub fn restart(&mut self) {
        self.node.kill();
        self.node.spawn();
        self.wait_s3();
    }

    /// Whether the node is running.
    pub fn is_running(&self) -> bool {
        self.node.is_running()
    }
}
