//! A service of several frontends over one bucket (issue 22): the real
//! daemons (two frontends sharing one TLS identity, in this process), a
//! real Garage (`coffre_testkit::garage`: the take-over on a three-node
//! cluster with replication 3, each frontend through another node), the
//! real `coffre` program on each PC. A frontend's machine is lost with its data directory: another
//! frontend takes its subscribers over from the bucket alone, the old
//! address is pointed at it (a UDP relay on loopback stands for the
//! address the operator moves: a DNS name or a floating IP), and every
//! snapshot restores byte for byte. A planned move tells the PCs where
//! their structure went; a frontend that comes back after a take-over lets
//! go of what it lost.

#![cfg(unix)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffre_proto::Token;
use coffre_server::{Identity, Limits};
use coffre_store::{PackStorage, Role, Store};
use coffre_testkit::garage::{self, Garage};
use coffre_wan::{Profile, Relay};
use support::{assert_same_state, make_tree, Client, PathState};

/// One frontend: a data directory, its store and its daemon, on the
/// shared runtime.
struct Frontend {
    dir: Option<tempfile::TempDir>,
    store: Option<Arc<Store>>,
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Frontend {
    /// A new frontend `name` of the service of `storage`, serving on a free
    /// port; its record gives `public` (or its own address) to the PCs.
    fn start(
        rt: &tokio::runtime::Runtime,
        identity: &Identity,
        storage: &PackStorage,
        name: &str,
    ) -> Frontend {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::create_with(dir.path(), storage).unwrap());
        let mut fe = Frontend {
            dir: Some(dir),
            store: Some(store.clone()),
            addr: String::new(),
            stop: None,
            task: None,
        };
        fe.serve(rt, identity);
        store.join_service(name, Some(&fe.addr)).unwrap();
        fe
    }

    fn serve(&mut self, rt: &tokio::runtime::Runtime, identity: &Identity) {
        let (addr, stop, task) = coffre_testkit::daemon::serve(
            rt.handle(),
            identity,
            "127.0.0.1:0",
            self.store().clone(),
            Limits::default(),
        );
        self.addr = addr;
        self.stop = Some(stop);
        self.task = Some(task);
    }

    fn store(&self) -> &Arc<Store> {
        self.store.as_ref().expect("a running frontend")
    }

    /// Stops the daemon and closes the store.
    fn stop(&mut self, rt: &tokio::runtime::Runtime) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            rt.block_on(task).unwrap();
        }
        // The connections' tasks end just after the daemon's.
        let store = self.store.take().unwrap();
        support::wait_until(
            "the daemon's tasks to let go of the store",
            Duration::from_secs(20),
            || Arc::strong_count(&store) == 1,
        );
    }

    /// Stops it and loses its machine: the data directory is deleted.
    fn lose(&mut self, rt: &tokio::runtime::Runtime) {
        self.stop(rt);
        let dir = self.dir.take().unwrap();
        std::fs::remove_dir_all(dir.path()).unwrap();
    }

    /// An enrolment token for a new device of `subscriber` (made with a
    /// quota if new), naming `address` as the server.
    fn token(&self, identity: &Identity, address: &str, subscriber: &str, device: &str) -> String {
        let secret =
            coffre_testkit::store::enrol(self.store(), subscriber, 1 << 30, device, Role::Backup);
        Token {
            server: address.to_string(),
            fingerprint: identity.fingerprint(),
            subscriber: subscriber.into(),
            device: device.into(),
            secret,
        }
        .encode()
        .unwrap()
    }
}

/// A PC: its `coffre`, its files, and a copy of them at each snapshot.
struct Pc {
    client: Client,
    home: PathBuf,
    _work: tempfile::TempDir,
    /// (snapshot id, the tree as it was backed up).
    snapshots: Vec<(String, BTreeMap<PathBuf, PathState>)>,
}

impl Pc {
    fn enrol(token: &str, seed: u8) -> Pc {
        let work = tempfile::tempdir().unwrap();
        let home = std::fs::canonicalize(work.path()).unwrap().join("home");
        make_tree(&home);
        support::write(
            &home,
            "own.bin",
            &coffre_core::benchmark::random_bytes(300_000, u64::from(seed)),
        );
        let client = Client::new();
        client.enrol(token, &[&home]);
        Pc {
            client,
            home,
            _work: work,
            snapshots: Vec::new(),
        }
    }

