//! Which rate holds when: config.toml's `[limits]`, its optional
//! `[limits.daytime]` window (office hours, stricter), and the command
//! line's `--limit-upload` / `--limit-download` over both.
//!
//! ```toml
//! [limits]
//! upload = "4 Mbit/s"
//! download = "20 Mbit/s"
//! [limits.daytime]          # optional
//! hours = "08:00-19:00"     # local time; "22:00-06:00" runs past midnight
//! days = "mon-fri"          # the default; "mon-sun" for every day
//! upload = "1 Mbit/s"       # a direction left out keeps its rate above
//! ```
//!
//! Pure: the local time is passed in ([`LocalTime`]), so the boundaries
//! are tested without waiting for them.

use std::fmt;
use std::str::FromStr;

use coffre_core::units::{format_rate, parse_rate};
use serde::{Deserialize, Serialize};

/// The lowest limit accepted: 8 kbit/s. Below it one 64 KiB request of
/// several in flight could stay silent for the minute after which the
/// server drops a stalled request.
pub const MIN_RATE: u64 = 1_000;

/// A limit as written: a rate (bytes per second), or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Limit(pub Option<u64>);

impl FromStr for Limit {
    type Err = String;

    fn from_str(text: &str) -> Result<Limit, String> {
        if matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "off" | "none" | "unlimited"
        ) {
            return Ok(Limit(None));
        }
        let rate = parse_rate(text).map_err(|e| format!("{e}; or `off` for no limit"))?;
        if rate < MIN_RATE {
            return Err(format!(
                "{text:?} is below the lowest limit, {}: a request this slow would be \
                 dropped by the server as stalled",
                format_rate(MIN_RATE)
            ));
        }
        Ok(Limit(Some(rate)))
    }
}

impl TryFrom<String> for Limit {
    type Error = String;
    fn try_from(s: String) -> Result<Limit, String> {
        s.parse()
    }
}

impl From<Limit> for String {
    fn from(l: Limit) -> String {
        l.to_string()
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(rate) => f.write_str(&format_rate(rate)),
            None => f.write_str("off"),
        }
    }
}

/// config.toml's `[limits]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The upload's limit, outside the daytime window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Limit>,
    /// The download's limit, outside the daytime window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Limit>,
    /// Stricter limits during office hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daytime: Option<Daytime>,
}

impl LimitsConfig {
    /// Nothing configured (the section is then not written).
    pub fn is_empty(&self) -> bool {
        *self == LimitsConfig::default()
    }
}

/// `[limits.daytime]`: a window of the week and its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daytime {
    /// "08:00-19:00", local time.
    pub hours: Hours,
    /// The days the window opens [default: Monday to Friday].
    #[serde(default)]
    pub days: Days,
    /// The upload's limit in the window (left out: as outside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Limit>,
    /// The download's limit in the window (left out: as outside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Limit>,
}

/// A moment of the local week: what the schedule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// 0 for Monday to 6 for Sunday.
    pub weekday: u8,
    /// Minutes since local midnight.
    pub minute: u16,
}

impl LocalTime {
    /// Now, in this PC's time zone.
    pub fn now() -> LocalTime {
        let z = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::system());
        LocalTime {
            weekday: z.weekday().to_monday_zero_offset() as u8,
            minute: z.hour() as u16 * 60 + z.minute() as u16,
        }
    }
}

/// Daily hours `HH:MM-HH:MM`: from the first minute, up to and excluding
/// the second; an end before the start runs past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hours {
    start: u16,
    end: u16,
}

impl FromStr for Hours {
    type Err = String;

    fn from_str(text: &str) -> Result<Hours, String> {
        let bad = || format!("{text:?} is not a span of hours: write it like \"08:00-19:00\"");
        let minute = |t: &str| -> Result<u16, String> {
            let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
            let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            // 24:00 closes a day.
            if m >= 60 || h > 24 || (h == 24 && m > 0) {
                return Err(bad());
            }
            Ok(h * 60 + m)
        };
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minute(a)? % 1440, minute(b)? % 1440);
        if start == end {
            return Err(format!(
                "{text:?} starts and ends at the same minute: for a limit all day, set it in \
                 [limits] itself"
            ));
        }
        Ok(Hours { start, end })
    }
}

impl TryFrom<String> for Hours {
    type Error = String;
    fn try_from(s: String) -> Result<Hours, String> {
        s.parse()
    }
}

impl From<Hours> for String {
    fn from(h: Hours) -> String {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        format!("{}-{}", hm(h.start), hm(h.end))
    }
}

