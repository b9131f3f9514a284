//! A real Garage (S3-compatible object store) for the tests: one single-node
//! cluster on loopback, in a temporary directory, with a bucket and a key
//! made by the setup; killed when dropped. Shared by every test crate that
//! tests packs on object storage, and by the upload benchmark
//! (`coffre_testkit::garage`, feature `store`).
//!
//! The `garage` binary (2.x, built with `cargo install --locked garage
//! --no-default-features --features bundled-libs,sqlite`, which `.ci/run`
//! does when it is absent) is looked for in `$COFFRE_GARAGE`, on `PATH`,
//! then in `~/.cargo/bin`. If it is missing the test FAILS with how to
//! install it: a test of object storage never passes without one.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffre_store::{PackStorage, S3Config};

/// The region of the test cluster.
pub const REGION: &str = "garage";

/// A running single-node Garage.
#[derive(Debug)]
pub struct Garage {
    bin: PathBuf,
    dir: tempfile::TempDir,
    conf: PathBuf,
    child: Option<Child>,
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Garage {
    /// Starts a new cluster with bucket `coffre-test` and a key for it.
    pub fn start() -> Garage {
        let bin = garage_binary();
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let secret = random_hex32();
        let conf = dir.path().join("garage.toml");
        std::fs::write(
            &conf,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{secret}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
                secret = secret,
            ),
        )
        .unwrap();
        let mut garage = Garage {
            bin,
            dir,
            conf,
            child: None,
            s3_port: s3,
            bucket: "coffre-test".into(),
            key_id: String::new(),
            secret: String::new(),
        };
        garage.spawn();
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&["bucket", "create", "coffre-test"]);
        let key = garage.cli(&["key", "create", "coffre-test-key"]);
        let field = |label: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {label:?} in `garage key create`'s output:\n{key}"))
        };
        garage.key_id = field("Key ID:");
        garage.secret = field("Secret key:");
        garage.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "coffre-test",
            "--key",
            "coffre-test-key",
        ]);
        garage.wait_s3();
        garage
    }

    /// The S3 API's URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// `s3://coffre-test/PREFIX?endpoint=...&region=garage`.
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{}/{prefix}?endpoint={}&region={REGION}",
            self.bucket,
            self.endpoint()
        )
    }

    /// Pack storage in this cluster's bucket, under `prefix`.
    pub fn storage(&self, prefix: &str) -> PackStorage {
        PackStorage::S3(S3Config::parse(&self.url(prefix), &self.key_id, &self.secret).unwrap())
    }

    /// Runs `garage -c CONF ARGS...`, retrying while the node starts;
    /// returns its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(&self.bin)
                .arg("-c")
                .arg(&self.conf)
                .args(args)
                .env("RUST_LOG", "error")
                .output()
                .unwrap();
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            if Instant::now() > deadline {
                panic!(
                    "garage {args:?} failed: {}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("garage.log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.conf)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    fn wait_s3(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            assert!(Instant::now() < deadline, "Garage's S3 API did not open");
            std::thread::sleep(Duration::from_millis(100));
        }
        // The bucket answers once the layout is live.
        let storage = self.storage("");
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = coffre_store::storage::check(&storage) {
            assert!(
                Instant::now() < deadline,
                "Garage's bucket does not answer: {e}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Kills the node (SIGKILL, as a crash or a cut network would look).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on the same directories and ports.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        self.wait_s3();
    }

    /// Whether the node is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}
