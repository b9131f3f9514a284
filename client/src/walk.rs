//! The walk: what a backup will save, read from the disk before any file's
//! contents are.
//!
//! The snapshot mirrors the machine's absolute paths: backing up
//! `/home/alice/Documents` gives a root tree (`/`) holding `home`, holding
//! `alice`, holding `Documents`, each with its real metadata. So a path in a
//! snapshot is the path the technician knew on the PC, and `restore --path
//! /home/alice/Documents/Compta` means what it says.
//!
//! Skipped: what the excludes match (gitignore syntax), folders holding a
//! `CACHEDIR.TAG` (with the standard signature) or a `.nobackup` file, and
//! special files (FIFOs, sockets, devices) with a warning. What cannot be read
//! is reported and recorded in the snapshot; the walk goes on. A path to
//! back up that does not exist (an unplugged USB disk, a renamed folder) is
//! left out by [`normalize`], which says so: the others are backed up.

use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::fsmeta::{self, Meta};

/// The first bytes of a valid `CACHEDIR.TAG` (<https://bford.info/cachedir/>).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";
/// A file whose presence excludes its folder.
pub const NOBACKUP_MARKER: &str = ".nobackup";

/// One thing in the tree.
#[derive(Debug)]
pub struct Item {
    /// Its name (raw bytes).
    pub name: Vec<u8>,
    /// Its metadata.
    pub meta: Meta,
    /// What it is.
    pub kind: Kind,
}

/// What an item is.
#[derive(Debug)]
pub enum Kind {
    /// A regular file, at this path.
    File(PathBuf),
    /// A directory and its items, sorted by name.
    Dir(Vec<Item>),
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The items in the root directory.
    pub root: Vec<Item>,
    /// Counters and problems.
    pub tally: Tally,
}

/// Counters and problems of a walk.
#[derive(Debug, Default)]
pub struct Tally {
    /// Paths that could not be read, with why.
    pub errors: Vec<(PathBuf, String)>,
    /// Special files skipped.
    pub special: Vec<PathBuf>,
    /// Items left out by an exclude or a marker.
    pub excluded: u64,
    /// Regular files found.
    pub files: u64,
    /// Directories found.
    pub dirs: u64,
    /// Total size of the regular files.
    pub bytes: u64,
}

/// The paths to back up, normalised, and those left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Paths {
    /// Absolute, canonical, none inside another.
    pub kept: Vec<PathBuf>,
    /// Paths that do not exist, as given.
    pub missing: Vec<PathBuf>,
    /// Paths that exist but cannot be resolved (permission denied...), as
    /// given, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Makes the paths to back up absolute and canonical (symlinks resolved, so
/// a configured path that is a link backs up what it points to), and drops
/// paths inside another one. A path that does not exist, or cannot be
/// resolved, is left out and listed: the caller backs up the rest.
pub fn normalize(paths: &[PathBuf]) -> Result<Paths> {
    if paths.is_empty() {
        bail!(
            "nothing to back up: give a path (`coffre backup PATH`) or list `paths` in config.toml"
        );
    }
    let mut found = Paths::default();
    let mut out = Vec::new();
    for p in paths {
        // `C:\x`, not `\\?\C:\x`, where that names the same folder (dunce).
        match dunce::canonicalize(p) {
            Ok(c) => out.push(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => found.missing.push(p.clone()),
            Err(e) => found.unreadable.push((p.clone(), e.to_string())),
        }
    }
    out.sort();
    out.dedup();
    for p in out {
        if !found.kept.iter().any(|k| p.starts_with(k)) {
            found.kept.push(p);
        }
    }
    Ok(found)
}

/// One level of a path as a snapshot names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The name in the snapshot.
    pub name: Vec<u8>,
    /// The name on disk; `None` for a Windows drive (`C:\`, the root itself).
    pub os: Option<&'a std::ffi::OsStr>,
}

