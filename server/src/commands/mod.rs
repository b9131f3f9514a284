//! One module per subcommand.

pub mod alerts;
pub mod device;
pub mod gc;
pub mod history;
pub mod init;
pub mod move_packs;
pub mod prune;
pub mod rebuild;
pub mod run;
pub mod subscriber;
pub mod take_over;
pub mod usage;
pub mod verify;

use std::path::Path;

use anyhow::Result;
use coffre_store::Store;

use crate::cli::{Cli, Command, DeviceCommand, SubscriberCommand};

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> Result<()> {
    if matches!(
        cli.command,
        Command::Usage { .. }
            | Command::Subscriber(SubscriberCommand::List { .. } | SubscriberCommand::Show { .. })
            | Command::Device(DeviceCommand::List { .. })
    ) {
        // A listing piped into `head` ends when `head` has read enough.
        coffre_core::console::stop_when_unread();
    }
    match cli.command {
        Command::Init {
            data,
            listen,
            public_address,
            storage,
            frontend,
            identity_from,
        } => init::run(
            &data.data,
            init::Options {
                listen,
                public_address,
                storage: &storage,
                frontend: frontend.as_deref(),
                identity_from: identity_from.as_deref(),
            },
        ),
        Command::Join { data, frontend } => take_over::join(&data.data, &frontend),
        Command::TakeOver {
            data,
            from,
            subscriber,
            json,
        } => take_over::run(&data.data, from.as_deref(), subscriber.as_deref(), json),
        Command::Run { data, dashboard } => run::run(&data.data, dashboard),
        Command::Subscriber(c) => subscriber::run(c),
        Command::Alerts(c) => alerts::run(c),
        Command::Device(c) => device::run(c),
        Command::Usage {
            data,
            history: true,
            subscriber,
            days,
            json,
            csv,
            ..
        } => history::run(&data.data, subscriber.as_deref(), days, json, csv),
        Command::Usage {
            data,
            json,
            csv,
            stale_days,
            ..
        } => usage::run(&data.data, json, csv, stale_days),
        Command::Gc {
            data,
            subscriber,
            grace,
            repack_threshold,
            dry_run,
            json,
        } => gc::run(
            &data.data,
            subscriber.as_deref(),
            &coffre_store::GcOptions {
                grace_secs: i64::try_from(grace).unwrap_or(i64::MAX),
                repack_threshold,
                dry_run,
            },
            json,
        ),
        Command::Verify {
            data,
            subscriber,
            repair,
            sample,
            json,
        } => verify::run(
            &data.data,
            subscriber.as_deref(),
            &coffre_store::VerifyOptions { sample, repair },
            json,
        ),
        Command::MovePacks { data, to, json } => move_packs::run(&data.data, &to, json),
        Command::RebuildCatalog {
            data,
            replace,
            json,
        } => rebuild::run(&data.data, replace, json),
        Command::Prune {
            data,
            subscriber,
            dry_run,
            json,
        } => prune::run(&data.data, subscriber.as_deref(), dry_run, json),
    }
}

/// Opens the store of an existing data directory, with a clear error if there is none.
/// Its packs are where `config.toml` says.
/// A data directory left open to other users by an older release is made
/// owner-only on the way, and that is logged (once: it is private after).
pub(crate) fn open_store(data: &Path) -> Result<Store> {
    let storage = crate::config::DataDir::new(data).pack_storage()?;
    let store = Store::open_with(data, &storage)?;
    log_tightened(store.tightened());
    Ok(store)
}

/// Makes an older release's data directory owner-only, for the commands
/// that work on it without opening a store, and logs it.
pub(crate) fn tighten(data: &Path) -> Result<()> {
    log_tightened(&coffre_store::tighten(data)?);
    Ok(())
}

fn log_tightened(done: &coffre_store::Tightened) {
    if !done.is_empty() {
        tracing::warn!("{done}");
    }
}

/// Takes the data directory's daemon lock for the command `name`, which
/// must not run beside the daemon: refused (one line naming the holder and
/// its pid, nothing changed) if the daemon or another such command runs.
pub(crate) fn exclusive(data: &Path, name: &str) -> Result<coffre_store::DaemonLock> {
    Ok(coffre_store::DaemonLock::acquire(
        data,
        &format!("`coffre-server {name}`"),
    )?)
}

/// A Unix time for people: `2026-11-23 17:54 UTC`, or "never".
pub(crate) fn when(t: Option<i64>) -> String {
    t.map_or_else(|| "never".into(), coffre_core::utc_minute)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_for_people() {
        assert_eq!(super::when(Some(0)), "1970-01-01 00:00 UTC");
        assert_eq!(super::when(Some(1_763_856_000)), "2025-11-23 00:00 UTC");
        assert_eq!(super::when(None), "never");
    }
}
