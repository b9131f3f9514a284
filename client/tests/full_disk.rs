//! A full disk on the server: the backup that does not fit fails with "the
//! server's storage is full", nothing committed is lost, restores go on, and
//! once the operator adds space the next backup completes.
//!
//! The server's data directory is on a real, small file system: a tmpfs of
//! 48 MB mounted in a private mount namespace (`unshare --user
//! --map-root-user --mount`, so no root is needed and nothing is mounted
//! outside this test). The test re-runs itself inside that namespace.

#![cfg(target_os = "linux")]

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use coffre_core::benchmark::{random_bytes, text_bytes};
use coffre_store::Role;
use support::{assert_same_tree, Client, Server};

const CHILD: &str = "COFFRE_FULL_DISK_CHILD";

#[test]
fn a_full_disk_refuses_new_data_keeps_the_old_and_recovers() {
    let Ok(mount) = std::env::var(CHILD) else {
        let mount = tempfile::tempdir().unwrap();
        let out = Command::new("unshare")
            .args([
                "--user",
                "--map-root-user",
                "--mount",
                "--propagation",
                "private",
            ])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_full_disk_refuses_new_data_keeps_the_old_and_recovers",
                "--nocapture",
            ])
            .env(CHILD, mount.path())
            .output()
            .expect("unshare (util-linux) runs the test in its own mount namespace");
        assert!(
            out.status.success(),
            "the full-disk scenario failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("test result: ok. 1 passed"),
            "the scenario did not run: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        return;
    };
    scenario(Path::new(&mount));
}

fn mount_tmpfs(dir: &Path, size: &str, remount: bool) {
    let mut c = Command::new("mount");
    c.args(["-t", "tmpfs", "-o"]);
    c.arg(if remount {
        format!("remount,size={size}")
    } else {
        format!("size={size}")
    });
    c.args(["tmpfs"]).arg(dir);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "mount: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scenario(mount: &Path) {
    mount_tmpfs(mount, "48m", false);
    let server = Server::start_in(mount);
    let work = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(work.path()).unwrap();
    let home = base.join("home");
    fs::create_dir_all(home.join("Documents")).unwrap();
    fs::write(home.join("Documents/compta.csv"), text_bytes(2_000_000, 1)).unwrap();
    fs::write(
        home.join("Documents/statuts.pdf"),
        random_bytes(1_000_000, 2),
    )
    .unwrap();
    let pc = Client::new();
    pc.enrol(
        &server.token("jardins", 1 << 40, "pc", Role::Backup),
        &[&home],
    );
    let first = pc.backup_id();
    let before = support::state(&home);

    // 60 MB of photos do not fit in what is left of 48 MB.
    for i in 0..6u64 {
        fs::write(
            home.join(format!("Documents/photo-{i}.jpg")),
            random_bytes(10_000_000, 10 + i),
        )
        .unwrap();
    }
    let out = pc.run(&["backup"]);
    assert!(!out.status.success(), "the backup cannot fit");
    let err = support::one_line_error(&out);
    assert!(
        err.contains("storage is full") && err.contains("nothing already backed up was lost"),
        "{err}"
    );

    // The daemon still serves restores of what was committed.
    let target = base.join("restored");
    pc.restore_to(&first[..12], &target);
    let restored = target.join(home.strip_prefix("/").unwrap());
    assert!(
        support::state(&restored) == before,
        "the first snapshot is intact"
    );
    assert_eq!(
        pc.json(&["snapshots"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The operator adds space; the next backup completes (sending only what
    // did not reach the disk) and everything checks out.
    mount_tmpfs(mount, "256m", true);
    pc.json(&["backup"]);
    let check = pc.json(&["check", "--read-data"]);
    assert_eq!(check["ok"], true, "{check}");
    let target = base.join("restored-after");
    pc.restore_to("latest", &target);
    assert_same_tree(&home, &target.join(home.strip_prefix("/").unwrap()));
    let used = server.store.subscriber("jardins").unwrap().used_bytes;
    let packs_dir = server.dir.path().join("subscribers/1/packs");
    let manifests_dir = server.dir.path().join("subscribers/1/manifests");
    let on_disk: u64 = [packs_dir, manifests_dir]
        .iter()
        .flat_map(|d| fs::read_dir(d).unwrap())
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(
        used, on_disk,
        "used bytes match the files after the full disk"
    );
}
