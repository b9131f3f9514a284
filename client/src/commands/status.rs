//! `coffre status`: the subscriber's quota and usage, this PC's last backup,
//! and its problems if it had any (a path missing, files unreadable, a hook
//! failed), one per line; and whether the credentials file is private (its
//! mode, or on Windows its access list read back: `fsmeta::private`).

use std::path::Path;

use anyhow::Result;
use coffre_core::units::{format_size_like, whole_percent};
use serde_json::json;

use crate::cli::StatusArgs;
use crate::config::Installation;
use crate::display::{age, local_time};
use crate::fsmeta::private::{self, Privacy};
use crate::run_record::RunRecord;
use crate::session::Session;

/// Runs `coffre status`.
pub fn run(config: &Path, args: &StatusArgs) -> Result<()> {
    // The server may be unreachable: still show what this PC knows.
    let (inst, server) = match Session::open(config) {
        Ok(s) => {
            let st = s.block_on(s.remote.status());
            let role = s.remote.role;
            let inst = s.inst.clone();
            s.close();
            (inst, st.map(|st| (st, role)).map_err(anyhow::Error::from))
        }
        Err(e) => (Installation::load(config)?, Err(e)),
    };
    let last_run = RunRecord::load(&inst);
    let credentials = credentials_privacy(&inst);
    if args.json {
        let mut v = json!({
            "subscriber": inst.config.subscriber,
            "device": inst.config.device,
            "server": inst.config.server,
            "last_run": last_run,
            "credentials_private": credentials.is_ok(),
            "credentials_access": match &credentials {
                Ok(s) | Err(s) => s,
            },
        });
        match &server {
            Ok((st, role)) => {
                v["quota_bytes"] = json!(st.quota_bytes);
                v["used_bytes"] = json!(st.used_bytes);
                v["snapshots"] = json!(st.snapshots);
                v["last_backup"] = json!(st.last_backup);
                v["role"] = json!(role.to_string());
            }
            Err(e) => v["server_error"] = json!(format!("{e:#}")),
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!("subscriber   {}", inst.config.subscriber);
    outln!("device       {}", inst.config.device);
    outln!("server       {}", inst.config.server);
    match &server {
        Ok((st, role)) => {
            // A quota of 0 refuses everything: full, whatever a share says.
            let pct = if st.quota_bytes > 0 {
                st.used_bytes as f64 * 100.0 / st.quota_bytes as f64
            } else {
                f64::INFINITY
            };
            let shown = match whole_percent(pct) {
                Some(n) => format!("{n} %"),
                None => "a quota of 0".to_string(),
            };
            let warn = if pct >= 100.0 {
                "  QUOTA FULL: backups are refused; ask the association"
            } else if pct >= 90.0 {
                "  nearly full: ask the association for more room"
            } else {
                ""
            };
            outln!("role         {role}");
            outln!(
                "storage      {} of {} used ({shown}){warn}",
                format_size_like(st.used_bytes, st.quota_bytes),
                format_size_like(st.quota_bytes, st.quota_bytes)
            );
            outln!(
                "snapshots    {} (all devices of {})",
                st.snapshots,
                inst.config.subscriber
            );
            match st.last_backup {
                Some(t) => outln!("last backup  {} ({}), on the server", local_time(t), age(t)),
                None => outln!("last backup  never, on the server"),
            }
        }
        Err(e) => outln!("server       unreachable: {e:#}"),
    }
    match &credentials {
        Ok(s) => outln!("credentials  {s}"),
        Err(s) => outln!("credentials  NOT PRIVATE: {s}"),
    }
    match &last_run {
        Some(r) => outln!(
            "last run     {} ({}){}: {}: {}",
            local_time(r.finished),
            age(r.finished),
            if r.scheduled { ", scheduled" } else { "" },
            r.result,
            r.message
        ),
        None => outln!("last run     no backup has run on this PC yet"),
    }
    if let Some(r) = &last_run {
        for (i, p) in r.problems.iter().enumerate() {
            let label = if i == 0 { "problems" } else { "" };
            outln!("{label:<12} {p}");
        }
    }
    Ok(())
}

/// Whether the credentials file is private: `Ok(what)` when it is, `Err(why
/// not, and what to do)` otherwise.
fn credentials_privacy(inst: &Installation) -> Result<String, String> {
    let path = inst.credentials_path();
    match private::check(&path) {
        Ok(Privacy::Private) if cfg!(windows) => Ok(format!(
            "private: only you and SYSTEM may read {}",
            path.display()
        )),
        Ok(Privacy::Private) => Ok(format!("private: only you may read {}", path.display())),
        Ok(Privacy::Open(who)) => Err(format!(
            "{} ({who}); the next backup writes it private again, if the drive allows it",
            path.display()
        )),
        Err(e) => Err(format!("cannot tell who may read {}: {e}", path.display())),
    }
}