    /// Changes a file, backs up, and keeps a copy of the tree as backed up.
    fn backup(&mut self, day: u8) {
        support::write(
            &self.home,
            "journal.txt",
            format!("day {day}\n").repeat(1000).as_bytes(),
        );
        let id = self.client.backup_id();
        self.snapshots.push((id, support::state(&self.home)));
    }

    /// Every snapshot the server lists for this PC restores byte for byte.
    fn restores_everything(&self) {
        let listed = self.client.json(&["snapshots"]);
        let listed: Vec<String> = listed["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        for (id, tree) in &self.snapshots {
            assert!(listed.contains(id), "snapshot {id} is listed: {listed:?}");
            let target = tempfile::tempdir().unwrap();
            self.client.restore_to(id, target.path());
            assert_same_state(tree, &target.path().join(rel(&self.home)));
        }
    }
}

/// Where a restore puts an absolute path (snapshots mirror them under `/`).
fn rel(path: &Path) -> PathBuf {
    path.strip_prefix("/").unwrap().to_path_buf()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_frontend_lost_with_its_data_directory_is_taken_over_from_the_bucket_and_every_snapshot_restores(
) {
    let t0 = Instant::now();
    let cluster = garage::Cluster::start();
    let rt = runtime();
    let identity = Identity::generate().unwrap();
    let mut fe1 = Frontend::start(&rt, &identity, &cluster.storage(0, "service"), "fe1");
    let fe2 = Frontend::start(&rt, &identity, &cluster.storage(1, "service"), "fe2");
    eprintln!("{:?} started", t0.elapsed());
    // fe1's PCs dial its public address, which the operator can move.
    let public = Relay::spawn(fe1.addr.parse().unwrap(), Profile::unlimited()).unwrap();
    let public_addr = public.addr();
    fe1.store()
        .publish_frontend(Some(&public_addr.to_string()), None)
        .unwrap();

    // Two structures on fe1 (one with two PCs), one on fe2.
    let addr = public_addr.to_string();
    let mut pcs = vec![
        Pc::enrol(&fe1.token(&identity, &addr, "jardins", "accueil"), 1),
        Pc::enrol(&fe1.token(&identity, &addr, "jardins", "compta"), 2),
        Pc::enrol(&fe1.token(&identity, &addr, "epicerie", "caisse"), 3),
    ];
    let mut other = Pc::enrol(&fe2.token(&identity, &fe2.addr, "theatre", "regie"), 4);
    for day in 1..=2 {
        for pc in &mut pcs {
            pc.backup(day);
        }
        other.backup(day);
    }
    // Ids come from each frontend's block, so they never collide.
    let ids = |fe: &Frontend, name: &str| -> Vec<i64> {
        let record = fe.store().frontend(name).unwrap().unwrap();
        record.subscribers.iter().map(|(id, _)| *id).collect()
    };
    assert_eq!(ids(&fe1, "fe1"), [1_000_000_001, 1_000_000_002]);
    assert_eq!(ids(&fe2, "fe2"), [2_000_000_001]);

    eprintln!("{:?} backed up", t0.elapsed());
    // Each frontend writes its record with its usage (its daemon does at
    // start and every 5 minutes): every board shows every structure.
    coffre_server::start_frontend(fe1.store(), &public_addr.to_string()).unwrap();
    coffre_server::start_frontend(fe2.store(), &fe2.addr).unwrap();
    let board = |at: i64| -> Vec<(String, Option<String>, Vec<String>)> {
        coffre_server::usage::rows(fe2.store(), at, 30)
            .unwrap()
            .into_iter()
            .map(|r| {
                let words = r.status.iter().map(ToString::to_string).collect();
                (r.usage.name, r.frontend, words)
            })
            .collect()
    };
    let now = fe2.store().now();
    let seen = board(now);
    let names: Vec<(&str, Option<&str>)> = seen
        .iter()
        .map(|(n, f, _)| (n.as_str(), f.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("epicerie", Some("fe1")),
            ("jardins", Some("fe1")),
            ("theatre", Some("fe2"))
        ]
    );
    assert!(seen.iter().all(|(_, _, s)| s == &["ok"]), "{seen:?}");

    // fe1's machine is lost: daemon, catalogue, manifests, key files, all.
    fe1.lose(&rt);
    eprintln!("{:?} lost", t0.elapsed());
    // Twenty minutes later, fe2's board says whose server is silent.
    let seen = board(now + 20 * 60);
    for (name, _, status) in &seen {
        let silent = status
            .iter()
            .any(|s| s.starts_with("server silent: frontend fe1"));
        assert_eq!(silent, name != "theatre", "{seen:?}");
    }
    let started = Instant::now();
    let taken = fe2.store().take_over("fe1").unwrap();
    let took = started.elapsed();
    eprintln!("take-over of 2 subscribers: {took:?}");
    let rebuilt: Vec<_> = taken.iter().filter_map(|t| t.rebuilt.as_ref()).collect();
    assert_eq!(rebuilt.len(), 2, "{taken:?}");
    for r in &rebuilt {
        assert!(r.problems.is_empty(), "{r:?}");
        assert!(r.incomplete_snapshots.is_empty(), "{r:?}");
        assert!(r.key, "{r:?}");
    }
    let jardins = rebuilt.iter().find(|r| r.subscriber == "jardins").unwrap();
    assert_eq!((jardins.devices, jardins.snapshots), (2, 4), "{jardins:?}");
    // The record of fe2 lists them now.
    let record = fe2.store().frontend("fe2").unwrap().unwrap();
    let names: Vec<&str> = record.subscribers.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");

    // fe2's board shows them as its own, and fe1's record lists none.
    let seen = board(fe2.store().now());
    assert!(
        seen.iter()
            .all(|(_, f, s)| f.as_deref() == Some("fe2") && s == &["ok"]),
        "{seen:?}"
    );
    assert!(fe2
        .store()
        .frontend("fe1")
        .unwrap()
        .unwrap()
        .subscribers
        .is_empty());

    // The operator points fe1's address at fe2.
    drop(public);
    let _moved =
        Relay::spawn_on(public_addr, fe2.addr.parse().unwrap(), Profile::unlimited()).unwrap();

    // Every snapshot of every PC restores byte for byte, through fe2; and
    // the nightly backups go on (credentials roll on fe2).
    for pc in &mut pcs {
        pc.restores_everything();
        eprintln!("{:?} restored", t0.elapsed());
        pc.backup(3);
        pc.restores_everything();
    }
    eprintln!("{:?} all restored", t0.elapsed());
    other.restores_everything();
    for name in ["jardins", "epicerie", "theatre"] {
        let verify = fe2
            .store()
            .verify(name, &coffre_store::VerifyOptions::default())
            .unwrap();
        assert!(verify.is_clean(), "{verify:?}");
    }
}

#[test]
fn a_moved_structure_s_pcs_are_told_where_it_went_and_follow_and_a_frontend_that_comes_back_lets_go(
) {
    let garage = Garage::start();
    let storage = garage.storage("service");
    let rt = runtime();
    let identity = Identity::generate().unwrap();
    let mut fe1 = Frontend::start(&rt, &identity, &storage, "fe1");
    let fe2 = Frontend::start(&rt, &identity, &storage, "fe2");
    let mut moved = Pc::enrol(
        &fe1.token(&identity, &fe1.addr.clone(), "jardins", "accueil"),
        1,
    );
    let mut second = Pc::enrol(
        &fe1.token(&identity, &fe1.addr.clone(), "jardins", "compta"),
        3,
    );
    let mut stays = Pc::enrol(
        &fe1.token(&identity, &fe1.addr.clone(), "epicerie", "caisse"),
        2,
    );
    moved.backup(1);
    second.backup(1);
    stays.backup(1);

    // A planned move, fe1 still running: fe2 takes "jardins".
    let taken = fe2.store().take_over_subscriber("jardins").unwrap();
    assert!(taken.rebuilt.is_some(), "{taken:?}");

    // Its PC still dials fe1, which refuses and says where to go (error
    // 15, with fe2's address: fe1 learns it from the bucket); the PC
    // follows, writes fe2's address into its configuration and backs up
    // there, in the same run.
    let out = moved.client.run(&["backup"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("moved to {}", fe2.addr)), "{said}");
    let config = std::fs::read_to_string(&moved.client.config).unwrap();
    assert!(
        config.contains(&format!("server = \"{}\"", fe2.addr)),
        "{config}"
    );
    assert!(
        fe1.store().subscriber("jardins").is_err(),
        "fe1 let go of jardins"
    );
    // A second PC of the structure, still on fe1's address: fe1, which
    // let go of the structure, remembers its devices' secrets and where it
    // went, and this one follows too.
    let out = second.client.run(&["backup"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("moved to {}", fe2.addr)), "{said}");
    for pc in [&mut moved, &mut second] {
        pc.backup(2);
        pc.restores_everything();
    }

    // fe1 is down when fe2 takes "epicerie" too; when it comes back with
    // its data directory, it lets go of it at start.
    fe1.stop(&rt);
    fe2.store().take_over("fe1").unwrap();
    let back = Store::open_with(fe1.dir.as_ref().unwrap().path(), &storage).unwrap();
    assert_eq!(
        back.check_all_serving().unwrap(),
        vec!["epicerie".to_string()]
    );
    assert!(back.list_subscribers().unwrap().is_empty());
    let config = std::fs::read_to_string(&stays.client.config).unwrap();
    std::fs::write(&stays.client.config, config.replace(&fe1.addr, &fe2.addr)).unwrap();
    stays.backup(2);
    stays.restores_everything();
}

#[test]
fn a_server_that_ran_alone_joins_the_service_and_another_frontend_can_take_it_over() {
    let garage = Garage::start();
    let storage = garage.storage("service");
    // A server on its own, its packs in the bucket, a PC backed up twice.
    let solo = coffre_testkit::daemon::Server::start_on(storage.clone());
    let mut pc = Pc::enrol(&solo.token("jardins", 1 << 30, "accueil", Role::Backup), 1);
    pc.backup(1);
    pc.backup(2);

    // It joins: it keeps its ids (number 0), and what it wrote before
    // (manifests, key file) is copied into the bucket.
    let joined = solo.store.join_service("solo", Some(&solo.addr)).unwrap();
    assert_eq!(joined.number, 0);
    let record = solo.store.frontend("solo").unwrap().unwrap();
    assert_eq!(record.subscribers, [(1, "jardins".to_string())]);

    // Another frontend of the service (the same identity) takes it over
    // from the bucket alone once the solo server's machine is lost, and
    // the PC, pointed at it, restores everything and backs up again.
    let rt = runtime();
    let fe2 = Frontend::start(&rt, solo.identity(), &storage, "fe2");
    assert_eq!(fe2.store().service().unwrap().unwrap().number, 1);
    let solo_addr = solo.addr.clone();
    drop(solo);
    let taken = fe2.store().take_over("solo").unwrap();
    let rebuilt = taken[0].rebuilt.as_ref().expect("taken over");
    assert_eq!((rebuilt.snapshots, rebuilt.key), (2, true), "{rebuilt:?}");
    let config = std::fs::read_to_string(&pc.client.config).unwrap();
    std::fs::write(&pc.client.config, config.replace(&solo_addr, &fe2.addr)).unwrap();
    pc.restores_everything();
    pc.backup(3);
    pc.restores_everything();
}

#[test]
fn a_frontend_rebuilt_on_a_new_machine_under_its_name_takes_its_own_structures_back() {
    let garage = Garage::start();
    let storage = garage.storage("service");
    let rt = runtime();
    let identity = Identity::generate().unwrap();
    let mut fe1 = Frontend::start(&rt, &identity, &storage, "fe1");
    let mut pc = Pc::enrol(
        &fe1.token(&identity, &fe1.addr.clone(), "jardins", "accueil"),
        1,
    );
    pc.backup(1);
    let old_addr = fe1.addr.clone();
    fe1.lose(&rt);

    // A new machine, the same name and identity: the same number, and its
    // daemon's start keeps its record's structures listed until it has
    // taken them back.
    let new = Frontend::start(&rt, &identity, &storage, "fe1");
    assert_eq!(new.store().service().unwrap().unwrap().number, 1);
    coffre_server::start_frontend(new.store(), &new.addr).unwrap();
    let taken = new.store().take_over("fe1").unwrap();
    assert!(taken.len() == 1 && taken[0].rebuilt.is_some(), "{taken:?}");
    let config = std::fs::read_to_string(&pc.client.config).unwrap();
    std::fs::write(&pc.client.config, config.replace(&old_addr, &new.addr)).unwrap();
    pc.restores_everything();
    pc.backup(2);
    pc.restores_everything();
}