/// Days of the week: `mon-fri`, `mon-sun`, `sat,sun`, `lun-ven`...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Days(u8);

impl Default for Days {
    /// Office hours: Monday to Friday.
    fn default() -> Days {
        Days(0b001_1111)
    }
}

const DAY_NAMES: [[&str; 2]; 7] = [
    ["mon", "lun"],
    ["tue", "mar"],
    ["wed", "mer"],
    ["thu", "jeu"],
    ["fri", "ven"],
    ["sat", "sam"],
    ["sun", "dim"],
];

impl FromStr for Days {
    type Err = String;

    fn from_str(text: &str) -> Result<Days, String> {
        let bad = || {
            format!(
                "{text:?} is not a list of days: write it like \"mon-fri\", \"mon-sun\" or \
                 \"mon,wed,fri\""
            )
        };
        let day = |t: &str| {
            let t = t.trim().to_ascii_lowercase();
            DAY_NAMES
                .iter()
                .position(|names| names.iter().any(|n| t.get(..3) == Some(*n)))
                .ok_or_else(bad)
        };
        let mut set = 0u8;
        for part in text.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    // "fri-mon" wraps past Sunday.
                    let mut d = a;
                    loop {
                        set |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => set |= 1 << day(part)?,
            }
        }
        Ok(Days(set))
    }
}

impl TryFrom<String> for Days {
    type Error = String;
    fn try_from(s: String) -> Result<Days, String> {
        s.parse()
    }
}

impl From<Days> for String {
    fn from(d: Days) -> String {
        (0..7)
            .filter(|i| d.0 & (1 << i) != 0)
            .map(|i| DAY_NAMES[i][0])
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Daytime {
    /// Whether `t` is inside the window. A window past midnight belongs to
    /// the day it starts: "22:00-06:00" on `fri` holds Friday 23:00 and
    /// Saturday 05:00, not Monday 05:00.
    pub fn contains(&self, t: LocalTime) -> bool {
        let Hours { start, end } = self.hours;
        let on = |day: u8| self.days.0 & (1 << day) != 0;
        if start < end {
            on(t.weekday) && (start..end).contains(&t.minute)
        } else {
            (on(t.weekday) && t.minute >= start) || (on((t.weekday + 6) % 7) && t.minute < end)
        }
    }
}

/// The limits of one direction over the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The rate outside the window (`None`: no limit).
    outside: Option<u64>,
    /// The window and its rate.
    daytime: Option<(Daytime, Option<u64>)>,
}

/// Upload or download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// From this PC to the server.
    Up,
    /// From the server to this PC.
    Down,
}

impl Plan {
    /// One direction's plan: the command line's limit if given (all day,
    /// the window ignored), else config.toml's.
    pub fn new(config: &LimitsConfig, way: Way, option: Option<Limit>) -> Plan {
        if let Some(limit) = option {
            return Plan {
                outside: limit.0,
                daytime: None,
            };
        }
        let pick = |up: Option<Limit>, down: Option<Limit>| match way {
            Way::Up => up,
            Way::Down => down,
        };
        let outside = pick(config.upload, config.download).and_then(|l| l.0);
        let daytime = config
            .daytime
            .as_ref()
            .and_then(|d| pick(d.upload, d.download).map(|l| (*d, l.0)));
        Plan { outside, daytime }
    }

    /// The rate at `t` (bytes per second; `None`: no limit).
    pub fn rate_at(&self, t: LocalTime) -> Option<u64> {
        match &self.daytime {
            Some((window, rate)) if window.contains(t) => *rate,
            _ => self.outside,
        }
    }

