//! The catalogue's admin section: subscribers, devices, authentication by
//! a device's secret hash, and the usage summaries (one query each, one pass
//! over each table, no per-subscriber loop). Writes are one `IMMEDIATE`
//! transaction each, so an admin command in another process waits for the
//! daemon's write lock rather than failing halfway.

use rusqlite::{params, OptionalExtension};

use super::rows::{parse_role, subscriber_id, to_i64, to_u64};
use super::service::next_id;
use super::Catalog;
use crate::error::{Error, Result};
use crate::types::{CheckpointUsage, DeviceInfo, DeviceUsage, Role, SubscriberInfo, Usage};

impl Catalog {
    // ---------------------------------------------------------------- admin

    pub(crate) fn insert_subscriber(
        &self,
        name: &str,
        quota: i64,
        retention: Option<&str>,
        now: i64,
    ) -> Result<i64> {
        self.write(|tx| {
            if subscriber_id(tx, name)?.is_some() {
                return Err(Error::AlreadyExists {
                    what: format!("subscriber {name:?}"),
                });
            }
            // Ids come from this frontend's block (issue 22, `service.rs`).
            let id = next_id(tx, "subscribers")?;
            tx.execute(
                "INSERT INTO subscribers (id, name, quota_bytes, retention, created)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, name, quota, retention, now],
            )?;
            Ok(id)
        })
    }

    /// `retention`: `None` leaves it, `Some(None)` resets it to the default.
    pub(crate) fn update_subscriber(
        &self,
        name: &str,
        quota: Option<i64>,
        retention: Option<Option<&str>>,
    ) -> Result<()> {
        self.write(|tx| {
            let id = subscriber_id(tx, name)?
                .ok_or_else(|| Error::not_found(format!("subscriber {name:?}")))?;
            if let Some(q) = quota {
                tx.execute(
                    "UPDATE subscribers SET quota_bytes = ?2 WHERE id = ?1",
                    params![id, q],
                )?;
            }
            if let Some(r) = retention {
                tx.execute(
                    "UPDATE subscribers SET retention = ?2 WHERE id = ?1",
                    params![id, r],
                )?;
            }
            Ok(())
        })
    }

