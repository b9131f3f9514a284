//! What the dedup trust rule (issue 17) costs: two PCs of one subscriber
//! that share a folder, backed up one after the other to the real daemon on
//! loopback, with the real `coffre` program.
//!
//! ```text
//! /work/shared/bench/make-dataset /tmp/ds --scale 0.05
//! cargo build --release -p coffre-client
//! cargo run --release -p coffre-benches --example dedup_trust -- /tmp/ds Documents
//! ```
//!
//! PC A backs up the whole dataset tree; PC B backs up a copy of its
//! `SHARED` subtree (the shared folder) beside a small private folder. The
//! example prints, for B's first and second backups: the bytes B sent up,
//! the bytes it fetched down to check A's copies before skipping them, the
//! chunks it checked, and what the server stores (`used_bytes`) after A and
//! after B. Without the rule, B skipped A's chunks unchecked: it fetched
//! nothing, and sent and stored the same as with the rule when A's copies
//! are good (they are here), so the rule's cost is the "fetched" column.
//!
//! The `coffre` program is the one beside this example's folder
//! (`target/release/coffre`).

use std::path::{Path, PathBuf};
use std::process::Command;

use coffre_store::Role;
use coffre_testkit::daemon::Server;
use coffre_testkit::PASSPHRASE;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dataset, shared] = &args[..] else {
        eprintln!("usage: dedup_trust DATASET_DIR SHARED_SUBDIR");
        std::process::exit(2);
    };
    let dataset = Path::new(dataset);
    let program = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("coffre");
    assert!(
        program.exists(),
        "{} is missing: cargo build --release -p coffre-client",
        program.display()
    );

    let work = tempfile::tempdir().unwrap();
    let b_root = work.path().join("pc-b");
    copy_dir(&dataset.join(shared), &b_root.join(shared));
    std::fs::create_dir_all(b_root.join("Privé")).unwrap();
    std::fs::write(b_root.join("Privé/notes.txt"), b"notes de B").unwrap();

    let server = Server::start();
    let a = Pc::enrol(&program, &server, work.path(), "pc-a", dataset);
    let b = Pc::enrol(&program, &server, work.path(), "pc-b", &b_root);
    let used = || server.store.usage().unwrap()[0].used_bytes;

    let ra = a.backup();
    let after_a = used();
    println!(
        "A (whole tree): sent {} bytes, stored after A {after_a} bytes",
        ra["bytes_sent"]
    );
    println!("| backup | sent up | fetched to check | chunks checked | stored after |");
    println!("| --- | --- | --- | --- | --- |");
    for run in ["B, first", "B, second (unchanged)"] {
        let r = b.backup();
        println!(
            "| {run} | {} | {} | {} | {} (+{}) |",
            r["bytes_sent"],
            r["bytes_verified"],
            r["chunks_verified"],
            used(),
            used() - after_a
        );
    }
    println!(
        "shared folder: {} bytes of files",
        dir_bytes(&dataset.join(shared))
    );
}

struct Pc {
    program: PathBuf,
    config: PathBuf,
}

impl Pc {
    fn enrol(program: &Path, server: &Server, work: &Path, name: &str, root: &Path) -> Pc {
        let pc = Pc {
            program: program.to_path_buf(),
            config: work.join(format!("{name}-config/config.toml")),
        };
        let token = server.token("asso", 1 << 40, name, Role::Backup);
        let out = pc
            .command(&["enrol", &token, "--path", root.to_str().unwrap()])
            .env("COFFRE_PASSPHRASE", PASSPHRASE)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        pc
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("--config").arg(&self.config).args(args);
        c
    }

    fn backup(&self) -> serde_json::Value {
        let out = self.command(&["backup", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if t.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                dir_bytes(&e.path())
            } else if t.is_file() {
                e.metadata().unwrap().len()
            } else {
                0
            }
        })
        .sum()
}
