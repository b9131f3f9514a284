//! `coffre-server take-over --from FRONTEND | --subscriber NAME`: serve
//! another frontend's subscribers from the bucket alone (issue 22;
//! `coffre_store`'s `take_over.rs` does the work). Runs beside this
//! frontend's daemon, which serves them as soon as their rows are in. And
//! `coffre-server join --frontend NAME`: a server with data becomes the
//! service's frontend number 0.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use coffre_core::units::count;

/// Runs `coffre-server take-over`.
pub fn run(data: &Path, from: Option<&str>, subscriber: Option<&str>, json: bool) -> Result<()> {
    let store = super::open_store(data)?;
    let started = Instant::now();
    let outcomes = match (from, subscriber) {
        (Some(from), _) => store.take_over(from)?,
        (None, Some(name)) => vec![store.take_over_subscriber(name)?],
        (None, None) => bail!("say whom to take over: --from FRONTEND or --subscriber NAME"),
    };
    let seconds = started.elapsed().as_secs_f64();
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "subscribers": outcomes,
                "seconds": seconds,
            }))?
        );
    }
    let mut taken = 0usize;
    let mut failed = 0usize;
    for o in &outcomes {
        match (&o.rebuilt, &o.note) {
            (Some(r), _) => {
                taken += 1;
                if !json {
                    super::rebuild::print_report(r);
                }
            }
            (None, Some(note)) => {
                if o.failed {
                    failed += 1;
                }
                if !json {
                    outln!("subscriber #{}: {note}", o.id);
                }
            }
            (None, None) => {}
        }
    }
    if !json {
        outln!(
            "took over {} in {seconds:.1} s{}",
            count(taken, "subscriber"),
            if taken > 0 {
                "; their PCs reach this frontend once the old frontend's address points here \
                 (or their configuration names this one)"
            } else {
                ""
            }
        );
    }
    if failed > 0 {
        bail!(
            "{} could not be taken over (see above): run the same command again",
            count(failed, "subscriber")
        );
    }
    Ok(())
}

/// Runs `coffre-server join --frontend NAME`.
pub fn join(data: &Path, frontend: &str) -> Result<()> {
    let dir = crate::config::DataDir::new(data);
    let config = dir.config()?;
    let store = super::open_store(data)?;
    let service = store.join_service(frontend, Some(&config.public_address))?;
    outln!(
        "this server is frontend {:?} (number {}) of the service of {}; its subscribers' \
         files are in the bucket; restart the daemon",
        service.frontend,
        service.number,
        dir.pack_storage()?.describe()
    );
    Ok(())
}
