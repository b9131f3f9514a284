//! A folder of a snapshot as a tar stream (the `tar` crate, GNU format):
//! names relative to the folder's parent (`Compta/`, `Compta/bilan.ods`;
//! the top of a snapshot gives its top-level names), permissions, owners
//! (numeric) and modification times (to the second: tar's field), folders
//! before what they hold, symbolic links as link entries (never followed),
//! long names and link targets through GNU long-name entries as the crate
//! writes them. Files stream chunk by chunk ([`Contents`]).
//!
//! If a chunk fails, the stream stops where it is, without the end-of-
//! archive blocks: `tar -x` then reports a truncated archive, and the
//! command exits non-zero; a complete-looking archive is never written with
//! a file missing or wrong.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use coffre_core::{ChunkId, Content, Entry};
use tar::{Builder, EntryType, Header};

use super::contents::Contents;
use crate::fsmeta;
use crate::session::Session;
use crate::trees::{display, Trees};

/// Writes the folder `top` (its entry, or None for a snapshot's top) and
/// everything below the tree `dir` to `out` as a tar stream.
pub fn write(
    session: &Session,
    trees: &mut Trees<'_>,
    top: Option<&Entry>,
    dir: &ChunkId,
    out: impl Write,
) -> Result<()> {
    let mut tar = Builder::new(Stoppable {
        out,
        stopped: false,
    });
    let r = write_all(session, trees, top, dir, &mut tar);
    if r.is_err() {
        // No end-of-archive blocks after a failure (the builder writes them
        // when dropped): the archive must look truncated, because it is.
        tar.get_mut().stopped = true;
        return r;
    }
    let mut out = tar
        .into_inner()
        .context("writing the end of the tar stream")?;
    out.flush().context("writing the tar stream")
}

fn write_all(
    session: &Session,
    trees: &mut Trees<'_>,
    top: Option<&Entry>,
    dir: &ChunkId,
    tar: &mut Builder<Stoppable<impl Write>>,
) -> Result<()> {
    let base = match top {
        Some(e) => {
            let base = PathBuf::from(fsmeta::os_name(&e.name));
            append(session, tar, &base, e)?;
            base
        }
        None => PathBuf::new(),
    };
    // Depth first, in name order: a folder's entry comes before its contents.
    trees.walk(dir, &mut Vec::new(), &mut |rel, e| {
        append(session, tar, &relative(&base, rel), e)?;
        Ok(true)
    })
}

/// `base` joined with the names of `rel` ("/a/b", as `Trees::walk` gives).
fn relative(base: &Path, rel: &[u8]) -> PathBuf {
    let mut p = base.to_path_buf();
    for name in rel.split(|b| *b == b'/').filter(|n| !n.is_empty()) {
        p.push(fsmeta::os_name(name));
    }
    p
}

/// Appends one entry (a file with its contents).
fn append(
    session: &Session,
    tar: &mut Builder<Stoppable<impl Write>>,
    path: &Path,
    e: &Entry,
) -> Result<()> {
    let shown = display(&fsmeta::path_bytes(path));
    let mut h = Header::new_gnu();
    h.set_mode(e.mode & 0o7777);
    h.set_uid(u64::from(e.uid));
    h.set_gid(u64::from(e.gid));
    h.set_mtime(u64::try_from(e.mtime.secs).unwrap_or(0));
    let r = match &e.content {
        Content::Dir(_) => {
            h.set_entry_type(EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, path, io::empty())
        }
        Content::Symlink(target) => {
            h.set_entry_type(EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, path, fsmeta::os_name(target))
        }
        Content::File(_) => {
            h.set_entry_type(EntryType::Regular);
            h.set_size(e.size);
            let contents = Contents::new(session, &shown, e)?;
            tar.append_data(&mut h, path, contents)
        }
    };
    r.with_context(|| format!("writing {shown} to the tar stream"))
}

/// The output, which refuses every write once stopped.
#[derive(Debug)]
struct Stoppable<W> {
    out: W,
    stopped: bool,
}

impl<W: Write> Write for Stoppable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.stopped {
            return Err(io::Error::other("the tar stream was stopped by an error"));
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
