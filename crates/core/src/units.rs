//! Sizes as people write them: `50GiB`, `500MB`, `1.5 TB`, `1024`; and
//! counts in correct English ([`count`]: "1 file", "2 files").

/// Parses a size: a number (decimals allowed) and an optional unit, B, kB/KB,
/// MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), any case.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size: write it like 50GiB, 500MB or 1024"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
            "unknown size unit {unit:?} in {text:?}: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
        ))
        }
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a duration as people write it: `0`, `90s`, `30m`, `12h`, `1d`,
/// `2w`; returns seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let bad = || format!("{text:?} is not a duration: write it like 0, 90s, 30m, 12h, 1d or 2w");
    let value: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" if value == 0 => 1,
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    value.checked_mul(mult).ok_or_else(bad)
}

/// Formats bytes for people, in powers of 1024 with one decimal: `1.5 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A count and its noun in correct English: `count(1, "file")` is "1
/// file", `count(0, "file")` and `count(2, "file")` "0 files", "2 files".
/// The plural is the noun plus "s"; nouns that do not follow the rule go
/// through [`count_with`]. The one plural rule of the client's and the
/// server's English summaries.
pub fn count<N: std::fmt::Display + PartialEq + From<u8>>(n: N, noun: &str) -> String {
    if n == N::from(1) {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// [`count`] with an irregular plural: `count_with(2, "directory",
/// "directories")`.
pub fn count_with<N: std::fmt::Display + PartialEq + From<u8>>(
    n: N,
    singular: &str,
    plural: &str,
) -> String {
    if n == N::from(1) {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_people_write() {
        assert_eq!(parse_size("50GiB"), Ok(50 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5 TB"), Ok(1_500_000_000_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("2 mib"), Ok(2 << 20));
        assert!(parse_size("lots").unwrap_err().contains("50GiB"));
        assert!(parse_size("5 XB").unwrap_err().contains("unit"));
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert_eq!(parse_duration("2W"), Ok(1_209_600));
        for bad in ["", "5", "1y", "h", "-1d"] {
            assert!(parse_duration(bad).unwrap_err().contains("12h"), "{bad}");
        }
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(50 << 30), "50.0 GiB");
    }

    #[test]
    fn counts_read_in_correct_english() {
        assert_eq!(count(1, "file"), "1 file");
        assert_eq!(count(0, "file"), "0 files");
        assert_eq!(count(2usize, "folder"), "2 folders");
        assert_eq!(count_with(1, "directory", "directories"), "1 directory");
        assert_eq!(count_with(3, "directory", "directories"), "3 directories");
    }
}
