//! `coffre-wan`: the emulated association line as a program, for the
//! whole-program benchmarks (`benches/compare/compare.py --wan`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use coffre_wan::{Profile, Relay, Traffic};

/// An association's internet line, emulated: rate each way, delay, jitter,
/// random loss, a drop-tail queue and outages.
///
/// `udp` relays UDP datagrams on loopback (no root): point a coffre client
/// at its port. `netns` (Linux, root) makes two network namespaces whose
/// only route to each other is the line, for any program over any
/// protocol (restic over REST as well as coffre).
#[derive(Debug, Parser)]
#[command(version, after_help = after_help())]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Relay UDP from a port on this host to a server, through the line.
    ///
    /// Example: `coffre-wan udp --listen 127.0.0.1:7000 --to 127.0.0.1:7443
    /// --profile "vdsl loss=1%"`, then point the client at 127.0.0.1:7000.
    Udp {
        /// Where clients send their datagrams.
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// The server the datagrams go to.
        #[arg(long, value_name = "ADDR")]
        to: SocketAddr,
        #[command(flatten)]
        line: LineArgs,
    },
    /// Two network namespaces joined by the line (Linux, as root).
    ///
    /// Creates the namespaces CLIENT (address 10.77.0.1) and SERVER
    /// (10.77.0.2), prints `ready` once they can be used, and keeps the
    /// line up until interrupted (Ctrl-C or SIGTERM), then removes both.
    /// SIGUSR1 prints what crossed so far.
    /// Run a server with `ip netns exec SERVER prog --listen 10.77.0.2:PORT`
    /// and its clients with `ip netns exec CLIENT prog ... 10.77.0.2:PORT`.
    Netns {
        /// The client host's namespace.
        #[arg(long, value_name = "NAME", default_value = "coffre-wan-c")]
        client: String,
        /// The server host's namespace.
        #[arg(long, value_name = "NAME", default_value = "coffre-wan-s")]
        server: String,
        #[command(flatten)]
        line: LineArgs,
    },
}

#[derive(Debug, clap::Args)]
struct LineArgs {
    /// The line: a name and/or KEY=VALUE words (see below).
    #[arg(long, value_name = "LINE", default_value = "loopback")]
    profile: String,
    /// Print what crossed every this many seconds (0: only at the end).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    report_every: u64,
}

impl LineArgs {
    fn profile(&self) -> Profile {
        Profile::parse(&self.profile).unwrap_or_else(|e| fail(2, &e.to_string()))
    }
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

fn fail(code: i32, message: &str) -> ! {
    eprintln!("coffre-wan: {message}");
    std::process::exit(code);
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(1, &e.to_string()));
    match args.mode {
        Mode::Udp { listen, to, line } => {
            let relay = Relay::spawn_on(listen, to, line.profile())
                .unwrap_or_else(|e| fail(1, &format!("cannot listen on {listen}: {e}")));
            eprintln!("coffre-wan: {} -> {to} ({})", relay.addr(), line.profile);
            runtime.block_on(serve(line.report_every, || relay.counters()));
        }
        Mode::Netns {
            client,
            server,
            line,
        } => netns(&runtime, &client, &server, &line),
    }
}

#[cfg(target_os = "linux")]
fn netns(runtime: &tokio::runtime::Runtime, client: &str, server: &str, line: &LineArgs) {
    use std::io::Write;
    // Device names: at most 15 bytes, unique to this pair of namespaces.
    let dev = |ns: &str| format!("cw{:08x}", fnv(ns));
    let (client_dev, server_dev) = (dev(client), dev(server));
    let tunnel = coffre_wan::Tunnel::spawn(&client_dev, &server_dev, line.profile())
        .unwrap_or_else(|e| fail(1, &e.to_string()));
    let ns = coffre_wan::Namespaces::create(client, server, &client_dev, &server_dev)
        .unwrap_or_else(|e| fail(1, &e.to_string()));
    let p = line.profile();
    println!(
        "ready client={} {} server={} {} up_bps={} down_bps={} ({})",
        ns.client,
        ns.client_ip,
        ns.server,
        ns.server_ip,
        p.up.rate_bps,
        p.down.rate_bps,
        line.profile
    );
    let _ = std::io::stdout().flush();
    runtime.block_on(serve(line.report_every, || tunnel.counters()));
    drop(ns);
    drop(tunnel);
}

#[cfg(not(target_os = "linux"))]
fn netns(_: &tokio::runtime::Runtime, _: &str, _: &str, _: &LineArgs) {
    fail(
        2,
        "network namespaces exist only on Linux: use `coffre-wan udp`",
    );
}

/// FNV-1a: a short stable name for a device.
#[cfg(target_os = "linux")]
fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// One line of what crossed, for people and scripts:
/// `up packets=N bytes=N lost=N queue_full=N down=N too_big=N | down packets=N ...`.
fn report(t: Traffic) -> String {
    let side = |c: coffre_wan::Counters| {
        format!(
            "packets={} bytes={} lost={} queue_full={} down={} too_big={}",
            c.packets, c.bytes, c.lost, c.queue_full, c.down, c.too_big
        )
    };
    format!("up {} | down {}", side(t.up), side(t.down))
}

/// Until Ctrl-C or SIGTERM: reports what crossed every `every` seconds
/// (if not 0), on SIGUSR1 (a benchmark reads the line around each phase),
/// and once more at the end.
async fn serve(every: u64, counters: impl Fn() -> Traffic) {
    use std::io::Write;
    let say = |t: Traffic| {
        println!("{}", report(t));
        let _ = std::io::stdout().flush();
    };
    let mut tick = tokio::time::interval(Duration::from_secs(every.max(1)));
    tick.tick().await;
    #[cfg(unix)]
    let (mut term, mut usr1) = {
        use tokio::signal::unix::{signal, SignalKind};
        let open = |k| signal(k).unwrap_or_else(|e| fail(1, &e.to_string()));
        (
            open(SignalKind::terminate()),
            open(SignalKind::user_defined1()),
        )
    };
    loop {
        #[cfg(unix)]
        let (terminated, asked) = (term.recv(), usr1.recv());
        #[cfg(not(unix))]
        let (terminated, asked) = (
            std::future::pending::<Option<()>>(),
            std::future::pending::<Option<()>>(),
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminated => break,
            _ = asked => say(counters()),
            _ = tick.tick(), if every > 0 => say(counters()),
        }
    }
    say(counters());
}
