//! One Garage process: its folder (configuration, metadata, data, log), its
//! ports on 127.0.0.1, the running child. [`super::Garage`] is one node
//! alone; [`super::Cluster`] is three that replicate each other. Both
//! drive a node through this file only, so a failure reads the same
//! everywhere: the command that failed and the end of that node's log.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::REGION;

/// How long a node may take to answer its first command or open its S3
/// port. A node starts in well under a second; a full minute leaves room
/// for a 2-core machine compiling beside the tests.
const START_LIMIT: Duration = Duration::from_secs(60);

/// How much of a node's log a failure shows (bytes from its end).
const LOG_TAIL: usize = 4000;

/// One `garage server` and what it needs.
#[derive(Debug)]
pub(crate) struct Node {
    bin: PathBuf,
    dir: PathBuf,
    conf: PathBuf,
    settings: Settings,
    rpc_port: u16,
    admin_port: u16,
    child: Option<Child>,
    /// The S3 API's port.
    pub(crate) s3_port: u16,
}

/// What a node's configuration says beyond its own folder and ports.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Garage's `replication_factor`: how many nodes hold each object.
    pub(crate) replication_factor: u8,
    /// The secret every node of one cluster shares (64 hex digits).
    pub(crate) rpc_secret: String,
    /// The other nodes (`ID@127.0.0.1:PORT`), which the node dials as it
    /// starts. Without them a restarted node waits for the others to dial
    /// it again, which their back-off makes about 20 s.
    pub(crate) bootstrap_peers: Vec<String>,
}

/// A port that was free a moment ago (the kernel hands out ports in a
/// cycle, so another test taking it before Garage binds it is unlikely).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    /// Writes the configuration of a node living in `dir` (created); does
    /// not start it.
    pub(crate) fn new(bin: &Path, dir: PathBuf, settings: Settings) -> Node {
        std::fs::create_dir_all(&dir).unwrap();
        let node = Node {
            bin: bin.to_path_buf(),
            conf: dir.join("garage.toml"),
            dir,
            settings,
            rpc_port: free_port(),
            admin_port: free_port(),
            child: None,
            s3_port: free_port(),
        };
        node.write_config();
        node
    }

    /// Sets the peers the node dials when it (re)starts: written to its
    /// configuration, read at its next start.
    pub(crate) fn set_bootstrap_peers(&mut self, peers: Vec<String>) {
        self.settings.bootstrap_peers = peers;
        self.write_config();
    }

    fn write_config(&self) {
        let peers: Vec<String> = self
            .settings
            .bootstrap_peers
            .iter()
            .map(|p| format!("{p:?}"))
            .collect();
        // `consistency_mode = "consistent"` is Garage's default, written out
        // because the cluster's tests depend on it: reads and writes need a
        // quorum (2 of 3), so one node down still serves both.
        std::fs::write(
            &self.conf,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = {rf}
consistency_mode = "consistent"
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"
bootstrap_peers = [{peers}]

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{secret}"
"#,
                meta = self.dir.join("meta").display(),
                data = self.dir.join("data").display(),
                rf = self.settings.replication_factor,
                rpc = self.rpc_port,
                s3 = self.s3_port,
                admin = self.admin_port,
                secret = self.settings.rpc_secret,
                peers = peers.join(", "),
            ),
        )
        .unwrap();
    }

    /// Starts `garage server` (on the same folders and ports as before, if
    /// it ran already), its output appended to `garage.log`.
    pub(crate) fn spawn(&mut self) {
        assert!(self.child.is_none(), "the node is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
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

    /// Kills the process (SIGKILL: as a crash or a pulled cable looks to
    /// the others) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is running (it was started and not killed).
    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The S3 API's URL.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Runs `garage -c CONF ARGS...` against this node, retrying while it
    /// starts; its standard output. Fails with the command's output and
    /// the end of the node's log.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + START_LIMIT;
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
                    "garage {args:?} failed: {}\n{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `ID@127.0.0.1:PORT`, what `garage node connect` takes.
    pub(crate) fn address(&self) -> String {
        let out = self.cli(&["node", "id", "-q"]);
        let line = out.trim();
        assert!(line.contains('@'), "`garage node id -q` printed {line:?}");
        line.to_string()
    }

    /// Waits until the S3 port accepts connections.
    pub(crate) fn wait_s3_port(&self) {
        let deadline = Instant::now() + START_LIMIT;
        while TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Garage's S3 API did not open on port {}\n{}",
                self.s3_port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The bytes in the node's data folder: the blocks it holds (every
    /// node of a replicated cluster holds the same ones once it caught up).
    pub(crate) fn data_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir.join("data"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("garage.log")
    }

    /// The end of the node's log, for a failure's message.
    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        let tail = &log[log.len().saturating_sub(LOG_TAIL)..];
        format!(
            "--- end of {} ---\n{}",
            self.log_path().display(),
            String::from_utf8_lossy(tail)
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
