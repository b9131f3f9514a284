//! `coffre check [--read-data]`: is every snapshot complete on the server?
//!
//! For each snapshot: its manifest decrypts and authenticates; every tree
//! reachable from its root decrypts, and every chunk those trees name is in
//! the manifest's list; the server holds every chunk of the list. With
//! `--read-data`, every data chunk is also downloaded, decrypted and checked
//! against its id (once, however many snapshots share it).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use coffre_core::{BlobKind, ChunkId, Content};
use serde_json::json;

use crate::cli::CheckArgs;
use crate::copies;
use crate::display::local_time;
use crate::progress::Progress;
use crate::session::{Damaged, Session};
use crate::trees::Trees;

/// Runs `coffre check`; exit status 1 if anything is damaged or missing.
pub fn run(config: &Path, args: &CheckArgs) -> Result<u8> {
    let session = Session::open(config)?;
    let list = session.snapshots()?;
    let mut trees = Trees::new(&session);
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut all_data: BTreeSet<ChunkId> = BTreeSet::new();
    for s in &list {
        let id = ChunkId::from_bytes(s.id);
        let label = format!(
            "snapshot {} ({}, {})",
            id.short(),
            local_time(s.time),
            s.device
        );
        let m = match session.manifest(&id) {
            Ok(m) => m,
            Err(e) => {
                // A damaged manifest says why and which device made it.
                let why = match e.downcast_ref::<Damaged>() {
                    Some(d) => format!("its manifest {} - made by device {}", d.reason, d.device),
                    None => format!("{e:#}"),
                };
                problems.push((label, why));
                continue;
            }
        };
        let listed: HashSet<ChunkId> = m.public.chunks.iter().copied().collect();
        // Every tree and chunk reachable from the root. Walking the trees
        // fetches, decrypts and checks each of them.
        let mut needed: Vec<ChunkId> = vec![m.private.root];
        let mut data: Vec<ChunkId> = Vec::new();
        let mut prefix = Vec::new();
        let walked = trees.walk(&m.private.root, &mut prefix, &mut |_, e| {
            match &e.content {
                Content::File(ids) => data.extend(ids.iter().copied()),
                Content::Dir(t) => needed.push(*t),
                Content::Symlink(_) => {}
            }
            Ok(true)
        });
        if let Err(e) = walked {
            problems.push((
                label.clone(),
                format!("a directory listing is unreadable: {e:#}"),
            ));
        }
        let unlisted = needed
            .iter()
            .chain(&data)
            .filter(|i| !listed.contains(i))
            .count();
        if unlisted > 0 {
            problems.push((
                label.clone(),
                format!(
                    "{} missing from its manifest",
                    crate::display::count_with(unlisted as u64, "chunk is", "chunks are")
                ),
            ));
        }
        // Absent only: another device's copy that this one has not checked
        // is still there (dedup trust, issue 17).
        let states = session.block_on(session.remote.chunk_trust(&m.public.chunks))?;
        let missing = states
            .iter()
            .filter(|s| **s == coffre_proto::ChunkState::Absent)
            .count();
        if missing > 0 {
            problems.push((
                label.clone(),
                format!("the server lacks {missing} of its chunks"),
            ));
        }
        all_data.extend(data);
    }
    let mut read = 0u64;
    if args.read_data {
        let ids: Vec<ChunkId> = all_data.into_iter().collect();
        let progress = Progress::bytes(ids.len() as u64, "check", !args.json);
        let bad = session.block_on(read_all(&session, &ids, progress.clone()));
        progress.finish();
        read = ids.len() as u64;
        for (id, why) in bad {
            problems.push((format!("chunk {}", id.short()), why));
        }
    }
    drop(trees);
    session.close();
    if args.json {
        let v = json!({
            "snapshots": list.len(),
            "chunks_read": read,
            "ok": problems.is_empty(),
            "problems": problems.iter().map(|(w, p)| json!({"what": w, "problem": p})).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (what, p) in &problems {
            outln!("DAMAGED {what}: {p}");
        }
        let read_note = if args.read_data {
            format!(
                ", {} downloaded and decrypted",
                crate::display::count(read, "chunk")
            )
        } else {
            String::new()
        };
        if problems.is_empty() {
            outln!(
                "checked {}{read_note}: all complete",
                crate::display::count(list.len() as u64, "snapshot")
            );
        } else {
            outln!(
                "checked {}{read_note}: {} (above); tell your technician, and run `coffre backup` so that missing data is sent again",
                crate::display::count(list.len() as u64, "snapshot"),
                crate::display::count(problems.len() as u64, "problem")
            );
        }
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// Downloads and verifies every data chunk (the trees were checked by the walk).
async fn read_all(
    session: &Session,
    ids: &[ChunkId],
    progress: Progress,
) -> Vec<(ChunkId, String)> {
    let permits = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids.iter().copied() {
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let (remote, keys, progress) = (
            session.remote.clone(),
            session.keys.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            // A blob that fails to open may be one copy of several: the
            // others are tried before it counts as damage (copies.rs).
            let r = match remote.chunk(&id).await {
                Ok(bytes) => copies::open_or_other_copy(&remote, &keys, BlobKind::Data, &id, bytes)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            progress.inc(1);
            drop(permit);
            (id, r)
        });
    }
    let mut bad = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((id, Err(why))) = done {
            bad.push((id, why));
        }
    }
    bad
}
