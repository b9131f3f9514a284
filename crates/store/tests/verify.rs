//! `Store::verify`: damage is found, reported with the snapshots and devices
//! it affects, quarantined on request, and healed by the next upload.

use std::fs;

use coffre_store::{Role, VerifyOptions};
use coffre_testkit::store::Env;
use coffre_testkit::{data, Client, GIB};

fn repair() -> VerifyOptions {
    VerifyOptions {
        repair: true,
        ..VerifyOptions::default()
    }
}

#[test]
fn a_clean_store_verifies_clean() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let ids = env.sealed_pack(&s, &mut c, &[1, 2, 3], 20_000);
    env.commit(&s, &c, 100, &ids);
    let r = env.store.verify("acme", &VerifyOptions::default()).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!((r.packs, r.blobs, r.manifests), (1, 3, 1));
    let packs: u64 = env
        .packs(&s)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(r.bytes, packs);
}

#[test]
fn a_damaged_blob_is_reported_quarantined_and_healed_by_the_next_upload() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let laptop = env.device("acme", "laptop", Role::Backup);
    let mut c = Client::new(1);
    let ids = env.sealed_pack(&s, &mut c, &[1, 2, 3], 20_000);
    let snap = env.commit(&s, &c, 100, &ids);
    let other = env.sealed_pack(&laptop, &mut c, &[4], 20_000);
    env.commit(&laptop, &c, 200, &other);

    // One bit of the second blob flips on disk.
    let (pack, entry) = env
        .packs(&s)
        .into_iter()
        .find_map(|p| {
            let index = coffre_store::read_pack_index(&p).unwrap();
            let entry = index.into_iter().find(|e| e.id == ids[1])?;
            Some((p, entry))
        })
        .unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    bytes[entry.offset as usize + 500] ^= 0x10;
    fs::write(&pack, &bytes).unwrap();

    let r = env.store.verify("acme", &VerifyOptions::default()).unwrap();
    assert!(!r.is_clean());
    assert_eq!(r.damaged.len(), 1, "{r:?}");
    assert_eq!(r.damaged[0].chunk, ids[1].to_hex());
    assert!(r.damaged[0].problem.contains("checksum"), "{r:?}");
    assert_eq!(r.affected.len(), 1, "only pc-1's snapshot lists it");
    assert_eq!(r.affected[0].snapshot, snap.to_hex());
    assert_eq!(r.affected[0].device, "pc-1");
    assert_eq!(r.affected[0].damaged_chunks, 1);
    assert_eq!(r.quarantined, 0, "no repair without asking");
    assert!(
        env.store.chunk(&s, &ids[1]).is_err(),
        "never served damaged"
    );

    let r = env.store.verify("acme", &repair()).unwrap();
    assert_eq!((r.quarantined, r.packs_rewritten), (1, 1));
    let q = env.path().join(format!("quarantine/{}", s.subscriber_id));
    assert_eq!(
        fs::read_dir(&q).unwrap().count(),
        1,
        "the damaged bytes are kept aside"
    );
    assert_eq!(
        env.used("acme"),
        env.disk_bytes(&s),
        "used bytes match the disk"
    );
    // The server now says it does not have that chunk, and serves the rest.
    assert_eq!(env.store.has_chunks(&s, &ids).unwrap(), [true, false, true]);
    for (i, seed) in [(0, 1), (2, 3)] {
        let blob = env.store.chunk(&s, &ids[i]).unwrap();
        assert_eq!(c.open(&ids[i], &blob), data(seed, 20_000));
    }
    // Until it is sent again, verify says which snapshot misses it.
    let r = env.store.verify("acme", &VerifyOptions::default()).unwrap();
    assert!(
        r.damaged.is_empty() && r.damaged_indexes.is_empty(),
        "{r:?}"
    );
    assert_eq!(r.affected.len(), 1);
    assert_eq!(r.affected[0].missing_chunks, 1);

    // The next backup of the PC that still has the file sends it again.
    let again = env.sealed_pack(&s, &mut c, &[2], 20_000);
    assert_eq!(again, [ids[1]]);
    env.commit(&s, &c, 300, &ids);
    let r = env.store.verify("acme", &VerifyOptions::default()).unwrap();
    assert!(r.is_clean(), "healed: {r:?}");
    let blob = env.store.chunk(&s, &ids[1]).unwrap();
    assert_eq!(c.open(&ids[1], &blob), data(2, 20_000));
}

