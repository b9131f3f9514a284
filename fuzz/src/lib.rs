//! Fuzzing coffre's decoders on the stable toolchain (no nightly, no
//! libFuzzer): one function per target in [`targets`], a structure-aware
//! mutator ([`mutate`]) seeded with valid inputs from the real encoders, a
//! counting allocator ([`alloc`]) to bound the heap each decode holds, and a
//! runner ([`fuzz`]) shared by the CI tests (a fixed number of cases) and the
//! long mode (`cargo run --release -p coffre-fuzz -- TARGET --seconds N`).
//!
//! A target panics when an invariant breaks; the runner catches the panic
//! and reports the input. Crashing inputs become files under
//! `fuzz/regressions/TARGET/`, replayed by `tests/targets.rs`.

pub mod alloc;
pub mod mutate;
pub mod targets;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mutate::{mutate, Rng};

/// A fuzz target: a name, the function, the largest input worth trying.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// As on the command line.
    pub name: &'static str,
    /// Decodes, checks the invariants, returns a label of the outcome.
    pub run: fn(&[u8]) -> String,
    /// Longer mutated inputs are cut to this.
    pub max_len: usize,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "frame",
        run: targets::frame,
        max_len: 4096,
    },
    Target {
        name: "message",
        run: targets::message,
        max_len: 8192,
    },
    Target {
        name: "blob",
        run: targets::blob,
        max_len: 16 * 1024,
    },
    Target {
        name: "blob_inner",
        run: targets::blob_inner,
        max_len: 16 * 1024,
    },
    Target {
        name: "tree",
        run: targets::tree,
        max_len: 8192,
    },
    Target {
        name: "manifest",
        run: targets::manifest,
        max_len: 8192,
    },
    Target {
        name: "manifest_private",
        run: targets::manifest_private,
        max_len: 8192,
    },
    Target {
        name: "keyfile",
        run: targets::keyfile,
        max_len: 512,
    },
    Target {
        name: "token",
        run: targets::token,
        max_len: 2048,
    },
    Target {
        name: "token_binary",
        run: targets::token_binary,
        max_len: 1024,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// One input that broke an invariant.
#[derive(Debug, Clone)]
pub struct Crash {
    /// The input.
    pub input: Vec<u8>,
    /// The panic message.
    pub message: String,
}

/// What a fuzzing run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Inputs tried (seeds included).
    pub cases: u64,
    /// Inputs that broke an invariant.
    pub crashes: Vec<Crash>,
    /// How many inputs ended in each outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// The slowest single input.
    pub slowest: Duration,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Inputs kept because they reached a new outcome.
    pub corpus: usize,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Runs one input through `target`, catching a panic.
pub fn run_one(target: &Target, input: &[u8]) -> Result<String, String> {
    catch_unwind(AssertUnwindSafe(|| (target.run)(input))).map_err(|p| panic_message(&*p))
}

/// Runs the seeds, then mutations of the corpus until `more(cases)` says
/// stop. An input that reaches an outcome not seen before joins the corpus
/// (a cheap stand-in for coverage feedback). Deterministic for a given `seed`
/// and seeds.
pub fn fuzz(target: &Target, seed: u64, mut more: impl FnMut(u64) -> bool) -> Report {
    let start = Instant::now();
    let mut report = Report::default();
    let mut corpus = targets::seeds(target.name);
    let mut rng = Rng::new(seed);
    let try_input = |input: Vec<u8>, report: &mut Report, corpus: &mut Vec<Vec<u8>>| {
        let t = Instant::now();
        let outcome = run_one(target, &input);
        report.slowest = report.slowest.max(t.elapsed());
        report.cases += 1;
        match outcome {
            Ok(label) => {
                let n = report.outcomes.entry(label).or_insert(0);
                *n += 1;
                if *n == 1 && corpus.len() < 4096 {
                    corpus.push(input);
                    report.corpus += 1;
                }
            }
            Err(message) => report.crashes.push(Crash { input, message }),
        }
    };
    for s in corpus.clone() {
        try_input(s, &mut report, &mut corpus);
    }
    while more(report.cases) {
        let base = corpus[rng.below(corpus.len())].clone();
        let input = mutate(&mut rng, &base, &corpus, target.max_len);
        try_input(input, &mut report, &mut corpus);
        if report.crashes.len() >= 100 {
            break;
        }
    }
    report.elapsed = start.elapsed();
    report
}

/// `fuzz/regressions/`: one folder per target, one file per input that once
/// broke it (or that is worth keeping as a hostile example).
pub fn regressions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// `fuzz/crashes/`, where the long mode saves what it finds.
pub fn crashes_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes")
}

/// A short stable name for an input (FNV-1a, hex).
pub fn input_hash(input: &[u8]) -> String {
    let h = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{h:016x}")
}

/// Lowercase hex, for printing a crashing input in a test failure.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
