//! Every fuzz target, a bounded number of mutated cases each (seconds in
//! CI), then every saved regression input replayed.

use coffre_fuzz::{fuzz, hex, regressions_dir, run_one, target, TARGETS};

/// Cases per target in CI. The long mode runs millions.
const CASES: u64 = 20_000;

fn check(name: &str) {
    let t = target(name).unwrap();
    let report = fuzz(t, 0xC0FF_2E00 ^ name.len() as u64, |n| n < CASES);
    eprintln!(
        "{name}: {} cases in {:?}, {} outcomes, slowest {:?}",
        report.cases,
        report.elapsed,
        report.outcomes.len(),
        report.slowest
    );
    if let Some(c) = report.crashes.first() {
        panic!(
            "{name}: {} crashing inputs; first: {}\ninput ({} bytes): {}",
            report.crashes.len(),
            c.message,
            c.input.len(),
            hex(&c.input)
        );
    }
    // The mutator reaches both acceptance and refusal.
    assert!(report.outcomes.len() >= 3, "{name}: {:?}", report.outcomes);
}

macro_rules! targets {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            check(stringify!($name));
        }
    )*};
}

targets!(
    frame,
    message,
    blob,
    blob_inner,
    tree,
    manifest,
    manifest_private,
    keyfile,
    token,
    token_binary
);

#[test]
fn every_target_is_tested() {
    assert_eq!(TARGETS.len(), 10);
}

#[test]
fn regressions_replay() {
    let mut replayed = 0;
    for t in TARGETS {
        let dir = regressions_dir().join(t.name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            if let Err(message) = run_one(t, &input) {
                panic!("{}: {message}", path.display());
            }
            replayed += 1;
        }
    }
    eprintln!("{replayed} regression inputs replayed");
    assert!(
        replayed > 0,
        "no regression inputs found under {}",
        regressions_dir().display()
    );
}
