//! Retention policies: which snapshots of one device to keep.
//!
//! A policy reads like `last=3,daily=7,weekly=4,monthly=12,within=14d`, with
//! restic's meaning, except that no count is spent faster than one a day:
//! - `last=N` keeps every snapshot received on the N most recent days on
//!   which the device sent one: at least the N newest (restic's `last`), and
//!   exactly those for a PC that backs up once a night;
//! - `hourly=N` keeps the newest snapshot of each hour of those same N most
//!   recent days;
//! - `daily=N`, `weekly=N` (ISO weeks, from Monday), `monthly=N` and
//!   `yearly=N` keep the newest snapshot of each of the N most recent days,
//!   weeks, months or years that have one;
//! - `within=DURATION` (`36h`, `14d`, `8w`, `2y`) keeps every snapshot
//!   received within that long before the device's newest one.
//!
//! A snapshot is kept if any rule keeps it, and removed otherwise. Every rule
//! keeps the newest snapshot, so a device always keeps at least one.
//! Policies apply per device: one PC's many snapshots never push out
//! another's.
//!
//! Times are the server's: the caller gives each snapshot's RECEIVED time,
//! never the PC's (issue 17). Hence THE PROPERTY this engine keeps (tested
//! by a proptest below): a device compromised at instant D, which then sends
//! any number of snapshots at any rate until the prune at D', can make the
//! policy remove only snapshots received before D that it would also have
//! removed had the device backed up honestly at D, at the end of every day
//! from D's to D''s, and at D'. With a count spent at most once a day the
//! attacker's snapshots occupy no period the honest ones would not, and the
//! newest of them is no newer than D'. (A plain "N newest" would let N
//! commits in a minute push out N nights of history.)
//!
//! **Checkpoints** (issue 19: partial snapshots a long first backup commits
//! on its way, [`Policy::apply_with_checkpoints`]) spend no count and
//! occupy no period: the rules above decide the complete snapshots as if
//! no checkpoint existed, so a compromised device making checkpoints pushes
//! out no complete snapshot (a proptest below). Of the checkpoints, only
//! the newest is kept, and only while it is newer than every complete
//! snapshot of the device ([`Rule::Checkpoint`]): once the final snapshot
//! is in, the night's prune removes the run's checkpoints.
//!
//! Periods are counted in civil time: the caller gives each snapshot's time
//! as "local seconds" (Unix seconds plus the UTC offset at that instant), so
//! "daily" follows the association's days, not UTC's. The engine itself
//! knows no time zone, so it is pure and deterministic.

use std::fmt;

use coffre_core::civil_from_days;

/// The policy applied when a subscriber has none of its own.
pub const DEFAULT_POLICY: &str = "last=3,daily=7,weekly=4,monthly=12";

/// The rules with a count, in canonical order.
const COUNTED: [Rule; 6] = [
    Rule::Last,
    Rule::Hourly,
    Rule::Daily,
    Rule::Weekly,
    Rule::Monthly,
    Rule::Yearly,
];

/// One rule of a policy, the reason a snapshot is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Received on one of the N most recent days with a snapshot.
    Last,
    /// The newest of its hour, on one of the N most recent days with a
    /// snapshot.
    Hourly,
    /// The newest of its day.
    Daily,
    /// The newest of its ISO week.
    Weekly,
    /// The newest of its month.
    Monthly,
    /// The newest of its year.
    Yearly,
    /// Made within the duration before the newest.
    Within,
    /// The device's newest checkpoint, newer than all its complete
    /// snapshots: a backup on its way (issue 19). Not a rule of a policy.
    Checkpoint,
}

