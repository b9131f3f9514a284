//! What was told to whom: `DATA/alerts.json`, so that a restarted daemon
//! does not tell anything again, and the pure rule of what is new
//! ([`State::changes`]).
//!
//! Per recipient (a mail address or a webhook URL), each fact told is kept
//! by its key with its value and when it was told. A fact that is no longer
//! true is forgotten at the next look ([`State::forget_gone`]), so when it
//! comes back it is new again. A fact is **new** when its key was not told,
//! or was told with another value, or (with `repeat_days`) was told that
//! many days ago or more; everything else still true is "still".
//!
//! Only the daemon writes the file (`coffre_store::write_atomic`: a crash
//! leaves the old or the new one); `alerts preview` only reads it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::events::Event;

/// The file's name in the data directory.
pub const FILE: &str = "alerts.json";

/// The version of the file's format.
const VERSION: u32 = 1;

/// What was told to every recipient.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The format's version.
    pub version: u32,
    /// Per recipient.
    pub recipients: BTreeMap<String, Recipient>,
}

/// What one recipient was told.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recipient {
    /// Per event key.
    pub told: BTreeMap<String, Told>,
    /// When its last digest was sent (Unix seconds).
    #[serde(default)]
    pub last_digest: Option<i64>,
    /// A digest is owed (the last one failed to leave): retried at each look.
    #[serde(default)]
    pub digest_owed: bool,
}

/// A fact as it was told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Told {
    /// Its value then.
    pub value: String,
    /// When (Unix seconds).
    pub at: i64,
}

/// The events a recipient is to hear of, split by [`State::changes`].
#[derive(Debug, Default, PartialEq)]
pub struct Changes<'a> {
    /// New or changed since told (or due again by `repeat_days`).
    pub new: Vec<&'a Event>,
    /// Told already, still true.
    pub still: Vec<&'a Event>,
}

impl State {
    /// `DATA/alerts.json`.
    pub fn path(data: &Path) -> PathBuf {
        data.join(FILE)
    }

    /// Reads the file; none yet: nothing told.
    pub fn load(data: &Path) -> Result<State> {
        let path = State::path(data);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "{} is not valid (delete it: facts still true are then told again)",
                        path.display()
                    )
                })?;
                anyhow::ensure!(
                    state.version == VERSION,
                    "{} has version {}, this coffre-server reads {VERSION}: upgrade it",
                    path.display(),
                    state.version
                );
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                version: VERSION,
                ..State::default()
            }),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file durably (temp, fsync, rename; 0600).
    pub fn save(&self, data: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        coffre_store::write_atomic(&State::path(data), &bytes)?;
        Ok(())
    }

    /// Forgets, for `to`, every fact not among `current`: when it comes back, it is new.
    pub fn forget_gone(&mut self, to: &str, current: &[&Event]) {
        if let Some(r) = self.recipients.get_mut(to) {
            let keys: std::collections::HashSet<String> = current.iter().map(|e| e.key()).collect();
            r.told.retain(|key, _| keys.contains(key));
        }
    }

    /// Splits `current` into what is new for `to` and what is still true,
    /// at `now`, telling again after `repeat_days` if set.
    pub fn changes<'a>(
        &self,
        to: &str,
        current: &[&'a Event],
        now: i64,
        repeat_days: Option<u32>,
    ) -> Changes<'a> {
        let told = self.recipients.get(to).map(|r| &r.told);
        let mut out = Changes::default();
        for &e in current {
            let fresh = match told.and_then(|t| t.get(&e.key())) {
                None => true,
                Some(t) if t.value != e.value => true,
                Some(t) => {
                    repeat_days.is_some_and(|d| d > 0 && now - t.at >= i64::from(d) * 86_400)
                }
            };
            if fresh {
                out.new.push(e);
            } else {
                out.still.push(e);
            }
        }
        out
    }

    /// Records that `to` was told `events` at `now`.
    pub fn told(&mut self, to: &str, events: &[&Event], now: i64) {
        let r = self.recipients.entry(to.to_string()).or_default();
        for e in events {
            r.told.insert(
                e.key(),
                Told {
                    value: e.value.clone(),
                    at: now,
                },
            );
        }
    }

    /// The recipient's record, made if new.
    pub fn recipient(&mut self, to: &str) -> &mut Recipient {
        self.recipients.entry(to.to_string()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::events::Kind;

    fn event(kind: Kind, device: &str, value: &str) -> Event {
        Event {
            kind,
            subscriber: Some("asso".into()),
            device: Some(device.into()),
            value: value.into(),
            status: None,
            used_bytes: None,
            quota_bytes: None,
            since: None,
        }
    }

    fn keys(events: &[&Event]) -> Vec<String> {
        events.iter().map(|e| e.key()).collect()
    }

    #[test]
    fn a_fact_is_new_once_then_still_until_it_changes_or_goes() {
        const DAY: i64 = 86_400;
        let mut state = State::default();
        let stale = event(Kind::Stale, "pc", "100");
        let clock = event(Kind::ClockWrong, "pc2", "8 Day true");
        let now = 1000 * DAY;

        let c = state.changes("tech@x", &[&stale, &clock], now, None);
        assert_eq!(keys(&c.new), ["asso/stale/pc", "asso/clock_wrong/pc2"]);
        assert!(c.still.is_empty());
        state.told("tech@x", &c.new, now);

        // Told: still, for that recipient only.
        let c = state.changes("tech@x", &[&stale, &clock], now + DAY, None);
        assert!(c.new.is_empty());
        assert_eq!(c.still.len(), 2);
        assert_eq!(
            state.changes("other@x", &[&stale], now, None).new.len(),
            1,
            "another recipient was told nothing"
        );

        // A changed value is new again (a newer last backup, stale again).
        let restale = event(Kind::Stale, "pc", "200");
        let c = state.changes("tech@x", &[&restale, &clock], now + DAY, None);
        assert_eq!(keys(&c.new), ["asso/stale/pc"]);
        assert_eq!(keys(&c.still), ["asso/clock_wrong/pc2"]);

        // Gone, then back: new again.
        state.forget_gone("tech@x", &[&clock]);
        assert_eq!(
            keys(&state.changes("tech@x", &[&stale], now + 2 * DAY, None).new),
            ["asso/stale/pc"]
        );

        // repeat_days: an unchanged fact is new again after that many days, not before.
        assert!(state
            .changes("tech@x", &[&clock], now + 6 * DAY, Some(7))
            .new
            .is_empty());
        assert_eq!(
            state
                .changes("tech@x", &[&clock], now + 7 * DAY, Some(7))
                .new
                .len(),
            1
        );
        assert!(
            state
                .changes("tech@x", &[&clock], now + 700 * DAY, None)
                .new
                .is_empty(),
            "by default, never"
        );
    }

    #[test]
    fn the_file_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::load(dir.path()).unwrap();
        assert!(state.recipients.is_empty());
        let e = event(Kind::OverQuota, "-", "");
        state.told("https://ntfy.example/x", &[&e], 42);
        state.recipient("https://ntfy.example/x").digest_owed = true;
        state.save(dir.path()).unwrap();
        let again = State::load(dir.path()).unwrap();
        assert_eq!(again, state);
        assert!(again
            .changes("https://ntfy.example/x", &[&e], 43, None)
            .new
            .is_empty());
    }
}
