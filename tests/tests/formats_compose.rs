//! The core formats compose into a backup and a restore: a real directory on
//! disk goes through the pipeline, trees and a manifest, and comes back
//! byte-for-byte with its permissions, mtimes, symlinks, empty directories and
//! non-UTF-8 names. Storage here is a map in memory; the server milestone puts
//! the real server under the same walk (tests start it on loopback).

#![cfg(unix)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use coffre_core::blob::{self, BlobKind};
use coffre_core::manifest::{PrivatePart, PublicPart, Statistics};
use coffre_core::pipeline::{self, Config, Event, Input, SeenSet};
use coffre_core::{
    benchmark, ChunkId, Content, Entry, Keys, Manifest, MasterKey, Sealer, Timestamp, Tree,
};

type Store = HashMap<ChunkId, Vec<u8>>;

fn make_tree(root: &Path) {
    let w = |p: &str, data: &[u8]| {
        let p = root.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    };
    w(
        "Documents/Comptabilité/bilan 2025.csv",
        &benchmark::text_bytes(300_000, 1),
    );
    w(
        "Documents/Comptabilité/copie du bilan.csv",
        &benchmark::text_bytes(300_000, 1),
    );
    w("Documents/notes.txt", b"reunion du bureau: mardi");
    w("Documents/vide.txt", b"");
    w("Images/IMG_0001.jpg", &benchmark::random_bytes(6 << 20, 2));
    w("Mail/Inbox.mbox", &benchmark::text_bytes(9 << 20, 3));
    fs::create_dir_all(root.join("Vide/et encore plus vide")).unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"Documents/latin1-\xe9t\xe9.txt")),
        b"ete",
    )
    .unwrap();
    std::os::unix::fs::symlink("../Documents", root.join("Images/raccourci")).unwrap();
    fs::set_permissions(
        root.join("Documents/notes.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// Backs up `root`: returns the manifest bytes and how many blobs were new.
fn backup(keys: &Keys, root: &Path, store: &mut Store) -> (Vec<u8>, usize) {
    // Collect the regular files first; the pipeline reads them on all cores.
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                files.push(e.path());
            }
        }
    }
    let known = SeenSet::with_known(store.keys().copied());
    let mut chunks: Vec<Vec<ChunkId>> = vec![Vec::new(); files.len()];
    let before = store.len();
    let inputs = files.iter().map(|p| {
        let f = fs::File::open(p)?;
        let size = f.metadata()?.len();
        Ok(Input {
            reader: Box::new(f),
            size_hint: Some(size),
        })
    });
    pipeline::run::<_, coffre_core::Error, _>(
        keys,
        &Config::with_threads(2),
        inputs,
        &known,
        |ev| {
            match ev {
                Event::Chunk { file, id, blob, .. } => {
                    chunks[file].push(id);
                    if let Some(b) = blob {
                        store.insert(id, b);
                    }
                }
                Event::FileDone { .. } => {}
                Event::FileFailed { error, .. } => panic!("{error}"),
            }
            Ok(())
        },
    )
    .unwrap();
    let by_path: HashMap<PathBuf, Vec<ChunkId>> = files.into_iter().zip(chunks).collect();
    let mut sealer = Sealer::new(3);
    let root_id = store_dir(keys, root, &by_path, store, &mut sealer);
    let manifest = Manifest {
        public: PublicPart {
            time: Timestamp::now(),
            device: "pc-compta".into(),
            logical_bytes: 0,
            file_count: by_path.len() as u64,
            problems: 0,
            checkpoint: false,
            chunks: store.keys().copied().collect(),
        },
        private: PrivatePart {
            root: root_id,
            paths: vec![root.as_os_str().as_bytes().to_vec()],
            hostname: "pc-compta".into(),
            tags: vec![],
            parent: None,
            stats: Statistics::default(),
            errors: vec![],
        },
    };
    (manifest.seal(keys).unwrap(), store.len() - before)
}

