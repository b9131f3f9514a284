//! `coffre-server subscriber add|list|show|set`.

use anyhow::Result;
use coffre_core::units::format_size;

use super::{open_store, when};
use crate::cli::SubscriberCommand;
use crate::usage::percent;

/// Runs a `subscriber` subcommand.
pub fn run(cmd: SubscriberCommand) -> Result<()> {
    match cmd {
        SubscriberCommand::Add {
            name,
            quota,
            retention,
            contact,
            data,
        } => {
            let store = open_store(&data.data)?;
            store.add_subscriber(&name, quota, retention.as_deref())?;
            if let Some(c) = &contact {
                store.set_contact(&name, Some(check_contact(c)?.as_str()))?;
            }
            outln!(
                "added subscriber {name} with a quota of {}",
                format_size(quota)
            );
            outln!(
                "next: coffre-server device add {name} DEVICE --data {}",
                data.data.display()
            );
        }
        SubscriberCommand::List { data, json } => {
            let list = open_store(&data.data)?.list_subscribers()?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "subscribers": list }))?
                );
            } else if list.is_empty() {
                outln!("no subscribers yet: add one with `coffre-server subscriber add NAME --quota 50GiB`");
            } else {
                outln!(
                    "{:<24} {:>12} {:>12} {:>10} {:>8}  last backup",
                    "subscriber",
                    "quota",
                    "used",
                    "snapshots",
                    "devices"
                );
                for s in list {
                    outln!(
                        "{:<24} {:>12} {:>12} {:>10} {:>8}  {}",
                        s.name,
                        format_size(s.quota_bytes),
                        format_size(s.used_bytes),
                        s.snapshots,
                        s.devices,
                        when(s.last_backup)
                    );
                }
            }
        }
        SubscriberCommand::Show { name, data, json } => {
            let store = open_store(&data.data)?;
            let s = store.subscriber(&name)?;
            let devices = store.list_devices(Some(&name))?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "subscriber": s, "devices": devices })
                    )?
                );
            } else {
                outln!("subscriber  {}", s.name);
                outln!("quota       {}", format_size(s.quota_bytes));
                outln!(
                    "used        {} ({:.1} %)",
                    format_size(s.used_bytes),
                    percent(s.used_bytes, s.quota_bytes)
                );
                outln!(
                    "retention   {}",
                    s.retention.as_deref().unwrap_or("(default)")
                );
                outln!("snapshots   {}", s.snapshots);
                outln!(
                    "contact     {}",
                    s.contact
                        .as_deref()
                        .unwrap_or("(none: only the operator hears of its alerts)")
                );
                outln!("devices:");
                for d in devices {
                    let state = if d.revoked.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    outln!(
                        "  {:<20} {:<7} {:<8} last backup {}",
                        d.name,
                        d.role,
                        state,
                        when(d.last_backup)
                    );
                }
            }
        }
        SubscriberCommand::Set {
            name,
            quota,
            retention,
            contact,
            data,
        } => {
            if quota.is_none() && retention.is_none() && contact.is_none() {
                anyhow::bail!(
                    "nothing to change: give --quota SIZE, --retention POLICY and/or --contact ADDR"
                );
            }
            let store = open_store(&data.data)?;
            if quota.is_some() || retention.is_some() {
                store.set_subscriber(&name, quota, retention.as_deref())?;
            }
            if let Some(c) = &contact {
                store.set_contact(&name, Some(check_contact(c)?.as_str()))?;
            }
            outln!("updated subscriber {name}");
        }
    }
    Ok(())
}

/// A contact list, checked and written back plainly: "a@x, https://h/t"
/// → "a@x,https://h/t"; "" stays "" (no contact). Each address is a mail
/// address or an http(s) URL.
fn check_contact(list: &str) -> Result<String> {
    let all = crate::alerts::addresses(list);
    for a in &all {
        if crate::alerts::is_webhook(a) {
            continue;
        }
        a.parse::<lettre::Address>().map_err(|e| {
            anyhow::anyhow!(
                "--contact: {a:?} is neither a mail address ({e}) nor an http(s):// webhook URL"
            )
        })?;
    }
    Ok(all.join(","))
}
