//! Crash safety end to end: the real daemon (`coffre-server run`) killed with
//! SIGKILL at random instants while a backup uploads and commits, and while
//! `coffre-server prune` and `coffre-server gc` (with repack) run; and the
//! real `coffre backup` killed mid-run. After each kill the checks are
//! deterministic; only the instants are random (seeded by the round number).
//!
//! **How the processes are made.** This test crate has no binary of its
//! own, and Cargo gives `CARGO_BIN_EXE_*` only for the package's own
//! binaries, so neither `coffre-server` nor `coffre` can be found reliably.
//! The test binary is therefore also both programs: it is built with
//! `harness = false`, and when `COFFRE_CRASH_EXEC` is `coffre-server` or
//! `coffre`, `main` parses its arguments with that program's `Cli` and runs
//! that program's `commands::run`, the very code the real `main`s call
//! (only the allocator differs: the real binaries use jemalloc). So every
//! process killed here is a real, separate process (the same idea as
//! `crates/store/tests/crash.rs`, which re-runs itself as the writer).
//!
//! **Server killed** (`server_killed`): one data directory, one device,
//! retention `daily=1` (every backup of the run is received the same day:
//! a prune keeps the newest only; `last=N` would keep the whole day). Each round changes the tree (new files, the oldest
//! removed: about 1 MB new out of 5 MB), starts the daemon, then either runs
//! `coffre backup`, or `coffre-server prune` followed by
//! `coffre-server gc --grace 0 --repack-threshold 0%` (repack every pack with
//! a dead byte). After a random delay (a fraction of that operation's
//! measured duration) the daemon, the admin command and the client are
//! killed. A kill point counts only if the operation was still running.
//! Then, with everything stopped, the catalogue is checked offline
//! (`check_store`): it opens; every snapshot acknowledged by a client is
//! listed unless an earlier prune could have removed it; every listed
//! snapshot's manifest and every chunk it names are readable and match
//! their checksums; every chunk row points into a pack file that holds it
//! at that place; `used_bytes` is exactly the catalogued packs plus the
//! manifests, and never more than the files on disk. Then the daemon
//! restarts and the next backup must succeed. Every snapshot ever listed is
//! restored once, before a prune may remove it or at the end, and must
//! equal, byte for byte, the tree of the round in which it appeared; and
//! `coffre check --read-data` must pass at the end.
//!
//! **Client killed** (`client_killed`): a daemon that stays up; each round
//! changes the tree (about 2 MB new), kills `coffre backup` at a random
//! instant and runs it again. The rerun must succeed, report no blob the
//! server already had (`blobs_duplicate` 0), and at the end no chunk id is
//! stored in two blobs of the packs: what the killed run uploaded was kept
//! and not sent again (a chunk sent twice is written twice while the first
//! copy sits in the killed connection's open pack; once it is sealed,
//! the server answers "already have it" and the client counts a duplicate).
//!
//! Default: at least 100 kill points (`COFFRE_CRASH_KILLS`, e.g. 2000, for a
//! long run by hand). `COFFRE_CRASH_SEED` shifts the random instants.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use coffre_core::benchmark::{random_bytes, text_bytes};
use coffre_core::{ChunkId, Manifest};
use coffre_store::{read_pack_index, Store};
use coffre_testkit::PASSPHRASE;

const EXEC_VAR: &str = "COFFRE_CRASH_EXEC";
const SUBSCRIBER: &str = "asso";
/// No process of the test may take longer than this.
const LIMIT: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    match std::env::var(EXEC_VAR).as_deref() {
        Ok("coffre-server") => return exec_server(),
        Ok("coffre") => return exec_client(),
        _ => {}
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("crash: test");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--ignored") {
        return ExitCode::SUCCESS;
    }
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let kills: u64 = env_u64("COFFRE_CRASH_KILLS", 100);
    let seed = env_u64("COFFRE_CRASH_SEED", 0);
    // About 70 % of the kill points on the server side, 30 % on the client.
    let server_kills = kills - kills * 3 / 10;
    let client_kills = kills * 3 / 10;
    let started = Instant::now();
    let mut total = 0;
    if wanted("server_killed") {
        total += server_killed(server_kills, seed);
    }
    if wanted("client_killed") {
        total += client_killed(client_kills, seed);
    }
    println!(
        "crash: {total} kill points, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{var}={v:?}")))
        .unwrap_or(default)
}

