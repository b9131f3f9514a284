//! Packs on a three-node Garage cluster that replicates every object on
//! all three nodes (`coffre_testkit::garage::Cluster`: three processes on
//! loopback, `replication_factor = 3`, `consistency_mode = "consistent"`,
//! so a read or a write needs 2 of the 3 nodes), with the real daemon and
//! the real `coffre` program. A Garage node is lost in the middle of a
//! backup, and in the second test comes back before the backup ends:
//! nothing is lost, and the backup goes through **without a retry**.
//!
//! The daemon reaches the cluster through the S3 endpoint of node 0, which
//! these tests never kill. coffre's storage takes one endpoint
//! (`S3Config::endpoint`), so a daemon pointed at a node that dies would
//! fail its backups as against a single Garage (`object_storage.rs`,
//! `garage_stopped_mid_backup_...`) although the cluster still has its
//! quorum: a real deployment puts a load balancer (or a Garage gateway node
//! on the coffre server itself) in front of the nodes, so the endpoint
//! outlives any one node. What these tests show is the part below that
//! endpoint: a node lost or back mid-backup costs no pack, no blob, no
//! retry.
//!
//! Sized for a 2-core machine: each backup is 5 incompressible files of
//! 32 MiB (5 packs), sent at most at [`PACE`], so that the loss and the
//! return land between packs whatever the machine's speed: unpaced, a fast
//! machine ends the backup (about 4 s) before a restarted node serves.

#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use coffre_core::benchmark::{random_bytes, text_bytes};
use coffre_store::{Role, VerifyOptions};
use coffre_testkit::garage::Cluster;
use support::{assert_same_tree, one_line_error, stored_packs, wait_for, write, Client, Server};

/// The node whose S3 endpoint the daemon uses: never killed here.
const SERVED_BY: usize = 0;

/// How many large files a tree has, and their size: five packs' worth.
const FILES: u64 = 5;
const FILE_SIZE: usize = 32 << 20;

/// The backup's upload limit: 168 MB in about 8 s, a pack every 1.7 s.
const PACE: &str = "20MB/s";

/// The longest a backup of the tree may take on a loaded 2-core machine.
const BACKUP_LIMIT: Duration = Duration::from_secs(180);

/// A cluster, the daemon with its packs on it (under `prefix`, through node
/// [`SERVED_BY`]), and an enrolled PC with a tree to back up.
struct Scene {
    cluster: Cluster,
    server: Server,
    pc: Client,
    _work: tempfile::TempDir,
    base: PathBuf,
    home: PathBuf,
}

fn scene(prefix: &str, seed: u64) -> Scene {
    let started = Instant::now();
    let cluster = Cluster::start();
    eprintln!("cluster of 3 started in {:?}", started.elapsed());
    let server = Server::start_on(cluster.storage(SERVED_BY, prefix));
    let work = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(work.path()).unwrap();
    let home = base.join("home");
    for i in 0..FILES {
        write(
            &home,
            &format!("Vidéos/rush-{i}.mov"),
            &random_bytes(FILE_SIZE, seed + i),
        );
    }
    write(&home, "Notes/montage.txt", &text_bytes(200_000, seed));
    let pc = Client::new();
    pc.enrol(
        &server.token("cinema", 1 << 32, "pc", Role::Backup),
        &[&home],
    );
    Scene {
        cluster,
        server,
        pc,
        _work: work,
        base,
        home,
    }
}

impl Scene {
    /// `coffre backup --json --limit-upload PACE`, running.
    fn start_backup(&self) -> Child {
        self.pc
            .command(&["backup", "--json", "--limit-upload", PACE])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Waits until the bucket holds more than `than` packs (listed through
    /// the daemon's node); how many it holds then.
    fn wait_packs(&self, what: &str, than: usize) -> usize {
        wait_for(what, BACKUP_LIMIT, || {
            let n = stored_packs(&self.server).len();
            (n > than).then_some(n)
        })
    }

    /// Restores snapshot `id` and checks it against `expected` byte for byte.
    fn assert_restores(&self, id: &str, expected: &Path, target: &str) {
        let target = self.base.join(target);
        self.pc.restore_to(id, &target);
        assert_same_tree(expected, &target.join(self.home.strip_prefix("/").unwrap()));
    }

    /// The server's `verify` over every pack, through the node the daemon
    /// uses now: clean, and every pack of the bucket read.
    fn assert_verify_clean(&self) {
        let packs = stored_packs(&self.server).len() as u64;
        let report = self
            .server
            .store
            .verify("cinema", &VerifyOptions::default())
            .unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.packs, packs, "every pack was read: {report:?}");
    }
}

/// The backup that ran must have succeeded, the first time: its snapshot.
fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "the backup failed with a node of three down: {}",
        one_line_error(out)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["snapshot"]
        .as_str()
        .expect("a snapshot id")
        .to_string()
}

