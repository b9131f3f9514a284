//! The daily history (issue 20) on a real store and catalogue: a day's line
//! is what `usage` says, a second recording the same day replaces it, three
//! years of days are thinned to days, weeks and months, a read returns
//! exactly the asked subscribers, and a rebuilt catalogue starts its history
//! again without breaking.

use std::collections::BTreeSet;
use std::sync::Arc;

use coffre_store::history::{
    civil, day_of, month_of, DAILY_DAYS, DAY_SECONDS, KEPT_DAYS, MAX_LINES, WEEKLY_DAYS,
};
use coffre_store::{
    rebuild_catalog_with_clock, DayUsage, ManualClock, PackStorage, Role, Space, Store,
};
use coffre_testkit::store::Env;
use coffre_testkit::{Client, GIB};

/// 2027-01-15 08:00 UTC.
const T0: i64 = 1_800_000_000;

fn env_at(clock: &Arc<ManualClock>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_with_clock(dir.path(), &PackStorage::Local, clock.clone()).unwrap();
    Env { dir, store }
}

#[test]
fn a_day_is_what_usage_says_and_a_second_recording_replaces_it() {
    let clock = Arc::new(ManualClock::new(T0));
    let env = env_at(&clock);
    let s = env.subscriber("jardins", GIB, "pc-1", Role::Backup);
    env.store.add_subscriber("vide", 5 * GIB, None).unwrap();
    let mut c = Client::new(1);
    let ids = env.sealed_pack(&s, &mut c, &[1, 2, 3], 40_000);
    env.commit(&s, &c, T0, &ids);
    let space = Space {
        free_bytes: Some(700),
        capacity_bytes: Some(1_000),
    };
    let r = env.store.record_history(space).unwrap();
    assert_eq!((r.day, r.lines, r.thinned), (day_of(T0), 3, 0));

    let usage = env.store.usage().unwrap();
    let h = env.store.history(None, 0).unwrap();
    assert_eq!(
        h.of("jardins"),
        [DayUsage {
            day: day_of(T0),
            used_bytes: env.used("jardins"),
            quota_bytes: GIB,
            data_bytes: usage[0].protected_bytes,
            snapshots: 1,
        }]
    );
    assert_eq!(
        usage[0].protected_bytes, 3_000,
        "1000 logical bytes a chunk"
    );
    assert_eq!(h.of("vide")[0].used_bytes, 0);
    assert_eq!(h.server.len(), 1);
    assert_eq!(h.server[0].stored_bytes, env.used("jardins"));
    assert_eq!(h.server[0].data_bytes, 3_000);
    assert_eq!(h.server[0].snapshots, 1);
    assert_eq!(
        (h.server[0].free_bytes, h.server[0].capacity_bytes),
        (Some(700), Some(1_000))
    );
    assert_eq!(h.server[0].filled_bytes(), 300);

    // Later the same day: more data, a new quota; the day's line is replaced.
    clock.advance(3_600);
    let more = env.sealed_pack(&s, &mut c, &[4, 5], 40_000);
    env.commit(&s, &c, T0 + 3_600, &[ids.clone(), more].concat());
    env.store
        .set_subscriber("jardins", Some(2 * GIB), None)
        .unwrap();
    env.store.record_history(Space::default()).unwrap();
    let h = env.store.history(None, 0).unwrap();
    let line = h.of("jardins");
    assert_eq!(line.len(), 1, "{line:?}");
    assert_eq!(line[0].used_bytes, env.used("jardins"));
    assert_eq!(
        (line[0].quota_bytes, line[0].snapshots, line[0].data_bytes),
        (2 * GIB, 2, 5_000)
    );
    assert_eq!(h.server.len(), 1);
    assert_eq!(
        h.server[0].free_bytes, None,
        "unknown now: not kept from before"
    );

    // The next day is a second line; `since` leaves out older ones.
    clock.advance(DAY_SECONDS);
    env.store.record_history(Space::default()).unwrap();
    let h = env.store.history(None, 0).unwrap();
    assert_eq!(h.of("jardins").len(), 2);
    assert_eq!(h.server.len(), 2);
    let h = env.store.history(None, day_of(T0) + 1).unwrap();
    assert_eq!(h.of("jardins").len(), 1);
    assert_eq!(h.of("jardins")[0].day, day_of(T0) + 1);
    assert_eq!(h.server.len(), 1);
}