    /// Sets (or with `None` removes) who hears about the subscriber's alerts.
    pub(crate) fn update_contact(&self, name: &str, contact: Option<&str>) -> Result<()> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE subscribers SET contact = ?2 WHERE name = ?1",
                params![name, contact],
            )?;
            if changed == 0 {
                return Err(Error::not_found(format!("subscriber {name:?}")));
            }
            Ok(())
        })
    }

    /// One subscriber with its counters (index lookups only).
    pub(crate) fn subscriber(&self, name: &str) -> Result<SubscriberInfo> {
        self.read(|tx| {
            tx.prepare_cached(
                "SELECT s.name, s.quota_bytes, s.used_bytes, s.retention, s.created,
                        (SELECT COUNT(*) FROM snapshots WHERE subscriber_id = s.id),
                        (SELECT TOTAL(logical_bytes) FROM snapshots WHERE subscriber_id = s.id),
                        (SELECT COUNT(*) FROM devices WHERE subscriber_id = s.id AND revoked IS NULL),
                        (SELECT MAX(last_backup) FROM devices WHERE subscriber_id = s.id),
                        s.contact
                 FROM subscribers s WHERE s.name = ?1",
            )?
            .query_row([name], summary_row)
            .optional()?
            .map(|s| s.info())
            .ok_or_else(|| Error::not_found(format!("subscriber {name:?}")))
        })
    }

    /// Every subscriber with its counters, by name: one query, one pass over
    /// the devices' summaries (`device_backups`, one row per device) and
    /// the devices (`GROUP BY`), no per-subscriber loop and no snapshot row
    /// read.
    pub(crate) fn summaries(&self) -> Result<Vec<Summary>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT s.name, s.quota_bytes, s.used_bytes, s.retention, s.created,
                        COALESCE(sn.n, 0), COALESCE(sn.logical, 0.0),
                        COALESCE(d.active, 0), d.last_backup, s.contact
                 FROM subscribers s
                 LEFT JOIN (SELECT subscriber_id, SUM(snapshots) AS n, TOTAL(logical_bytes) AS logical
                            FROM device_backups GROUP BY subscriber_id) sn ON sn.subscriber_id = s.id
                 LEFT JOIN (SELECT subscriber_id, SUM(revoked IS NULL) AS active,
                                   MAX(last_backup) AS last_backup
                            FROM devices GROUP BY subscriber_id) d ON d.subscriber_id = s.id
                 ORDER BY s.name",
            )?;
            let rows = stmt.query_map([], summary_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Every device with its backups, as (subscriber name, usage), ordered by
    /// subscriber and device name: one row per device, its backups read
    /// from its summary (`device_backups`, which triggers keep equal to what
    /// its snapshots say; see the migration).
    pub(crate) fn device_usage(&self) -> Result<Vec<(String, DeviceUsage)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT s.name, d.name, d.revoked IS NOT NULL, d.last_backup,
                        COALESCE(b.snapshots, 0), b.latest_bytes,
                        d.clock_skew, d.clone_refusals, d.last_clone_refusal,
                        b.latest_problems,
                        b.checkpoint_received, b.checkpoint_bytes, b.checkpoint_files,
                        d.role, d.quota_refusals, d.last_quota_refusal, d.quota_missing,
                        d.id, d.subscriber_id, b.newest_received
                 FROM devices d JOIN subscribers s ON s.id = d.subscriber_id
                 LEFT JOIN device_backups b ON b.device_id = d.id
                 ORDER BY s.name, d.name",
            )?;
            let rows = stmt.query_map([], |r| {
                let role: String = r.get(13)?;
                Ok((
                    r.get::<_, String>(0)?,
                    DeviceUsage {
                        name: r.get(1)?,
                        role: role.parse().unwrap_or(Role::Backup),
                        revoked: r.get(2)?,
                        last_backup: r.get(3)?,
                        snapshots: to_u64(r.get(4)?),
                        latest_bytes: to_u64(r.get::<_, Option<i64>>(5)?.unwrap_or(0)),
                        clock_skew: r.get(6)?,
                        clone_refusals: to_u64(r.get(7)?),
                        last_clone_refusal: r.get(8)?,
                        latest_problems: to_u64(r.get::<_, Option<i64>>(9)?.unwrap_or(0)),
                        checkpoint: match r.get::<_, Option<i64>>(10)? {
                            None => None,
                            Some(received) => Some(CheckpointUsage {
                                received,
                                bytes: to_u64(r.get(11)?),
                                files: to_u64(r.get(12)?),
                            }),
                        },
                        quota_refusals: to_u64(r.get(14)?),
                        last_quota_refusal: r.get(15)?,
                        quota_missing: to_u64(r.get(16)?),
                        leftover_bytes: 0,
                    },
                    (
                        r.get::<_, i64>(17)?,
                        r.get::<_, i64>(18)?,
                        r.get::<_, Option<i64>>(19)?,
                    ),
                ))
            })?;
            let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            // The leftovers of a refused backup, only for the few devices
            // whose last request was refused and that committed nothing
            // since: what they wrote in packs sealed after their last commit
            // (a commit's own packs are sealed before it, never after).
            let mut leftovers = tx.prepare_cached(
                "SELECT COALESCE(SUM(c.length), 0) FROM packs p
                   JOIN chunks c ON c.pack_id = p.id
                  WHERE p.subscriber_id = ?1 AND p.created > ?2 AND c.writer = ?3",
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for (sub, mut d, (device_id, subscriber_id, last_commit)) in rows {
                if d.refused_unfinished() {
                    d.leftover_bytes = to_u64(leftovers.query_row(
                        params![subscriber_id, last_commit.unwrap_or(i64::MIN), device_id],
                        |r| r.get(0),
                    )?);
                }
                out.push((sub, d));
            }
            Ok(out)
        })
    }

    /// Records that device `device_id` was refused for quota at `now`, the
    /// quota lacking `missing` bytes (issue 20).
    pub(crate) fn record_quota_refusal(
        &self,
        device_id: i64,
        now: i64,
        missing: u64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE devices SET quota_refusals = quota_refusals + 1,
                        last_quota_refusal = ?2, quota_missing = ?3
                  WHERE id = ?1",
                params![device_id, now, to_i64(missing)],
            )?;
            Ok(())
        })
    }

    pub(crate) fn insert_device(
        &self,
        subscriber: &str,
        device: &str,
        role: Role,
        secret_hash: &[u8; 32],
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            let sub = subscriber_id(tx, subscriber)?
                .ok_or_else(|| Error::not_found(format!("subscriber {subscriber:?}")))?;
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT id FROM devices WHERE subscriber_id = ?1 AND name = ?2",
                    params![sub, device],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(Error::AlreadyExists {
                    what: format!(
                        "device {device:?} of {subscriber:?} (revoked devices keep their name)"
                    ),
                });
            }
            let id = next_id(tx, "devices")?;
            tx.execute(
                "INSERT INTO devices (id, subscriber_id, name, role, secret_hash, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, sub, device, role.as_str(), &secret_hash[..], now],
            )?;
            Ok(())
        })
    }

    pub(crate) fn devices(&self, subscriber: Option<&str>) -> Result<Vec<DeviceInfo>> {
        self.read(|tx| {
            if let Some(name) = subscriber {
                if subscriber_id(tx, name)?.is_none() {
                    return Err(Error::not_found(format!("subscriber {name:?}")));
                }
            }
            let mut stmt = tx.prepare_cached(
                "SELECT s.name, d.name, d.role, d.created, d.revoked, d.last_backup,
                        d.secret_from_token, d.clone_refusals, d.last_clone_refusal
                 FROM devices d JOIN subscribers s ON s.id = d.subscriber_id
                 WHERE ?1 IS NULL OR s.name = ?1
                 ORDER BY s.name, d.name",
            )?;
            let rows = stmt.query_map([subscriber], |r| {
                Ok((
                    (
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ),
                    (
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ),
                    (
                        r.get::<_, bool>(6)?,
                        r.get::<_, i64>(7)?,
                        r.get::<_, Option<i64>>(8)?,
                    ),
                ))
            })?;
            rows.map(|row| {
                let ((subscriber, name, role), (created, revoked, last_backup), clones) = row?;
                let (token_live, clone_refusals, last_clone_refusal) = clones;
                Ok(DeviceInfo {
                    subscriber,
                    name,
                    role: parse_role(&role)?,
                    created,
                    revoked,
                    last_backup,
                    token_live: token_live && revoked.is_none(),
                    clone_refusals: to_u64(clone_refusals),
                    last_clone_refusal,
                })
            })
            .collect()
        })
    }

    pub(crate) fn revoke_device(&self, subscriber: &str, device: &str, now: i64) -> Result<()> {
        self.write(|tx| {
            let sub = subscriber_id(tx, subscriber)?
                .ok_or_else(|| Error::not_found(format!("subscriber {subscriber:?}")))?;
            let n = tx.execute(
                "UPDATE devices SET revoked = COALESCE(revoked, ?3)
                 WHERE subscriber_id = ?1 AND name = ?2",
                params![sub, device, now],
            )?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "device {device:?} of {subscriber:?}"
                )));
            }
            Ok(())
        })
    }

    /// Which of `devices` (row ids) are revoked: one primary-key lookup each,
    /// in one read. The daemon asks this every second or so about the
    /// devices it has connections of, so that a revocation made by
    /// `coffre-server device revoke` (another process) takes effect on them.
    pub(crate) fn revoked_among(&self, devices: &[i64]) -> Result<Vec<i64>> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT 1 FROM devices WHERE id = ?1 AND revoked IS NOT NULL")?;
            let mut revoked = Vec::new();
            for &id in devices {
                if stmt.exists([id])? {
                    revoked.push(id);
                }
            }
            Ok(revoked)
        })
    }

    /// The device whose secret hashes to `hash`.
    pub(crate) fn device_by_secret(&self, hash: &[u8; 32]) -> Result<Option<AuthRow>> {
        self.read(|tx| {
            let row = tx
                .prepare_cached(
                    "SELECT d.subscriber_id, s.name, d.id, d.name, d.role, d.revoked
                     FROM devices d JOIN subscribers s ON s.id = d.subscriber_id
                     WHERE d.secret_hash = ?1",
                )?
                .query_row([&hash[..]], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ))
                })
                .optional()?;
            row.map(
                |(subscriber_id, subscriber, device_id, device, role, revoked)| {
                    Ok(AuthRow {
                        subscriber_id,
                        subscriber,
                        device_id,
                        device,
                        role: parse_role(&role)?,
                        revoked: revoked.is_some(),
                    })
                },
            )
            .transpose()
        })
    }
}

