//! Taking over subscribers from the bucket alone (issue 22): when a
//! frontend's machine is lost, or a subscriber moves, another frontend of
//! the service serves it again from what the bucket holds: its account file
//! (name, quota, retention, devices and their secrets' hashes), key file,
//! packs (each indexes itself) and manifests.
//!
//! For each subscriber, in this order:
//! 1. the bucket's account file is rewritten naming this frontend (from
//!    then on the old frontend, if it still runs, commits and collects
//!    nothing for it: `frontend.rs`);
//! 2. its rows are rebuilt into this catalogue as `rebuild-catalog` would
//!    (`rebuild::rebuild_subscriber`, reading the bucket first, then
//!    writing all its rows in one transaction), under the same ids, and
//!    its manifests and key file copied into the data directory;
//! 3. if anything fails after its rows were written, they are removed
//!    again, so that running the take-over again starts clean.
//!
//! What a rebuild cannot bring back is lost here too (rebuild.rs): the
//! chunks' writers (every copy is then trusted by every device, as for data
//! from before dedup trust), the daily history, and the refusal counts.
//! Subscribers are taken over on several threads: the time goes into the
//! bucket's round trips, not the CPU.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::durable;
use crate::error::{Error, Result};
use crate::layout::{
    manifest_object, manifests_prefix, subscriber_object, ACCOUNT_FILE, KEY_FILE, MANIFESTS_DIR,
};
use crate::rebuild::{read_account, rebuild_subscriber, RebuildReport, Source};
use crate::store::Store;

/// How many subscribers are taken over at once.
pub const TAKE_OVER_THREADS: usize = 8;

/// A subscriber's files in the bucket; the manifests read are copied into
/// the data directory on the way.
struct BucketFolder<'a> {
    store: &'a Store,
    sub: i64,
    local: PathBuf,
}

impl Source for BucketFolder<'_> {
    fn describe(&self, file: &str) -> String {
        format!("the bucket's {}", subscriber_object(self.sub, file))
    }

    fn account(&self) -> Result<Option<Vec<u8>>> {
        self.store
            .packs
            .get_object(&subscriber_object(self.sub, ACCOUNT_FILE))
    }

    fn key(&self) -> Result<Option<Vec<u8>>> {
        let key = self
            .store
            .packs
            .get_object(&subscriber_object(self.sub, KEY_FILE))?;
        if let Some(bytes) = &key {
            let path = self.local.join(KEY_FILE);
            durable::write_atomic(&path, bytes).map_err(|e| Error::io(&path, e))?;
        }
        Ok(key)
    }

    fn manifests(&self) -> Result<Vec<(String, Option<i64>)>> {
        Ok(self
            .store
            .packs
            .list_objects(&manifests_prefix(self.sub))?
            .into_iter()
            .map(|o| (o.name, (o.modified > 0).then_some(o.modified)))
            .collect())
    }

    fn manifest(&self, name: &str) -> Result<Vec<u8>> {
        let bytes = self
            .store
            .packs
            .get_object(&manifest_object(self.sub, name))?
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "manifest {name} of subscriber #{} vanished from the bucket while it was \
                     read (is another frontend collecting it?)",
                    self.sub
                ))
            })?;
        let path = self.local.join(MANIFESTS_DIR).join(name);
        durable::write_atomic(&path, &bytes).map_err(|e| Error::io(&path, e))?;
        Ok(bytes)
    }
}

/// What a take-over did for one subscriber.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TakenOver {
    /// The subscriber's id (the same on every frontend).
    pub id: i64,
    /// What was rebuilt (the subscriber's name is in it), or `None` if it
    /// was left.
    pub rebuilt: Option<RebuildReport>,
    /// Why it was left, or what failed.
    pub note: Option<String>,
    /// Whether it failed (it can be taken over again), rather than being
    /// taken over or left on purpose.
    pub failed: bool,
}