/// A node (not the daemon's) killed once the backup's first pack is stored:
/// the backup completes without a retry, more packs are stored with the
/// node down, the snapshot restores byte for byte and `verify` reads every
/// pack clean. The node restarted (it holds fewer blocks than the others:
/// it really missed those writes), the daemon moved to its endpoint: a
/// second `verify` reads every pack through it, and a second backup and
/// the restores of both snapshots go through it.
#[test]
fn a_garage_node_killed_mid_backup_loses_nothing() {
    const LOST: usize = 2;
    let mut s = scene("lost", 1000);
    let mut backup = s.start_backup();
    let started = Instant::now();
    let at_kill = s.wait_packs("the backup's first pack", 0);
    assert!(
        backup.try_wait().unwrap().is_none(),
        "the backup still ran when the node was killed"
    );
    s.cluster.kill(LOST);
    let killed = started.elapsed();
    let out = backup.wait_with_output().unwrap();
    let first = succeeded(&out);
    let packs = stored_packs(&s.server).len();
    eprintln!(
        "node {LOST} killed {killed:?} into the backup, with {at_kill} pack(s) stored; \
         the backup ended at {:?} with {packs} packs",
        started.elapsed()
    );
    assert!(
        packs > at_kill,
        "packs were stored with the node down: {at_kill} at the kill, {packs} at the end"
    );
    let as_first = support::state(&s.home);
    s.assert_restores(&first[..12], &s.home, "restored-first");
    s.assert_verify_clean();

    // The node comes back; the daemon now goes through it: everything,
    // including what was written while it was down, is served there.
    let restart = Instant::now();
    s.cluster.restart(LOST);
    eprintln!(
        "node {LOST} serving again {:?} after its restart",
        restart.elapsed()
    );
    // The node really missed what was written without it.
    let (held, all) = (
        s.cluster.stored_bytes(LOST),
        s.cluster.stored_bytes(SERVED_BY),
    );
    assert!(
        held < all,
        "node {LOST} holds {held} bytes of blocks, node {SERVED_BY} {all}"
    );
    let storage = s.cluster.storage(LOST, "lost");
    s.server.restart_on(storage, |_| {});
    s.assert_verify_clean();
    write(&s.home, "Notes/jour-2.txt", &text_bytes(50_000, 2));
    let second = s.pc.backup_id();
    assert_ne!(first, second);
    s.assert_restores("latest", &s.home, "restored-second");
    let target = s.base.join("restored-first-again");
    s.pc.restore_to(&first[..12], &target);
    assert!(
        support::state(&target.join(s.home.strip_prefix("/").unwrap())) == as_first,
        "the first snapshot restores as it was, through the node that came back"
    );
}

/// A node killed once the backup's first pack is stored and started again
/// once another pack went in without it: the backup, still running when
/// the node is back, completes without a retry; the snapshot restores byte
/// for byte and `verify` reads every pack clean, through the daemon's node
/// and then through the node that came back.
#[test]
fn a_garage_node_back_mid_backup_loses_nothing() {
    const BOUNCED: usize = 1;
    let mut s = scene("bounced", 2000);
    let mut backup = s.start_backup();
    let started = Instant::now();
    let at_kill = s.wait_packs("the backup's first pack", 0);
    s.cluster.kill(BOUNCED);
    let killed = started.elapsed();
    let while_down = s.wait_packs("a pack stored with the node down", at_kill);
    s.cluster.restart(BOUNCED);
    let back = started.elapsed();
    assert!(
        backup.try_wait().unwrap().is_none(),
        "the backup still ran when the node came back"
    );
    let out = backup.wait_with_output().unwrap();
    let snapshot = succeeded(&out);
    let packs = stored_packs(&s.server).len();
    eprintln!(
        "node {BOUNCED} killed at {killed:?} ({at_kill} pack(s)), back at {back:?} \
         ({while_down} packs); the backup ended at {:?} with {packs} packs",
        started.elapsed()
    );
    assert!(
        packs > while_down,
        "packs were stored after the node came back: {while_down} then, {packs} at the end"
    );
    s.assert_restores(&snapshot[..12], &s.home, "restored");
    s.assert_verify_clean();
    let storage = s.cluster.storage(BOUNCED, "bounced");
    s.server.restart_on(storage, |_| {});
    s.assert_verify_clean();
}
