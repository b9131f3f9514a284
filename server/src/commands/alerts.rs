//! `coffre-server alerts test|preview`: try the way out to every recipient,
//! and show what tonight's digest would say. Both work beside the daemon
//! and change nothing (the record of what was told is the daemon's).

use std::path::Path;

use anyhow::{anyhow, bail, Result};

use super::open_store;
use crate::alerts::{is_webhook, Alerts};
use crate::cli::AlertsCommand;
use crate::config::DataDir;
use crate::dashboard::i18n::Lang;

/// Runs an `alerts` subcommand.
pub fn run(cmd: AlertsCommand) -> Result<()> {
    match cmd {
        AlertsCommand::Test { data, to } => test(&data.data, to.as_deref()),
        AlertsCommand::Preview { data, lang } => preview(&data.data, lang.as_deref()),
    }
}

fn alerts(data: &Path) -> Result<(Alerts, crate::config::Config)> {
    let dir = DataDir::new(data);
    let config = dir.config()?;
    let alerts = Alerts::new(data, &config)
        .map_err(|e| anyhow!("{}: {e:#}", dir.config_path().display()))?
        .ok_or_else(|| {
            anyhow!(
                "{} has no [alerts] section: nobody is told anything; add one (docs/operator-guide.md, \
                 \"Alerts: mail and webhooks\")",
                dir.config_path().display()
            )
        })?;
    Ok((alerts, config))
}

fn test(data: &Path, to: Option<&str>) -> Result<()> {
    let (alerts, config) = alerts(data)?;
    let recipients = match to {
        Some(a) => vec![a.to_string()],
        None => {
            let store = open_store(data)?;
            alerts.everyone(&Alerts::look(&store, config.stale_days)?)
        }
    };
    if recipients.is_empty() {
        bail!(
            "nobody to write to: [alerts] operator is empty and no structure has a contact \
             (coffre-server subscriber set NAME --contact ADDRESS)"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut failed = 0;
    for r in &recipients {
        let how = if is_webhook(r) { "webhook" } else { "mail" };
        match runtime.block_on(alerts.deliver(r, &alerts.test_message(r))) {
            Ok(()) => outln!("sent     {r} ({how})"),
            Err(e) => {
                failed += 1;
                outln!("FAILED   {r} ({how}): {e:#}");
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} test message(s) not delivered (see above)",
            recipients.len()
        );
    }
    outln!(
        "{} test message(s) sent: check that they arrived",
        recipients.len()
    );
    Ok(())
}

fn preview(data: &Path, lang: Option<&str>) -> Result<()> {
    let (alerts, config) = alerts(data)?;
    let lang = match lang {
        None => None,
        Some(code) => {
            Some(Lang::from_code(code).ok_or_else(|| anyhow!("--lang {code:?}: write fr or en"))?)
        }
    };
    let store = open_store(data)?;
    let look = Alerts::look(&store, config.stale_days)?;
    let all = alerts.preview(&look, lang);
    if all.is_empty() {
        outln!("nobody to write to: [alerts] operator is empty and no structure has a contact");
    }
    for (to, message) in all {
        outln!("==== to {to}");
        match message {
            None => outln!("(nothing new: no digest tonight)\n"),
            Some(m) => {
                outln!("Subject: {}\n", m.subject);
                outln!("{}", m.text);
            }
        }
    }
    Ok(())
}
