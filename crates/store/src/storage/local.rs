//! Packs on the local disk: `subscribers/<id>/packs/<name>.pack`, made
//! durable by `durable::persist` (fsync, rename, fsync of the directory).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::PackObject;
use crate::durable;
use crate::error::{Error, Result};
use crate::layout::PACK_SUFFIX;

pub(super) fn store(file: File, tmp: &Path, path: &Path) -> Result<()> {
    durable::persist(file, tmp, path).map_err(|e| Error::io(path, e))
}

pub(super) fn read_range(path: &Path, offset: u64, len: u64) -> Result<Option<Vec<u8>>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut out = Vec::with_capacity(len as usize);
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.take(len).read_to_end(&mut out))
        .map_err(|e| Error::io(path, e))?;
    Ok(Some(out))
}

pub(super) fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

pub(super) fn remove(dir: &Path, paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        durable::remove_file(path).map_err(|e| Error::io(path, e))?;
    }
    if paths.is_empty() || !dir.exists() {
        return Ok(());
    }
    durable::sync_dir(dir).map_err(|e| Error::io(dir, e))
}

pub(super) fn list(dir: &Path) -> Result<Vec<PackObject>> {
    let mut out = Vec::new();
    for (entry, meta) in durable::files_with_metadata(dir)? {
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(name) = file_name.strip_suffix(PACK_SUFFIX) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        out.push(PackObject {
            name: name.to_string(),
            size: meta.len(),
            modified,
        });
    }
    Ok(out)
}
