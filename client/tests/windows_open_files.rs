//! Files another program holds open, on Windows for real (issue 21, item 3):
//! the real `coffre.exe` under Wine against the real daemon on loopback,
//! while `hold.exe` (tests/wine/hold.c, built here with MinGW) holds a file
//! the way Outlook holds its `.pst`: share mode 0.
//!
//! The prefix's wineserver enforces share modes between its processes
//! (checked here first: a second holder is refused with error 32), so
//! `coffre.exe` meets the error it would on Windows. Byte-range locks
//! (`LockFileEx`, error 33 on read) are not tried here: Wine 8.0 keeps them
//! between lockers but does not enforce them on reads (a reader under the
//! same wineserver reads a locked file); their classification is
//! unit-tested (`fsmeta::held`). Wine has no Volume
//! Shadow Copy service: what runs here is the path without one (the run says
//! "no shadow copy" and retries), never `fsmeta::shadow`'s copy itself.
//!
//! Run with `cargo test -p coffre-client --test windows_open_files --
//! --ignored` after `cargo build -p coffre-client --target
//! x86_64-pc-windows-gnu` (`.ci/run`'s Windows step).

#![cfg(unix)]

mod support;
mod wine;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use coffre_store::Role;
use support::{Server, PASSPHRASE};
use wine::{ok, run_within, Wine, LIMIT};

/// A PC under Wine enrolled to back up `docs`.
struct Pc {
    _server: Server,
    wine: Wine,
    docs: tempfile::TempDir,
    hold: String,
}

impl Pc {
    fn new() -> Pc {
        let server = Server::start();
        let token = server.token("asso", 1 << 30, "pc", Role::Backup);
        let wine = Wine::start();
        let docs = tempfile::Builder::new()
            .prefix("coffre-open-files-")
            .tempdir()
            .unwrap();
        let mut enrol = wine.coffre(&["enrol", &token, "--path", &wine.win_path(docs.path())]);
        enrol.env("COFFRE_PASSPHRASE", PASSPHRASE);
        ok(&run_within(enrol, LIMIT), "coffre.exe enrol");
        let hold = wine.build_c("hold");
        Pc {
            _server: server,
            wine,
            docs,
            hold,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.docs.path().join(name)
    }

    /// Starts `hold.exe` on `name` (MODE "deny" or "lock", TEXT written
    /// through the held handle), returned once it says "held".
    fn hold(&self, name: &str, mode: &str, text: Option<&str>) -> Holder {
        // Outside the folder backed up.
        let stop = self.wine.prefix.path().join(format!("{name}.stop"));
        let mut args = vec![
            self.wine.win_path(&self.path(name)),
            self.wine.win_path(&stop),
            mode.to_string(),
        ];
        args.extend(text.map(str::to_string));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = self.wine.command(&self.hold, &args);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let first = first_line(child.stdout.take().unwrap(), LIMIT);
        if first.as_deref() != Some("held") {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "hold.exe did not hold {name}: {first:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Holder { child, stop }
    }

    /// `coffre.exe backup --json`, the end-of-run attempts within `wait`
    /// seconds: exit status, JSON, stderr.
    fn backup(&self, wait: &str) -> (i32, serde_json::Value, String) {
        let mut c = self.wine.coffre(&["backup", "--json"]);
        c.env("COFFRE_HELD_WAIT", wait);
        let out = run_within(c, LIMIT);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{e}: {stdout}\nstderr: {stderr}"));
        (out.status.code().unwrap_or(-1), json, stderr)
    }

    /// The contents of `name` in the latest snapshot, restored into a new folder.
    fn restored(&self, name: &str) -> Vec<u8> {
        let target = tempfile::tempdir().unwrap();
        self.wine.coffre_ok(&[
            "restore",
            "latest",
            "--path",
            &self.wine.win_path(&self.path(name)),
            "--target",
            &self.wine.win_path(target.path()),
            "--quiet",
        ]);
        std::fs::read(target.path().join(name)).unwrap()
    }
}

/// A running `hold.exe`.
struct Holder {
    child: Child,
    stop: PathBuf,
}

impl Holder {
    /// Lets go of the file, and waits for hold.exe to end.
    fn release(mut self) {
        std::fs::write(&self.stop, b"").unwrap();
        let waited = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "hold.exe ended with {status}");
                return;
            }
            assert!(waited.elapsed() < LIMIT, "hold.exe did not let go");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.stop, b"");
        if self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(500));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The first line of `pipe`, within `limit` (None at its end).
fn first_line(pipe: impl std::io::Read + Send + 'static, limit: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let got = BufReader::new(pipe)
            .read_line(&mut line)
            .ok()
            .filter(|n| *n > 0);
        let _ = tx.send(got.map(|_| line.trim().to_string()));
    });
    rx.recv_timeout(limit).expect("no line in time")
}