impl Store {
    /// Takes over every subscriber frontend `from` serves (as its record in
    /// the bucket lists them), on [`TAKE_OVER_THREADS`] threads. A
    /// subscriber already here, or that a third frontend serves now, is
    /// left (with a note); one that fails is reported and can be taken over
    /// again. Runs beside this frontend's daemon.
    pub fn take_over(&self, from: &str) -> Result<Vec<TakenOver>> {
        // The same frontend on a new machine takes over "from itself": its
        // record lists what it served.
        self.serving_frontend()?;
        let record = self.frontend(from)?.ok_or_else(|| {
            Error::not_found(format!(
                "frontend {from:?} in the bucket (its record frontends/{from}.json)"
            ))
        })?;
        let ids: Vec<i64> = record.subscribers.iter().map(|(id, _)| *id).collect();
        let next = Mutex::new(ids.into_iter());
        let done = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..TAKE_OVER_THREADS {
                scope.spawn(|| loop {
                    let Some(id) = crate::pending::lock(&next).next() else {
                        break;
                    };
                    let outcome = match self.adopt(id, Some(from)) {
                        Ok(outcome) => outcome,
                        Err(e) => TakenOver {
                            id,
                            rebuilt: None,
                            note: Some(format!("failed: {e} (run the take-over again)")),
                            failed: true,
                        },
                    };
                    crate::pending::lock(&done).push(outcome);
                });
            }
        });
        let mut out = done.into_inner().unwrap_or_else(|e| e.into_inner());
        out.sort_by_key(|t| t.id);
        self.publish_frontend(None, None)?;
        // The old frontend's record keeps only what it may still serve
        // (what failed here), so that no board shows a structure twice;
        // its time stays, so a silent frontend stays silent. If it still
        // runs, it rewrites its record itself.
        if from != self.serving_frontend()? {
            let gone: Vec<i64> = out.iter().filter(|t| !t.failed).map(|t| t.id).collect();
            let mut record = record;
            record.subscribers.retain(|(id, _)| !gone.contains(id));
            if let Some(serde_json::Value::Array(rows)) = &mut record.usage {
                let names: Vec<&str> = record.subscribers.iter().map(|(_, n)| n.as_str()).collect();
                rows.retain(|r| r["name"].as_str().is_some_and(|n| names.contains(&n)));
            }
            self.write_record(&record)?;
        }
        Ok(out)
    }

    /// Takes over the subscriber called `name`, wherever it is served now
    /// (a planned move: run on the frontend that is to serve it).
    pub fn take_over_subscriber(&self, name: &str) -> Result<TakenOver> {
        self.serving_frontend()?;
        let id = self
            .frontends()?
            .iter()
            .flat_map(|r| r.subscribers.iter())
            .find(|(_, n)| n == name)
            .map(|(id, _)| *id)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "subscriber {name:?} in the records of the service's frontends"
                ))
            })?;
        let outcome = self.adopt(id, None)?;
        self.publish_frontend(None, None)?;
        Ok(outcome)
    }

    /// This frontend's name; an error for a server on its own.
    fn serving_frontend(&self) -> Result<String> {
        match self.service()? {
            Some(s) => Ok(s.frontend),
            None => Err(Error::BadRequest(
                "this server is not a frontend of a service: join one first \
                 (`coffre-server init --frontend NAME` with the service's bucket)"
                    .into(),
            )),
        }
    }

    /// Takes over subscriber `sub` from the bucket (see the module
    /// documentation). `from`: the frontend it is taken from; a subscriber
    /// that another one serves by now is left.
    fn adopt(&self, sub: i64, from: Option<&str>) -> Result<TakenOver> {
        let me = self.serving_frontend()?;
        let left = |note: String| TakenOver {
            id: sub,
            rebuilt: None,
            note: Some(note),
            failed: false,
        };
        if self.catalog.has_subscriber(sub)? {
            return Ok(left("already served here".into()));
        }
        let local = self.subscriber_dir(sub);
        let source = BucketFolder {
            store: self,
            sub,
            local: local.clone(),
        };
        let mut account = read_account(&source, sub)?;
        if let (Some(from), Some(now)) = (from, account.frontend.as_deref()) {
            if now != from && now != me {
                return Ok(left(format!(
                    "{:?} is served by frontend {now:?} now: left",
                    account.name
                )));
            }
        }
        // 1. This frontend writes for it from now on.
        account.frontend = Some(me);
        let text = account.encode()?;
        self.packs
            .put_object(&subscriber_object(sub, ACCOUNT_FILE), &text)?;

        // 2. Its rows and local copies.
        let rebuilt = durable::create_dir_all(&local.join(MANIFESTS_DIR))
            .map_err(|e| Error::io(&local, e))
            .and_then(|()| {
                rebuild_subscriber(&self.catalog, &self.packs, sub, &source, &*self.clock)
            })
            .and_then(|report| {
                self.catalog.forget_moved(sub)?;
                self.save_account(sub)?;
                Ok(report)
            });
        match rebuilt {
            Ok(report) => {
                tracing::info!(
                    subscriber = %report.subscriber,
                    snapshots = report.snapshots,
                    packs = report.packs,
                    "took over subscriber #{sub}"
                );
                Ok(TakenOver {
                    id: sub,
                    rebuilt: Some(report),
                    note: None,
                    failed: false,
                })
            }
            // 3. Nothing half done stays.
            Err(e) => {
                let _ = self.catalog.remove_subscriber(sub, None, self.now());
                Err(e)
            }
        }
    }
}
