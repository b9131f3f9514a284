//! Helpers of the tests that run the real `coffre-server` binary.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `coffre-server ARGS --data DATA` (periods in UTC).
pub fn server(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coffre-server"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env("TZ", "UTC")
        .output()
        .expect("run coffre-server")
}

/// The stdout of a command that must have succeeded.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Enrols device `name` of subscriber `sub`; returns its secret.
pub fn device(data: &Path, sub: &str, name: &str) -> [u8; 32] {
    let token = ok(server(data, &["device", "add", sub, name]));
    coffre_proto::Token::parse(token.trim()).unwrap().secret
}
