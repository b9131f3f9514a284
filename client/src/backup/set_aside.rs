//! Files another program holds open (issue 21): Outlook's `.pst`, an
//! accounting program's database. What the member sees:
//!
//! 1. **Set aside.** The first pass of step 4 cannot open or read such a
//!    file (Windows' share modes and byte-range locks: `fsmeta::held`); it
//!    prints "coffre: C:\...\x.pst is held by another program (...): set
//!    aside, retrying at the end of the run" and goes on with the others.
//! 2. **A shadow copy, when the run may make one.** At the end of the first
//!    pass, the files set aside are read from a Volume Shadow Copy of their
//!    drive (`fsmeta::shadow`): the file as it was at one instant, whoever
//!    holds it. Only an elevated administrator's run or SYSTEM's (the nightly
//!    task installed with `--system`) may make one; otherwise, or if Windows
//!    refuses, one line says why and the files are retried.
//! 3. **Retried at the end of the run.** Up to [`ATTEMPTS`] attempts: one
//!    at once (the first pass may have taken hours), then after pauses of
//!    1/12, 1/6, 1/4 and 1/2 of [`WAIT`] (two minutes in all, so 10, 20, 30
//!    and 60 s; `COFFRE_HELD_WAIT`, in seconds, sets another total: the
//!    tests use a few seconds). Each attempt reads with `fsmeta::open_steady`:
//!    a file whose size or modification time changed while it was read is
//!    not kept (it would mix two versions) and counts as still held.
//! 4. **Still held: the previous version is kept, and said.** The snapshot
//!    keeps the file's entry from the parent snapshot (its contents, size and
//!    time as last backed up: a held file must not look deleted), the
//!    problem is recorded in the snapshot, and a warning names the file, the
//!    version kept and what to do ("close the program that holds it, or
//!    schedule the backup with `coffre schedule install --system` to read it
//!    from a shadow copy"). A file the parent does not hold (new since) is
//!    left out, and said so. Either way the run's exit status is 3 (saved
//!    with problems) and `--json` lists it under `held_open`. The file is
//!    not put in the files cache, so the next run reads it again.
//!
//! A file that fails for another reason at an attempt (deleted meanwhile,
//! permission) is reported as unreadable, like any file, and not retried.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use coffre_core::{ChunkId, Content};

use super::read::{self, Reading};
use super::trees::ReadFiles;
use crate::display::count;
use crate::fsmeta::{self, shadow::Shadows};
use crate::session::Session;
use crate::trees::Trees;

/// Attempts at the end of the run.
pub(super) const ATTEMPTS: usize = 5;
/// How long the attempts wait in all (unless `COFFRE_HELD_WAIT` says).
/// A program that holds a file for seconds (a save, an antivirus scan) has
/// let go by then; one that holds it as long as it runs (Outlook) will not
/// within any wait a nightly run can afford: that is what shadow copies are for.
pub(super) const WAIT: Duration = Duration::from_secs(120);

/// The total wait: `COFFRE_HELD_WAIT` seconds, else [`WAIT`].
fn total_wait() -> Duration {
    std::env::var("COFFRE_HELD_WAIT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e5)
        .map(Duration::from_secs_f64)
        .unwrap_or(WAIT)
}

/// The pause before each attempt: none before the first, then 1/12, 1/6,
/// 1/4 and 1/2 of `total` (they add up to it).
pub(super) fn pauses(total: Duration) -> [Duration; ATTEMPTS] {
    [Duration::ZERO, total / 12, total / 6, total / 4, total / 2]
}

/// Why an attempt's failure is worth another attempt: the file is held, or
/// changed while it was read.
fn again(error: &io::Error) -> Option<String> {
    if let Some(held) = fsmeta::held(error) {
        return Some(held.to_string());
    }
    fsmeta::changed(error).then(|| fsmeta::CHANGED.to_string())
}

/// What the first pass does with a file that failed: `Some(why)` if it is
/// held by another program (set it aside), else `None` (unreadable).
pub(super) fn held_now(error: &io::Error) -> Option<String> {
    fsmeta::held(error).map(|h| h.to_string())
}

/// The files set aside after the end-of-run reading: read, failed for
/// another reason, or still held.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Outcome {
    /// Files that failed for another reason, with why (reported as unreadable).
    pub failed: Vec<(usize, String)>,
    /// Files still held (or changing) after every attempt, with why.
    pub still_held: Vec<(usize, String)>,
    /// The attempt that read each file read (1-based), for the message.
    pub read_at: Vec<(usize, usize)>,
}

/// One attempt: reads the files given (indices into the read list) and
/// returns those that failed, with the error.
type Attempt<'a> = dyn FnMut(&[usize]) -> Result<Vec<(usize, io::Error)>> + 'a;

