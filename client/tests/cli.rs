//! The `coffre` binary as a user runs it: hermetic (own HOME, own temp dir,
//! nothing written to the working directory).

use std::process::{Command, Output};

fn coffre(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(args)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .current_dir(home.path())
        .output()
        .expect("run coffre")
}

#[test]
fn benchmark_json_has_one_chunk_id_row_per_thread_count() {
    let out = coffre(&[
        "benchmark",
        "--json",
        "--seconds",
        "0.05",
        "--size",
        "8",
        "--threads",
        "1,2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let results = v["results"].as_array().expect("results array");
    for threads in [1, 2] {
        let rows: Vec<_> = results
            .iter()
            .filter(|r| r["name"] == "chunk+id" && r["threads"] == threads)
            .collect();
        assert_eq!(rows.len(), 1, "one chunk+id row for {threads} threads");
        assert!(rows[0]["mb_per_s"].as_f64().unwrap() > 0.0);
    }
    for name in [
        "chunk",
        "id",
        "compress text",
        "compress random",
        "encrypt",
        "whole path text",
        "whole path random",
    ] {
        assert!(results.iter().any(|r| r["name"] == name), "missing {name}");
    }
}

#[test]
fn benchmark_table_is_readable() {
    let out = coffre(&[
        "benchmark",
        "--seconds",
        "0.02",
        "--size",
        "4",
        "--threads",
        "1",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("chunk+id"), "{text}");
    assert!(text.contains("MB/s"), "{text}");
}

#[test]
fn bad_arguments_are_one_clear_line_and_a_failure() {
    let out = coffre(&["benchmark", "--seconds", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--seconds"), "{err}");
}

#[test]
fn help_teaches() {
    let out = coffre(&["benchmark", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("--json") && text.contains("whole path"),
        "{text}"
    );
}
