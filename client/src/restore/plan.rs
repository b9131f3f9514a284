//! What a restore brings back: the snapshot's entries under the chosen path,
//! kept or skipped by `--include`/`--exclude`, each with the path it takes
//! below the target, made of checked names only (names.rs).
//!
//! Patterns are `coffre find`'s: a pattern without "/" matches an entry's
//! name, one with "/" its whole path as on the backed-up PC; case is
//! ignored. A folder excluded is skipped whole. With `--include`, a file or
//! link is kept when it matches one; a folder that matches is kept whole
//! (less what is excluded); other folders are kept only to lead to what is
//! kept inside them.
//!
//! An entry whose name is not one plain name, or a folder whose listing is
//! damaged, is reported and skipped; the rest is planned.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use coffre_core::{ChunkId, Content, Entry};
use globset::{GlobBuilder, GlobMatcher};

use super::names;
use crate::trees::Trees;

/// One thing to restore.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its path below the target, one checked name per component.
    pub rel: PathBuf,
    /// What the snapshot says of it.
    pub entry: Entry,
}

/// The restore's work, folders first (each before what it holds).
#[derive(Debug, Default)]
pub struct Plan {
    /// Folders, each before its contents.
    pub dirs: Vec<Item>,
    /// Regular files.
    pub files: Vec<Item>,
    /// Symbolic links.
    pub symlinks: Vec<Item>,
    /// Entries that cannot be restored (a bad name, a damaged listing):
    /// where they would have gone, and why.
    pub damaged: Vec<(PathBuf, String)>,
    /// Entries restored under another name than the snapshot's (a name
    /// this platform cannot hold, or one that differs from another of its
    /// folder only by case: `names`): where they go, and the name they had.
    pub renamed: Vec<(PathBuf, String)>,
}

#[derive(Debug)]
struct Pattern {
    glob: GlobMatcher,
    whole_path: bool,
}

impl Pattern {
    fn new(text: &str) -> Result<Pattern> {
        let glob = GlobBuilder::new(text)
            .case_insensitive(true)
            .literal_separator(true)
            .build()
            .with_context(|| {
                format!("{text:?} is not a valid pattern (see `coffre restore --help`)")
            })?
            .compile_matcher();
        Ok(Pattern {
            glob,
            whole_path: text.contains('/'),
        })
    }

    fn matches(&self, path: &[u8], name: &[u8]) -> bool {
        let subject = if self.whole_path { path } else { name };
        self.glob
            .is_match(String::from_utf8_lossy(subject).as_ref())
    }
}

/// `--include` and `--exclude`.
#[derive(Debug, Default)]
pub struct Selection {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl Selection {
    /// The patterns as given on the command line.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Selection> {
        Ok(Selection {
            include: include
                .iter()
                .map(|p| Pattern::new(p))
                .collect::<Result<_>>()?,
            exclude: exclude
                .iter()
                .map(|p| Pattern::new(p))
                .collect::<Result<_>>()?,
        })
    }

    fn excluded(&self, path: &[u8], name: &[u8]) -> bool {
        self.exclude.iter().any(|p| p.matches(path, name))
    }

    /// True when nothing is included unless it matches.
    fn filters(&self) -> bool {
        !self.include.is_empty()
    }

    fn included(&self, path: &[u8], name: &[u8]) -> bool {
        self.include.iter().any(|p| p.matches(path, name))
    }
}

/// Builds a plan by walking the snapshot's trees.
pub struct Planner<'a, 't> {
    trees: &'a mut Trees<'t>,
    selection: &'a Selection,
    /// The plan so far.
    pub plan: Plan,
}

impl<'a, 't> Planner<'a, 't> {
    /// A planner reading `trees`, keeping what `selection` keeps.
    pub fn new(trees: &'a mut Trees<'t>, selection: &'a Selection) -> Self {
        Planner {
            trees,
            selection,
            plan: Plan::default(),
        }
    }

    /// The trees it reads (for a `--path` lookup).
    pub fn trees(&mut self) -> &mut Trees<'t> {
        self.trees
    }

    /// Plans the contents of the tree `id` (the folder at `path` on the
    /// backed-up PC) into `rel`. `whole`: a folder above matched an
    /// `--include`. Returns whether anything was kept.
    pub fn contents(
        &mut self,
        id: &ChunkId,
        path: &mut Vec<u8>,
        rel: &Path,
        whole: bool,
    ) -> Result<bool> {
        let tree = match self.trees.get(id) {
            Ok(t) => t,
            // A listing that does not open or decode is damage in the
            // snapshot: reported, the rest restored. Anything else (the
            // connection) stops the restore.
            Err(e) if e.downcast_ref::<coffre_core::Error>().is_some() => {
                self.plan.damaged.push((
                    rel.to_path_buf(),
                    format!("the folder's listing in the snapshot is damaged, its contents are skipped: {e:#}"),
                ));
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let mut kept = false;
        let mut folder = names::Folder::default();
        for e in &tree.entries {
            kept |= self.entry_in(&mut folder, e.clone(), path, rel, whole)?;
        }
        Ok(kept)
    }

    /// Plans one entry found in the folder `path`, restored into `parent`.
    pub fn entry(
        &mut self,
        e: Entry,
        path: &mut Vec<u8>,
        parent: &Path,
        whole: bool,
    ) -> Result<bool> {
        self.entry_in(&mut names::Folder::default(), e, path, parent, whole)
    }

    /// Plans one entry of a folder whose other names `folder` holds.
    fn entry_in(
        &mut self,
        folder: &mut names::Folder,
        e: Entry,
        path: &mut Vec<u8>,
        parent: &Path,
        whole: bool,
    ) -> Result<bool> {
        let name = match folder.name(&e.name) {
            Ok(n) => n,
            Err(why) => {
                self.plan.damaged.push((
                    parent.join(String::from_utf8_lossy(&e.name).replace(['/', '\0'], "?")),
                    format!("a damaged entry: {why} is not a file name; skipped"),
                ));
                return Ok(false);
            }
        };
        let rel = parent.join(&name);
        if name.as_encoded_bytes() != e.name.as_slice() {
            self.plan
                .renamed
                .push((rel.clone(), String::from_utf8_lossy(&e.name).into_owned()));
        }
        let len = path.len();
        path.push(b'/');
        path.extend_from_slice(&e.name);
        let kept = self.named(e, path, rel, whole);
        path.truncate(len);
        kept
    }

    fn named(&mut self, e: Entry, path: &mut Vec<u8>, rel: PathBuf, whole: bool) -> Result<bool> {
        let sel = self.selection;
        if sel.excluded(path, &e.name) {
            return Ok(false);
        }
        let matched = whole || !sel.filters() || sel.included(path, &e.name);
        match &e.content {
            Content::Dir(id) => {
                let id = *id;
                let at = self.plan.dirs.len();
                self.plan.dirs.push(Item {
                    rel: rel.clone(),
                    entry: e,
                });
                let inside = self.contents(&id, path, &rel, matched && sel.filters())?;
                if !(inside || matched) {
                    self.plan.dirs.truncate(at);
                }
                Ok(inside || matched)
            }
            Content::File(_) if matched => {
                self.plan.files.push(Item { rel, entry: e });
                Ok(true)
            }
            Content::Symlink(_) if matched => {
                self.plan.symlinks.push(Item { rel, entry: e });
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A file to write: what the plan hands to the downloads.
#[derive(Debug)]
pub struct Todo {
    /// Its path below the target.
    pub rel: PathBuf,
    /// What the snapshot says of it.
    pub entry: Entry,
}
