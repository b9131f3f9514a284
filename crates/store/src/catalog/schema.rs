//! The catalogue's schema: versioned by `PRAGMA user_version`, brought up
//! to date by forward-only migrations ([`MIGRATIONS`]) when the catalogue is
//! opened. A catalogue newer than this build is refused
//! ([`Error::UnsupportedSchema`], whose message says to upgrade
//! coffre-server). Never edit a released migration: append a new one.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

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
    // Issue 17, dedup trust (helper h17-dedup; self-contained, the lead
    // renumbers at merge). Migrates `chunks` to hold several copies of one
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
}