impl Rule {
    /// The key in a policy.
    pub fn key(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
            Rule::Within => "within",
            Rule::Checkpoint => "checkpoint",
        }
    }

    /// The period a local time falls in, for the counted period rules.
    fn bucket(self, local: i64) -> i64 {
        let day = local.div_euclid(86_400);
        match self {
            Rule::Last | Rule::Within | Rule::Checkpoint => local,
            Rule::Hourly => local.div_euclid(3_600),
            Rule::Daily => day,
            // 1970-01-01 was a Thursday: shift so that weeks start on Monday.
            Rule::Weekly => (day + 3).div_euclid(7),
            Rule::Monthly => {
                let (y, m, _) = civil_from_days(day);
                y * 12 + (m as i64 - 1)
            }
            Rule::Yearly => civil_from_days(day).0,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A parsed retention policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Counts of last, hourly, daily, weekly, monthly, yearly (0: unused).
    counts: [u32; 6],
    /// Seconds for `within`, if set.
    within: Option<i64>,
}

/// Why a policy does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: i64 = text[..text.len() - unit.len_utf8()].trim().parse().ok()?;
    let secs = match unit {
        'h' => 3_600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'y' => 365 * 86_400 + 86_400 / 4,
        _ => return None,
    };
    (1..=100_000).contains(&n).then_some(n * secs)
}

fn format_duration(secs: i64) -> String {
    for (unit, size) in [
        ('y', 365 * 86_400 + 86_400 / 4),
        ('w', 7 * 86_400),
        ('d', 86_400),
    ] {
        if secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{}h", secs / 3_600)
}

impl Policy {
    /// Parses `last=3,daily=7,...`; `default` is [`DEFAULT_POLICY`].
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let text = text.trim();
        if text == "default" {
            return Policy::parse(DEFAULT_POLICY);
        }
        let bad = |why: String| {
            PolicyError(format!(
                "retention policy {text:?}: {why}; write it like \"last=3,daily=7,weekly=4,monthly=12\" \
                 (periods: last, hourly, daily, weekly, monthly, yearly, and within=DURATION such as 14d, 8w, 1y), or \"default\""
            ))
        };
        let mut p = Policy::default();
        let mut seen = Vec::new();
        for part in text.split(',').map(str::trim) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(bad(format!("{part:?} is not PERIOD=COUNT")));
            };
            let key = key.trim();
            if seen.contains(&key) {
                return Err(bad(format!("{key:?} is given twice")));
            }
            seen.push(key);
            if key == "within" {
                p.within = Some(parse_duration(value).ok_or_else(|| {
                    bad(format!(
                        "{:?} is not a duration like 36h, 14d, 8w or 2y",
                        value.trim()
                    ))
                })?);
                continue;
            }
            let Some(i) = COUNTED.iter().position(|r| r.key() == key) else {
                return Err(bad(format!("unknown period {key:?}")));
            };
            p.counts[i] = value
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    bad(format!(
                        "{:?} is not a count from 1 to 1000000",
                        value.trim()
                    ))
                })?;
        }
        Ok(p)
    }

    /// Decides, for one device's snapshots given by the local times the
    /// server received them, which to keep: for each snapshot (same order as
    /// `local_times`), the rules that keep it; an empty list means remove.
    pub fn apply(&self, local_times: &[i64]) -> Vec<Vec<Rule>> {
        let mut reasons = vec![Vec::new(); local_times.len()];
        // Newest first; ties keep the later one in the input (commit order).
        let mut order: Vec<usize> = (0..local_times.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse((local_times[i], i)));
        for (rule, &count) in COUNTED.iter().zip(&self.counts) {
            // A count is spent once per day with a snapshot at most: for
            // daily and longer periods every new period is a new day anyway;
            // `last` and `hourly` keep what they keep of the `count` newest
            // days (the property in the module doc).
            let mut days = 0;
            let mut last_day = None;
            let mut last_bucket = None;
            for &i in &order {
                let b = rule.bucket(local_times[i]);
                if *rule != Rule::Last && last_bucket == Some(b) {
                    continue;
                }
                let day = Rule::Daily.bucket(local_times[i]);
                if last_day != Some(day) {
                    if days >= count {
                        break;
                    }
                    days += 1;
                    last_day = Some(day);
                }
                reasons[i].push(*rule);
                last_bucket = Some(b);
            }
        }
        if let (Some(within), Some(&newest)) = (self.within, order.first()) {
            let limit = local_times[newest] - within;
            for &i in &order {
                if local_times[i] >= limit {
                    reasons[i].push(Rule::Within);
                }
            }
        }
        reasons
    }

    /// [`Policy::apply`] for snapshots of which some are checkpoints
    /// (`checkpoint[i]`, same order as `local_times`): the complete ones
    /// are decided as if the checkpoints were not there; a checkpoint is
    /// kept ([`Rule::Checkpoint`]) only if it is the newest checkpoint and
    /// newer than every complete snapshot (ties: the later in the input,
    /// the commit order, is the newer).
    pub fn apply_with_checkpoints(
        &self,
        local_times: &[i64],
        checkpoint: &[bool],
    ) -> Vec<Vec<Rule>> {
        assert_eq!(local_times.len(), checkpoint.len());
        let (checkpoints, complete): (Vec<usize>, Vec<usize>) =
            (0..local_times.len()).partition(|&i| checkpoint[i]);
        let mut reasons = vec![Vec::new(); local_times.len()];
        let times: Vec<i64> = complete.iter().map(|&i| local_times[i]).collect();
        for (&i, rules) in complete.iter().zip(self.apply(&times)) {
            reasons[i] = rules;
        }
        let newest = |of: &[usize]| of.iter().map(|&i| (local_times[i], i)).max();
        if let Some((t, i)) = newest(&checkpoints) {
            if newest(&complete).is_none_or(|c| (t, i) > c) {
                reasons[i].push(Rule::Checkpoint);
            }
        }
        reasons
    }
}

