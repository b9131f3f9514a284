//! Browsing: `snapshots`, `ls`, `find`, `diff`, and `forget`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use coffre_core::units::format_size;
use coffre_core::{ChunkId, Content, Entry};
use globset::GlobBuilder;
use serde_json::json;

use crate::cli::{DiffArgs, FindArgs, ForgetArgs, LsArgs, SnapshotsArgs};
use crate::display::{local_time, mode_string, rfc3339};
use crate::session::Session;
use crate::trees::{self, display, Found, Trees};

fn kind(e: &Entry) -> &'static str {
    match e.content {
        Content::File(_) => "file",
        Content::Dir(_) => "dir",
        Content::Symlink(_) => "symlink",
    }
}

/// The snapshots (of `device`, or all), their ids and their manifests.
fn with_manifests(
    session: &Session,
    device: Option<&str>,
) -> Result<(
    Vec<coffre_proto::SnapshotEntry>,
    Vec<ChunkId>,
    Vec<coffre_core::Manifest>,
)> {
    let list: Vec<_> = session
        .snapshots()?
        .into_iter()
        .filter(|s| device.is_none_or(|d| s.device == d))
        .collect();
    let ids: Vec<ChunkId> = list.iter().map(|s| ChunkId::from_bytes(s.id)).collect();
    let manifests = session.manifests(&ids)?;
    Ok((list, ids, manifests))
}

/// `coffre snapshots`.
pub fn snapshots(config: &Path, args: &SnapshotsArgs) -> Result<()> {
    let session = Session::open(config)?;
    let (list, _ids, manifests) = with_manifests(&session, args.device.as_deref())?;
    session.close();
    // Oldest first, to the nanosecond (the server's list is to the second).
    let mut rows: Vec<_> = list.into_iter().zip(manifests).collect();
    rows.sort_by_key(|(_, m)| m.public.time);
    let (list, manifests): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
    if args.json {
        let rows: Vec<_> = list
            .iter()
            .zip(&manifests)
            .map(|(s, m)| {
                json!({
                    "id": ChunkId::from_bytes(s.id).to_hex(),
                    "time": rfc3339(m.public.time),
                    "device": s.device,
                    "hostname": m.private.hostname,
                    "paths": m.private.paths.iter().map(|p| display(p)).collect::<Vec<_>>(),
                    "tags": m.private.tags,
                    "files": m.public.file_count,
                    "bytes": m.public.logical_bytes,
                    "errors": m.private.errors.len(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "snapshots": rows }))?
        );
        return Ok(());
    }
    if list.is_empty() {
        println!("no snapshot yet: run `coffre backup`");
        return Ok(());
    }
    println!(
        "{:<10} {:<16} {:<16} {:>8} {:>10}  paths",
        "id", "time", "device", "files", "size"
    );
    for (s, m) in list.iter().zip(&manifests) {
        let paths: Vec<String> = m.private.paths.iter().map(|p| display(p)).collect();
        let warn = if m.private.errors.is_empty() {
            String::new()
        } else {
            format!("  ({} unreadable)", m.private.errors.len())
        };
        println!(
            "{:<10} {:<16} {:<16} {:>8} {:>10}  {}{warn}",
            ChunkId::from_bytes(s.id).short(),
            local_time(s.time),
            s.device,
            m.public.file_count,
            format_size(m.public.logical_bytes),
            paths.join(", ")
        );
    }
    println!("{}", crate::display::count(list.len() as u64, "snapshot"));
    Ok(())
}

fn entry_json(path: &[u8], e: &Entry) -> serde_json::Value {
    json!({
        "path": display(path),
        "type": kind(e),
        "size": e.size,
        "mtime": rfc3339(e.mtime),
        "mode": format!("{:o}", e.mode & 0o7777),
    })
}

fn entry_line(path: &[u8], e: &Entry) -> String {
    let suffix = match &e.content {
        Content::Dir(_) => "/".to_string(),
        Content::Symlink(t) => format!(" -> {}", display(t)),
        Content::File(_) => String::new(),
    };
    format!(
        "{} {:>10}  {}  {}{suffix}",
        mode_string(e.mode),
        if matches!(e.content, Content::File(_)) {
            format_size(e.size)
        } else {
            String::new()
        },
        local_time(e.mtime.secs),
        display(path)
    )
}

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
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "entries": v }))?
        );
    } else {
        for (p, e) in &rows {
            println!("{}", entry_line(p, e));
        }
    }
    Ok(())
}

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
    let (list, ids, manifests) = with_manifests(&session, args.device.as_deref())?;
    let mut trees = Trees::new(&session);
    let mut matches = Vec::new();
    for ((s, id), m) in list.iter().zip(&ids).zip(&manifests) {
        let mut prefix = Vec::new();
        trees.walk(&m.private.root, &mut prefix, &mut |path, e| {
            let subject = if whole_path { path } else { &e.name[..] };
            if glob.is_match(String::from_utf8_lossy(subject).as_ref()) {
                matches.push((path.to_vec(), s.time, *id, s.device.clone(), e.clone()));
            }
            Ok(true)
        })?;
    }
    drop(trees);
    session.close();
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
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "matches": v }))?
        );
        return Ok(());
    }
    if matches.is_empty() {
        println!(
            "nothing matches {:?} in {}",
            args.glob,
            crate::display::count(list.len() as u64, "snapshot")
        );
        return Ok(());
    }
    let mut last: Option<&[u8]> = None;
    for (p, t, id, d, e) in &matches {
        if last != Some(&p[..]) {
            println!("{}{}", display(p), if kind(e) == "dir" { "/" } else { "" });
            last = Some(p);
        }
        println!(
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
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "changes": v }))?
        );
        return Ok(());
    }
    for (c, p, dir) in &changes {
        println!("{} {}{}", c.mark(), display(p), if *dir { "/" } else { "" });
    }
    let count = |k: Change| changes.iter().filter(|(c, _, _)| *c == k).count();
    println!(
        "{} added, {} removed, {} modified, {} with new metadata (a folder counts once with everything in it)",
        count(Change::Added),
        count(Change::Removed),
        count(Change::Modified),
        count(Change::Metadata)
    );
    Ok(())
}

/// `coffre forget SNAPSHOT`.
pub fn forget(config: &Path, args: &ForgetArgs) -> Result<()> {
    let session = Session::open(config)?;
    if session.remote.role != coffre_proto::Role::Admin {
        bail!(
            "only an admin device may delete snapshots; this PC ({}) is a backup device, which can only add (so ransomware on it cannot erase its history)",
            session.inst.config.device
        );
    }
    let snap = session.resolve(&args.snapshot, args.device.as_deref())?;
    let id = ChunkId::from_bytes(snap.id);
    session.block_on(session.remote.forget(&id))?;
    session.close();
    println!(
        "forgot snapshot {} of {} ({}); the chunks only it used are freed by the server's garbage collection",
        id.short(),
        local_time(snap.time),
        snap.device
    );
    Ok(())
}
