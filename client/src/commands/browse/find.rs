//! `coffre find GLOB`: which snapshots hold a file, with its size and date.
//!
//! A snapshot that cannot be searched (its manifest does not open, or a
//! directory listing is unreadable) is skipped with a warning on stderr
//! naming it and its device, and listed under `skipped` in JSON: the other
//! snapshots are searched and the command succeeds.

use std::path::Path;

use anyhow::{Context, Result};
use coffre_core::units::format_size;
use coffre_core::{ChunkId, Entry};
use globset::GlobBuilder;
use serde_json::json;

use super::{entry_json, kind, rows};
use crate::cli::FindArgs;
use crate::display::{local_time, rfc3339};
use crate::session::Session;
use crate::trees::{display, Trees};

/// One match: path, the snapshot's time (server's second), its id and
/// device, the entry.
type Match = (Vec<u8>, i64, ChunkId, String, Entry);

/// `coffre find GLOB`.
pub fn find(config: &Path, args: &FindArgs) -> Result<()> {
    let whole_path = args.glob.contains('/');
    let glob = GlobBuilder::new(&args.glob)
        .case_insensitive(true)
        .literal_separator(true)
        .build()
        .with_context(|| format!("{:?} is not a valid pattern", args.glob))?
        .compile_matcher();
    let session = Session::open(config)?;
    let list = session.snapshots()?;
    let rows = rows(&session, list, args.device.as_deref())?;
    let mut trees = Trees::new(&session);
    let mut matches: Vec<Match> = Vec::new();
    // (snapshot, device, why) of each snapshot not searched.
    let mut skipped: Vec<(ChunkId, String, String)> = Vec::new();
    for r in &rows {
        let (s, id) = (&r.entry, r.id());
        let m = match &r.manifest {
            Ok(m) => m,
            Err(d) => {
                skipped.push((id, s.device.clone(), d.summary()));
                continue;
            }
        };
        let mut found = Vec::new();
        let walked = trees.walk(&m.private.root, &mut Vec::new(), &mut |path, e| {
            let subject = if whole_path { path } else { &e.name[..] };
            if glob.is_match(String::from_utf8_lossy(subject).as_ref()) {
                found.push((path.to_vec(), s.time, id, s.device.clone(), e.clone()));
            }
            Ok(true)
        });
        match walked {
            Ok(()) => matches.extend(found),
            Err(e) => skipped.push((
                id,
                s.device.clone(),
                format!(
                    "a directory listing is unreadable ({e:#}) - made by device {}",
                    s.device
                ),
            )),
        }
    }
    drop(trees);
    session.close();
    for (id, _, why) in &skipped {
        errln!(
            "coffre: warning: snapshot {} was not searched: {why}; run `coffre check` and tell your technician",
            id.short()
        );
    }
    matches.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    if args.json {
        let v: Vec<_> = matches
            .iter()
            .map(|(p, t, id, d, e)| {
                let mut j = entry_json(p, e);
                j["snapshot"] = json!(id.to_hex());
                j["time"] = json!(rfc3339(coffre_core::Timestamp { secs: *t, nanos: 0 }));
                j["device"] = json!(d);
                j
            })
            .collect();
        let skipped: Vec<_> = skipped
            .iter()
            .map(|(id, d, why)| json!({"snapshot": id.to_hex(), "device": d, "reason": why}))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "matches": v, "skipped": skipped }))?
        );
        return Ok(());
    }
    if matches.is_empty() {
        outln!(
            "nothing matches {:?} in {}",
            args.glob,
            crate::display::count((rows.len() - skipped.len()) as u64, "snapshot")
        );
        return Ok(());
    }
    let mut last: Option<&[u8]> = None;
    for (p, t, id, d, e) in &matches {
        if last != Some(&p[..]) {
            outln!("{}{}", display(p), if kind(e) == "dir" { "/" } else { "" });
            last = Some(p);
        }
        outln!(
            "    snapshot {} {} {:<12} {:>10}  modified {}",
            id.short(),
            local_time(*t),
            d,
            if kind(e) == "file" {
                format_size(e.size)
            } else {
                kind(e).to_string()
            },
            local_time(e.mtime.secs)
        );
    }
    Ok(())
}