#[test]
fn a_missing_pack_and_a_damaged_manifest_are_reported() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let a = env.sealed_pack(&s, &mut c, &[1, 2], 20_000);
    let b = env.sealed_pack(&s, &mut c, &[3], 20_000);
    let first = env.commit(&s, &c, 100, &a);
    let second = env.commit(&s, &c, 200, &b);
    let packs = env.packs(&s);
    let lost = packs
        .iter()
        .find(|p| fs::metadata(p).unwrap().len() > 40_000)
        .unwrap();
    fs::remove_file(lost).unwrap();
    let manifest = env.path().join(format!(
        "subscribers/{}/manifests/{}",
        s.subscriber_id,
        second.to_hex()
    ));
    let mut m = fs::read(&manifest).unwrap();
    let n = m.len();
    m[n - 5] ^= 1;
    fs::write(&manifest, &m).unwrap();

    let r = env.store.verify("acme", &VerifyOptions::default()).unwrap();
    assert_eq!(r.damaged.len(), 2);
    assert!(r.damaged.iter().all(|d| d.problem.contains("missing")));
    assert_eq!(r.damaged_manifests.len(), 1);
    assert!(r.damaged_manifests[0].starts_with(&second.to_hex()));
    let mut affected: Vec<_> = r.affected.iter().map(|a| a.snapshot.clone()).collect();
    affected.sort();
    let mut expected = vec![first.to_hex(), second.to_hex()];
    expected.sort();
    assert_eq!(affected, expected);

    let r = env.store.verify("acme", &repair()).unwrap();
    assert_eq!(r.quarantined, 2);
    assert_eq!(env.store.has_chunks(&s, &a).unwrap(), [false, false]);
    assert_eq!(
        env.used("acme"),
        env.disk_bytes(&s),
        "the lost pack no longer counts"
    );
}

#[test]
fn a_sample_checks_a_part_of_the_packs() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    for seed in 0..6 {
        env.sealed_pack(&s, &mut c, &[seed], 20_000);
    }
    let parts: u64 = (0..3)
        .map(|turn| {
            env.store
                .verify(
                    "acme",
                    &VerifyOptions {
                        sample: Some((3, turn)),
                        repair: false,
                    },
                )
                .unwrap()
                .packs
        })
        .sum();
    assert_eq!(parts, 6, "three turns of a third cover every pack once");
}

/// The nightly sample checks a part of the manifests too (each in exactly
/// one part), but every one of them once the sampled packs show damage, so
/// that the report names every snapshot the damage affects (issue 22).
#[test]
fn a_sample_checks_a_part_of_the_manifests_unless_it_finds_damage() {
    let env = Env::new();
    let s = env.subscriber("acme", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let ids = env.sealed_pack(&s, &mut c, &[1, 2], 20_000);
    for t in 0..12 {
        env.commit(&s, &c, 100 + t, &ids);
    }
    let sample = |turn| VerifyOptions {
        sample: Some((3, turn)),
        repair: false,
    };
    let parts: Vec<_> = (0..3)
        .map(|turn| env.store.verify("acme", &sample(turn)).unwrap())
        .collect();
    assert_eq!(parts.iter().map(|r| r.manifests).sum::<u64>(), 12);
    assert!(parts.iter().all(|r| r.is_clean()));
    let with_the_pack = parts.iter().position(|r| r.packs == 1).unwrap() as u64;

    // Damage one blob: the turn that reads its pack checks every manifest.
    let pack = &env.packs(&s)[0];
    let mut bytes = fs::read(pack).unwrap();
    bytes[100] ^= 1;
    fs::write(pack, &bytes).unwrap();
    let r = env.store.verify("acme", &sample(with_the_pack)).unwrap();
    assert!(!r.damaged.is_empty());
    assert_eq!((r.manifests, r.affected.len()), (12, 12));
}
