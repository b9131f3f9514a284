//! `coffre ls SNAPSHOT [PATH]`: a folder of a snapshot as it was.

use std::path::Path;

use anyhow::Result;
use coffre_core::{ChunkId, Content, Entry};
use serde_json::json;

use super::{entry_json, entry_line};
use crate::cli::LsArgs;
use crate::session::Session;
use crate::trees::{self, Found, Trees};

/// `coffre ls SNAPSHOT [PATH]`.
pub fn ls(config: &Path, args: &LsArgs) -> Result<()> {
    let session = Session::open(config)?;
    let snap = session.resolve(&args.snapshot, args.device.as_deref())?;
    let manifest = session.manifest(&ChunkId::from_bytes(snap.id))?;
    let mut trees = Trees::new(&session);
    let parts = trees::components(args.path.as_deref().unwrap_or("/"));
    let mut prefix: Vec<u8> = Vec::new();
    for p in &parts {
        prefix.push(b'/');
        prefix.extend_from_slice(p);
    }
    let mut rows = Vec::new();
    match trees.lookup(&manifest.private.root, &parts)? {
        Found::Entry(e) if !matches!(e.content, Content::Dir(_)) => rows.push((prefix.clone(), e)),
        found => {
            let id = match found {
                Found::Root(id) => id,
                Found::Entry(Entry {
                    content: Content::Dir(id),
                    ..
                }) => id,
                Found::Entry(_) => unreachable!("files handled above"),
            };
            let recursive = args.recursive;
            trees.walk(&id, &mut prefix, &mut |path, e| {
                rows.push((path.to_vec(), e.clone()));
                Ok(recursive)
            })?;
        }
    }
    drop(trees);
    session.close();
    if args.json {
        let v: Vec<_> = rows.iter().map(|(p, e)| entry_json(p, e)).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "entries": v }))?
        );
    } else {
        for (p, e) in &rows {
            outln!("{}", entry_line(p, e));
        }
    }
    Ok(())
}
