//! Admin operations: data directories, subscribers, devices, authentication,
//! usage.

use coffre_store::{Error, Role, Store};
use coffre_testkit::store::Env;
use coffre_testkit::{data, Client, GIB};

#[test]
fn create_and_open_data_directories() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let e = Store::open(&missing).unwrap_err();
    assert!(matches!(e, Error::NoDataDir { .. }), "{e:?}");
    assert!(e.to_string().contains("coffre-server init"), "{e}");
    assert!(e.to_string().contains("nowhere"), "{e}");

    drop(Store::create(dir.path()).unwrap());
    assert!(dir.path().join("catalog.sqlite").is_file());
    assert!(dir.path().join("subscribers").is_dir());
    let e = Store::create(dir.path()).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    Store::open(dir.path()).unwrap();
}

#[test]
fn subscribers_add_list_show_set() {
    let env = Env::new();
    let st = &env.store;
    st.add_subscriber("zeta", 10 * GIB, None).unwrap();
    st.add_subscriber("acme", 50 * GIB, Some("monthly=12,last=3"))
        .unwrap();
    let e = st.add_subscriber("acme", GIB, None).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    assert!(e.to_string().contains("acme"), "{e}");

    let list = st.list_subscribers().unwrap();
    let names: Vec<_> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["acme", "zeta"]);
    let acme = &list[0];
    assert_eq!(acme.quota_bytes, 50 * GIB);
    assert_eq!(acme.used_bytes, 0);
    assert_eq!(acme.retention.as_deref(), Some("last=3,monthly=12"));
    assert_eq!(
        (acme.snapshots, acme.devices, acme.last_backup),
        (0, 0, None)
    );
    assert_eq!(st.subscriber("acme").unwrap(), *acme);

    st.set_subscriber("acme", Some(GIB), None).unwrap();
    let s = st.subscriber("acme").unwrap();
    assert_eq!(s.quota_bytes, GIB);
    assert_eq!(s.retention.as_deref(), Some("last=3,monthly=12"));
    st.set_subscriber("acme", None, Some("daily=7")).unwrap();
    assert_eq!(
        st.subscriber("acme").unwrap().retention.as_deref(),
        Some("daily=7")
    );
    st.set_subscriber("acme", None, Some("default")).unwrap();
    let s = st.subscriber("acme").unwrap();
    assert_eq!((s.quota_bytes, s.retention), (GIB, None));

    // Issue 20: the contact, set, kept by the other changes, removed by "".
    assert_eq!(s.contact, None);
    st.set_contact("acme", Some(" boss@acme.example ")).unwrap();
    st.set_subscriber("acme", Some(2 * GIB), None).unwrap();
    let s = st.subscriber("acme").unwrap();
    assert_eq!(s.contact.as_deref(), Some("boss@acme.example"));
    assert_eq!(
        st.list_subscribers().unwrap()[0].contact.as_deref(),
        Some("boss@acme.example")
    );
    st.set_contact("acme", Some("")).unwrap();
    assert_eq!(st.subscriber("acme").unwrap().contact, None);
    st.set_subscriber("acme", Some(GIB), None).unwrap();
    let e = st.set_contact("nobody", Some("a@b.example")).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");

    let e = st.set_subscriber("nobody", Some(1), None).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    let e = st.subscriber("nobody").unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    let e = st.add_subscriber("x", GIB, Some("sometimes")).unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    let e = st.add_subscriber("x", u64::MAX, None).unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    assert_eq!(st.list_subscribers().unwrap().len(), 2);
}

#[test]
fn invalid_names_are_refused() {
    let env = Env::new();
    for bad in ["", ".", "..", "-x", "a b", "a/b", "../etc", &"n".repeat(65)] {
        let e = env.store.add_subscriber(bad, GIB, None).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidName {
                    kind: "subscriber",
                    ..
                }
            ),
            "{bad:?}: {e:?}"
        );
    }
    env.store.add_subscriber("ok", GIB, None).unwrap();
    let e = env
        .store
        .add_device("ok", "pc 1", Role::Backup)
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidName { kind: "device", .. }),
        "{e:?}"
    );
    assert!(env.store.list_subscribers().unwrap().len() == 1);
}

