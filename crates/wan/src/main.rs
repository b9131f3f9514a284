//! `coffre-wan`: the emulated association link as a program, for the
//! whole-program benchmarks (`benches/compare/compare.py --wan`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use coffre_wan::{Profile, Relay};

/// Relays UDP between a client and a server through an emulated internet
/// line: rate each way, delay, jitter, random loss, a drop-tail queue and
/// outages.
///
/// Example: `coffre-wan --listen 127.0.0.1:7000 --to 127.0.0.1:7443 --profile "vdsl loss=1%"`,
/// then point the client at 127.0.0.1:7000.
#[derive(Debug, Parser)]
#[command(version, after_help = after_help())]
struct Args {
    /// Where clients send their datagrams.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The server the datagrams go to.
    #[arg(long, value_name = "ADDR")]
    to: SocketAddr,
    /// The line: a name and/or KEY=VALUE words (see below).
    #[arg(long, value_name = "LINE", default_value = "loopback")]
    profile: String,
    /// Print what crossed every this many seconds (0: only at the end).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    report_every: u64,
}

fn after_help() -> String {
    let mut s = String::from(
        "LINE words: up=RATE down=RATE (e.g. 20mbit), rtt=40ms or delay=20ms (one way), jitter=15ms, \
         loss=0.1%, queue=200ms, mtu=1500, outage=30s+90s (repeatable), seed=N; \
         prefix up. or down. for one direction (down.loss=1%).\n\nNamed lines:\n",
    );
    for (name, def) in Profile::names() {
        s.push_str(&format!("  {name:<10} {def}\n"));
    }
    s
}

fn main() {
    let args = Args::parse();
    let profile = match Profile::parse(&args.profile) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("coffre-wan: {e}");
            std::process::exit(2);
        }
    };
    let relay = match Relay::spawn_on(args.listen, args.to, profile) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coffre-wan: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    eprintln!(
        "coffre-wan: {} -> {} ({})",
        relay.addr(),
        args.to,
        args.profile
    );
    loop {
        let wait = if args.report_every == 0 {
            3600
        } else {
            args.report_every
        };
        std::thread::sleep(Duration::from_secs(wait));
        println!("{:?}", relay.counters());
    }
}