/// This binary as `coffre-server`: what `coffre_server::main` does.
fn exec_server() -> ExitCode {
    let cli = match coffre_server::Cli::try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("COFFRE_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match coffre_server::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffre-server: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// This binary as `coffre`: what `coffre_client::main` does.
fn exec_client() -> ExitCode {
    let cli = match coffre_client::Cli::try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match coffre_client::run(cli) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("coffre: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- processes

/// A running child process, killed (SIGKILL) and reaped when dropped, so a
/// failing test leaves nothing behind.
struct Running {
    child: Child,
    what: String,
    started: Instant,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

struct Done {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn collect(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

impl Running {
    fn spawn(mut cmd: Command, what: String) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Some(collect(child.stdout.take().unwrap()));
        let err = Some(collect(child.stderr.take().unwrap()));
        Running {
            child,
            what,
            started: Instant::now(),
            out,
            err,
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL (`Child::kill` on Unix), then reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait(mut self) -> Done {
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if self.started.elapsed() > LIMIT {
                self.kill();
                panic!("{} still running after {LIMIT:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let took = self.started.elapsed();
        let text = |h: Option<JoinHandle<Vec<u8>>>| {
            String::from_utf8_lossy(&h.unwrap().join().unwrap()).into_owned()
        };
        Done {
            status,
            stdout: text(self.out.take()),
            stderr: text(self.err.take()),
            took,
        }
    }

    /// Waits; the process must succeed.
    fn ok(self) -> Done {
        let what = self.what.clone();
        let d = self.wait();
        assert!(
            d.status.success(),
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            d.status,
            d.stdout,
            d.stderr
        );
        d
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

fn exe() -> PathBuf {
    std::env::current_exe().unwrap()
}

/// `coffre-server ARGS --data DATA`, as a process.
fn admin(data: &Path, args: &[&str]) -> Running {
    let mut c = coffre_testkit::admin_command(&exe(), data, args);
    c.env(EXEC_VAR, "coffre-server").env("COFFRE_LOG", "warn");
    Running::spawn(c, format!("coffre-server {args:?}"))
}

/// The daemon, `coffre-server run`; `start` returns once it listens.
struct Daemon {
    proc: Running,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(data: &Path) -> Daemon {
        let mut c = Command::new(exe());
        c.env(EXEC_VAR, "coffre-server")
            .env_remove("COFFRE_DATA")
            .env("COFFRE_LOG", "info")
            .args(["run", "--data"])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready, listening) = mpsc::channel();
        let reader = std::thread::spawn({
            let log = log.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("coffre-server listening") {
                        let _ = ready.send(());
                    }
                    log.lock().unwrap().push(line);
                }
                Vec::new()
            }
        });
        let proc = Running {
            child,
            what: "coffre-server run".into(),
            started: Instant::now(),
            out: None,
            err: Some(reader),
        };
        let mut d = Daemon { proc, log };
        if listening.recv_timeout(Duration::from_secs(30)).is_err() {
            d.proc.kill();
            panic!(
                "the daemon did not start after a crash:\n{}",
                d.log.lock().unwrap().join("\n")
            );
        }
        d
    }

    fn kill(mut self) {
        self.proc.kill();
    }
}

/// One installation of `coffre` (its own --config).
struct Pc {
    config: PathBuf,
    home: PathBuf,
}

impl Pc {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(exe());
        c.env(EXEC_VAR, "coffre")
            .env_remove("COFFRE_PASSPHRASE")
            .env("COFFRE_CONNECT_TIMEOUT", "3")
            .arg("--config")
            .arg(&self.config)
            .args(args);
        c
    }

    fn start(&self, args: &[&str]) -> Running {
        Running::spawn(self.command(args), format!("coffre {args:?}"))
    }

    fn enrol(&self, token: &str) {
        let mut c = self.command(&["enrol", token]);
        c.arg("--path")
            .arg(&self.home)
            .env("COFFRE_PASSPHRASE", PASSPHRASE);
        Running::spawn(c, "coffre enrol".into()).ok();
    }

    fn backup(&self) -> Running {
        self.start(&["backup", "--json"])
    }
}

fn json(d: &Done) -> serde_json::Value {
    serde_json::from_str(&d.stdout).unwrap_or_else(|e| panic!("{e}: {}", d.stdout))
}

// ---------------------------------------------------------------- the trees

/// The files of the tree in round `round`, by relative path: a fixed part,
/// and the last three "days" (a photo that does not compress, notes that
/// do), each `new` bytes or so. Pure: a restore is compared with it.
fn tree(round: u64, new: usize) -> BTreeMap<String, Vec<u8>> {
    let mut t = BTreeMap::new();
    t.insert("base/grand-livre.csv".into(), text_bytes(1_000_000, 1));
    t.insert("base/compta.sqlite".into(), random_bytes(1_000_000, 2));
    for day in round.saturating_sub(2)..=round {
        t.insert(
            format!("day-{day}/photo.jpg"),
            random_bytes(new * 4 / 5 + (day % 4) as usize * 50_000, 1_000 + day),
        );
        t.insert(
            format!("day-{day}/notes.txt"),
            text_bytes(new / 5, 5_000 + day),
        );
    }
    t
}

/// Makes `home` hold `tree(round)`: new files are written, gone ones
/// removed, files never rewritten in place (so the client's files cache,
/// which trusts size and times, is never fooled).
fn set_tree(home: &Path, round: u64, new: usize) {
    let want = tree(round, new);
    let have = files_in(home);
    for rel in have.keys() {
        if !want.contains_key(rel) {
            fs::remove_file(home.join(rel)).unwrap();
        }
    }
    for (rel, bytes) in &want {
        if have.get(rel) != Some(bytes) {
            let p = home.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, bytes).unwrap();
        }
    }
    // Empty day folders go too.
    for e in fs::read_dir(home).unwrap() {
        let p = e.unwrap().path();
        if fs::read_dir(&p).unwrap().next().is_none() {
            fs::remove_dir(&p).unwrap();
        }
    }
}

/// Every regular file under `root`, by relative path (`/`-separated).
fn files_in(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                go(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        go(root, root, &mut out);
    }
    out
}

// ---------------------------------------------------------------- randomness

/// SplitMix64: the kill instants, from the round number and the seed.
fn unit(round: u64, seed: u64) -> f64 {
    let mut z = (round ^ seed.rotate_left(32)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// An operation's expected duration: the mean of the last ones that ran to
/// the end (kills are spread over 0..1.2 of it).
struct Timing(Vec<Duration>);

impl Timing {
    fn new(guess_ms: u64) -> Timing {
        Timing(vec![Duration::from_millis(guess_ms)])
    }
    fn record(&mut self, d: Duration) {
        self.0.push(d);
        if self.0.len() > 8 {
            self.0.remove(0);
        }
    }
    fn delay(&self, u: f64) -> Duration {
        let mean = self.0.iter().sum::<Duration>() / self.0.len() as u32;
        mean.mul_f64(u * 1.2)
    }
}

// ---------------------------------------------------------------- setup

struct Setup {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    data: PathBuf,
    pc: Pc,
}

impl Setup {
    /// The PC's device secret as its credentials file holds it now: the
    /// client rolls it at every run (issue 17), so a run killed at any
    /// point leaves the current one or a pending one, which the store's
    /// `authenticate` makes current, as the PC's next run would.
    fn secret(&self) -> [u8; 32] {
        let path = self.pc.config.with_extension("state").join("credentials");
        let text = fs::read_to_string(&path).unwrap();
        let hex = text
            .lines()
            .find_map(|l| l.strip_prefix("secret = "))
            .unwrap_or_else(|| panic!("no secret in {}", path.display()))
            .trim_matches('"');
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).unwrap();
        out
    }
}

/// A data directory with one subscriber (`retention`), one enrolled device
/// backing up `home` (empty for now); the daemon is left running.
fn setup(retention: &str) -> (Setup, Daemon) {
    let tmp = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(tmp.path()).unwrap();
    let data = base.join("data");
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    admin(&data, &["init", "--listen", &listen]).ok();
    admin(
        &data,
        &[
            "subscriber",
            "add",
            SUBSCRIBER,
            "--quota",
            "10GiB",
            "--retention",
            retention,
        ],
    )
    .ok();
    let token = admin(&data, &["device", "add", SUBSCRIBER, "pc"])
        .ok()
        .stdout;
    let token = token.trim().to_string();
    let home = base.join("home");
    fs::create_dir_all(&home).unwrap();
    let pc = Pc {
        config: base.join("pc").join("config.toml"),
        home,
    };
    let daemon = Daemon::start(&data);
    pc.enrol(&token);
    (
        Setup {
            _tmp: tmp,
            base,
            data,
            pc,
        },
        daemon,
    )
}

// ---------------------------------------------------------------- checks

/// What `check_store` found: the listed snapshots, oldest first.
struct Checked {
    listed: Vec<ChunkId>,
}

/// The catalogue and the files, with no process running on `data`.
fn check_store(data: &Path, secret: &[u8; 32], context: &str) -> Checked {
    let store = Store::open(data)
        .unwrap_or_else(|e| panic!("{context}: the store does not open after the crash: {e}"));
    let s = store.authenticate(secret).unwrap();
    let listed: Vec<ChunkId> = store
        .snapshots_of(SUBSCRIBER)
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    // Every chunk every listed snapshot names is there and intact.
    for snap in &listed {
        let m = store
            .manifest(&s, snap)
            .unwrap_or_else(|e| panic!("{context}: manifest of {snap}: {e}"));
        let (public, _) = Manifest::read_public(&m).unwrap();
        for id in &public.chunks {
            store
                .chunk(&s, id)
                .unwrap_or_else(|e| panic!("{context}: snapshot {snap} chunk {id}: {e}"));
        }
    }
    let used = store.subscriber(SUBSCRIBER).unwrap().used_bytes;
    let sub_dir = data
        .join(coffre_store::SUBSCRIBERS_DIR)
        .join(s.subscriber_id.to_string());
    drop(store);

    // The rows: each pack row's file is there with its size and holds each
    // chunk row at its place; used bytes are packs plus manifests, exactly.
    let db = rusqlite::Connection::open(data.join(coffre_store::CATALOG_FILE)).unwrap();
    let mut packs: HashMap<i64, (String, u64)> = HashMap::new();
    let mut q = db
        .prepare("SELECT id, name, size FROM packs WHERE subscriber_id = ?1")
        .unwrap();
    for row in q
        .query_map([s.subscriber_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .unwrap()
    {
        let (id, name, size) = row.unwrap();
        packs.insert(id, (name, size as u64));
    }
    let mut index: HashMap<i64, HashSet<(ChunkId, u64, u32)>> = HashMap::new();
    for (id, (name, size)) in &packs {
        let path = sub_dir.join("packs").join(format!("{name}.pack"));
        let md = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{context}: pack row {name} without its file: {e}"));
        assert_eq!(
            md.len(),
            *size,
            "{context}: pack {name}: size differs from its row"
        );
        let entries = read_pack_index(&path)
            .unwrap_or_else(|e| panic!("{context}: pack {name} unreadable: {e}"));
        index.insert(
            *id,
            entries.iter().map(|e| (e.id, e.offset, e.length)).collect(),
        );
    }
    let mut q = db
        .prepare("SELECT id, pack_id, offset, length FROM chunks WHERE subscriber_id = ?1")
        .unwrap();
    for row in q
        .query_map([s.subscriber_id], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .unwrap()
    {
        let (id, pack, offset, length) = row.unwrap();
        let id = ChunkId::from_bytes(id.try_into().unwrap());
        let held = index.get(&pack).unwrap_or_else(|| {
            panic!("{context}: chunk {id} in pack row {pack}, which is not there")
        });
        assert!(
            held.contains(&(id, offset as u64, length as u32)),
            "{context}: chunk {id} is not where its row says in pack {pack}"
        );
    }
    let manifests: i64 = db
        .query_row(
            "SELECT COALESCE(SUM(manifest_bytes), 0) FROM snapshots WHERE subscriber_id = ?1",
            [s.subscriber_id],
            |r| r.get(0),
        )
        .unwrap();
    let pack_bytes: u64 = packs.values().map(|(_, size)| size).sum();
    assert_eq!(
        used,
        pack_bytes + manifests as u64,
        "{context}: used_bytes is not the catalogued packs plus manifests"
    );
    for snap in &listed {
        let md = fs::metadata(sub_dir.join("manifests").join(snap.to_hex())).unwrap();
        assert!(md.len() > 0);
    }
    // Crash debris (temporary files, a pack renamed but not catalogued) may
    // be on disk, never counted: the disk holds at least what is counted.
    let mut disk = 0;
    for dir in ["packs", "manifests"] {
        // A folder appears with its first file: a kill before the first
        // commit leaves no `manifests/`.
        let entries = match fs::read_dir(sub_dir.join(dir)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{context}: reading {dir}: {e}"),
        };
        for e in entries {
            let e = e.unwrap();
            if !e.file_name().to_string_lossy().starts_with('.') {
                disk += e.metadata().unwrap().len();
            }
        }
    }
    assert!(
        used <= disk,
        "{context}: used_bytes {used} > {disk} bytes on disk"
    );
    Checked { listed }
}

/// Restores `snap` and compares it with `expected`, byte for byte.
fn assert_restores(setup: &Setup, snap: &ChunkId, expected: &BTreeMap<String, Vec<u8>>) {
    let target = setup.base.join("restored");
    let _ = fs::remove_dir_all(&target);
    setup
        .pc
        .start(&[
            "restore",
            &snap.to_hex(),
            "--target",
            target.to_str().unwrap(),
            "--quiet",
        ])
        .ok();
    let got = files_in(&target.join(setup.pc.home.strip_prefix("/").unwrap()));
    let names = |t: &BTreeMap<String, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&got), names(expected), "snapshot {snap}: other files");
    for (rel, bytes) in expected {
        assert!(&got[rel] == bytes, "snapshot {snap}: {rel} differs");
    }
    fs::remove_dir_all(&target).unwrap();
}

// ---------------------------------------------------------------- server killed

const SERVER_NEW: usize = 1_000_000;
/// What a prune keeps of the run's snapshots: `daily=1`, all received today.
const KEEP: usize = 1;

fn server_killed(target: u64, seed: u64) -> u64 {
    let (setup, daemon) = setup("daily=1");
    let home = setup.pc.home.clone();
    let mut daemon = Some(daemon);
    // Every snapshot ever listed, with the round whose tree it holds.
    let mut first_seen: HashMap<ChunkId, u64> = HashMap::new();
    let mut order: Vec<ChunkId> = Vec::new();
    let mut restored: HashSet<ChunkId> = HashSet::new();
    // Acknowledged by a client (`coffre backup` printed it), and not yet
    // exposed to a prune (which may remove all but the newest KEEP).
    let mut protected: HashSet<ChunkId> = HashSet::new();
    let (mut backup_time, mut gc_time) = (Timing::new(600), Timing::new(400));
    let (mut kills, mut kills_backup, mut kills_gc, mut misses) = (0u64, 0u64, 0u64, 0u64);
    let mut kills_prune = 0u64;
    // What the collections that ran to the end did (to show they work).
    let (mut gc_deleted, mut gc_repacked) = (0u64, 0u64);
    let started = Instant::now();
    let mut round = 0u64;
    while kills < target {
        assert!(
            round < target * 4 + 20,
            "only {kills} kill points in {round} rounds: the operations end before the kills"
        );
        let d = daemon.take().unwrap_or_else(|| Daemon::start(&setup.data));
        let gc_round = round % 3 == 2;
        let u = unit(round, seed);
        let ran;
        if gc_round {
            // Before a prune may remove them, every snapshot listed so far
            // restores to its round's tree.
            for snap in &order {
                if restored.insert(*snap) {
                    assert_restores(&setup, snap, &tree(first_seen[snap], SERVER_NEW));
                }
            }
            let eligible = order.len().saturating_sub(KEEP);
            for snap in &order[..eligible] {
                protected.remove(snap);
            }
            // One collection in four runs to the end: it measures how long
            // the pair takes (the kills are spread over that) and shows
            // that collections do free and repack.
            let uncut = (round / 3) % 4 == 1;
            let delay = if uncut { LIMIT } else { gc_time.delay(u) };
            let t0 = Instant::now();
            // `prune`, then `gc`: the kill falls somewhere in the pair.
            let mut steps = [
                vec!["prune"],
                vec!["gc", "--grace", "0", "--repack-threshold", "0%", "--json"],
            ]
            .into_iter();
            let mut current = Some(admin(&setup.data, &steps.next().unwrap()));
            while t0.elapsed() < delay {
                if !current.as_mut().unwrap().running() {
                    let done = current.take().unwrap().wait();
                    assert!(done.status.success(), "{round}: {}", done.stderr);
                    if steps.len() == 0 {
                        let (d, r) = gc_report(&done);
                        gc_deleted += d;
                        gc_repacked += r;
                    }
                    match steps.next() {
                        Some(args) => current = Some(admin(&setup.data, &args)),
                        None => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let running = current.as_mut().is_some_and(|c| c.running());
            if running && steps.len() == 1 {
                kills_prune += 1;
            }
            d.kill();
            if let Some(mut c) = current {
                if running {
                    c.kill();
                } else {
                    let done = c.wait();
                    assert!(done.status.success(), "{round}: {}", done.stderr);
                    if steps.len() == 0 {
                        let (d, r) = gc_report(&done);
                        gc_deleted += d;
                        gc_repacked += r;
                    }
                }
            }
            if !running {
                gc_time.record(t0.elapsed());
            }
            ran = running;
            if running {
                kills_gc += 1;
            }
        } else {
            set_tree(&home, round, SERVER_NEW);
            let mut b = setup.pc.backup();
            let delay = backup_time.delay(u);
            while b.started.elapsed() < delay && b.running() {
                std::thread::sleep(Duration::from_millis(1));
            }
            let running = b.running();
            d.kill();
            if running {
                b.kill();
                kills_backup += 1;
            } else {
                let done = b.wait();
                assert!(done.status.success(), "backup failed: {}", done.stderr);
                let id = ChunkId::from_hex(json(&done)["snapshot"].as_str().unwrap()).unwrap();
                protected.insert(id);
            }
            ran = running;
        }
        if ran {
            kills += 1;
        } else {
            misses += 1;
        }

        // Everything is stopped: the store as the crash left it.
        let context = format!("round {round}");
        let checked = check_store(&setup.data, &setup.secret(), &context);
        for snap in &protected {
            assert!(
                checked.listed.contains(snap),
                "{context}: acknowledged snapshot {snap} lost"
            );
        }
        for snap in &checked.listed {
            first_seen.entry(*snap).or_insert(round);
        }
        order = checked.listed;

        // The daemon restarts, and the next backup succeeds.
        let d = Daemon::start(&setup.data);
        if !gc_round {
            let done = setup.pc.backup().ok();
            backup_time.record(done.took);
            let id = ChunkId::from_hex(json(&done)["snapshot"].as_str().unwrap()).unwrap();
            protected.insert(id);
            if let std::collections::hash_map::Entry::Vacant(e) = first_seen.entry(id) {
                e.insert(round);
                order.push(id);
            }
        }
        daemon = Some(d);
        round += 1;
    }
    // The end: every snapshot listed now restores, and the data checks.
    let d = daemon.take().unwrap();
    for snap in &order {
        if restored.insert(*snap) {
            assert_restores(&setup, snap, &tree(first_seen[snap], SERVER_NEW));
        }
    }
    let check = json(&setup.pc.start(&["check", "--read-data", "--json"]).ok());
    assert_eq!(check["ok"], true, "{check}");
    d.kill();
    check_store(&setup.data, &setup.secret(), "the end");
    println!(
        "server_killed: {kills} kill points ({kills_backup} during backup, {kills_gc} during \
         prune then gc, of which {kills_prune} in prune), {misses} rounds where the operation ended first, {} snapshots restored, \
         uncut collections deleted {gc_deleted} chunks and repacked {gc_repacked} packs, {:.1} s",
        restored.len(),
        started.elapsed().as_secs_f64()
    );
    kills
}

/// What a `gc --json` that ran to the end did: chunks deleted, packs
/// repacked. No pack may be found damaged.
fn gc_report(done: &Done) -> (u64, u64) {
    let report: serde_json::Value =
        serde_json::from_str(&done.stdout).unwrap_or_else(|e| panic!("{e}: {}", done.stdout));
    let r = &report["subscribers"][0];
    assert_eq!(r["damaged_packs"], serde_json::json!([]), "{report}");
    (
        r["deleted_chunks"].as_u64().unwrap(),
        r["packs_repacked"].as_u64().unwrap(),
    )
}

// ---------------------------------------------------------------- client killed

const CLIENT_NEW: usize = 2_000_000;

fn client_killed(target: u64, seed: u64) -> u64 {
    let (setup, daemon) = setup("last=1000");
    let home = setup.pc.home.clone();
    let mut timing = Timing::new(600);
    let (mut kills, mut misses) = (0u64, 0u64);
    let mut acknowledged: Vec<(ChunkId, u64)> = Vec::new();
    let started = Instant::now();
    let mut round = 0u64;
    while kills < target {
        assert!(
            round < target * 4 + 20,
            "only {kills} kill points in {round} rounds: the backups end before the kills"
        );
        set_tree(&home, round, CLIENT_NEW);
        let mut b = setup.pc.backup();
        let delay = timing.delay(unit(round, seed ^ 0xC11E));
        while b.started.elapsed() < delay && b.running() {
            std::thread::sleep(Duration::from_millis(1));
        }
        if b.running() {
            b.kill();
            kills += 1;
        } else {
            misses += 1;
            let done = b.ok();
            timing.record(done.took);
            let id = ChunkId::from_hex(json(&done)["snapshot"].as_str().unwrap()).unwrap();
            acknowledged.push((id, round));
        }
        // The rerun completes and sends nothing the server already has.
        let done = setup.pc.backup().ok();
        let report = json(&done);
        assert_eq!(
            report["blobs_duplicate"], 0,
            "round {round}: the rerun sent blobs the server had: {report}"
        );
        let id = ChunkId::from_hex(report["snapshot"].as_str().unwrap()).unwrap();
        acknowledged.push((id, round));
        round += 1;
    }
    for (snap, round) in &acknowledged {
        assert_restores(&setup, snap, &tree(*round, CLIENT_NEW));
    }
    daemon.kill();
    check_store(&setup.data, &setup.secret(), "client_killed");
    // No chunk is stored twice: nothing the killed runs uploaded was sent again.
    let store = Store::open(&setup.data).unwrap();
    let s = store.authenticate(&setup.secret()).unwrap();
    let packs = setup
        .data
        .join(coffre_store::SUBSCRIBERS_DIR)
        .join(s.subscriber_id.to_string())
        .join("packs");
    drop(store);
    let mut seen: HashMap<ChunkId, OsString> = HashMap::new();
    let mut blobs = 0;
    for e in fs::read_dir(&packs).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if !name.to_string_lossy().ends_with(".pack") || name.to_string_lossy().starts_with('.') {
            continue;
        }
        for entry in read_pack_index(&e.path()).unwrap() {
            blobs += 1;
            if let Some(other) = seen.insert(entry.id, name.clone()) {
                panic!(
                    "chunk {} stored twice, in {other:?} and {name:?}: a killed backup's \
                     upload was sent again",
                    entry.id
                );
            }
        }
    }
    println!(
        "client_killed: {kills} kill points, {misses} backups ended first, {} snapshots \
         restored, {blobs} blobs each stored once, {:.1} s",
        acknowledged.len(),
        started.elapsed().as_secs_f64()
    );
    kills
}
