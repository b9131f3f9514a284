//! How times, modes, sizes and counts are shown to people (local time, `ls
//! -l` modes, "1 file" / "2 files").

use coffre_core::Timestamp;

/// A count and its noun in correct English: "1 file", "2 files", "0 files"
/// (and [`count_with`] for an irregular plural). The one plural rule of
/// every summary; it lives in coffre-core so that the server's summaries
/// use the same.
pub use coffre_core::units::{count, count_with};

/// "2026-11-17 14:02" in the machine's time zone.
pub fn local_time(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => format!("@{secs}"),
    }
}

/// RFC 3339 with the local offset, for JSON ("2026-11-17T14:02:11+01:00").
pub fn rfc3339(t: Timestamp) -> String {
    match jiff::Timestamp::new(t.secs, t.nanos as i32) {
        Ok(ts) => ts
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        Err(_) => format!("@{}", t.secs),
    }
}

/// "3 days ago", "5 h ago", "just now".
pub fn age(secs: i64) -> String {
    let now = Timestamp::now().secs;
    let d = now - secs;
    match d {
        i64::MIN..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", d / 60),
        3600..=86_399 => format!("{} h ago", d / 3600),
        _ => format!("{} ago", count(d as u64 / 86_400, "day")),
    }
}

/// `ls -l` style: "drwxr-xr-x".
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o100600), "-rw-------");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
    }
}
