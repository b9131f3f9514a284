//! `coffre diff A B`: what changed between two snapshots, tree by tree
//! (a subtree whose id did not change is not read).

use std::path::Path;

use anyhow::Result;
use coffre_core::{ChunkId, Content};
use serde_json::json;

use super::kind;
use crate::cli::DiffArgs;
use crate::session::Session;
use crate::trees::{display, Trees};

/// One difference between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Added,
    Removed,
    Modified,
    Metadata,
}

impl Change {
    fn mark(self) -> &'static str {
        match self {
            Change::Added => "+",
            Change::Removed => "-",
            Change::Modified => "M",
            Change::Metadata => "m",
        }
    }
    fn word(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Modified => "modified",
            Change::Metadata => "metadata",
        }
    }
}

fn diff_trees(
    trees: &mut Trees<'_>,
    a: &ChunkId,
    b: &ChunkId,
    prefix: &mut Vec<u8>,
    out: &mut Vec<(Change, Vec<u8>, bool)>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let (ta, tb) = (trees.get(a)?, trees.get(b)?);
    let (mut i, mut j) = (0, 0);
    while i < ta.entries.len() || j < tb.entries.len() {
        let ea = ta.entries.get(i);
        let eb = tb.entries.get(j);
        let order = match (ea, eb) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let len = prefix.len();
        let name = match order {
            std::cmp::Ordering::Less => &ea.unwrap().name,
            _ => &eb.unwrap().name,
        };
        prefix.push(b'/');
        prefix.extend_from_slice(name);
        match order {
            std::cmp::Ordering::Less => {
                let e = ea.unwrap();
                out.push((Change::Removed, prefix.clone(), kind(e) == "dir"));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let e = eb.unwrap();
                out.push((Change::Added, prefix.clone(), kind(e) == "dir"));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (ea.unwrap(), eb.unwrap());
                match (&x.content, &y.content) {
                    (Content::Dir(ia), Content::Dir(ib)) => {
                        diff_trees(trees, ia, ib, prefix, out)?;
                        if (x.mode, x.uid, x.gid) != (y.mode, y.uid, y.gid) {
                            out.push((Change::Metadata, prefix.clone(), true));
                        }
                    }
                    (ca, cb) if kind(x) == kind(y) => {
                        if ca != cb {
                            out.push((Change::Modified, prefix.clone(), false));
                        } else if (x.mode, x.uid, x.gid, x.mtime) != (y.mode, y.uid, y.gid, y.mtime)
                        {
                            out.push((Change::Metadata, prefix.clone(), false));
                        }
                    }
                    _ => {
                        out.push((Change::Removed, prefix.clone(), kind(x) == "dir"));
                        out.push((Change::Added, prefix.clone(), kind(y) == "dir"));
                    }
                }
                i += 1;
                j += 1;
            }
        }
        prefix.truncate(len);
    }
    Ok(())
}

/// `coffre diff A B`.
pub fn diff(config: &Path, args: &DiffArgs) -> Result<()> {
    let session = Session::open(config)?;
    let list = session.snapshots()?;
    let a = session.resolve_in(&list, &args.a, args.device.as_deref())?;
    let b = session.resolve_in(&list, &args.b, args.device.as_deref())?;
    let ms = session.manifests(&[ChunkId::from_bytes(a.id), ChunkId::from_bytes(b.id)])?;
    let mut trees = Trees::new(&session);
    let mut changes = Vec::new();
    diff_trees(
        &mut trees,
        &ms[0].private.root,
        &ms[1].private.root,
        &mut Vec::new(),
        &mut changes,
    )?;
    drop(trees);
    session.close();
    if args.json {
        let v: Vec<_> = changes
            .iter()
            .map(|(c, p, dir)| json!({"change": c.word(), "path": display(p), "dir": dir}))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "changes": v }))?
        );
        return Ok(());
    }
    for (c, p, dir) in &changes {
        outln!("{} {}{}", c.mark(), display(p), if *dir { "/" } else { "" });
    }
    let count = |k: Change| changes.iter().filter(|(c, _, _)| *c == k).count();
    outln!(
        "{} added, {} removed, {} modified, {} with new metadata (a folder counts once with everything in it)",
        count(Change::Added),
        count(Change::Removed),
        count(Change::Modified),
        count(Change::Metadata)
    );
    Ok(())
}