/// The levels of an absolute path as a snapshot names them: `/home/ana` is
/// `home`, `ana`; `C:\Users\ana` is `C`, `Users`, `ana` (the drive is the
/// first level, by its letter: [`fsmeta::drive_name`]).
pub fn parts(path: &Path) -> Result<Vec<Part<'_>>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(Part {
                name: fsmeta::name_bytes(n),
                os: Some(n),
            }),
            Component::Prefix(p) => out.push(Part {
                name: fsmeta::drive_name(p.kind()).with_context(|| {
                    format!(
                        "cannot back up {}: it is a network share; back it up on the machine \
                         that holds it, or give a local drive's folder (C:\\...)",
                        path.display()
                    )
                })?,
                os: None,
            }),
            _ => {}
        }
    }
    Ok(out)
}

/// The root a path hangs from ("/" on Unix, the drive's root on Windows).
fn root_of(path: &Path) -> PathBuf {
    path.ancestors()
        .last()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Walks the given paths.
#[derive(Debug)]
pub struct Walker {
    excludes: Gitignore,
    /// Paths never backed up (this installation's own cache).
    skip: Vec<PathBuf>,
}

impl Walker {
    /// A walker with gitignore-style `excludes`, never entering `skip`.
    pub fn new(excludes: &[String], skip: Vec<PathBuf>) -> Result<Walker> {
        let mut b = GitignoreBuilder::new("/");
        // `Thumbs.db` is `thumbs.db` where names ignore case.
        b.case_insensitive(fsmeta::NAMES_IGNORE_CASE)
            .context("building the exclude patterns")?;
        for pattern in excludes {
            b.add_line(None, pattern)
                .with_context(|| format!("exclude pattern {pattern:?} is not valid"))?;
        }
        Ok(Walker {
            excludes: b.build().context("building the exclude patterns")?,
            skip,
        })
    }

    /// Walks `paths` (from [`normalize`]) into one tree rooted at `/`.
    pub fn scan(&self, paths: &[PathBuf]) -> Result<Scan> {
        let mut tally = Tally::default();
        let mut root = Vec::new();
        let top = root_of(paths.first().context("no path to back up")?);
        // The walk starts at the root: it must be readable.
        fs::symlink_metadata(&top).with_context(|| format!("reading {}", top.display()))?;
        for path in paths {
            let parts = parts(path)?;
            if parts.is_empty() {
                // The whole root (normalize left no other path).
                root = self.dir(&mut tally, &top);
                tally.dirs += 1;
                continue;
            }
            self.insert(&mut tally, &mut root, top.clone(), path, &parts)?;
        }
        Ok(Scan { root, tally })
    }

    /// Adds `path` below `items`, creating the entries of its parent directories.
    fn insert(
        &self,
        tally: &mut Tally,
        items: &mut Vec<Item>,
        mut here: PathBuf,
        path: &Path,
        parts: &[Part<'_>],
    ) -> Result<()> {
        let Part { name: part, os } = &parts[0];
        if let Some(os) = os {
            here.push(os);
        }
        let md = fs::symlink_metadata(&here)
            .with_context(|| format!("cannot back up {}", here.display()))?;
        if parts.len() == 1 {
            if let Some(item) = self.item(tally, &here, part.clone(), md) {
                items.push(item);
                items.sort_by(|a, b| a.name.cmp(&b.name));
            }
            return Ok(());
        }
        let pos = match items.iter().position(|i| i.name == *part) {
            Some(p) => p,
            None => {
                tally.dirs += 1;
                items.push(Item {
                    name: part.clone(),
                    meta: fsmeta::meta(&md),
                    kind: Kind::Dir(Vec::new()),
                });
                items.sort_by(|a, b| a.name.cmp(&b.name));
                items.iter().position(|i| i.name == *part).unwrap()
            }
        };
        match &mut items[pos].kind {
            Kind::Dir(children) => self.insert(tally, children, here, path, &parts[1..]),
            _ => bail!(
                "cannot back up {}: {} is not a directory",
                path.display(),
                here.display()
            ),
        }
    }

    /// Turns one directory entry into an item (None when it is skipped).
    fn item(
        &self,
        tally: &mut Tally,
        path: &Path,
        name: Vec<u8>,
        md: fs::Metadata,
    ) -> Option<Item> {
        let meta = fsmeta::meta(&md);
        let ft = md.file_type();
        if self.skip.iter().any(|s| s == path)
            || self.excludes.matched(path, ft.is_dir()).is_ignore()
        {
            tally.excluded += 1;
            return None;
        }
        let kind = if ft.is_file() {
            tally.files += 1;
            tally.bytes += md.len();
            Kind::File(path.to_path_buf())
        } else if ft.is_symlink() {
            match fsmeta::read_link(path) {
                Ok(t) if !t.is_empty() => Kind::Symlink(t),
                Ok(_) => {
                    tally
                        .errors
                        .push((path.into(), "empty symbolic link".into()));
                    return None;
                }
                Err(e) => {
                    tally.errors.push((path.into(), e.to_string()));
                    return None;
                }
            }
        } else if ft.is_dir() {
            if excluded_by_marker(path) {
                tally.excluded += 1;
                return None;
            }
            tally.dirs += 1;
            Kind::Dir(self.dir(tally, path))
        } else {
            tally.special.push(path.to_path_buf());
            return None;
        };
        Some(Item { name, meta, kind })
    }

    /// The items of a directory, sorted by name. A directory that cannot be
    /// listed is kept (empty) and reported.
    fn dir(&self, tally: &mut Tally, path: &Path) -> Vec<Item> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(path) {
            Ok(e) => e,
            Err(e) => {
                tally.errors.push((path.into(), e.to_string()));
                return out;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tally.errors.push((path.into(), e.to_string()));
                    continue;
                }
            };
            let child = entry.path();
            let md = match entry.metadata() {
                Ok(m) => m,
                Err(e) => {
                    tally.errors.push((child, e.to_string()));
                    continue;
                }
            };
            if let Some(item) = self.item(tally, &child, fsmeta::name_bytes(&entry.file_name()), md)
            {
                out.push(item);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// True if the folder holds a `.nobackup` file or a signed `CACHEDIR.TAG`.
fn excluded_by_marker(dir: &Path) -> bool {
    if dir.join(NOBACKUP_MARKER).symlink_metadata().is_ok() {
        return true;
    }
    match fs::File::open(dir.join("CACHEDIR.TAG")) {
        Ok(f) => {
            use std::io::Read;
            let mut head = Vec::with_capacity(CACHEDIR_SIGNATURE.len());
            f.take(CACHEDIR_SIGNATURE.len() as u64)
                .read_to_end(&mut head)
                .is_ok()
                && head == CACHEDIR_SIGNATURE
        }
        Err(_) => false,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_default_excludes_leave_out_caches_trash_and_a_windows_profile_s_temporary_files() {
        let w = Walker::new(
            &crate::config::DEFAULT_EXCLUDES
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            Vec::new(),
        )
        .unwrap();
        let out = |p: &str, dir: bool| {
            w.excludes
                .matched_path_or_any_parents(Path::new(p), dir)
                .is_ignore()
        };
        for (p, dir) in [
            ("/home/ana/.cache", true),
            ("/home/ana/.local/share/Trash", true),
            ("/home/ana/Documents/Thumbs.db", false),
            ("/home/ana/Documents/~$Bilan.ods", false),
            ("/C/Users/Ana/AppData/Local/Temp", true),
            ("/C/Users/Ana/AppData/Local/Temp/x/y.log", false),
            (
                "/C/Users/Ana/AppData/Local/Microsoft/Windows/INetCache",
                true,
            ),
            (
                "/C/Users/Ana/AppData/Local/Google/Chrome/User Data/Default/Cache",
                true,
            ),
            (
                "/C/Users/Ana/AppData/Local/Mozilla/Firefox/Profiles/ab.default/cache2",
                true,
            ),
            ("/C/Users/Ana/NTUSER.DAT", false),
            ("/C/Users/Ana/NTUSER.DAT{53b39e88}.TM.blf", false),
        ] {
            assert!(out(p, dir), "{p} is backed up");
        }
        for (p, dir) in [
            ("/home/ana/Documents/Bilan.ods", false),
            (
                "/C/Users/Ana/AppData/Roaming/Thunderbird/Profiles/x/Mail",
                true,
            ),
            (
                "/C/Users/Ana/AppData/Local/Google/Chrome/User Data/Default/Bookmarks",
                false,
            ),
            ("/C/Users/Ana/Documents/Temp", true),
        ] {
            assert!(!out(p, dir), "{p} is left out");
        }
    }

    #[test]
    fn a_path_s_levels_are_its_names() {
        let parts = parts(Path::new("/home/ana/Été")).unwrap();
        let names: Vec<&[u8]> = parts.iter().map(|p| &p.name[..]).collect();
        assert_eq!(names, [&b"home"[..], b"ana", "Été".as_bytes()]);
        assert!(parts.iter().all(|p| p.os.is_some()));
    }

    fn names(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| String::from_utf8_lossy(&i.name).into_owned())
            .collect()
    }

    fn find<'a>(items: &'a [Item], path: &str) -> Option<&'a Item> {
        let mut items = items;
        let mut found = None;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let item = items.iter().find(|i| i.name == part.as_bytes())?;
            if let Kind::Dir(c) = &item.kind {
                items = c;
            }
            found = Some(item);
        }
        found
    }

    #[test]
    fn the_walk_mirrors_absolute_paths_and_honours_excludes_and_markers() {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        let w = |p: &str| {
            let p = base.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, b"x").unwrap();
        };
        w("docs/a.txt");
        w("docs/b.tmp");
        w("docs/sub/c.txt");
        w("docs/cache/CACHEDIR.TAG");
        fs::write(
            base.join("docs/cache/CACHEDIR.TAG"),
            b"Signature: 8a477f597d28d172789f06886806bc55\n",
        )
        .unwrap();
        w("docs/cache/big.bin");
        w("docs/fake-cache/CACHEDIR.TAG");
        w("docs/private/.nobackup");
        w("docs/private/secret.txt");
        w("docs/node_modules/x.js");
        fs::create_dir_all(base.join("docs/empty")).unwrap();
        std::os::unix::fs::symlink("a.txt", base.join("docs/link")).unwrap();
        let fifo = base.join("docs/pipe");
        let made_fifo = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());

        let walker = Walker::new(&["*.tmp".into(), "node_modules/".into()], vec![]).unwrap();
        let paths = normalize(&[base.join("docs"), base.join("docs/sub")])
            .unwrap()
            .kept;
        assert_eq!(
            paths,
            vec![base.join("docs")],
            "a path inside another is dropped"
        );
        let scan = walker.scan(&paths).unwrap();
        let docs = find(&scan.root, base.join("docs").to_str().unwrap()).expect("docs in the tree");
        let Kind::Dir(items) = &docs.kind else {
            panic!("docs is a dir")
        };
        assert_eq!(
            names(items),
            ["a.txt", "empty", "fake-cache", "link", "sub"]
        );
        assert!(matches!(&find(items, "link").unwrap().kind, Kind::Symlink(t) if t == b"a.txt"));
        assert_eq!(
            scan.tally.excluded, 4,
            "b.tmp, cache, private, node_modules"
        );
        assert_eq!(scan.tally.files, 3);
        if made_fifo {
            assert_eq!(scan.tally.special, vec![fifo]);
        }
        assert!(scan.tally.errors.is_empty(), "{:?}", scan.tally.errors);
    }

    #[test]
    fn a_missing_path_is_left_out_and_listed_the_others_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir(base.join("here")).unwrap();
        let usb = base.join("media/usb");
        let found = normalize(&[base.join("here"), usb.clone()]).unwrap();
        assert_eq!(found.kept, vec![base.join("here")]);
        assert_eq!(found.missing, vec![usb]);
        assert!(found.unreadable.is_empty());
    }
}
