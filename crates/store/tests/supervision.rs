//! What the store tells the board and the log (issue 20): a request refused
//! for quota is recorded (when, what the quota lacked) at most once a minute
//! per device, logged the same, and shown with the leftovers of the
//! unfinished backup until the device commits again; a commit from a PC
//! whose clock is more than a day off is logged.

use std::io::Write;
use std::sync::{Arc, Mutex};

use coffre_core::{ChunkId, Timestamp};
use coffre_store::{Clock, Error, ManualClock, PackStorage, Role, Store, CLOCK_SKEW_LIMIT};
use coffre_testkit::{data, Client};

/// What the store logs, kept in memory.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Runs `f` with the store's log captured.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    (out, log.text())
}

#[test]
fn a_refused_backup_is_recorded_logged_once_a_minute_and_shown_until_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_system_time());
    let store = Store::create_with_clock(dir.path(), &PackStorage::Local, clock.clone()).unwrap();
    store.add_subscriber("acme", 150_000, None).unwrap();
    let secret = store.add_device("acme", "pc", Role::Backup).unwrap();
    let s = store.authenticate(&secret).unwrap();
    let mut c = Client::new(1);

    // A first backup of two 20 kB chunks.
    let (a, ablob) = c.blob(&data(1, 20_000));
    let (b, bblob) = c.blob(&data(2, 20_000));
    let mut pack = store.open_pack(&s);
    store.put_chunk(&s, &mut pack, &a, &ablob).unwrap();
    store.put_chunk(&s, &mut pack, &b, &bblob).unwrap();
    let m = c.manifest_at("pc", clock.now(), &[a, b]);
    store.commit_snapshot(&s, &mut pack, &m).unwrap();

    // A day later, a bigger backup: its first chunks fit (and are sealed:
    // the leftovers), the next ones are refused, three times in a minute.
    clock.advance(86_400);
    let ids: Vec<(ChunkId, Vec<u8>)> = (10..16).map(|i| c.blob(&data(i, 30_000))).collect();
    let mut pack = store.open_pack(&s);
    let ((), log) = logged(|| {
        let mut refused = 0;
        for (id, blob) in &ids {
            match store.put_chunk(&s, &mut pack, id, blob) {
                Ok(_) => {}
                Err(Error::QuotaExceeded { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
            clock.advance(10);
        }
        assert!(refused >= 2, "{refused}");
    });
    store.seal_pack(&s, &mut pack).unwrap();
    assert_eq!(
        log.matches("backup refused: quota exceeded").count(),
        1,
        "once a minute per device: {log}"
    );
    assert!(
        log.contains("subscriber=acme") && log.contains("device=pc"),
        "{log}"
    );
    assert!(
        log.contains("coffre-server subscriber set acme --quota SIZE"),
        "{log}"
    );

    let usage = &store.usage().unwrap()[0];
    let d = &usage.device_backups[0];
    assert_eq!(d.quota_refusals, 1);
    assert!(d.refused_unfinished());
    assert!(d.last_quota_refusal.unwrap() > clock.now() - 86_400);
    // What the quota lacked for the refused chunk: at most the chunk.
    assert!(d.quota_missing > 0 && d.quota_missing <= 31_000, "{d:?}");
    // The leftovers: the chunks sealed after the first backup, which the
    // used bytes count.
    assert!(
        d.leftover_bytes >= 30_000 && d.leftover_bytes < 150_000,
        "{d:?}"
    );

    // A minute later, another refusal is recorded (and logged).
    clock.advance(60);
    let mut pack = store.open_pack(&s);
    let (last, last_blob) = &ids[5];
    let (e, log) = logged(|| store.put_chunk(&s, &mut pack, last, last_blob));
    assert!(matches!(e, Err(Error::QuotaExceeded { .. })), "{e:?}");
    assert_eq!(log.matches("backup refused").count(), 1, "{log}");
    assert_eq!(
        store.usage().unwrap()[0].device_backups[0].quota_refusals,
        2
    );

    // The quota raised, the backup commits: the refusal is history.
    store
        .set_subscriber("acme", Some(10_000_000), None)
        .unwrap();
    clock.advance(60);
    let mut all = vec![a, b];
    for (id, blob) in &ids {
        store.put_chunk(&s, &mut pack, id, blob).unwrap();
        all.push(*id);
    }
    let m = c.manifest_at("pc", clock.now(), &all);
    store.commit_snapshot(&s, &mut pack, &m).unwrap();
    let d = &store.usage().unwrap()[0].device_backups[0];
    assert!(!d.refused_unfinished(), "{d:?}");
    assert_eq!((d.leftover_bytes, d.quota_refusals), (0, 2));
}

#[test]
fn a_commit_from_a_pc_with_a_wrong_clock_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    store.add_subscriber("acme", 10_000_000, None).unwrap();
    let secret = store.add_device("acme", "pc", Role::Backup).unwrap();
    let s = store.authenticate(&secret).unwrap();
    let mut c = Client::new(1);
    let (a, ablob) = c.blob(&data(1, 20_000));
    let mut pack = store.open_pack(&s);
    store.put_chunk(&s, &mut pack, &a, &ablob).unwrap();

    // On time: nothing said.
    let now = Timestamp::now().secs;
    let m = c.manifest_at("pc", now, &[a]);
    let (r, log) = logged(|| store.commit_snapshot(&s, &mut pack, &m));
    r.unwrap();
    assert!(!log.contains("clock"), "{log}");

    // Eight days ahead: said, and the snapshot kept.
    let ahead = now + 8 * 86_400;
    assert!(ahead - now > CLOCK_SKEW_LIMIT);
    let m = c.manifest_at("pc", ahead, &[a]);
    let (r, log) = logged(|| store.commit_snapshot(&s, &mut pack, &m));
    r.unwrap();
    assert!(log.contains("the clock of this PC is wrong"), "{log}");
    assert!(log.contains("skew_seconds=691"), "{log}");
    assert_eq!(store.usage().unwrap()[0].snapshots, 2);
}
