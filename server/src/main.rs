//! `coffre-server`: the daemon an association runs for its member structures.
//!
//! The daemon, its storage and its admin commands (`init`, `run`, `subscriber`,
//! `device`, `usage`, ...) are being built (issue "The server"); this binary
//! already carries the name and the version so that packaging and scripts can
//! rely on them.

use clap::Parser;

/// coffre-server: the backup server of an association (daemon and admin commands).
///
/// Not usable yet: the daemon and its admin commands arrive with the server
/// milestone (see ARCHITECTURE.md). `coffre benchmark` already runs on clients.
#[derive(Debug, Parser)]
#[command(name = "coffre-server", version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("coffre-server: the daemon is not built yet (see ARCHITECTURE.md, \"Status\"); run `coffre-server --help`");
    std::process::exit(2);
}
