//! The catalogue's schema: versioned by `PRAGMA user_version`, brought up
//! to date by forward-only migrations ([`MIGRATIONS`]) when the catalogue is
//! opened. A catalogue newer than this build is refused
//! ([`Error::UnsupportedSchema`], whose message says to upgrade
//! coffre-server). Never edit a released migration: append a new one.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// The `INSERT` that (re)computes the `device_backups` row of every device
/// matching `$which` (a condition on `d`, a `devices` row) that has
/// snapshots (a device without any has no row) from its own snapshots:
/// their count and total logical size, the latest one's size (the newest
/// complete, else the newest checkpoint), the newest complete one's
/// problems, the newest receipt time, and the checkpoint in progress (the
/// device's last commit by `seq`, when that is a checkpoint; then it is
/// newer than every complete one). Each subquery reads only the device's
/// own snapshots: `INDEXED BY snapshots_by_device`, without which SQLite
/// (no statistics) sorts by scanning all the subscriber's snapshots through
/// the primary key. Plain `INSERT` (the old row is deleted first): inside a
/// trigger, the outer statement's conflict policy (`INSERT OR IGNORE INTO
/// snapshots`) would override an `OR REPLACE`.
macro_rules! device_backups_of {
    ($which:literal) => {
        concat!(
            "
    INSERT INTO device_backups
    SELECT d.id, d.subscriber_id,
           (SELECT COUNT(*) FROM snapshots sn INDEXED BY snapshots_by_device
             WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id),
           (SELECT TOTAL(sn.logical_bytes) FROM snapshots sn INDEXED BY snapshots_by_device
             WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id),
           (SELECT sn.logical_bytes FROM snapshots sn INDEXED BY snapshots_by_device
             WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id
             ORDER BY sn.checkpoint, sn.received DESC, sn.seq DESC LIMIT 1),
           (SELECT sn.problems FROM snapshots sn INDEXED BY snapshots_by_device
             WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id
               AND sn.checkpoint = 0
             ORDER BY sn.received DESC, sn.seq DESC LIMIT 1),
           (SELECT MAX(sn.received) FROM snapshots sn INDEXED BY snapshots_by_device
             WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id),
           (SELECT CASE WHEN sn.checkpoint = 1 THEN sn.received END FROM snapshots sn INDEXED BY snapshots_by_device
             WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id
             ORDER BY sn.seq DESC LIMIT 1),
           (SELECT CASE WHEN sn.checkpoint = 1 THEN sn.logical_bytes END FROM snapshots sn INDEXED BY snapshots_by_device
             WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id
             ORDER BY sn.seq DESC LIMIT 1),
           (SELECT CASE WHEN sn.checkpoint = 1 THEN sn.file_count END FROM snapshots sn INDEXED BY snapshots_by_device
             WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id
             ORDER BY sn.seq DESC LIMIT 1)
      FROM devices d
     WHERE EXISTS (SELECT 1 FROM snapshots sn INDEXED BY snapshots_by_device
                    WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id)
       AND ",
            $which,
            ";
    "
        )
    };
}

