//! `coffre forget SNAPSHOT`: delete one snapshot (admin devices only),
//! guarded against slips.
//!
//! A tired volunteer types `forget 9`, or `forget latest` meaning yesterday's,
//! or the id of the wrong line. So:
//!
//! - an id prefix deletes without a question only if it has at least
//!   [`MIN_DIGITS`] hex digits (what `coffre snapshots` shows) and matches
//!   exactly one snapshot: eight digits stay unambiguous for years (with
//!   20,000 snapshots, ten PCs for five years, the one named shares its
//!   eight digits with another with a chance of 1 in 200,000; the prefix is
//!   then refused as ambiguous, never guessed);
//! - a shorter prefix, or `latest` (whose meaning changes with each backup),
//!   is refused, showing what it names and the command that deletes it,
//!   unless `--yes`;
//! - an ambiguous prefix is always refused, `--yes` or not, listing the
//!   candidates;
//! - what is deleted is always shown first: id, time, device, files, size,
//!   paths (a damaged snapshot shows why it is damaged, and can be deleted).
//!
//! The decision is [`choose`], a pure function of the server's list.

use std::path::Path;

use anyhow::{bail, Result};
use coffre_core::ChunkId;
use coffre_proto::SnapshotEntry;

use super::{header, rows, Row};
use crate::cli::ForgetArgs;
use crate::display::local_time;
use crate::session::{self, Session};

/// Hex digits of an id that delete without `--yes`: the id `coffre
/// snapshots` shows.
pub const MIN_DIGITS: usize = 8;

/// What `forget SPEC` may do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice {
    /// Delete this snapshot: named by enough digits, or confirmed by --yes.
    Delete(SnapshotEntry),
    /// This snapshot, but the argument is too short to delete it unconfirmed.
    Confirm(SnapshotEntry),
    /// Several snapshots: never deleted, listed.
    Ambiguous(Vec<SnapshotEntry>),
}

/// Decides what `forget spec` does with an id prefix (`latest` is resolved
/// by the session and is never precise enough on its own).
fn choose(list: &[SnapshotEntry], spec: &str, device: Option<&str>, yes: bool) -> Result<Choice> {
    // Over every device: a prefix that is ambiguous among all snapshots is
    // refused even with --device.
    let matches = session::matching(list, spec)?;
    let one = match matches.as_slice() {
        [] => bail!(
            "nothing was deleted: no snapshot id starts with {spec:?} (see `coffre snapshots`)"
        ),
        [one] => (*one).clone(),
        many => {
            return Ok(Choice::Ambiguous(
                many.iter().map(|s| (*s).clone()).collect(),
            ))
        }
    };
    if let Some(d) = device.filter(|d| *d != one.device) {
        bail!(
            "nothing was deleted: snapshot {} is of device {:?}, not {d:?} (see `coffre snapshots`)",
            ChunkId::from_bytes(one.id).short(),
            one.device
        );
    }
    Ok(if spec.len() >= MIN_DIGITS || yes {
        Choice::Delete(one)
    } else {
        Choice::Confirm(one)
    })
}

/// Prints `rows` as the `snapshots` table does.
fn show(title: &str, rows: &[Row]) {
    outln!("{title}");
    outln!("  {}", header());
    for r in rows {
        outln!("  {}", r.line());
    }
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
    let spec = args.snapshot.as_str();
    let list = session.snapshots()?;
    let device = args.device.as_deref();
    let choice = if spec == "latest" {
        let s = session.resolve_in(&list, spec, device)?;
        if args.yes {
            Choice::Delete(s)
        } else {
            Choice::Confirm(s)
        }
    } else {
        choose(&list, spec, device, args.yes)?
    };
    let snap = match choice {
        Choice::Delete(s) => s,
        Choice::Confirm(s) => {
            let short = ChunkId::from_bytes(s.id).short();
            show(
                &format!("{spec:?} names this snapshot:"),
                &rows(&session, vec![s], None)?,
            );
            session.close();
            let why = if spec == "latest" {
                "`latest` names another snapshot after every backup".to_string()
            } else {
                format!(
                    "{spec:?} has {} of the {MIN_DIGITS} digits forget wants, so that one slip of the keyboard cannot delete a snapshot",
                    spec.len()
                )
            };
            bail!("nothing was deleted: {why}. To delete the snapshot shown above, run `coffre forget {short}` (or add --yes)");
        }
        Choice::Ambiguous(many) => {
            let n = many.len();
            show(
                &format!("{n} snapshots start with {spec:?}:"),
                &rows(&session, many, None)?,
            );
            session.close();
            bail!(
                "nothing was deleted: {n} snapshots start with {spec:?} (listed above). Give more digits of the one to delete (`coffre snapshots --json` shows whole ids); --yes does not choose for you"
            );
        }
    };
    let id = ChunkId::from_bytes(snap.id);
    show("forgetting:", &rows(&session, vec![snap.clone()], None)?);
    session.block_on(session.remote.forget(&id))?;
    session.close();
    outln!(
        "forgot snapshot {} of {} ({}); the chunks only it used are freed by the server's garbage collection",
        id.short(),
        local_time(snap.time),
        snap.device
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(hex_start: &str, device: &str) -> SnapshotEntry {
        let mut id = [0u8; 32];
        let b = hex::decode(hex_start).unwrap();
        id[..b.len()].copy_from_slice(&b);
        SnapshotEntry {
            id,
            time: 1,
            device: device.into(),
            logical_bytes: 0,
            file_count: 0,
        }
    }

    #[test]
    fn short_prefixes_need_yes_ambiguous_ones_never_pass() {
        let list = vec![
            snap("9c1d93aa", "pc"),
            snap("3f9a2c1d", "pc"),
            snap("3f9a2c1e", "laptop"),
        ];
        assert_eq!(
            choose(&list, "9", None, false).unwrap(),
            Choice::Confirm(list[0].clone())
        );
        assert_eq!(
            choose(&list, "9", None, true).unwrap(),
            Choice::Delete(list[0].clone())
        );
        assert_eq!(
            choose(&list, "9C1D93AA", None, false).unwrap(),
            Choice::Delete(list[0].clone()),
            "the 8 digits `snapshots` shows, in any case"
        );
        for yes in [false, true] {
            assert_eq!(
                choose(&list, "3f9a2c1", None, yes).unwrap(),
                Choice::Ambiguous(list[1..].to_vec())
            );
        }
        let e = choose(&list, "3f9a2c1e", Some("pc"), true).unwrap_err();
        assert!(e.to_string().contains("is of device \"laptop\""), "{e}");
        assert!(choose(&list, "ab", None, true).is_err());
        assert!(choose(&list, "9z", None, true).is_err());
    }
}
