//! coffre-testkit: what the test suites share, written once. Tests only
//! (`publish = false`); no program links it.
//!
//! | module | what it is | feature |
//! | --- | --- | --- |
//! | [`client`] | `Client`: a subscriber's keys and a sealer, making real blobs and manifests as the `coffre` program does | none |
//! | [`data`] | `data(seed, len)`: the suites' incompressible bytes from a seed | none |
//! | [`cli`] | a program run as an operator runs it: `admin_command`, `ok`, `one_line_error` | none |
//! | [`store`] | `Env`: a store in a temporary directory; a device enrolled in a store; blobs put through it as a client uploads; the files of a data directory | `store` |
//! | [`garage`] | `Garage`: a real single-node Garage (S3) on loopback; `Cluster`: three nodes replicating each other, killed and restarted one at a time | `store` |
//! | [`daemon`] | the real daemon in this process on 127.0.0.1: `TestServer` (on the test's tokio runtime), `Server` (its own runtime, restartable) | `daemon` |
//!
//! **Dependency order.** The kit must never make a crate's tests depend on
//! a crate above it: `coffre-store`'s tests must build without
//! `coffre-server`. One crate with features keeps that (rather than two kit
//! crates, or a kit per level): each suite asks for the level it tests at.
//! `coffre-store` uses `features = ["store"]` (core and store only),
//! `coffre-server`, `coffre-client` and the end-to-end `tests` crate use
//! `daemon`. A dev-dependency back onto the crate under test is the usual
//! Cargo pattern (tokio and tokio-test): integration tests link the same
//! library as the kit, so their types are the kit's. The kit is never a
//! dev-dependency of a crate below `coffre-store`, and no unit test
//! (`#[cfg(test)]` inside a library) uses it, since there the crate under
//! test would be a second copy of itself. `cargo test -p coffre-store` builds
//! the kit with `store` only; a whole-workspace build unifies the features
//! (Cargo resolver 2), so there the kit is built once with `daemon` and
//! the store's tests simply wait for the server to compile.
//!
//! **What is not here.** Whatever only one suite uses stays in that suite's
//! `support`/`common` module: the `coffre` installation driven through its
//! `--config` and the trees of an association's PC (`client/tests/support`),
//! `coffre-server ARGS --data` with that crate's binary
//! (`server/tests/common`), a backup through `Remote` and raw QUIC bytes
//! (`tests/tests/support`). A binary's path (`CARGO_BIN_EXE_*`) exists only
//! in its own package's tests, so the kit takes the program as an argument.
//!
//! **Hermetic.** Everything lives in temporary directories and every byte
//! comes from a fixed seed (the keys from one byte, the data from
//! [`data::data`]); nothing is written to the working directory.

pub mod cli;
pub mod client;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod data;
#[cfg(feature = "store")]
pub mod garage;
#[cfg(feature = "store")]
pub mod store;

pub use cli::{admin_command, ok, one_line_error};
pub use client::Client;
pub use data::data;

/// The structure's passphrase in the tests that enrol a PC.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// One gibibyte: the quota the suites give a subscriber that must not fill.
pub const GIB: u64 = 1 << 30;

/// The process's peak resident memory in MB (`VmHWM`, Linux; 0 elsewhere),
/// for the benchmarks and load tests that report it. Writing `5` to
/// `/proc/self/clear_refs` resets it.
pub fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1000)
}
