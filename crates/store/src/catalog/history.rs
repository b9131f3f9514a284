//! The daily history's SQL (issue 20; the rule and the types are
//! `crate::history`): today's lines upserted and older ones thinned in one
//! `IMMEDIATE` transaction, and every asked subscriber's lines read back in
//! one query.

use rusqlite::params;

use super::rows::to_u64;
use super::Catalog;
use crate::error::Result;
use crate::history::{
    DayUsage, History, Recorded, ServerDay, DAILY_DAYS, DAY_SECONDS, KEPT_DAYS, WEEKLY_DAYS,
};

/// The subscriber id of the server's own lines (subscribers start at 1).
const SERVER: i64 = 0;

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Catalog {
    /// Writes the lines of `server.day`: one per subscriber of `lines` (by
    /// name; a name no longer in the catalogue is skipped) and the server's,
    /// replacing that day's earlier lines. The first recording of a day
    /// also thins the older lines (`crate::history`), subscriber by
    /// subscriber along the key, so the write lock is held for milliseconds
    /// per thousand subscribers.
    pub(crate) fn record_history(
        &self,
        lines: &[(&str, DayUsage)],
        server: &ServerDay,
    ) -> Result<Recorded> {
        let today = server.day;
        self.write(|tx| {
            let new_day: bool = tx.query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM history WHERE subscriber_id = ?1 AND day = ?2)",
                params![SERVER, today],
                |r| r.get(0),
            )?;
            let mut written = 0u64;
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO history
                        (subscriber_id, day, used_bytes, quota_bytes, data_bytes, snapshots, free_bytes)
                     SELECT id, ?2, ?3, ?4, ?5, ?6, NULL FROM subscribers WHERE name = ?1
                     ON CONFLICT (subscriber_id, day) DO UPDATE SET
                        used_bytes = excluded.used_bytes, quota_bytes = excluded.quota_bytes,
                        data_bytes = excluded.data_bytes, snapshots = excluded.snapshots",
                )?;
                for (name, u) in lines {
                    written += upsert.execute(params![
                        name,
                        today,
                        to_i64(u.used_bytes),
                        to_i64(u.quota_bytes),
                        to_i64(u.data_bytes),
                        to_i64(u.snapshots),
                    ])? as u64;
                }
            }
            written += tx.execute(
                "INSERT INTO history
                    (subscriber_id, day, used_bytes, quota_bytes, data_bytes, snapshots, free_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (subscriber_id, day) DO UPDATE SET
                    used_bytes = excluded.used_bytes, quota_bytes = excluded.quota_bytes,
                    data_bytes = excluded.data_bytes, snapshots = excluded.snapshots,
                    free_bytes = excluded.free_bytes",
                params![
                    SERVER,
                    today,
                    to_i64(server.stored_bytes),
                    server.capacity_bytes.map(to_i64),
                    to_i64(server.data_bytes),
                    to_i64(server.snapshots),
                    server.free_bytes.map(to_i64),
                ],
            )? as u64;
            let mut thinned = 0u64;
            if new_day {
                let ids: Vec<i64> = tx
                    .prepare_cached("SELECT id FROM subscribers UNION ALL SELECT ?1")?
                    .query_map([SERVER], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                // Ages as in the module doc of `crate::history`: a line of
                // age `today - day`. Each statement reads the table as it
                // was before it (SQLite collects the rows to delete first).
                let mut too_old = tx.prepare_cached(
                    "DELETE FROM history WHERE subscriber_id = ?1 AND day <= ?2 - ?3",
                )?;
                let mut weekly = tx.prepare_cached(
                    "DELETE FROM history AS h
                     WHERE h.subscriber_id = ?1 AND h.day > ?2 - ?4 AND h.day <= ?2 - ?3
                       AND EXISTS (SELECT 1 FROM history e
                                   WHERE e.subscriber_id = h.subscriber_id
                                     AND e.day >= (h.day / 7) * 7 AND e.day < h.day)",
                )?;
                let mut monthly = tx.prepare_cached(
                    "DELETE FROM history AS h
                     WHERE h.subscriber_id = ?1 AND h.day > ?2 - ?4 AND h.day <= ?2 - ?3
                       AND EXISTS (SELECT 1 FROM history e
                                   WHERE e.subscriber_id = h.subscriber_id
                                     AND e.day >= unixepoch(h.day * ?5, 'unixepoch', 'start of month') / ?5
                                     AND e.day < h.day)",
                )?;
                for id in ids {
                    thinned += too_old.execute(params![id, today, KEPT_DAYS])? as u64;
                    thinned += weekly.execute(params![id, today, DAILY_DAYS, WEEKLY_DAYS])? as u64;
                    thinned += monthly.execute(params![
                        id,
                        today,
                        WEEKLY_DAYS,
                        KEPT_DAYS,
                        DAY_SECONDS
                    ])? as u64;
                }
            }
            Ok(Recorded {
                day: today,
                lines: written,
                thinned,
            })
        })
    }

    /// The lines from day `since` on of the subscribers named in `only` (all
    /// without it), in one query, and the server's in a second, in one read
    /// transaction.
    pub(crate) fn history(&self, only: Option<&[String]>, since: i64) -> Result<History> {
        self.read(|tx| {
            let mut out = History::default();
            // Rows come grouped by subscriber (one range of the key each),
            // so the map is looked up once per subscriber, not per row; no
            // ORDER BY (it would sort every row): each list is sorted below,
            // which costs one pass when, as here, it already is.
            let mut current: Option<(String, Vec<DayUsage>)> = None;
            let mut add = |r: &rusqlite::Row<'_>| -> rusqlite::Result<()> {
                let name = r.get_ref(0)?.as_str()?;
                let line = DayUsage {
                    day: r.get(1)?,
                    used_bytes: to_u64(r.get(2)?),
                    quota_bytes: to_u64(r.get::<_, Option<i64>>(3)?.unwrap_or(0)),
                    data_bytes: to_u64(r.get(4)?),
                    snapshots: to_u64(r.get(5)?),
                };
                if let Some((n, lines)) = current.as_mut() {
                    if n.as_str() == name {
                        lines.push(line);
                        return Ok(());
                    }
                }
                if let Some((n, lines)) = current.replace((name.to_string(), vec![line])) {
                    out.subscribers.entry(n).or_default().extend(lines);
                }
                Ok(())
            };
            const COLUMNS: &str = "SELECT s.name, h.day, h.used_bytes, h.quota_bytes, \
                                   h.data_bytes, h.snapshots
                                   FROM subscribers s
                                   JOIN history h ON h.subscriber_id = s.id AND h.day >= ?1";
            match only {
                None => {
                    let mut stmt = tx.prepare_cached(COLUMNS)?;
                    let mut rows = stmt.query([since])?;
                    while let Some(r) = rows.next()? {
                        add(r)?;
                    }
                }
                Some(names) => {
                    let names = serde_json::to_string(names)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    let mut stmt = tx.prepare_cached(&format!(
                        "{COLUMNS} WHERE s.name IN (SELECT value FROM json_each(?2))"
                    ))?;
                    let mut rows = stmt.query(params![since, names])?;
                    while let Some(r) = rows.next()? {
                        add(r)?;
                    }
                }
            }
            if let Some((n, lines)) = current {
                out.subscribers.entry(n).or_default().extend(lines);
            }
            for lines in out.subscribers.values_mut() {
                lines.sort_unstable_by_key(|l| l.day);
            }
            out.server = tx
                .prepare_cached(
                    "SELECT day, used_bytes, data_bytes, snapshots, free_bytes, quota_bytes
                     FROM history WHERE subscriber_id = ?1 AND day >= ?2 ORDER BY day",
                )?
                .query_map(params![SERVER, since], |r| {
                    Ok(ServerDay {
                        day: r.get(0)?,
                        stored_bytes: to_u64(r.get(1)?),
                        data_bytes: to_u64(r.get(2)?),
                        snapshots: to_u64(r.get(3)?),
                        free_bytes: r.get::<_, Option<i64>>(4)?.map(to_u64),
                        capacity_bytes: r.get::<_, Option<i64>>(5)?.map(to_u64),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(out)
        })
    }
}