/// Forward-only migrations: `MIGRATIONS[i]` takes the schema from version `i`
/// to `i + 1`. Never edit a released entry; append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    CREATE TABLE subscribers (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        quota_bytes INTEGER NOT NULL CHECK (quota_bytes >= 0),
        used_bytes  INTEGER NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
        retention   TEXT,
        created     INTEGER NOT NULL
    );
    CREATE TABLE devices (
        id            INTEGER PRIMARY KEY,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        name          TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('backup', 'admin')),
        secret_hash   BLOB NOT NULL UNIQUE,
        created       INTEGER NOT NULL,
        revoked       INTEGER,
        last_backup   INTEGER,
        UNIQUE (subscriber_id, name)
    );
    CREATE TABLE keys (
        subscriber_id INTEGER PRIMARY KEY REFERENCES subscribers(id),
        key_file      BLOB NOT NULL
    );
    CREATE TABLE packs (
        id            INTEGER PRIMARY KEY,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        name          TEXT NOT NULL,
        size          INTEGER NOT NULL,
        created       INTEGER NOT NULL,
        UNIQUE (subscriber_id, name)
    );
    CREATE TABLE chunks (
        subscriber_id INTEGER NOT NULL,
        id            BLOB NOT NULL,
        pack_id       INTEGER NOT NULL REFERENCES packs(id),
        offset        INTEGER NOT NULL,
        length        INTEGER NOT NULL,
        checksum      BLOB NOT NULL,
        PRIMARY KEY (subscriber_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX chunks_by_pack ON chunks (pack_id);
    CREATE TABLE snapshots (
        subscriber_id  INTEGER NOT NULL REFERENCES subscribers(id),
        id             BLOB NOT NULL,
        device_id      INTEGER NOT NULL REFERENCES devices(id),
        time           INTEGER NOT NULL,
        logical_bytes  INTEGER NOT NULL,
        file_count     INTEGER NOT NULL,
        manifest_bytes INTEGER NOT NULL,
        PRIMARY KEY (subscriber_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX snapshots_by_time ON snapshots (subscriber_id, time);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('gc_epoch', 0);
    ",
    // Version 2: the commit order of a subscriber's snapshots, so that
    // snapshots of the same second (times are kept in seconds) have an order.
    "
    ALTER TABLE snapshots ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    ",
    // Version 3: what garbage collection needs to run beside backups. The
    // sessions that may upload or have been told a chunk exists (a row from
    // their first has-chunks or put until they end), a counter of such
    // sessions and commits per subscriber (a sweep stops if it moved since
    // the mark), and the last run of each maintenance task (for /metrics).
    "
    CREATE TABLE sessions (
        id            INTEGER PRIMARY KEY,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        device_id     INTEGER NOT NULL REFERENCES devices(id),
        started       INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_subscriber ON sessions (subscriber_id);
    ALTER TABLE subscribers ADD COLUMN activity INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE maintenance (
        task     TEXT PRIMARY KEY,
        started  INTEGER NOT NULL,
        seconds  REAL NOT NULL,
        ok       INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // Issue 17, "the server's clock governs retention": the time the server
    // RECEIVED each snapshot (`snapshots.received`, Unix seconds, the store's
    // clock at commit), which retention sorts and buckets by, and the skew
    // between a device's clock and the server's seen at its last commit
    // (`devices.clock_skew`, manifest time minus received time, seconds;
    // NULL until its next commit). Old rows migrate forward by this rule,
    // with `now` the wall clock when the migration runs:
    // 1. a device's `last_backup` (the server's clock at its last commit, or
    //    a manifest time after a catalogue rebuild) is capped at `now`;
    // 2. a snapshot's received time is its manifest time, capped at `now` and
    //    at its device's `last_backup` (nothing of a device arrived after its
    //    last commit);
    // 3. the device's last commit (its highest `seq`, if the row has one)
    //    was received at exactly the device's `last_backup`: its commit time
    //    is known.
    // A forged or broken PC clock so moves no old snapshot past the time the
    // server last heard from the device.
    "
    ALTER TABLE snapshots ADD COLUMN received INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN clock_skew INTEGER;
    UPDATE devices SET last_backup = MIN(last_backup, CAST(strftime('%s', 'now') AS INTEGER))
     WHERE last_backup IS NOT NULL;
    UPDATE snapshots SET received = MIN(
        time,
        CAST(strftime('%s', 'now') AS INTEGER),
        COALESCE((SELECT d.last_backup FROM devices d WHERE d.id = snapshots.device_id), time));
    UPDATE snapshots SET received =
        (SELECT d.last_backup FROM devices d WHERE d.id = snapshots.device_id)
     WHERE seq > 0
       AND (SELECT d.last_backup FROM devices d WHERE d.id = snapshots.device_id) IS NOT NULL
       AND seq = (SELECT MAX(o.seq) FROM snapshots o
                   WHERE o.subscriber_id = snapshots.subscriber_id
                     AND o.device_id = snapshots.device_id);
    CREATE INDEX snapshots_by_received ON snapshots (subscriber_id, received);
    ",
    // Rolling device credentials (issue 17, "one installation per device").
    // Migrates every device as it is: `devices.secret_hash` stays the hash of
    // its CURRENT secret, which is its enrolment token's
    // (`secret_from_token` = 1), so installed PCs keep working and roll it at
    // their first run of a client of protocol version 3. New: the device's
    // other secrets, PENDING (made by the client and sent in `Rekey`, not
    // confirmed yet; a few per device) or RETIRED (replaced; presenting one
    // is refused as another installation of the device; `retired` says when,
    // `reason` whether another secret of the device became current or the
    // operator reissued it; `token` marks an enrolment token's secret), in
    // insertion order (`id`); and the count and time of those refusals on
    // the device.
    "
    CREATE TABLE device_secrets (
        id        INTEGER PRIMARY KEY,
        hash      BLOB NOT NULL UNIQUE,
        device_id INTEGER NOT NULL REFERENCES devices(id),
        state     TEXT NOT NULL CHECK (state IN ('pending', 'retired')),
        token     INTEGER NOT NULL DEFAULT 0 CHECK (token IN (0, 1)),
        created   INTEGER NOT NULL,
        retired   INTEGER,
        reason    TEXT CHECK (reason IN ('replaced', 'reissued')),
        CHECK ((state = 'retired') = (retired IS NOT NULL AND reason IS NOT NULL))
    );
    CREATE INDEX device_secrets_by_device ON device_secrets (device_id, state);
    ALTER TABLE devices ADD COLUMN secret_from_token INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE devices ADD COLUMN clone_refusals INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN last_clone_refusal INTEGER;
    ",
    // Issue 17, dedup trust. Migrates `chunks` to hold several copies of one
    // id, each with the device that wrote it, and adds the record of which
    // devices verified another device's copy:
    // - `chunks` gains `copy` (0 for the first copy; part of the key, so the
    //   common look-up `(subscriber_id, id)` is still a prefix of the key),
    //   `writer` (the device that uploaded the copy; NULL for every row that
    //   exists before this migration: written before the rule, trusted by
    //   every device, see docs/decisions.md) and `disputed` (1 when another
    //   device uploaded its own copy after being told of this one). The
    //   table is rebuilt (its key changes); the rows keep their values.
    // - `vouches`: device `device_id` fetched copy `copy` of chunk `id`,
    //   decrypted it and recomputed its id, and so skips it from then on.
    "
    CREATE TABLE chunks_with_copies (
        subscriber_id INTEGER NOT NULL,
        id            BLOB NOT NULL,
        copy          INTEGER NOT NULL DEFAULT 0,
        pack_id       INTEGER NOT NULL REFERENCES packs(id),
        offset        INTEGER NOT NULL,
        length        INTEGER NOT NULL,
        checksum      BLOB NOT NULL,
        writer        INTEGER,
        disputed      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (subscriber_id, id, copy)
    ) WITHOUT ROWID;
    INSERT INTO chunks_with_copies (subscriber_id, id, copy, pack_id, offset, length, checksum)
        SELECT subscriber_id, id, 0, pack_id, offset, length, checksum FROM chunks;
    DROP INDEX chunks_by_pack;
    DROP TABLE chunks;
    ALTER TABLE chunks_with_copies RENAME TO chunks;
    CREATE INDEX chunks_by_pack ON chunks (pack_id);
    CREATE TABLE vouches (
        subscriber_id INTEGER NOT NULL,
        device_id     INTEGER NOT NULL,
        id            BLOB NOT NULL,
        copy          INTEGER NOT NULL,
        PRIMARY KEY (subscriber_id, device_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX vouches_by_chunk ON vouches (subscriber_id, id);
    ",
    // Issue 18: the count of problems a snapshot's manifest declares in its
    // public part (paths missing, files unreadable, a hook failed; version 2
    // manifests), so the board says which device's last backup is
    // incomplete. Every snapshot before is of a version 1 manifest, which
    // declares none: 0. A catalogue rebuild reads it from the manifests.
    "
    ALTER TABLE snapshots ADD COLUMN problems INTEGER NOT NULL DEFAULT 0;
    ",
    // Issue 19: whether a snapshot is a checkpoint (a partial snapshot of a
    // long first backup, its manifest's public flag, version 3), which
    // retention replaces by the final one and the board shows as progress.
    // Every snapshot before is of a version 1 or 2 manifest: complete, 0.
    // A catalogue rebuild reads it from the manifests.
    "
    ALTER TABLE snapshots ADD COLUMN checkpoint INTEGER NOT NULL DEFAULT 0;
    ",
    // Issue 20: backups refused for quota, per device, so the board shows
    // when and by how much (and the leftovers they left): how many in all,
    // when the last was, and how many bytes the quota lacked then (used plus
    // what the refused request needed, minus the quota). Recorded at most
    // once a minute per device. A catalogue rebuild cannot know them: 0.
    "
    ALTER TABLE devices ADD COLUMN quota_refusals INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN last_quota_refusal INTEGER;
    ALTER TABLE devices ADD COLUMN quota_missing INTEGER NOT NULL DEFAULT 0;
    ",
    // Issue 20: who hears about a structure's alerts (mail addresses and
    // webhook URLs, comma-separated), NULL for nobody but the operator. It
    // is kept in the account file too, so a catalogue rebuild restores it.
    "
    ALTER TABLE subscribers ADD COLUMN contact TEXT;
    ",
    // Issue 20: the daily history of usage, for the board's chart and the
    // "full by" forecast (`crate::history`: one line per subscriber and
    // day, thinned to weeks then months, ten years at most). Subscriber id
    // 0 is the server as a whole: `quota_bytes` is then the capacity of
    // where the packs are and `free_bytes` their free space (NULL when
    // unknown); `free_bytes` is NULL for subscribers. No row exists before:
    // the history starts with the first recording after the upgrade. A
    // catalogue rebuild starts it again (it is not in the data files).
    "
    CREATE TABLE history (
        subscriber_id INTEGER NOT NULL,
        day           INTEGER NOT NULL,
        used_bytes    INTEGER NOT NULL,
        quota_bytes   INTEGER,
        data_bytes    INTEGER NOT NULL,
        snapshots     INTEGER NOT NULL,
        free_bytes    INTEGER,
        PRIMARY KEY (subscriber_id, day)
    ) WITHOUT ROWID;
    ",
    // Issue 22, the national scale: a device's snapshots by commit order.
    // The usage report (the board's page, `usage`, `/metrics`) reads each
    // device's count, latest snapshot and checkpoint; without this index
    // every one of those looked through all the subscriber's snapshots
    // (and the checkpoint's through them again for each), so the report
    // grew with devices × snapshots² per structure: 0.9 s for 1,000
    // devices of 30 snapshots, hours for 100,000 (docs/performance.md,
    // "National scale"). With it each device reads its own rows.
    "
    CREATE INDEX snapshots_by_device ON snapshots (subscriber_id, device_id, seq);
    ",
    // Issue 22: a frontend of a service (several `coffre-server`s over one
    // bucket). `service` holds this data directory's frontend name and
    // number (no row: a server on its own); the number gives the block of
    // row ids its new subscribers and devices take
    // (`number * 1,000,000,000 + 1` onwards), so that ids are unique across
    // the service and a subscriber keeps its id, and its folder in the
    // bucket, when another frontend takes it over. `moved` remembers the
    // subscribers this frontend served and another one took over, and
    // `moved_secrets` their devices' secret hashes at that time, so that a
    // PC still calling here is told where its structure went.
    "
    CREATE TABLE service (
        one      INTEGER PRIMARY KEY CHECK (one = 1),
        frontend TEXT NOT NULL,
        number   INTEGER NOT NULL CHECK (number >= 0)
    );
    CREATE TABLE moved (
        subscriber_id INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        frontend      TEXT NOT NULL,
        moved         INTEGER NOT NULL
    );
    CREATE TABLE moved_secrets (
        hash          BLOB PRIMARY KEY,
        subscriber_id INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // Issue 22: each device's backups in one row, so that the usage report
    // (the board's page, `usage`, `/metrics`) reads one row per device
    // instead of every snapshot: 6.6 s for 10,000 structures of 3 million
    // snapshots before (docs/performance.md, "National scale"). The row is
    // the report's old per-device query, kept by triggers on `snapshots`:
    // every insert, delete or update of a device's snapshot recomputes that
    // device's row from its own snapshots (`snapshots_by_device`, about 30
    // rows), so no code path (commit, retention, rebuild, take-over, a
    // structure leaving) can forget it, and the row is always what the
    // query would say. `logical_bytes` is a `TOTAL` (a float, as the report
    // had it): a PC declares its snapshots' sizes, and an integer sum of
    // forged ones would overflow and fail the commit. Existing catalogues
    // are filled by the same query for every device.
    concat!(
        "
    CREATE TABLE device_backups (
        device_id           INTEGER PRIMARY KEY,
        subscriber_id       INTEGER NOT NULL,
        snapshots           INTEGER NOT NULL,
        logical_bytes       REAL NOT NULL,
        latest_bytes        INTEGER,
        latest_problems     INTEGER,
        newest_received     INTEGER,
        checkpoint_received INTEGER,
        checkpoint_bytes    INTEGER,
        checkpoint_files    INTEGER
    );
    CREATE INDEX device_backups_by_subscriber ON device_backups (subscriber_id);
    ",
        device_backups_of!("1"),
        "
    CREATE TRIGGER device_backups_on_insert AFTER INSERT ON snapshots BEGIN
        DELETE FROM device_backups WHERE device_id = NEW.device_id;
    ",
        device_backups_of!("d.id = NEW.device_id"),
        "
    END;
    CREATE TRIGGER device_backups_on_delete AFTER DELETE ON snapshots BEGIN
        DELETE FROM device_backups WHERE device_id = OLD.device_id;
    ",
        device_backups_of!("d.id = OLD.device_id"),
        "
    END;
    CREATE TRIGGER device_backups_on_update AFTER UPDATE ON snapshots BEGIN
        DELETE FROM device_backups WHERE device_id IN (OLD.device_id, NEW.device_id);
    ",
        device_backups_of!("d.id IN (OLD.device_id, NEW.device_id)"),
        "
    END;
    CREATE TRIGGER device_backups_on_device_delete AFTER DELETE ON devices BEGIN
        DELETE FROM device_backups WHERE device_id = OLD.id;
    END;
    "
    ),
];

/// The newest schema version this build knows.
pub(crate) fn supported_version() -> u32 {
    MIGRATIONS.len() as u32
}

/// Brings the schema to the newest version, one migration per step, in one
/// `IMMEDIATE` transaction (two processes opening at once do not both migrate).
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let supported = supported_version();
    let version = |c: &Connection| -> rusqlite::Result<u32> {
        c.pragma_query_value(None, "user_version", |r| r.get(0))
    };
    let found = version(conn)?;
    if found > supported {
        return Err(Error::UnsupportedSchema { found, supported });
    }
    if found == supported {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    if found > supported {
        return Err(Error::UnsupportedSchema { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::clock::Clock;
    use crate::pending::lock;

    #[test]
    fn a_newer_schema_is_refused_with_an_upgrade_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        drop(Catalog::open(&path, true).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", supported_version() + 1)
            .unwrap();
        drop(conn);
        let e = Catalog::open(&path, false).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedSchema { found, supported } if found == supported + 1),
            "{e:?}"
        );
        assert!(e.to_string().contains("upgrade coffre-server"), "{e}");
    }

    /// The migration of issue 17 gives old rows a received time by the rule
    /// written in its comment, and caps forward-dated `last_backup`s.
    #[test]
    fn old_snapshots_get_a_received_time_that_no_pc_clock_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let mine = MIGRATIONS
            .iter()
            .position(|m| m.contains("ADD COLUMN received"))
            .unwrap();
        // A catalogue of the version before, with its rows.
        let mut conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..mine] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", mine as u32)
            .unwrap();
        const DAY: i64 = 86_400;
        const T: i64 = 1_795_000_000; // 2026-11-18, before this test runs
        const YEAR_9999: i64 = 253_402_300_799;
        let tx = conn.transaction().unwrap();
        tx.execute_batch(
            "INSERT INTO subscribers (id, name, quota_bytes, created) VALUES (1, 'asso', 1000, 0)",
        )
        .unwrap();
        // (device, last_backup): honest, forged clock, a rebuilt catalogue
        // that took a year-9999 manifest's time, rows from before `seq`.
        for (id, last) in [(1, T), (2, T), (3, YEAR_9999), (4, T - 2 * DAY + 60)] {
            tx.execute(
                "INSERT INTO devices (id, subscriber_id, name, role, secret_hash, created, last_backup)
                 VALUES (?1, 1, ?1, 'backup', randomblob(32), 0, ?2)",
                rusqlite::params![id, last],
            )
            .unwrap();
        }
        // (snapshot, device, manifest time, seq)
        let rows = [
            (1, 1, T - 2 * DAY, 1),
            (2, 1, T - DAY, 2),
            (3, 1, T - 100, 3),
            (4, 2, T + 8 * DAY, 4),
            (5, 2, YEAR_9999, 5),
            (6, 3, YEAR_9999, 0),
            (7, 4, T - 3 * DAY, 0),
            (8, 4, T - 2 * DAY, 0),
        ];
        for (snap, device, time, seq) in rows {
            tx.execute(
                "INSERT INTO snapshots (subscriber_id, id, device_id, time, logical_bytes,
                                        file_count, manifest_bytes, seq)
                 VALUES (1, ?1, ?2, ?3, 0, 0, 0, ?4)",
                rusqlite::params![vec![snap as u8; 32], device, time, seq],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        drop(conn);

        let before = crate::clock::SystemClock.now();
        let c = Catalog::open(&path, false).unwrap();
        let after = crate::clock::SystemClock.now();
        let db = lock(&c.writer);
        let received = |snap: u8| -> i64 {
            db.query_row(
                "SELECT received FROM snapshots WHERE id = ?1",
                [vec![snap; 32]],
                |r| r.get(0),
            )
            .unwrap()
        };
        // Honest: the manifest times, and the last commit's known time.
        assert_eq!(received(1), T - 2 * DAY);
        assert_eq!(received(2), T - DAY);
        assert_eq!(received(3), T);
        // A forged clock moves nothing past the device's last commit.
        assert_eq!(received(4), T);
        assert_eq!(received(5), T);
        // A forward last_backup and its snapshot are capped at the migration's now.
        assert!((before..=after).contains(&received(6)), "{}", received(6));
        let last: i64 = db
            .query_row("SELECT last_backup FROM devices WHERE id = 3", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!((before..=after).contains(&last), "{last}");
        // Rows without a commit order keep their own days.
        assert_eq!((received(7), received(8)), (T - 3 * DAY, T - 2 * DAY));
        let skews: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM devices WHERE clock_skew IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(skews, 0, "unknown until the next commit");
    }

    #[test]
    fn a_catalogue_from_before_rolling_credentials_keeps_every_device() {
        // The schema as it was before the migration of rolling credentials,
        // with a device enrolled, then opened by this build.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let rolling = MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE device_secrets"))
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        for (i, sql) in MIGRATIONS[..rolling].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", i as u32 + 1)
                .unwrap();
        }
        let hash = *blake3::hash(&[5; 32]).as_bytes();
        conn.execute_batch(
            "INSERT INTO subscribers (id, name, quota_bytes, created) VALUES (1, 'asso', 1000, 0);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO devices (id, subscriber_id, name, role, secret_hash, created)
             VALUES (1, 1, 'pc', 'backup', ?1, 0)",
            [&hash[..]],
        )
        .unwrap();
        drop(conn);
        let c = Catalog::open(&path, false).unwrap();
        // Its secret is still current, and is its token's.
        assert_eq!(c.device_by_secret(&hash).unwrap().unwrap().device, "pc");
        let d = &c.devices(None).unwrap()[0];
        assert!(d.token_live && d.clone_refusals == 0, "{d:?}");
        // The first roll retires it as a token.
        let new = *blake3::hash(&[6; 32]).as_bytes();
        use crate::catalog::Installed;
        assert_eq!(c.install_secret(1, &new, 10).unwrap(), Installed::Pending);
        assert_eq!(c.install_secret(1, &new, 11).unwrap(), Installed::Current);
        assert!(matches!(
            c.present_secret(&hash, 12).unwrap(),
            crate::catalog::Presented::Retired {
                token: true,
                since: 11,
                ..
            }
        ));
    }

    #[test]
    fn chunks_from_before_the_trust_rule_are_trusted_by_every_device() {
        // A catalogue at the version before the dedup trust migration, with
        // a chunk row: after the migration it is copy 0, written before the
        // rule, and every device may skip it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let before = MIGRATIONS
            .iter()
            .position(|m| m.contains("chunks_with_copies"))
            .unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            for (i, sql) in MIGRATIONS[..before].iter().enumerate() {
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", i as u32 + 1)
                    .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO subscribers (id, name, quota_bytes, created) VALUES (1, 's', 1, 0);
                 INSERT INTO packs (id, subscriber_id, name, size, created) VALUES (1, 1, 'p', 9, 0);
                 INSERT INTO chunks (subscriber_id, id, pack_id, offset, length, checksum)
                 VALUES (1, x'0101010101010101010101010101010101010101010101010101010101010101',
                         1, 0, 9, x'00');",
            )
            .unwrap();
        }
        let c = Catalog::open(&path, false).unwrap();
        let id = coffre_core::ChunkId::from_bytes([1; 32]);
        for device in [1, 2, 77] {
            assert_eq!(
                c.presence(1, device, &[id]).unwrap(),
                [crate::types::Presence::Trusted]
            );
        }
        let other = coffre_core::ChunkId::from_bytes([2; 32]);
        assert_eq!(
            c.presence(1, 1, &[other]).unwrap(),
            [crate::types::Presence::Absent]
        );
    }

    #[test]
    fn migrations_run_once_and_set_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        drop(Catalog::open(&path, true).unwrap());
        // Reopening does not re-run version 1 (it would fail: tables exist).
        let c = Catalog::open(&path, false).unwrap();
        let v: u32 = lock(&c.writer)
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, supported_version());
        let mode: String = lock(&c.writer)
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    /// A catalogue whose one snapshot was written before the migration
    /// that adds `column`, then opened (so migrated): that column's value
    /// for it.
    fn value_for_a_snapshot_from_before(column: &str) -> i64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let mine = MIGRATIONS
            .iter()
            .position(|m| m.contains(&format!("ADD COLUMN {column}")))
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        for (i, sql) in MIGRATIONS[..mine].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", i as u32 + 1)
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO subscribers (id, name, quota_bytes, created) VALUES (1, 'asso', 1000, 0);
             INSERT INTO devices (id, subscriber_id, name, role, secret_hash, created)
                 VALUES (1, 1, 'pc', 'backup', randomblob(32), 0);
             INSERT INTO snapshots (subscriber_id, id, device_id, time, logical_bytes,
                                    file_count, manifest_bytes, seq)
                 VALUES (1, randomblob(32), 1, 5, 0, 0, 0, 1);",
        )
        .unwrap();
        drop(conn);
        let c = Catalog::open(&path, false).unwrap();
        let db = lock(&c.writer);
        db.query_row(&format!("SELECT {column} FROM snapshots"), [], |r| r.get(0))
            .unwrap()
    }

    /// Every device's `device_backups` row, in device order.
    fn device_backups(db: &Connection) -> Vec<Vec<rusqlite::types::Value>> {
        let mut stmt = db
            .prepare("SELECT * FROM device_backups ORDER BY device_id")
            .unwrap();
        let rows = stmt
            .query_map([], |r| (0..10).map(|i| r.get(i)).collect())
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    /// What the triggers keep in `device_backups` is, after every kind of
    /// write on snapshots (new, checkpoint, removed, changed, a device
    /// gone), what computing it again from the snapshots gives.
    #[test]
    fn device_backups_always_say_what_the_snapshots_say() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("catalog.sqlite"), true).unwrap();
        let db = lock(&c.writer);
        db.execute_batch(
            "INSERT INTO subscribers (id, name, quota_bytes, created) VALUES (1, 'a', 1, 0), (2, 'b', 1, 0);
             INSERT INTO devices (id, subscriber_id, name, role, secret_hash, created)
                 VALUES (1, 1, 'pc1', 'backup', randomblob(32), 0),
                        (2, 1, 'pc2', 'backup', randomblob(32), 0),
                        (3, 2, 'pc3', 'backup', randomblob(32), 0);",
        )
        .unwrap();
        let check = |step: &str| {
            let kept = device_backups(&db);
            db.execute_batch(concat!(
                "SAVEPOINT again; DELETE FROM device_backups;",
                device_backups_of!("1")
            ))
            .unwrap();
            let computed = device_backups(&db);
            db.execute_batch("ROLLBACK TO again; RELEASE again;")
                .unwrap();
            assert_eq!(kept, computed, "after {step}");
        };
        // A small deterministic walk over the kinds of writes.
        let mut x: u64 = 7;
        let mut next = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        for seq in 1..=120_i64 {
            let device = 1 + next(3) as i64;
            let sub = if device == 3 { 2 } else { 1 };
            db.execute(
                "INSERT OR IGNORE INTO snapshots (subscriber_id, id, device_id, time, received,
                     logical_bytes, file_count, manifest_bytes, problems, checkpoint, seq)
                 VALUES (?1, randomblob(32), ?2, ?3, ?4, ?5, ?6, 10, ?7, ?8, ?9)",
                rusqlite::params![
                    sub,
                    device,
                    seq,
                    1000 + next(40) as i64,
                    next(1 << 20) as i64,
                    next(100) as i64,
                    next(3) as i64,
                    next(4) == 0,
                    seq
                ],
            )
            .unwrap();
            check("an insert");
            match next(6) {
                0 => {
                    db.execute(
                        "DELETE FROM snapshots WHERE id = (SELECT id FROM snapshots ORDER BY id LIMIT 1)",
                        [],
                    )
                    .unwrap();
                    check("a removal");
                }
                1 => {
                    db.execute(
                        "UPDATE snapshots SET received = received + 50, problems = 1
                          WHERE id = (SELECT id FROM snapshots ORDER BY id DESC LIMIT 1)",
                        [],
                    )
                    .unwrap();
                    check("an update");
                }
                _ => {}
            }
        }
        // Huge declared sizes do not overflow (a PC declares them).
        db.execute(
            "INSERT INTO snapshots (subscriber_id, id, device_id, time, received, logical_bytes,
                                    file_count, manifest_bytes, seq)
             VALUES (2, randomblob(32), 3, 0, 0, 9223372036854775807, 0, 0, 1000),
                    (2, randomblob(32), 3, 0, 0, 9223372036854775807, 0, 0, 1001)",
            [],
        )
        .unwrap();
        check("forged sizes");
        db.execute_batch(
            "DELETE FROM snapshots WHERE device_id = 2; DELETE FROM devices WHERE id = 2;",
        )
        .unwrap();
        check("a device gone");
        let counts: Vec<i64> = db
            .prepare("SELECT snapshots FROM device_backups ORDER BY device_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(counts.len(), 2, "the gone device's row went with it");
        assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    }

    /// Issue 18's migration: every snapshot from before declares no problem
    /// (its manifest is of version 1).
    #[test]
    fn snapshots_from_before_problems_were_counted_have_none() {
        assert_eq!(value_for_a_snapshot_from_before("problems"), 0);
    }

    /// Issue 19's migration: every snapshot from before is complete.
    #[test]
    fn snapshots_from_before_checkpoints_are_complete() {
        assert_eq!(value_for_a_snapshot_from_before("checkpoint"), 0);
    }
}