    /// Whether some time of the week has a limit.
    pub fn limits(&self) -> bool {
        self.outside.is_some() || self.daytime.is_some_and(|(_, r)| r.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(weekday: u8, hm: &str) -> LocalTime {
        let (h, m) = hm.split_once(':').unwrap();
        LocalTime {
            weekday,
            minute: h.parse::<u16>().unwrap() * 60 + m.parse::<u16>().unwrap(),
        }
    }

    fn config(text: &str) -> LimitsConfig {
        toml::from_str(text).unwrap()
    }

    const OFFICE: &str = r#"
        upload = "4 Mbit/s"
        download = "20 Mbit/s"
        [daytime]
        hours = "08:00-19:00"
        upload = "1 Mbit/s"
    "#;

    #[test]
    fn the_daytime_window_holds_from_its_first_minute_to_its_last() {
        let up = Plan::new(&config(OFFICE), Way::Up, None);
        let (day, night) = (Some(125_000), Some(500_000));
        assert_eq!(up.rate_at(at(0, "07:59")), night);
        assert_eq!(up.rate_at(at(0, "08:00")), day);
        assert_eq!(up.rate_at(at(2, "12:30")), day);
        assert_eq!(up.rate_at(at(4, "18:59")), day);
        assert_eq!(up.rate_at(at(4, "19:00")), night);
        // Weekends are not office hours by default.
        assert_eq!(up.rate_at(at(5, "10:00")), night);
        assert_eq!(up.rate_at(at(6, "10:00")), night);
        // The download has no daytime rate: its own all week.
        let down = Plan::new(&config(OFFICE), Way::Down, None);
        assert_eq!(down.rate_at(at(0, "10:00")), Some(2_500_000));
        assert_eq!(down.rate_at(at(0, "22:00")), Some(2_500_000));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let c = config(
            r#"
            [daytime]
            hours = "22:00-06:00"
            days = "fri"
            download = "2 Mbit/s"
        "#,
        );
        let down = Plan::new(&c, Way::Down, None);
        assert_eq!(down.rate_at(at(4, "21:59")), None);
        assert_eq!(down.rate_at(at(4, "22:00")), Some(250_000));
        assert_eq!(down.rate_at(at(5, "05:59")), Some(250_000));
        assert_eq!(down.rate_at(at(5, "06:00")), None);
        // Friday's window, not Sunday night's.
        assert_eq!(down.rate_at(at(0, "05:00")), None);
        assert_eq!(down.rate_at(at(5, "23:00")), None);
        // No upload limit at any time.
        assert!(!Plan::new(&c, Way::Up, None).limits());
    }

    #[test]
    fn the_command_line_wins_all_day() {
        let c = config(OFFICE);
        let up = Plan::new(&c, Way::Up, Some("8 Mbit/s".parse().unwrap()));
        assert_eq!(up.rate_at(at(0, "10:00")), Some(1_000_000));
        assert_eq!(up.rate_at(at(0, "22:00")), Some(1_000_000));
        let off = Plan::new(&c, Way::Up, Some("off".parse().unwrap()));
        assert_eq!(off.rate_at(at(0, "10:00")), None);
        assert!(!off.limits());
    }

    #[test]
    fn days_and_hours_read_as_written() {
        assert_eq!(
            String::from("mon-fri".parse::<Days>().unwrap()),
            "mon,tue,wed,thu,fri"
        );
        assert_eq!(
            String::from("lun-dim".parse::<Days>().unwrap())
                .split(',')
                .count(),
            7
        );
        assert_eq!(
            String::from("fri-mon".parse::<Days>().unwrap()),
            "mon,fri,sat,sun"
        );
        assert_eq!(
            String::from("Sat, sunday".parse::<Days>().unwrap()),
            "sat,sun"
        );
        assert!("weekdays".parse::<Days>().unwrap_err().contains("mon-fri"));
        assert_eq!(
            String::from("8:00-19:30".parse::<Hours>().unwrap()),
            "08:00-19:30"
        );
        assert_eq!(
            String::from("18:00-24:00".parse::<Hours>().unwrap()),
            "18:00-00:00"
        );
        for bad in ["8-19", "08:00", "25:00-26:00", "08:60-09:00"] {
            assert!(
                bad.parse::<Hours>().unwrap_err().contains("08:00-19:00"),
                "{bad}"
            );
        }
        assert!("08:00-08:00"
            .parse::<Hours>()
            .unwrap_err()
            .contains("[limits]"));
    }

    #[test]
    fn limits_read_rates_or_off() {
        assert_eq!("2 Mbit/s".parse::<Limit>(), Ok(Limit(Some(250_000))));
        assert_eq!("OFF".parse::<Limit>(), Ok(Limit(None)));
        let e = "20".parse::<Limit>().unwrap_err();
        assert!(e.contains("2Mbit/s") && e.contains("`off`"), "{e}");
        assert!("4 kbit/s"
            .parse::<Limit>()
            .unwrap_err()
            .contains("8 kbit/s"));
        // A bad rate in config.toml names the problem.
        let e = toml::from_str::<LimitsConfig>("upload = \"4 Mbits\"").unwrap_err();
        assert!(e.to_string().contains("4 Mbits"), "{e}");
        let e = toml::from_str::<LimitsConfig>("uplaod = \"4 Mbit/s\"").unwrap_err();
        assert!(e.to_string().contains("uplaod"), "{e}");
        // What is written reads back.
        let c = config(OFFICE);
        assert_eq!(config(&toml::to_string(&c).unwrap()), c);
    }
}