#[test]
fn devices_add_list_revoke() {
    let env = Env::new();
    let st = &env.store;
    st.add_subscriber("acme", GIB, None).unwrap();
    st.add_subscriber("beta", GIB, None).unwrap();
    let s1 = st.add_device("acme", "pc-2", Role::Backup).unwrap();
    let s2 = st.add_device("acme", "pc-1", Role::Admin).unwrap();
    st.add_device("beta", "pc-1", Role::Backup).unwrap();
    assert_ne!(s1, s2);

    let e = st.add_device("acme", "pc-1", Role::Backup).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    let e = st.add_device("nobody", "pc-1", Role::Backup).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");

    let all = st.list_devices(None).unwrap();
    let names: Vec<_> = all
        .iter()
        .map(|d| format!("{}/{}/{}", d.subscriber, d.name, d.role))
        .collect();
    assert_eq!(
        names,
        ["acme/pc-1/admin", "acme/pc-2/backup", "beta/pc-1/backup"]
    );
    assert_eq!(st.list_devices(Some("beta")).unwrap().len(), 1);
    let e = st.list_devices(Some("nobody")).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert_eq!(st.subscriber("acme").unwrap().devices, 2);

    st.revoke_device("acme", "pc-2").unwrap();
    let when = st.list_devices(Some("acme")).unwrap()[1].revoked.unwrap();
    st.revoke_device("acme", "pc-2").unwrap();
    assert_eq!(
        st.list_devices(Some("acme")).unwrap()[1].revoked,
        Some(when)
    );
    assert_eq!(st.subscriber("acme").unwrap().devices, 1);
    let e = st.revoke_device("acme", "pc-9").unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    // A revoked device keeps its name.
    let e = st.add_device("acme", "pc-2", Role::Backup).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");

    let json = serde_json::to_value(st.list_devices(None).unwrap()).unwrap();
    assert_eq!(json[0]["role"], "admin");
    assert_eq!(json[1]["revoked"], serde_json::json!(when));
}

#[test]
fn authenticate_known_unknown_revoked() {
    let env = Env::new();
    let st = &env.store;
    st.add_subscriber("acme", GIB, None).unwrap();
    let secret = st.add_device("acme", "pc-1", Role::Admin).unwrap();
    let s = st.authenticate(&secret).unwrap();
    assert_eq!(
        (s.subscriber.as_str(), s.device.as_str(), s.role),
        ("acme", "pc-1", Role::Admin)
    );

    let mut wrong = secret;
    wrong[0] ^= 1;
    let e = st.authenticate(&wrong).unwrap_err();
    assert!(matches!(e, Error::UnknownDevice), "{e:?}");
    assert!(e.to_string().contains("enrol"), "{e}");

    st.revoke_device("acme", "pc-1").unwrap();
    match st.authenticate(&secret).unwrap_err() {
        Error::Revoked { subscriber, device } => {
            assert_eq!((subscriber.as_str(), device.as_str()), ("acme", "pc-1"))
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn the_catalogue_never_holds_a_device_secret() {
    let env = Env::new();
    env.store.add_subscriber("acme", GIB, None).unwrap();
    let secret = env.store.add_device("acme", "pc-1", Role::Backup).unwrap();
    drop(env.store);
    let mut all = Vec::new();
    for name in ["catalog.sqlite", "catalog.sqlite-wal"] {
        if let Ok(b) = std::fs::read(env.dir.path().join(name)) {
            all.extend(b);
        }
    }
    assert!(
        !all.windows(32).any(|w| w == secret),
        "the raw secret is on disk"
    );
    assert!(all
        .windows(32)
        .any(|w| w == blake3::hash(&secret).as_bytes()));
}

#[test]
fn usage_adds_up() {
    let env = Env::new();
    let a = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    env.device("acme", "pc-2", Role::Backup);
    env.store.add_device("acme", "old", Role::Backup).unwrap();
    env.store.revoke_device("acme", "old").unwrap();
    env.store.add_subscriber("empty", 5, None).unwrap();

    let mut c = Client::new(1);
    let mut pack = env.store.open_pack(&a);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (id, b) = c.blob(&data(i, 5000));
        env.store.put_chunk(&a, &mut pack, &id, &b).unwrap();
        ids.push(id);
    }
    env.store
        .commit_snapshot(&a, &mut pack, &c.manifest_at("pc-1", 100, &ids))
        .unwrap();
    env.store
        .commit_snapshot(&a, &mut pack, &c.manifest_at("pc-1", 200, &ids[..1]))
        .unwrap();

    let usage = env.store.usage().unwrap();
    assert_eq!(usage.len(), 2);
    let u = &usage[0];
    assert_eq!(u.name, "acme");
    assert_eq!(u.used_bytes, env.disk_bytes(&a));
    assert_eq!(u.snapshots, 2);
    assert_eq!(u.devices, 2);
    assert_eq!(u.logical_bytes, 3000 + 1000);
    assert!(u.last_backup.is_some());
    let e = &usage[1];
    assert_eq!(
        (
            e.name.as_str(),
            e.quota_bytes,
            e.used_bytes,
            e.snapshots,
            e.devices,
            e.last_backup
        ),
        ("empty", 5, 0, 0, 0, None)
    );
    // list_subscribers agrees with usage and with the one-subscriber query.
    let list = env.store.list_subscribers().unwrap();
    assert_eq!(list[0], env.store.subscriber("acme").unwrap());
    assert_eq!(list[0].used_bytes, u.used_bytes);
    assert_eq!(list[0].last_backup, u.last_backup);
    let json = serde_json::to_value(&usage).unwrap();
    assert_eq!(json[0]["snapshots"], 2);
}