impl fmt::Display for Policy {
    /// The canonical form: rules in a fixed order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = COUNTED
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{}={n}", r.key()))
            .collect();
        if let Some(w) = self.within {
            parts.push(format!("within={}", format_duration(w)));
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::Strategy;

    const DAY: i64 = 86_400;
    /// 2026-11-23 02:00 (a Monday), as local seconds.
    const MONDAY: i64 = 1_795_399_200;

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(MONDAY / DAY), (2026, 11, 23));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        // Weeks start on Monday: Sunday the 22nd is in the week before.
        assert_eq!(
            Rule::Weekly.bucket(MONDAY) - 1,
            Rule::Weekly.bucket(MONDAY - DAY)
        );
        assert_eq!(
            Rule::Weekly.bucket(MONDAY),
            Rule::Weekly.bucket(MONDAY + 6 * DAY)
        );
    }

    #[test]
    fn policies_parse_to_a_canonical_form_and_refuse_nonsense() {
        let p = Policy::parse("monthly=12, last=3,daily=7,within=2w").unwrap();
        assert_eq!(p.to_string(), "last=3,daily=7,monthly=12,within=2w");
        assert_eq!(
            Policy::parse("default").unwrap().to_string(),
            DEFAULT_POLICY
        );
        for bad in [
            "",
            "daily",
            "daily=0",
            "daily=x",
            "fortnightly=2",
            "daily=1,daily=2",
            "within=3",
            "within=5m",
        ] {
            let e = Policy::parse(bad).unwrap_err().to_string();
            assert!(e.contains("write it like"), "{bad}: {e}");
        }
    }

    /// One snapshot a night at 02:00 for 400 nights, the newest last.
    fn nightly(n: i64) -> Vec<i64> {
        (0..n).map(|k| MONDAY - (n - 1 - k) * DAY).collect()
    }

    fn kept(p: &str, times: &[i64]) -> Vec<usize> {
        let r = Policy::parse(p).unwrap().apply(times);
        (0..times.len()).filter(|&i| !r[i].is_empty()).collect()
    }

    #[test]
    fn the_default_policy_on_a_year_of_nights() {
        let times = nightly(400);
        let keep = kept(DEFAULT_POLICY, &times);
        let newest = times.len() - 1;
        // last 3 and daily 7 overlap: the 7 newest nights.
        for d in 0..7 {
            assert!(keep.contains(&(newest - d)), "night -{d} is kept");
        }
        // Sundays of the 4 newest weeks (the newest of each week); this week's
        // newest is Monday itself.
        for w in 1..4 {
            let sunday = newest - (7 * w - 6);
            assert!(keep.contains(&sunday), "the newest of week -{w}");
        }
        // 12 months: the last night of each of the 11 previous months, too.
        let r = Policy::parse(DEFAULT_POLICY).unwrap().apply(&times);
        let monthly = r.iter().filter(|v| v.contains(&Rule::Monthly)).count();
        assert_eq!(monthly, 12);
        assert!(keep.len() < 25, "{} kept", keep.len());
        assert!(!keep.contains(&0), "the oldest night goes");
    }

    #[test]
    fn every_rule_keeps_the_newest_and_reasons_are_given() {
        let times = nightly(10);
        let r = Policy::parse("last=1,daily=2,within=3d")
            .unwrap()
            .apply(&times);
        assert_eq!(r[9], vec![Rule::Last, Rule::Daily, Rule::Within]);
        assert_eq!(r[8], vec![Rule::Daily, Rule::Within]);
        assert_eq!(
            r[6],
            vec![Rule::Within],
            "3 days before the newest is within"
        );
        assert!(r[5].is_empty());
    }

    #[test]
    fn several_snapshots_a_day_keep_the_newest_of_the_day() {
        let times = vec![MONDAY, MONDAY + 3_600, MONDAY + 7_200, MONDAY + DAY];
        let r = Policy::parse("daily=2").unwrap().apply(&times);
        assert_eq!(
            r.iter().map(|v| !v.is_empty()).collect::<Vec<_>>(),
            [false, false, true, true]
        );
        let h = Policy::parse("hourly=10").unwrap().apply(&times);
        assert!(h.iter().all(|v| !v.is_empty()));
    }

    #[test]
    fn a_burst_of_commits_pushes_out_no_night() {
        // Seven honest nights, then 50 commits within a minute on day 8.
        let mut times = nightly(7);
        let burst = MONDAY + DAY + 3_600;
        times.extend((0..50).map(|k| burst + k));
        let keep = kept("last=3", &times);
        // restic's last=3 would keep 3 of the burst; here the burst is one
        // day of receipt, and the two nights before it stay.
        assert!(keep.contains(&5) && keep.contains(&6), "{keep:?}");
        assert!(!keep.contains(&4));
        assert_eq!(keep.len(), 52);
        // hourly=2: the burst's hour, and the newest of each hour of the
        // night before.
        assert_eq!(kept("hourly=2", &times), [6, 56]);
    }

    /// A policy of any rules, as text.
    fn any_policy() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(proptest::option::of(1u32..9), 6),
            proptest::option::of((1i64..30, 0usize..3)),
        )
            .prop_map(|(counts, within)| {
                let mut parts: Vec<String> = COUNTED
                    .iter()
                    .zip(counts)
                    .filter_map(|(r, n)| n.map(|n| format!("{}={n}", r.key())))
                    .collect();
                if let Some((n, unit)) = within {
                    parts.push(format!("within={n}{}", ["h", "d", "w"][unit]));
                }
                if parts.is_empty() {
                    parts.push("last=1".into());
                }
                parts.join(",")
            })
    }

    /// Which of the first `n` snapshots of `times` the policy keeps.
    fn kept_of_first(policy: &Policy, times: &[i64], n: usize) -> Vec<bool> {
        policy.apply(times)[..n]
            .iter()
            .map(|r| !r.is_empty())
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// THE PROPERTY of the module doc: a device compromised at D, sending
        /// any snapshots at any rate until the prune at D', removes through
        /// retention only snapshots received before D that honest backups at
        /// D, at the end of every day from D's to D''s, and at D' would
        /// also have removed. Some of its snapshots may be checkpoints
        /// (issue 19): they change nothing of this.
        #[test]
        fn a_compromised_device_removes_no_more_than_honest_nights(
            policy in any_policy(),
            mut history in proptest::collection::vec(1i64..90 * DAY, 0..40),
            compromised_at in 0i64..DAY,
            span in 0i64..12 * DAY,
            attack in proptest::collection::vec((0i64..=1_000, proptest::bool::ANY), 0..80),
            burst in 0usize..40,
        ) {
            let policy = Policy::parse(&policy).unwrap();
            let d = MONDAY + compromised_at;
            let prune = d + span;
            // The honest history, received before D, oldest first.
            history.sort_unstable_by(|a, b| b.cmp(a));
            let history: Vec<i64> = history.iter().map(|ago| d - ago).collect();
            let n = history.len();
            // The attacker: any receipt times from D to D', and a burst of
            // commits in one second at D'.
            let mut attacked = history.clone();
            attacked.extend(attack.iter().map(|(k, _)| d + span * k / 1_000));
            attacked.extend(std::iter::repeat_n(prune, burst));
            let mut flags = vec![false; n];
            flags.extend(attack.iter().map(|(_, checkpoint)| *checkpoint));
            flags.extend(std::iter::repeat_n(false, burst));
            // The honest nights it is compared with.
            let mut honest = history.clone();
            honest.push(d);
            let mut day = d.div_euclid(DAY);
            while day <= prune.div_euclid(DAY) {
                honest.push(((day + 1) * DAY - 1).min(prune));
                day += 1;
            }
            honest.push(prune);
            let under_attack: Vec<bool> = policy.apply_with_checkpoints(&attacked, &flags)[..n]
                .iter()
                .map(|r| !r.is_empty())
                .collect();
            let under_honesty = kept_of_first(&policy, &honest, n);
            for i in 0..n {
                proptest::prop_assert!(
                    under_attack[i] || !under_honesty[i],
                    "{policy}: snapshot {i} ({} s before D) is removed under attack \
                     but kept had the device been honest",
                    d - history[i]
                );
            }
        }
    }

    #[test]
    fn only_the_newest_checkpoint_after_the_last_complete_snapshot_is_kept() {
        let p = Policy::parse("last=3").unwrap();
        // Three nights, then a long run's checkpoints (one an hour).
        let mut times = nightly(3);
        times.extend((1..=4).map(|h| MONDAY + h * 3_600));
        let flags = [false, false, false, true, true, true, true];
        let r = p.apply_with_checkpoints(&times, &flags);
        let kept: Vec<usize> = (0..7).filter(|&i| !r[i].is_empty()).collect();
        assert_eq!(kept, [0, 1, 2, 6], "the nights and the newest checkpoint");
        assert_eq!(r[6], [Rule::Checkpoint]);
        // The final snapshot arrives: every checkpoint goes.
        times.push(MONDAY + 5 * 3_600);
        let flags = [false, false, false, true, true, true, true, false];
        let r = p.apply_with_checkpoints(&times, &flags);
        assert!(r[3..7].iter().all(Vec::is_empty), "{r:?}");
        // last=3 keeps the three newest days: the final is on Monday with
        // the night before; the two older nights stay too.
        assert!(!r[7].is_empty() && !r[2].is_empty());
        // A device with only checkpoints keeps its newest; a tie of time
        // goes to the later commit.
        let r = p.apply_with_checkpoints(&[MONDAY, MONDAY], &[true, true]);
        assert_eq!(r, [vec![], vec![Rule::Checkpoint]]);
        // A checkpoint older than the newest complete snapshot goes even if
        // it is the newest checkpoint.
        let r = p.apply_with_checkpoints(&[MONDAY, MONDAY + 1], &[true, false]);
        assert!(r[0].is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Checkpoints, any number at any times (a compromised device makes
        /// as many as it likes), change no decision about a complete
        /// snapshot; at most one checkpoint is kept, newer than every
        /// complete snapshot.
        #[test]
        fn checkpoints_push_out_no_complete_snapshot(
            policy in any_policy(),
            snapshots in proptest::collection::vec((0i64..60 * DAY, proptest::bool::ANY), 0..60),
        ) {
            let policy = Policy::parse(&policy).unwrap();
            let times: Vec<i64> = snapshots.iter().map(|(t, _)| MONDAY + t).collect();
            let flags: Vec<bool> = snapshots.iter().map(|(_, c)| *c).collect();
            let with = policy.apply_with_checkpoints(&times, &flags);
            let complete: Vec<usize> = (0..times.len()).filter(|&i| !flags[i]).collect();
            let alone = policy.apply(&complete.iter().map(|&i| times[i]).collect::<Vec<_>>());
            for (k, &i) in complete.iter().enumerate() {
                proptest::prop_assert_eq!(&with[i], &alone[k]);
            }
            let kept: Vec<usize> = (0..times.len()).filter(|&i| flags[i] && !with[i].is_empty()).collect();
            proptest::prop_assert!(kept.len() <= 1);
            for &c in &kept {
                for &i in &complete {
                    proptest::prop_assert!((times[c], c) > (times[i], i));
                }
            }
        }
    }

    #[test]
    fn a_device_with_one_snapshot_keeps_it_and_none_is_fine() {
        assert_eq!(kept("daily=1", &[MONDAY]), [0]);
        assert!(Policy::parse("daily=1").unwrap().apply(&[]).is_empty());
    }
}
