//! `coffre-server subscriber add|list|show|set`.

use anyhow::Result;
use coffre_core::units::format_size_like;

use super::{open_store, when};
use crate::cli::SubscriberCommand;
use crate::usage::{percent, percent_text, NEAR_QUOTA_PERCENT};

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
                "added subscriber {name} with a quota of {} ({quota} bytes)",
                format_size_like(quota, quota)
            );
            if quota == 0 {
                outln!("warning: a quota of 0 refuses every backup: set one with `coffre-server subscriber set {name} --quota 50GB`");
            }
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
                        format_size_like(s.quota_bytes, s.quota_bytes),
                        format_size_like(s.used_bytes, s.quota_bytes),
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
                outln!(
                    "quota       {} ({} bytes)",
                    format_size_like(s.quota_bytes, s.quota_bytes),
                    s.quota_bytes
                );
                outln!(
                    "used        {} ({})",
                    format_size_like(s.used_bytes, s.quota_bytes),
                    percent_text(percent(s.used_bytes, s.quota_bytes))
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
            let before = store.subscriber(&name)?;
            if quota.is_some() || retention.is_some() {
                store.set_subscriber(&name, quota, retention.as_deref())?;
            }
            if let Some(c) = &contact {
                store.set_contact(&name, Some(check_contact(c)?.as_str()))?;
            }
            let after = store.subscriber(&name)?;
            if quota.is_some() {
                outln!(
                    "quota of {name}: {} ({} bytes), was {}",
                    format_size_like(after.quota_bytes, after.quota_bytes),
                    after.quota_bytes,
                    format_size_like(before.quota_bytes, before.quota_bytes)
                );
                let used = format_size_like(after.used_bytes, after.quota_bytes);
                let p = percent(after.used_bytes, after.quota_bytes);
                if after.used_bytes >= after.quota_bytes {
                    outln!(
                        "warning: {name} already uses {used}, {}: every backup of its PCs is \
                         refused until the quota is raised above it (nothing stored is deleted)",
                        if after.quota_bytes == 0 {
                            "and a quota of 0 allows nothing".to_string()
                        } else {
                            format!("{} of the new quota", percent_text(p))
                        }
                    );
                } else if p >= NEAR_QUOTA_PERCENT {
                    outln!(
                        "warning: {name} already uses {used}, {} of the new quota: its next \
                         backups may be refused",
                        percent_text(p)
                    );
                } else {
                    outln!("{name} uses {used} ({})", percent_text(p));
                }
            }
            if retention.is_some() {
                outln!(
                    "retention of {name}: {}, was {} (applied at the next nightly run, or \
                     `coffre-server prune {name}`)",
                    after.retention.as_deref().unwrap_or("the server's default"),
                    before
                        .retention
                        .as_deref()
                        .unwrap_or("the server's default")
                );
            }
            if contact.is_some() {
                outln!(
                    "contact of {name}: {}",
                    after
                        .contact
                        .as_deref()
                        .filter(|c| !c.is_empty())
                        .unwrap_or("none (only the operator is told)")
                );
            }
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