/// Contents that cut into several chunks (min 256 KiB each).
fn books(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..900_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Checks that this prefix's wineserver enforces share modes between its
/// processes: while `name` is held with share mode 0, a second hold.exe is
/// refused with ERROR_SHARING_VIOLATION (32).
fn assert_wine_enforces_share_modes(pc: &Pc, name: &str) {
    let second = pc.wine.command(
        &pc.hold,
        &[
            &pc.wine.win_path(&pc.path(name)),
            &pc.wine.win_path(&pc.wine.prefix.path().join("never.stop")),
            "deny",
        ],
    );
    let out = run_within(second, LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a second holder got in: {stderr}"
    );
    assert!(stderr.contains("error 32"), "{stderr}");
}

#[test]
#[ignore = "needs Wine and coffre.exe: .ci/run's Windows step runs it"]
fn a_file_held_through_the_run_keeps_its_previous_version_and_is_taken_once_let_go() {
    let pc = Pc::new();
    let v1 = books(1);
    std::fs::write(pc.path("compta.db"), &v1).unwrap();
    std::fs::write(pc.path("lettre.txt"), b"first letter").unwrap();
    let (status, first, stderr) = pc.backup("2");
    assert_eq!(status, 0, "first backup: {first}\n{stderr}");

    // The accounting program opens its books, writes them, and keeps them
    // open with share mode 0; the member also wrote a letter.
    let holder = pc.hold("compta.db", "deny", Some("version 2 of the books"));
    assert_wine_enforces_share_modes(&pc, "compta.db");
    std::fs::write(pc.path("lettre.txt"), b"second letter").unwrap();
    // And a mailbox made since the first backup, held too: nothing to keep.
    std::fs::write(pc.path("courrier.pst"), b"new mail").unwrap();
    let mail = pc.hold("courrier.pst", "deny", None);

    let (status, report, stderr) = pc.backup("2");
    let win_books = pc.wine.win_path(&pc.path("compta.db"));
    assert_eq!(status, 3, "saved with problems: {report}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "{win_books} is held by another program (another program has it open and lets no one else read it): set aside, retrying at the end of the run"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("no shadow copy ("),
        "Wine has no VSS: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "coffre: warning: {win_books} is still held by another program"
        )) && stderr.contains("the snapshot keeps its previous version")
            && stderr.contains("coffre schedule install --system"),
        "{stderr}"
    );
    let win_mail = pc.wine.win_path(&pc.path("courrier.pst"));
    assert!(
        stderr.contains(&format!(
            "coffre: warning: {win_mail} is still held by another program"
        )) && stderr.contains("it is left out: there is no previous version to keep"),
        "{stderr}"
    );
    assert_eq!(report["problems"], 2, "{report}");
    assert_eq!(report["errors"].as_array().unwrap().len(), 0, "{report}");
    let held = report["held_open"].as_array().unwrap();
    let why = |path: &str| {
        held.iter()
            .find(|h| h["path"] == path)
            .unwrap_or_else(|| panic!("{path} not in held_open: {report}"))["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(held.len(), 2, "{report}");
    assert!(
        why(&win_books).contains("the previous version is kept (from snapshot"),
        "{report}"
    );
    assert!(
        why(&win_mail)
            .contains("left out, no previous version (it is not in the previous snapshot)"),
        "{report}"
    );
    assert_eq!(
        report["files"], 2,
        "the held books are in the snapshot, the new held mailbox is not: {report}"
    );
    // The snapshot holds the books as last backed up, and tonight's letter.
    assert!(pc.restored("compta.db") == v1, "not the previous version");
    assert_eq!(pc.restored("lettre.txt"), b"second letter");

    // Let go: the next backup takes the new books and the mailbox.
    holder.release();
    mail.release();
    let (status, report, stderr) = pc.backup("2");
    assert_eq!(status, 0, "{report}\n{stderr}");
    assert_eq!(report["problems"], 0, "{report}");
    assert_eq!(report["files"], 3, "{report}");
    assert_eq!(pc.restored("compta.db"), b"version 2 of the books");
    assert_eq!(pc.restored("courrier.pst"), b"new mail");
}

#[test]
#[ignore = "needs Wine and coffre.exe: .ci/run's Windows step runs it"]
fn a_file_let_go_while_the_run_goes_on_is_backed_up_by_the_end_of_run_retry() {
    let pc = Pc::new();
    let ledger = books(7);
    std::fs::write(pc.path("grand-livre.db"), &ledger).unwrap();
    std::fs::write(pc.path("autre.txt"), b"something else").unwrap();
    // Held with share mode 0. (Not with byte-range locks: Wine 8.0 keeps
    // LockFileEx's locks between lockers, a second one gets error 33, but
    // does not enforce them on ReadFile, so a reader never sees them.)
    let holder = pc.hold("grand-livre.db", "deny", None);

    let mut c = pc.wine.coffre(&["backup", "--json"]);
    c.env("COFFRE_HELD_WAIT", "60");
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Standard error, line by line, as coffre.exe prints it.
    let (tx, lines) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let aside = loop {
        match lines.recv_timeout(LIMIT) {
            Ok(line) if line.contains("set aside, retrying at the end of the run") => break line,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no \"set aside\" line ({e}); saw: {seen:#?}"),
        }
    };
    assert!(
        aside.contains(
            "grand-livre.db is held by another program (another program has it open and lets no one else read it)"
        ),
        "{aside}"
    );
    // Let go while the run goes on (it is in its attempts, or before them).
    holder.release();
    let out = wait_output(child, LIMIT);
    reader.join().unwrap();
    let rest: Vec<String> = lines.try_iter().collect();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}\n{rest:#?}", out.status);
    assert!(
        rest.iter()
            .any(|l| l.contains("grand-livre.db read at attempt") && l.ends_with("backed up")),
        "{rest:#?}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["problems"], 0, "{report}");
    assert_eq!(report["files"], 2, "{report}");
    assert!(
        pc.restored("grand-livre.db") == ledger,
        "not the ledger as written"
    );
    assert_eq!(pc.restored("autre.txt"), b"something else");
}

/// Waits for `child` (its stdout still piped) within `limit`.
fn wait_output(mut child: Child, limit: Duration) -> std::process::Output {
    let id = child.id();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut BufReader::new(stdout), &mut buf);
        let status = child.wait();
        let _ = tx.send((status, buf));
    });
    match rx.recv_timeout(limit) {
        Ok((status, stdout)) => std::process::Output {
            status: status.unwrap(),
            stdout,
            stderr: Vec::new(),
        },
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!(
                "coffre.exe backup did not finish within {} s",
                limit.as_secs()
            )
        }
    }
}
