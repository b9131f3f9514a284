//! `coffre-server`'s listings end quietly when the reader of their output
//! has gone (`coffre-server usage | head`): status 0, nothing on standard
//! error, no panic. The pipe's reading end is closed before the program
//! writes, so its first line meets a closed pipe.

mod common;

use std::process::Stdio;

use common::{command, ok, server};

#[test]
fn listings_end_quietly_on_a_closed_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&server(&data, &["init", "--listen", "127.0.0.1:7443"]));
    for name in ["asso-jardins", "coop-velo", "amicale"] {
        ok(&server(
            &data,
            &["subscriber", "add", name, "--quota", "1GB"],
        ));
        ok(&server(&data, &["device", "add", name, "pc"]));
    }
    let listings: [&[&str]; 8] = [
        &["usage"],
        &["usage", "--json"],
        &["usage", "--csv"],
        &["device", "list"],
        &["device", "list", "--json"],
        &["subscriber", "list"],
        &["--help"],
        &["prune", "--dry-run"],
    ];
    for args in listings {
        let mut cmd = command(&data, args);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "coffre-server {args:?} into a closed pipe printed: {stderr}"
        );
        assert!(
            out.status.success(),
            "coffre-server {args:?} into a closed pipe ended with {}: {stderr}",
            out.status
        );
    }
}
