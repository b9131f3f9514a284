//! Server hygiene against a local user and an operator's slip (issue 17),
//! with the real `coffre-server` binary as an operator runs it:
//!
//! - the data directory and everything in it are owner-only from creation,
//!   even when the server is started under a permissive umask, through
//!   `init`, admin commands and a real backup served by `run`;
//! - a data directory left open by an older release is tightened when an
//!   admin command opens it, and that is logged once;
//! - one daemon per data directory: a second `run`, `rebuild-catalog` and
//!   `move-packs` are refused while it runs (one line naming its pid,
//!   nothing changed), while the commands made to run beside it still do.

#![cfg(unix)]

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use coffre_client::Remote;
use coffre_testkit::{data, Client};
use common::{command, ok, one_line_error, server};

/// `coffre-server ARGS --data DATA` started under umask 000: a file it
/// created without an explicit mode would be 0666, a folder 0777.
fn under_umask_000(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 000 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_coffre-server"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env("TZ", "UTC")
        .env_remove("COFFRE_DATA");
    c
}

fn run_under_umask_000(data: &Path, args: &[&str]) -> Output {
    under_umask_000(data, args).output().unwrap()
}

/// Every entry under `root` (itself included) that group or others may
/// use, with its mode.
fn open_to_others(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            out.push((p.clone(), mode));
        }
        if meta.is_dir() {
            todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

/// Every entry under `root`, sorted (to show that a refused command
/// changed nothing).
fn entries(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
        out.push(p);
    }
    out.sort();
    out
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon started with `cmd`, once it said it listens; its log is
/// collected by a thread.
struct Daemon {
    child: Child,
    log: Option<std::thread::JoinHandle<String>>,
}

impl Daemon {
    fn start(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .env("COFFRE_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = lines.read_line(&mut line).unwrap();
            assert!(n > 0, "the daemon ended before listening: {seen}");
            seen.push_str(&line);
            if line.contains("coffre-server listening") {
                break;
            }
        }
        let log = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = lines.read_to_string(&mut rest);
            seen + &rest
        });
        Daemon {
            child,
            log: Some(log),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then its exit (success) and log.
    fn stop(mut self) -> String {
        let killed = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status}");
        self.log.take().unwrap().join().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects as the holder of `token`, retrying briefly (the daemon said it
/// listens, but the first packet may race its socket).
async fn connect(token: &str) -> Remote {
    let token = coffre_proto::Token::parse(token.trim()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Remote::connect(&token.server, token.fingerprint, token.secret).await {
            Ok(r) => return r,
            Err(e) if Instant::now() > deadline => panic!("daemon never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn everything_the_server_creates_is_owner_only_even_under_umask_000() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    ok(&run_under_umask_000(
        &data_dir,
        &["init", "--listen", &listen],
    ));
    ok(&run_under_umask_000(
        &data_dir,
        &["subscriber", "add", "asso", "--quota", "1GiB"],
    ));
    let token = ok(&run_under_umask_000(
        &data_dir,
        &["device", "add", "asso", "compta-pc"],
    ));

    // A real backup through the daemon: a key file, packs, a manifest.
    let daemon = Daemon::start(under_umask_000(&data_dir, &["run"]));
    let remote = connect(&token).await;
    let mut client = Client::new(5);
    let master = coffre_core::MasterKey::from_bytes([5; 32]);
    let kf = coffre_core::KeyFile::wrap(
        &master,
        b"passphrase",
        coffre_core::KdfParams::INSECURE_FOR_TESTS,
    )
    .unwrap();
    remote.put_key(kf.as_bytes().to_vec()).await.unwrap();
    let mut ids = Vec::new();
    for seed in 0..3 {
        let (id, blob) = client.blob(&data(seed, 100_000));
        assert!(remote.put_chunk(&id, blob).await.unwrap());
        ids.push(id);
    }
    ids.sort();
    remote
        .commit(client.manifest(&remote.device, ids))
        .await
        .unwrap();
    remote.close().await;
    // The maintenance commands that run beside it, under the same umask.
    ok(&run_under_umask_000(&data_dir, &["gc", "--grace", "0"]));
    ok(&run_under_umask_000(&data_dir, &["verify", "--repair"]));
    ok(&run_under_umask_000(&data_dir, &["prune"]));
    assert!(data_dir.join("catalog.sqlite-wal").exists());
    assert_eq!(
        open_to_others(&data_dir),
        [],
        "while the daemon runs (catalogue, -wal, -shm, locks)"
    );
    daemon.stop();

    for name in ["config.toml", "tls/key.der", "tls/cert.der", "daemon.lock"] {
        assert!(data_dir.join(name).exists(), "{name}");
    }
    assert_eq!(open_to_others(&data_dir), []);
}

#[test]
fn an_older_data_directory_is_made_private_when_opened_and_it_is_logged_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    ok(&server(&data_dir, &["init", "--listen", "127.0.0.1:0"]));
    ok(&server(
        &data_dir,
        &["subscriber", "add", "asso", "--quota", "1GiB"],
    ));
    // What an older release left: folders 0755, files 0644.
    for p in entries(&data_dir) {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    assert!(!open_to_others(&data_dir).is_empty());

    let out = server(&data_dir, &["usage"]);
    ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(log.matches("owner-only").count(), 1, "{log}");
    assert_eq!(open_to_others(&data_dir), []);
    // Private now: nothing more to say.
    let out = server(&data_dir, &["usage"]);
    ok(&out);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("owner-only"),
        "logged once"
    );
}

#[test]
fn one_daemon_per_data_directory_and_no_unsafe_command_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    ok(&server(&data_dir, &["init", "--listen", &listen]));
    ok(&server(
        &data_dir,
        &["subscriber", "add", "asso", "--quota", "1GiB"],
    ));
    let daemon = Daemon::start(command(&data_dir, &["run"]));
    let refusal = format!(
        "the daemon (pid {}) is running on {}: stop it first (systemctl stop coffre-server)",
        daemon.pid(),
        data_dir.display()
    );
    let config = fs::read(data_dir.join("config.toml")).unwrap();
    let before = entries(&data_dir);

    for args in [
        &["run"][..],
        &["rebuild-catalog", "--replace"],
        &["rebuild-catalog"],
        &[
            "move-packs",
            "--to",
            "s3://packs?endpoint=http://127.0.0.1:9&region=x",
        ],
    ] {
        let out = server(&data_dir, args);
        let err = one_line_error(&out);
        assert!(err.contains(&refusal), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(entries(&data_dir), before, "{args:?} changed nothing");
    }
    assert_eq!(fs::read(data_dir.join("config.toml")).unwrap(), config);

    // The commands made to run beside the daemon still do.
    for args in [
        &["usage"][..],
        &["subscriber", "add", "coop", "--quota", "1GB"],
        &["device", "add", "coop", "pc"],
        &["gc"],
        &["verify", "--repair"],
        &["prune"],
    ] {
        ok(&server(&data_dir, args));
    }

    let log = daemon.stop();
    assert!(log.contains("shutting down"), "{log}");
    // Stopped: the catalogue can be rebuilt.
    let out = ok(&server(&data_dir, &["rebuild-catalog", "--replace"]));
    assert!(out.contains("catalogue rebuilt: 2 subscribers"), "{out}");
}