/// The attempts, `pauses[k]` before attempt `k`: `attempt(files)` reads
/// them and returns those that failed, with the error. The files that fail
/// with [`again`] are tried at the next attempt.
fn attempts(
    pauses: &[Duration],
    mut left: Vec<(usize, String)>,
    sleep: &mut dyn FnMut(Duration),
    attempt: &mut Attempt<'_>,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    for (k, pause) in pauses.iter().enumerate() {
        if left.is_empty() {
            break;
        }
        sleep(*pause);
        let which: Vec<usize> = left.iter().map(|(i, _)| *i).collect();
        let mut failures: HashMap<usize, io::Error> = attempt(&which)?.into_iter().collect();
        let mut next = Vec::new();
        for i in which {
            match failures.remove(&i) {
                None => out.read_at.push((i, k + 1)),
                Some(e) => match again(&e) {
                    Some(why) => next.push((i, why)),
                    None => out.failed.push((i, e.to_string())),
                },
            }
        }
        left = next;
    }
    out.still_held = left;
    Ok(out)
}

/// Steps 2 and 3 of the module's doc: the files `aside` (indices into the
/// read list, with why) read from a shadow copy if one can be made, then
/// retried. Returns what became of them, and the bytes read.
pub(super) fn second_chance(
    reading: &Reading<'_>,
    aside: Vec<(usize, String)>,
    files: &mut ReadFiles,
) -> Result<(Outcome, u64)> {
    let mut bytes = 0u64;
    if aside.is_empty() {
        return Ok((Outcome::default(), bytes));
    }
    let progress = reading.progress;
    let path = |i: usize| reading.to_read[i].0.as_path();
    let n = aside.len() as u64;
    let mut left = aside;

    // A shadow copy of their drives.
    let paths: Vec<&Path> = left.iter().map(|(i, _)| path(*i)).collect();
    match Shadows::create(&paths) {
        Ok(shadows) => {
            progress.println(&format!(
                "coffre: reading {} held by another program from a shadow copy",
                count(n, "file")
            ));
            let open = |p: &Path| -> io::Result<Box<dyn io::Read + Send>> {
                let copy = shadows.path_of(p).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "not in the shadow copy")
                })?;
                Ok(Box::new(std::fs::File::open(copy)?))
            };
            let which: Vec<usize> = left.iter().map(|(i, _)| *i).collect();
            let mut failed = Vec::new();
            bytes += read::pass(reading, &which, &open, files, &mut |_| {}, &mut |i, e| {
                failed.push((i, format!("not read from the shadow copy either ({e})")))
            })?;
            drop(shadows);
            left = failed;
        }
        Err(why) => progress.println(&format!(
            "coffre: no shadow copy ({why}): {} held by another program {} retried",
            count(n, "file"),
            if n == 1 { "is" } else { "are" }
        )),
    }
    if left.is_empty() {
        return Ok((Outcome::default(), bytes));
    }

    // Retried, each read checked to be whole.
    let total = total_wait();
    progress.println(&format!(
        "coffre: retrying {} held by another program: up to {ATTEMPTS} attempts within {} s",
        count(left.len() as u64, "file"),
        total.as_secs()
    ));
    let open = |p: &Path| -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(fsmeta::open_steady(p)?))
    };
    let outcome = attempts(
        &pauses(total),
        left,
        &mut std::thread::sleep,
        &mut |which| {
            let mut failed = Vec::new();
            bytes += read::pass(reading, which, &open, files, &mut |_| {}, &mut |i, e| {
                failed.push((i, e))
            })?;
            Ok(failed)
        },
    )?;
    for (i, k) in &outcome.read_at {
        progress.println(&format!(
            "coffre: {} read at attempt {k}: backed up",
            path(*i).display()
        ));
    }
    Ok((outcome, bytes))
}