/// A subscriber and its counters, as the summary queries return it.
#[derive(Debug)]
pub(crate) struct Summary {
    name: String,
    quota: i64,
    used: i64,
    retention: Option<String>,
    created: i64,
    snapshots: i64,
    logical: f64,
    devices: i64,
    last_backup: Option<i64>,
    contact: Option<String>,
}

impl Summary {
    pub(crate) fn info(self) -> SubscriberInfo {
        SubscriberInfo {
            name: self.name,
            quota_bytes: to_u64(self.quota),
            used_bytes: to_u64(self.used),
            retention: self.retention,
            snapshots: to_u64(self.snapshots),
            devices: to_u64(self.devices),
            last_backup: self.last_backup,
            created: self.created,
            contact: self.contact,
        }
    }

    pub(crate) fn usage(self) -> Usage {
        Usage {
            name: self.name,
            quota_bytes: to_u64(self.quota),
            used_bytes: to_u64(self.used),
            snapshots: to_u64(self.snapshots),
            // Saturating: the logical sizes are what clients report.
            logical_bytes: self.logical as u64,
            last_backup: self.last_backup,
            devices: to_u64(self.devices),
            protected_bytes: 0,
            device_backups: Vec::new(),
        }
    }
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    Ok(Summary {
        name: r.get(0)?,
        quota: r.get(1)?,
        used: r.get(2)?,
        retention: r.get(3)?,
        created: r.get(4)?,
        snapshots: r.get(5)?,
        logical: r.get(6)?,
        devices: r.get(7)?,
        last_backup: r.get(8)?,
        contact: r.get(9)?,
    })
}

/// A device found by its secret.
#[derive(Debug)]
pub(crate) struct AuthRow {
    pub(crate) subscriber_id: i64,
    pub(crate) subscriber: String,
    pub(crate) device_id: i64,
    pub(crate) device: String,
    pub(crate) role: Role,
    pub(crate) revoked: bool,
}