#[test]
fn three_years_are_thinned_to_days_then_weeks_then_months() {
    let clock = Arc::new(ManualClock::new(T0));
    let env = env_at(&clock);
    env.store.add_subscriber("a", GIB, None).unwrap();
    env.store.add_subscriber("b", GIB, None).unwrap();
    // Three years of nights, with the server off for ten days in the
    // second year; the quota changes every 30 days so the lines differ.
    let days = 3 * 365;
    let start = day_of(T0);
    let quota = |i: i64| GIB + (i / 30 * 30) as u64;
    let mut thinned = 0;
    for i in 0..days {
        if (400..410).contains(&i) {
            continue;
        }
        clock.set(T0 + i * DAY_SECONDS);
        if i % 30 == 0 {
            env.store.set_subscriber("a", Some(quota(i)), None).unwrap();
        }
        let r = env.store.record_history(Space::default()).unwrap();
        thinned += r.thinned;
    }
    let today = start + days - 1;
    assert!(thinned > 0);
    let h = env.store.history(None, 0).unwrap();
    for (who, lines) in [
        ("a", h.of("a").iter().map(|l| l.day).collect::<Vec<_>>()),
        ("b", h.of("b").iter().map(|l| l.day).collect()),
        ("server", h.server.iter().map(|l| l.day).collect()),
    ] {
        assert!(lines.len() <= MAX_LINES, "{who}: {} lines", lines.len());
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "{who}: oldest first");
        // Every one of the last 100 days.
        let recent: Vec<i64> = lines
            .iter()
            .copied()
            .filter(|d| today - d < DAILY_DAYS)
            .collect();
        assert_eq!(recent, (today - DAILY_DAYS + 1..=today).collect::<Vec<_>>());
        // One a week to 400 days, one a month to ten years, none beyond.
        let weeks: Vec<i64> = lines
            .iter()
            .filter(|&&d| (DAILY_DAYS..WEEKLY_DAYS).contains(&(today - d)))
            .map(|d| d / 7)
            .collect();
        assert_eq!(
            weeks.iter().collect::<BTreeSet<_>>().len(),
            weeks.len(),
            "{who}: one a week"
        );
        assert!(weeks.len() >= 42, "{who}: {} weeks", weeks.len());
        let months: Vec<i64> = lines
            .iter()
            .filter(|&&d| (WEEKLY_DAYS..KEPT_DAYS).contains(&(today - d)))
            .map(|&d| month_of(d))
            .collect();
        assert_eq!(
            months.iter().collect::<BTreeSet<_>>().len(),
            months.len(),
            "{who}: one a month"
        );
        // Every month of the monthly span has its line.
        let first = month_of(start);
        let last = month_of(today - WEEKLY_DAYS);
        for m in first..=last {
            assert!(months.contains(&m), "{who}: month {m} missing: {months:?}");
        }
        // A monthly line is the month's earliest day recorded.
        for &d in lines
            .iter()
            .filter(|&&d| today - d >= WEEKLY_DAYS && d != start)
        {
            let (_, _, mday) = civil(d);
            assert!(mday <= 7, "{who}: day {mday} of its month kept");
        }
    }
    // The numbers kept are those of their day.
    for l in h.of("a") {
        assert_eq!(l.quota_bytes, quota(l.day - start), "{l:?}");
    }
    assert_eq!(h.of("a")[0].day, start, "the first day opens its month");

    // Ten years on, what is older than ten years is gone.
    clock.set(T0 + (KEPT_DAYS + 30) * DAY_SECONDS);
    let r = env.store.record_history(Space::default()).unwrap();
    assert!(r.thinned > 0);
    let h = env.store.history(None, 0).unwrap();
    assert!(!h.of("a").is_empty());
    for l in h.of("a").iter().chain(h.of("b")) {
        assert!(r.day - l.day < KEPT_DAYS, "{l:?}");
    }
    assert!(h.server.iter().all(|l| r.day - l.day < KEPT_DAYS));
}

#[test]
fn a_read_returns_exactly_the_asked_subscribers() {
    let clock = Arc::new(ManualClock::new(T0));
    let env = env_at(&clock);
    let names = ["a", "b.c", "d_e-f", "z"];
    for n in names {
        env.store.add_subscriber(n, GIB, None).unwrap();
    }
    for _ in 0..5 {
        env.store.record_history(Space::default()).unwrap();
        clock.advance(DAY_SECONDS);
    }
    let all = env.store.history(None, 0).unwrap();
    assert_eq!(all.subscribers.len(), 4);
    assert!(all.subscribers.values().all(|l| l.len() == 5));
    let asked = ["b.c".to_string(), "z".into(), "no-such".into()];
    let some = env.store.history(Some(&asked), 0).unwrap();
    let mut got: Vec<&str> = some.subscribers.keys().map(String::as_str).collect();
    got.sort_unstable();
    assert_eq!(got, ["b.c", "z"]);
    assert_eq!(some.of("z"), all.of("z"));
    assert_eq!(
        some.server, all.server,
        "the server's lines come with any read"
    );
    let none = env.store.history(Some(&[]), 0).unwrap();
    assert!(none.subscribers.is_empty());
}

#[test]
fn a_rebuilt_catalogue_starts_its_history_again() {
    let clock = Arc::new(ManualClock::new(T0));
    let env = env_at(&clock);
    let s = env.subscriber("jardins", GIB, "pc-1", Role::Backup);
    let mut c = Client::new(1);
    let ids = env.sealed_pack(&s, &mut c, &[1, 2], 30_000);
    env.commit(&s, &c, T0, &ids);
    for _ in 0..3 {
        env.store.record_history(Space::default()).unwrap();
        clock.advance(DAY_SECONDS);
    }
    assert_eq!(env.store.history(None, 0).unwrap().of("jardins").len(), 3);
    let used = env.used("jardins");
    let Env { dir, store } = env;
    drop(store);
    rebuild_catalog_with_clock(dir.path(), &PackStorage::Local, true, clock.as_ref()).unwrap();
    let store = Store::open_with_clock(dir.path(), &PackStorage::Local, clock.clone()).unwrap();
    let h = store.history(None, 0).unwrap();
    assert!(h.subscribers.is_empty() && h.server.is_empty(), "{h:?}");
    store.record_history(Space::default()).unwrap();
    let h = store.history(None, 0).unwrap();
    assert_eq!(h.of("jardins").len(), 1);
    assert_eq!(h.of("jardins")[0].used_bytes, used);
    assert_eq!(h.of("jardins")[0].data_bytes, 2_000);
}
