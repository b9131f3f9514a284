//! `coffre dump SNAPSHOT PATH`: one file of a snapshot to standard output,
//! or a folder as a tar stream (`dump/tarball.rs`), for the quick "send me
//! last week's version" without a restore into a folder.
//!
//! Every chunk is verified as restore verifies it (`dump/contents.rs`); a
//! chunk that fails stops the output with an error and a non-zero exit,
//! never garbage. The output is streamed: memory stays a few chunks
//! whatever the size.
//!
//! Standard output on a terminal (docs/decisions.md, "dump and the
//! terminal"): a folder's tar stream is never written there, nor a file
//! whose first bytes are not text (a NUL, a control character other than
//! tab, newline, carriage return or form feed, or invalid UTF-8 in the
//! first [`SNIFF`] bytes): the command says to redirect to a file or a
//! pipe, and `--force` writes it anyway. A text file is shown, like `cat`.

mod contents;
mod tarball;

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use coffre_core::{ChunkId, Content};

use crate::cli::DumpArgs;
use crate::session::Session;
use crate::trees::{self, Found, Trees};
use contents::Contents;

/// Bytes of a file looked at to tell text from binary (git looks at 8,000).
pub const SNIFF: usize = 8192;

/// Output buffer: large writes, not one per line of a text file.
const BUFFER: usize = 1 << 20;

/// Runs `coffre dump`.
pub fn run(config: &Path, args: &DumpArgs) -> Result<()> {
    let session = Session::open_waiting(config, crate::session::stderr_notice())?;
    let snap = session.resolve(&args.snapshot, args.device.as_deref())?;
    let id = ChunkId::from_bytes(snap.id);
    let manifest = session.manifest(&id)?;
    let mut trees = Trees::new(&session);
    let parts = trees::components(&args.path);
    let found = trees.lookup(&manifest.private.root, &parts)?;
    let terminal = io::stdout().is_terminal() && !args.force;
    let redirect = |what: &str| {
        format!(
            "{what}: redirect to a file or a pipe (`coffre dump {} {} > FILE`), or pass --force to write it to the terminal anyway",
            args.snapshot, args.path
        )
    };
    let out = io::BufWriter::with_capacity(BUFFER, io::stdout().lock());
    match found {
        Found::Root(root) => {
            if terminal {
                bail!("{}", redirect("the whole snapshot would come as a tar stream"));
            }
            tarball::write(&session, &mut trees, None, &root, out)?;
        }
        Found::Entry(e) => match &e.content {
            Content::Dir(dir) => {
                if terminal {
                    bail!("{}", redirect(&format!("{} is a folder, which comes as a tar stream", args.path)));
                }
                tarball::write(&session, &mut trees, Some(&e), dir, out)?;
            }
            Content::Symlink(target) => bail!(
                "{} is a symbolic link to {} in this snapshot, and dump follows no link: dump the path it points to, or its folder (a tar stream keeps the link)",
                args.path,
                trees::display(target)
            ),
            Content::File(_) => {
                let contents = Contents::new(&session, &args.path, &e)?;
                file(contents, out, terminal, &redirect)?;
            }
        },
    }
    drop(trees);
    session.close();
    Ok(())
}

/// Streams one file's verified chunks to `out`.
fn file(
    mut contents: Contents<'_>,
    mut out: impl Write,
    terminal: bool,
    redirect: &dyn Fn(&str) -> String,
) -> Result<()> {
    let mut first = true;
    while let Some(data) = contents.next_chunk()? {
        if first && terminal && !is_text(&data[..data.len().min(SNIFF)]) {
            bail!("{}", redirect("this file is binary (not text)"));
        }
        first = false;
        out.write_all(&data).context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")
}

/// Whether `head` (the first bytes of a file) looks like text a terminal
/// shows as such: UTF-8 (a character cut at the end is fine), no control
/// character but tab, newline, carriage return and form feed.
fn is_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() == SNIFF,
    };
    valid
        && !head
            .iter()
            .any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)) || b == 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_told_from_binary() {
        assert!(is_text(b"Budget 2026\n\tloyer;450\r\n"));
        assert!(is_text("Réunion été — notes\n".as_bytes()));
        assert!(is_text(b""));
        assert!(!is_text(b"PK\x03\x04 an .ods is a zip"));
        assert!(!is_text(b"text with a NUL\0"));
        assert!(!is_text(b"\x1b[2J clears the screen"));
        assert!(!is_text(b"latin-1 \xe9t\xe9"));
        // A character cut by the end of the sniffed bytes is still text.
        let mut cut = vec![b'a'; SNIFF - 1];
        cut.push(0xc3);
        assert!(is_text(&cut));
    }
}
