//! The board's numbers add up: after real backups of several structures,
//! the used bytes the server reports are exactly what its packs and
//! manifests hold on disk, and each structure's status reads true.

#![cfg(unix)]

mod support;

use std::fs;
use std::path::Path;

use coffre_core::benchmark::{random_bytes, text_bytes};
use coffre_store::Role;
use support::{Client, Server};

fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let md = e.metadata().unwrap();
        if md.is_dir() {
            total += disk_bytes(&e.path());
        } else {
            total += md.len();
        }
    }
    total
}

#[test]
fn used_bytes_add_up_to_the_packs_and_manifests_on_disk() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(work.path()).unwrap();
    let mut reports = Vec::new();
    for (sub, pcs, quota) in [("jardins", 2, 1u64 << 30), ("compta", 1, 6_300_000)] {
        for k in 0..pcs {
            let home = base.join(format!("{sub}-{k}"));
            fs::create_dir_all(&home).unwrap();
            fs::write(home.join("notes.txt"), text_bytes(3_000_000, k + 1)).unwrap();
            fs::write(home.join("photo.jpg"), random_bytes(5_000_000, 10 + k)).unwrap();
            let pc = Client::new();
            pc.enrol(
                &server.token(sub, quota, &format!("pc{k}"), Role::Backup),
                &[&home],
            );
            reports.push((sub, pc.json(&["backup"])));
            fs::write(home.join("more.txt"), text_bytes(200_000, 20 + k)).unwrap();
            reports.push((sub, pc.json(&["backup"])));
        }
    }
    // A PC enrolled that never backed up.
    server.token("compta", 0, "pc-new", Role::Backup);

    let usage = server.store.usage().unwrap();
    let used: u64 = usage.iter().map(|u| u.used_bytes).sum();
    // Packs and manifests; each subscriber's wrapped key (a 106-byte file)
    // and account file, kept for rebuilding the catalogue, are not part of
    // the quota.
    let mut on_disk = 0;
    for sub in fs::read_dir(server.dir.path().join(coffre_store::SUBSCRIBERS_DIR)).unwrap() {
        let sub = sub.unwrap().path();
        on_disk += disk_bytes(&sub.join("packs")) + disk_bytes(&sub.join("manifests"));
        let others: Vec<_> = fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| {
                n != "packs" && n != "manifests" && n != "key" && n != coffre_store::ACCOUNT_FILE
            })
            .collect();
        assert!(others.is_empty(), "unexpected files: {others:?}");
    }
    assert_eq!(
        used, on_disk,
        "used bytes must equal the packs and manifests on disk"
    );

    let jardins = usage.iter().find(|u| u.name == "jardins").unwrap();
    let compta = usage.iter().find(|u| u.name == "compta").unwrap();
    // What the data weighs: each PC's latest snapshot, as the client reported it.
    let latest = |sub: &str| -> u64 {
        reports
            .iter()
            .filter(|(s, _)| *s == sub)
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|pair| pair[1].1["bytes"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(jardins.protected_bytes, latest("jardins"));
    assert_eq!(compta.protected_bytes, latest("compta"));
    assert_eq!(jardins.snapshots, 4);
    assert!(
        jardins.protected_bytes > jardins.used_bytes,
        "the text compresses"
    );

    let now = coffre_core::Timestamp::now().secs;
    use coffre_server::status_words as status;
    assert_eq!(status(jardins, now, 3), ["ok"]);
    let words = status(compta, now, 3);
    assert!(
        words.contains(&"near quota".to_string()),
        "{words:?}: {} of {}",
        compta.used_bytes,
        compta.quota_bytes
    );
    assert!(
        words.contains(&"never backed up: pc-new".to_string()),
        "{words:?}"
    );
    // Three days later with no backup, every PC is stale.
    let later = status(jardins, now + 4 * 86_400, 3);
    assert_eq!(
        later,
        [
            "stale: pc0 has no backup for 4 days",
            "stale: pc1 has no backup for 4 days"
        ]
    );
}
