//! Helpers of the tests that run the real `coffre-server` binary: what
//! needs this package's `CARGO_BIN_EXE_coffre-server`. The rest (running a
//! command hermetically, `ok`, blobs and manifests, the store, Garage) is
//! in `coffre-testkit`.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub use coffre_testkit::ok;

/// The command `coffre-server ARGS --data DATA` (periods in UTC, nothing
/// inherited nor written to the working directory:
/// `coffre_testkit::admin_command`).
pub fn command(data: &Path, args: &[&str]) -> Command {
    coffre_testkit::admin_command(Path::new(env!("CARGO_BIN_EXE_coffre-server")), data, args)
}

/// Runs `coffre-server ARGS --data DATA`.
pub fn server(data: &Path, args: &[&str]) -> Output {
    command(data, args).output().expect("run coffre-server")
}

/// The one line `coffre-server` printed on failing.
pub fn one_line_error(out: &Output) -> String {
    coffre_testkit::one_line_error(out, "coffre-server")
}

/// Enrols device `name` of subscriber `sub`; returns its secret.
pub fn device(data: &Path, sub: &str, name: &str) -> [u8; 32] {
    let token = ok(&server(data, &["device", "add", sub, name]));
    coffre_proto::Token::parse(token.trim()).unwrap().secret
}
