//! Every command ends quietly when the reader of its output has gone
//! (`coffre ls latest -R | head`): status 0, nothing on standard error, no
//! panic. The pipe's reading end is closed before the program writes, so
//! its first line meets a closed pipe.

#![cfg(unix)]

mod support;

use std::fs;
use std::process::Stdio;

use coffre_store::Role;
use support::{Client, Server};

/// Runs `coffre ARGS` with a standard output nobody reads.
fn run_into_closed_pipe(client: &Client, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = client
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_listing_command_ends_quietly_on_a_closed_pipe() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    for i in 0..300 {
        let dir = home.join(format!("dossier-{:02}", i % 17));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("fichier-{i:04}.txt")),
            format!("ligne {i}\n"),
        )
        .unwrap();
    }
    let pc = Client::new();
    pc.enrol(&server.token("asso", 1 << 30, "pc", Role::Admin), &[&home]);
    let first = pc.backup_id();
    fs::write(home.join("nouveau.txt"), b"du neuf").unwrap();
    let second = pc.backup_id();
    let home_s = home.to_str().unwrap();
    let one_file = home.join("nouveau.txt");
    let one_file = one_file.to_str().unwrap();

    let commands: Vec<Vec<&str>> = vec![
        vec!["snapshots"],
        vec!["snapshots", "--json"],
        vec!["ls", "latest", "-R"],
        vec!["ls", "latest", home_s, "--json"],
        vec!["find", "*.txt"],
        vec!["find", "*.txt", "--json"],
        vec!["diff", &first, &second],
        vec!["dump", "latest", home_s],
        vec!["dump", "latest", one_file],
        vec!["status"],
        vec!["check"],
        vec!["backup"],
        vec!["--help"],
        vec!["restore", "--help"],
        vec!["--version"],
    ];
    for args in &commands {
        let (status, stderr) = run_into_closed_pipe(&pc, args);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "coffre {args:?} into a closed pipe printed: {stderr}"
        );
        assert!(
            status.success(),
            "coffre {args:?} into a closed pipe ended with {status}: {stderr}"
        );
    }
    // The backup run into a closed pipe was saved all the same.
    let list = pc.json(&["snapshots"]);
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 3, "{list}");
}