/// Step 4 of the module's doc: each file `still_held` keeps its version of
/// the parent snapshot, in `files.previous`. Returns the problems to
/// record (path, why) and prints a warning for each.
pub(super) fn keep_previous(
    session: &Session,
    parent: Option<ChunkId>,
    reading: &Reading<'_>,
    still_held: &[(usize, String)],
    files: &mut ReadFiles,
) -> Vec<(PathBuf, String)> {
    let mut problems = Vec::new();
    if still_held.is_empty() {
        return problems;
    }
    let mut trees = Trees::new(session);
    let root = parent.map(|p| session.manifest(&p).map(|m| (p, m.private.root)));
    for (i, why) in still_held {
        let path = &reading.to_read[*i].0;
        let previous = match &root {
            None => Err("it is in no earlier snapshot of this PC".to_string()),
            Some(Err(e)) => Err(format!("the previous snapshot cannot be read: {e:#}")),
            Some(Ok((parent, root))) => match previous_entry(&mut trees, root, path) {
                Ok(Some(e)) => Ok((parent, e)),
                Ok(None) => Err("it is not in the previous snapshot".to_string()),
                Err(e) => Err(format!("the previous snapshot cannot be read: {e:#}")),
            },
        };
        let (recorded, said) = match previous {
            Ok((parent, entry)) => {
                let when = jiff::Timestamp::from_second(entry.mtime.secs)
                    .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default();
                files.previous.insert(*i, entry);
                (
                    format!(
                        "held by another program through the end of the run ({why}): \
                         the previous version is kept (from snapshot {}, modified {when})",
                        parent.short()
                    ),
                    format!("the snapshot keeps its previous version (modified {when})"),
                )
            }
            Err(none) => (
                format!(
                    "held by another program through the end of the run ({why}): \
                     left out, no previous version ({none})"
                ),
                format!("it is left out: there is no previous version to keep ({none})"),
            ),
        };
        reading.progress.println(&format!(
            "coffre: warning: {} is still held by another program ({why}); {said}. \
             Close the program that holds it (Outlook, an accounting program), or schedule \
             the backup with `coffre schedule install --system` to read it from a shadow copy",
            path.display()
        ));
        problems.push((path.clone(), recorded));
    }
    problems
}

/// The entry of `path` (a file) in the snapshot whose root tree is `root`;
/// `None` if that snapshot has no such file.
fn previous_entry(
    trees: &mut Trees<'_>,
    root: &ChunkId,
    path: &Path,
) -> Result<Option<coffre_core::Entry>> {
    let names: Vec<Vec<u8>> = crate::walk::parts(path)?
        .into_iter()
        .map(|p| p.name)
        .collect();
    let Some((name, folders)) = names.split_last() else {
        return Ok(None);
    };
    let mut dir = *root;
    for folder in folders {
        let tree = trees.get(&dir)?;
        match tree.entries.iter().find(|e| &e.name == folder) {
            Some(coffre_core::Entry {
                content: Content::Dir(id),
                ..
            }) => dir = *id,
            _ => return Ok(None),
        }
    }
    let tree = trees.get(&dir)?;
    Ok(tree
        .entries
        .iter()
        .find(|e| &e.name == name && matches!(e.content, Content::File(_)))
        .cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pauses_start_at_once_and_add_up_to_the_wait() {
        let p = pauses(WAIT);
        assert_eq!(p[0], Duration::ZERO);
        assert_eq!(
            p.map(|d| d.as_secs()),
            [0, 10, 20, 30, 60],
            "two minutes in all"
        );
        assert_eq!(p.iter().sum::<Duration>(), WAIT);
    }

    fn changing() -> io::Error {
        io::Error::other(fsmeta::CHANGED)
    }

    #[test]
    fn a_file_let_go_is_read_at_the_next_attempt_one_never_let_go_is_still_held() {
        // File 1 changes while read twice, then is quiet; file 2 always
        // changes; file 3 disappears (not retried).
        let mut tries: HashMap<usize, usize> = HashMap::new();
        let mut slept = Vec::new();
        let out = attempts(
            &pauses(Duration::from_secs(12)),
            vec![(1, "held".into()), (2, "held".into()), (3, "held".into())],
            &mut |d| slept.push(d),
            &mut |which| {
                let mut failed = Vec::new();
                for &i in which {
                    let n = tries.entry(i).or_default();
                    *n += 1;
                    match i {
                        1 if *n <= 2 => failed.push((i, changing())),
                        2 => failed.push((i, changing())),
                        3 => failed.push((i, io::Error::from(io::ErrorKind::NotFound))),
                        _ => {}
                    }
                }
                Ok(failed)
            },
        )
        .unwrap();
        assert_eq!(out.read_at, vec![(1, 3)]);
        assert_eq!(out.still_held, vec![(2, fsmeta::CHANGED.to_string())]);
        assert_eq!(out.failed.len(), 1);
        assert_eq!(out.failed[0].0, 3);
        assert_eq!(tries[&2], ATTEMPTS, "every attempt for a file never let go");
        assert_eq!(tries[&3], 1, "a file gone is not retried");
        assert_eq!(slept.iter().sum::<Duration>(), Duration::from_secs(12));
    }

    #[test]
    fn nothing_set_aside_waits_for_nothing() {
        let mut slept = Vec::new();
        let out = attempts(
            &pauses(WAIT),
            Vec::new(),
            &mut |d| slept.push(d),
            &mut |_| panic!("no attempt without a file"),
        )
        .unwrap();
        assert_eq!(out, Outcome::default());
        assert!(slept.is_empty());
    }

    #[test]
    fn only_windows_share_and_lock_violations_set_a_file_aside() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(held_now(&denied), None);
        assert!(again(&changing()).is_some());
        assert_eq!(again(&denied), None);
    }
}
