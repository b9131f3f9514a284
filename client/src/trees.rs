//! Reading a snapshot's trees: fetched from the server once each, decrypted,
//! checked, and kept for the rest of the command (unchanged directories share
//! one tree across snapshots, so browsing many snapshots fetches little).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use coffre_core::{BlobKind, ChunkId, Content, Entry, Tree};

use crate::copies;
use crate::session::Session;

/// What a path in a snapshot names.
#[derive(Debug, Clone)]
pub enum Found {
    /// The snapshot's root.
    Root(ChunkId),
    /// An entry somewhere below it.
    Entry(Entry),
}

/// Trees of one subscriber, fetched on demand.
#[derive(Debug)]
pub struct Trees<'s> {
    session: &'s Session,
    cache: HashMap<ChunkId, Arc<Tree>>,
}

/// Splits a path as typed ("/home/alice/Documents", or "C:\Users\...")
/// into the names a snapshot holds: a drive `C:` is the level `C`
/// (`walk::parts`).
pub fn components(path: &str) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = path
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != ".")
        .map(|p| p.as_bytes().to_vec())
        .collect();
    if let Some(first) = parts.first_mut() {
        if let [letter, b':'] = first[..] {
            if letter.is_ascii_alphabetic() {
                *first = vec![letter.to_ascii_uppercase()];
            }
        }
    }
    parts
}

/// A path made of names, for display ("/home/alice").
pub fn display(parts: &[u8]) -> String {
    String::from_utf8_lossy(parts).into_owned()
}

impl<'s> Trees<'s> {
    /// An empty cache.
    pub fn new(session: &'s Session) -> Self {
        Trees {
            session,
            cache: HashMap::new(),
        }
    }

    /// The tree with this id.
    pub fn get(&mut self, id: &ChunkId) -> Result<Arc<Tree>> {
        if let Some(t) = self.cache.get(id) {
            return Ok(t.clone());
        }
        let s = self.session;
        let bytes = s
            .block_on(s.remote.chunk(id))
            .with_context(|| format!("fetching directory listing {}", id.short()))?;
        // A blob that fails to open may be one copy of several: the others
        // are tried before it counts as damage (copies.rs).
        let plain = s.block_on(copies::open_or_other_copy(
            &s.remote,
            &s.keys,
            BlobKind::Tree,
            id,
            bytes,
        ))?;
        let tree = Arc::new(Tree::decode(&plain)?);
        self.cache.insert(*id, tree.clone());
        Ok(tree)
    }

    /// Finds `path` (from [`components`]) below the root tree `root`.
    pub fn lookup(&mut self, root: &ChunkId, path: &[Vec<u8>]) -> Result<Found> {
        let mut found = Found::Root(*root);
        let mut walked = String::new();
        for part in path {
            let dir = match &found {
                Found::Root(id) => *id,
                Found::Entry(Entry {
                    content: Content::Dir(id),
                    ..
                }) => *id,
                Found::Entry(_) => bail!("{walked} is a file, not a folder, in this snapshot"),
            };
            walked.push('/');
            walked.push_str(&String::from_utf8_lossy(part));
            let tree = self.get(&dir)?;
            match tree.entries.iter().find(|e| e.name == *part) {
                Some(e) => found = Found::Entry(e.clone()),
                None => bail!(
                    "{walked} is not in this snapshot (see `coffre ls SNAPSHOT` for what it holds, or `coffre find NAME` to search every snapshot)"
                ),
            }
        }
        Ok(found)
    }

    /// Calls `visit` on every entry below `tree`, depth first, in name order,
    /// with its full path; `visit` returns false to skip a directory's contents.
    pub fn walk(
        &mut self,
        tree: &ChunkId,
        prefix: &mut Vec<u8>,
        visit: &mut dyn FnMut(&[u8], &Entry) -> Result<bool>,
    ) -> Result<()> {
        let t = self.get(tree)?;
        for e in &t.entries {
            let len = prefix.len();
            prefix.push(b'/');
            prefix.extend_from_slice(&e.name);
            let descend = visit(prefix, e)?;
            if let (true, Content::Dir(id)) = (descend, &e.content) {
                self.walk(id, prefix, visit)?;
            }
            prefix.truncate(len);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::components;

    #[test]
    fn a_path_as_typed_names_the_snapshot_levels_a_drive_by_its_letter() {
        let v = |parts: &[&str]| {
            parts
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            components("/home/ana/Documents"),
            v(&["home", "ana", "Documents"])
        );
        assert_eq!(components(r"C:\Users\ana"), v(&["C", "Users", "ana"]));
        assert_eq!(components("c:/Users/./ana/"), v(&["C", "Users", "ana"]));
        assert_eq!(components(r"\C\Users"), v(&["C", "Users"]));
        // Only a first level of one letter and a colon is a drive.
        assert_eq!(components("/srv/x:y"), v(&["srv", "x:y"]));
        assert_eq!(components("ab:/x"), v(&["ab:", "x"]));
    }
}