fn store_dir(
    keys: &Keys,
    dir: &Path,
    files: &HashMap<PathBuf, Vec<ChunkId>>,
    store: &mut Store,
    sealer: &mut Sealer,
) -> ChunkId {
    let mut entries = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let md = fs::symlink_metadata(e.path()).unwrap();
        let content = if md.is_dir() {
            Content::Dir(store_dir(keys, &e.path(), files, store, sealer))
        } else if md.file_type().is_symlink() {
            Content::Symlink(
                fs::read_link(e.path())
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else {
            Content::File(files[&e.path()].clone())
        };
        entries.push(Entry {
            name: e.file_name().as_bytes().to_vec(),
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.modified().unwrap().into(),
            size: if md.is_file() { md.len() } else { 0 },
            xattrs: vec![],
            content,
        });
    }
    let enc = Tree::new(entries).unwrap().encode();
    let id = ChunkId::compute(keys, &enc);
    let b = sealer.seal(keys, BlobKind::Tree, &id, &enc).unwrap();
    store.insert(id, b);
    id
}

fn restore(keys: &Keys, manifest: &[u8], store: &Store, target: &Path) {
    let m = Manifest::open(keys, manifest).unwrap();
    restore_dir(keys, &m.private.root, store, target);
}

fn restore_dir(keys: &Keys, tree: &ChunkId, store: &Store, dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let tree =
        Tree::decode(&blob::open(keys, BlobKind::Tree, tree, &store[tree]).unwrap()).unwrap();
    for e in &tree.entries {
        let path = dir.join(OsStr::from_bytes(&e.name));
        match &e.content {
            Content::Dir(id) => restore_dir(keys, id, store, &path),
            Content::Symlink(t) => std::os::unix::fs::symlink(OsStr::from_bytes(t), &path).unwrap(),
            Content::File(ids) => {
                let mut data = Vec::new();
                for id in ids {
                    data.extend(blob::open(keys, BlobKind::Data, id, &store[id]).unwrap());
                }
                assert_eq!(data.len() as u64, e.size);
                fs::write(&path, data).unwrap();
                let f = fs::File::options().write(true).open(&path).unwrap();
                f.set_modified(e.mtime.into()).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(e.mode & 0o7777)).unwrap();
            }
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every name, byte, mode, file mtime and link target of `a` is in `b` and back.
fn assert_same(a: &Path, b: &Path) -> io::Result<()> {
    let mut names_a: Vec<_> = fs::read_dir(a)?.map(|e| e.unwrap().file_name()).collect();
    let mut names_b: Vec<_> = fs::read_dir(b)?.map(|e| e.unwrap().file_name()).collect();
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b, "in {}", a.display());
    for n in names_a {
        let (pa, pb) = (a.join(&n), b.join(&n));
        let (ma, mb) = (fs::symlink_metadata(&pa)?, fs::symlink_metadata(&pb)?);
        assert_eq!(ma.file_type(), mb.file_type(), "{}", pa.display());
        if ma.is_dir() {
            assert_same(&pa, &pb)?;
        } else if ma.file_type().is_symlink() {
            assert_eq!(fs::read_link(&pa)?, fs::read_link(&pb)?);
        } else {
            assert!(fs::read(&pa)? == fs::read(&pb)?, "{} differs", pa.display());
            assert_eq!(ma.mode(), mb.mode(), "{}", pa.display());
            assert_eq!(ma.modified()?, mb.modified()?, "{}", pa.display());
        }
    }
    Ok(())
}

#[test]
fn a_directory_backs_up_and_restores_byte_for_byte() {
    let keys = Keys::derive(&MasterKey::generate().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let (source, target) = (tmp.path().join("source"), tmp.path().join("restored"));
    make_tree(&source);
    let mut store = Store::new();
    let (manifest, new_blobs) = backup(&keys, &source, &mut store);
    assert!(new_blobs > 0);
    restore(&keys, &manifest, &store, &target);
    assert_same(&source, &target).unwrap();

    // A second backup of the unchanged tree stores nothing new: same chunks, same trees.
    let (again, new_blobs) = backup(&keys, &source, &mut store);
    assert_eq!(new_blobs, 0, "an unchanged tree stored new blobs");
    let (a, b) = (
        Manifest::open(&keys, &manifest).unwrap(),
        Manifest::open(&keys, &again).unwrap(),
    );
    assert_eq!(
        a.private.root, b.private.root,
        "unchanged directories must give the same root tree"
    );

    // Another subscriber's keys cannot read any of it.
    let other = Keys::derive(&MasterKey::generate().unwrap());
    assert!(Manifest::open(&other, &manifest).is_err());
    assert!(store
        .iter()
        .all(|(id, b)| blob::open(&other, BlobKind::Data, id, b).is_err()));
}
