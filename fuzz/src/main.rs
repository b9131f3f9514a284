//! The long mode: `coffre-fuzz TARGET|all --seconds N [--seed S]` mutates
//! inputs for N seconds per target and saves every crashing input to
//! `fuzz/crashes/TARGET-HASH.bin`. Exit status 1 if anything crashed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use coffre_fuzz::{crashes_dir, fuzz, input_hash, Target, TARGETS};

fn usage() -> ExitCode {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    eprintln!(
        "usage: coffre-fuzz TARGET|all [--seconds N] [--seed S]\ntargets: {}",
        names.join(", ")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(which) = args.first() else {
        return usage();
    };
    let mut seconds = 60u64;
    let mut seed = 1u64;
    let mut rest = args[1..].iter();
    while let Some(a) = rest.next() {
        let value = rest.next().and_then(|v| v.parse().ok());
        match (a.as_str(), value) {
            ("--seconds", Some(v)) => seconds = v,
            ("--seed", Some(v)) => seed = v,
            _ => return usage(),
        }
    }
    let chosen: Vec<&Target> = if which == "all" {
        TARGETS.iter().collect()
    } else {
        match coffre_fuzz::target(which) {
            Some(t) => vec![t],
            None => return usage(),
        }
    };
    // Panics are caught and reported once per input below, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    let mut crashed = false;
    for t in chosen {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let report = fuzz(t, seed, |_| Instant::now() < deadline);
        println!(
            "{}: {} cases in {:.1} s ({:.0}/s), {} outcomes, corpus +{}, slowest input {:.1} ms, {} crashes",
            t.name,
            report.cases,
            report.elapsed.as_secs_f64(),
            report.cases as f64 / report.elapsed.as_secs_f64(),
            report.outcomes.len(),
            report.corpus,
            report.slowest.as_secs_f64() * 1000.0,
            report.crashes.len()
        );
        for c in &report.crashes {
            crashed = true;
            let dir = crashes_dir();
            let path = dir.join(format!("{}-{}.bin", t.name, input_hash(&c.input)));
            if let Err(e) =
                std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &c.input))
            {
                eprintln!("cannot save {}: {e}", path.display());
            }
            println!("  crash: {} -> {}", c.message, path.display());
        }
    }
    if crashed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
