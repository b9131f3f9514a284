//! Sizes as people write them: `50GiB`, `500MB`, `1.5 TB`, `50Go`, `1024B`
//! ([`parse_size`]), and written back in the same units ([`format_size_like`]); rates
//! as access links are sold (`2 Mbit/s`) or as file managers show them
//! (`1.5 MB/s`, `200 Ko/s`): [`parse_rate`], [`format_rate`]; and counts in
//! correct English ([`count`]: "1 file", "2 files").

/// The examples every refused size shows.
const SIZE_EXAMPLES: &str = "write it like 50GB, 50Go, 500MB, 500Mo or 50GiB (or 1024B for bytes)";

/// Parses a size: a number (`.` or `,` for decimals) and a unit, spaces
/// allowed, any case:
/// - powers of 1000: `B`, `kB`/`KB`, `MB`, `GB`, `TB`, and the French
///   octets `o`, `ko`/`Ko`, `Mo`, `Go`, `To`;
/// - powers of 1024: `KiB`, `MiB`, `GiB`, `TiB`, and `Kio`, `Mio`, `Gio`, `Tio`.
///
/// A bare number is refused, `0` aside: `--quota 12` could mean 12 bytes
/// or 12 GB, and the two differ a billionfold (issue 20). The error says
/// how to write either.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let value: f64 = num
        .replace(',', ".")
        .parse()
        .map_err(|_| format!("{text:?} is not a size: {SIZE_EXAMPLES}"))?;
    let lower = unit.to_ascii_lowercase();
    let mult: u64 = match lower.as_str() {
        "" if value == 0.0 => 1,
        "" => {
            return Err(format!(
                "{text:?} has no unit: {num} bytes? write {num}B; {num} gigabytes? write {num}GB \
                 (or {num}Go); {SIZE_EXAMPLES}"
            ))
        }
        "b" | "o" | "byte" | "bytes" | "octet" | "octets" => 1,
        "k" | "kb" | "ko" => 1_000,
        "m" | "mb" | "mo" => 1_000_000,
        "g" | "gb" | "go" => 1_000_000_000,
        "t" | "tb" | "to" => 1_000_000_000_000,
        "kib" | "kio" => 1 << 10,
        "mib" | "mio" => 1 << 20,
        "gib" | "gio" => 1 << 30,
        "tib" | "tio" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown size unit {unit:?} in {text:?}: {SIZE_EXAMPLES}"
            ))
        }
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes.round() as u64)
}

/// How a size is best written back: in powers of 1024 (`GiB`) when it is a
/// whole number of MiB that is no whole number of MB (what `50GiB` gives),
/// otherwise in powers of 1000 (`GB`, what disks and the board's page use).
/// So a quota reads back in the unit it was given in: `500MB` as "500 MB",
/// `2GiB` as "2 GiB", never "476.8 MiB" or "2.1 GB" (issue 20).
pub fn is_binary_size(bytes: u64) -> bool {
    bytes != 0 && bytes.is_multiple_of(1 << 20) && !bytes.is_multiple_of(1_000_000)
}

/// Formats a size in the family [`is_binary_size`] chooses for `like`
/// (usually a quota, so that the use beside it reads in the same units),
/// in English: "500 MB", "1.5 GB", "2 GiB", "512 bytes". At most three
/// significant digits, no trailing ".0".
pub fn format_size_like(bytes: u64, like: u64) -> String {
    let (base, units): (f64, [&str; 6]) = if is_binary_size(like) {
        (1024.0, ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"])
    } else {
        (1000.0, ["bytes", "kB", "MB", "GB", "TB", "PB"])
    };
    let (number, unit) = scaled(bytes, base);
    if unit == 0 {
        return format!("{bytes} {}", if bytes == 1 { "byte" } else { "bytes" });
    }
    format!("{number} {}", units[unit])
}

/// `bytes` in its largest unit of `base` that keeps it at least 1, with at
/// most three significant digits (one decimal below 100), as text with a
/// `.` for decimals and without a trailing `.0`; and the unit's index (0:
/// bytes, 1: k, 2: M...). [`format_size_like`] and the board's page share it.
pub fn scaled(bytes: u64, base: f64) -> (String, usize) {
    if (bytes as f64) < base {
        return (bytes.to_string(), 0);
    }
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= base - 0.5 && u < 5 {
        v /= base;
        u += 1;
    }
    let text = if v >= 99.95 {
        format!("{:.0}", v.round())
    } else {
        let one = format!("{v:.1}");
        one.strip_suffix(".0").map(str::to_string).unwrap_or(one)
    };
    (text, u)
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

/// The whole percentage people read (issue 20), the same on the board's
/// page, in `coffre-server usage` and in `coffre status`: below the quota
/// it is rounded down, so none ever says 100 % of a quota not yet reached
/// nor 99 % where another says 98 %; from the quota up, rounded. `None` for
/// an infinite share (a quota of 0 with data).
pub fn whole_percent(p: f64) -> Option<u64> {
    if !p.is_finite() {
        None
    } else if p < 100.0 {
        Some(p.max(0.0).floor() as u64)
    } else {
        Some(p.round() as u64)
    }
}

/// The examples every refused rate shows.
const RATE_EXAMPLES: &str =
    "write it like 2Mbit/s or 500kbit/s (as links are sold), or 1.5MB/s, 200KiB/s, 1,5 Mo/s (bytes)";

/// Parses a rate; returns bytes per second (rounded, at least 1).
///
/// A number (`.` or `,` for decimals) and a unit, spaces allowed:
/// - **bits** per second, as access links are sold: `bit/s`, `kbit/s`,
///   `Mbit/s`, `Gbit/s` (any case), also `kbps`, `Mbps`, `Mb/s`, `kb/s`
///   (a small `b` is a bit);
/// - **bytes** per second: `B/s`, `kB/s`/`KB/s`, `MB/s`, `GB/s` (a capital
///   `B`), `KiB/s`, `MiB/s`, `GiB/s`, and the French octets `o/s`, `ko/s`,
///   `Ko/s`, `Mo/s`, `Go/s`, `Kio/s`, `Mio/s`, `Gio/s`.
///
/// `k`, `M`, `G` are powers of 1000, `Ki`, `Mi`, `Gi` powers of 1024. The
/// `/s` may be left out (`20mbit`, as `tc` writes it). A bare number, or a
/// bare prefix (`20M`: bits or bytes?), is refused with examples: the two
/// readings differ eightfold.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let value: f64 = num
        .replace(',', ".")
        .parse()
        .map_err(|_| format!("{text:?} is not a rate: {RATE_EXAMPLES}"))?;
    if unit.is_empty() {
        return Err(format!(
            "{text:?} has no unit: bits or bytes per second? {RATE_EXAMPLES}"
        ));
    }
    let per_second = unit
        .strip_suffix("/s")
        .or_else(|| unit.strip_suffix("/S"))
        .or_else(|| unit.strip_suffix("ps"))
        .unwrap_or(unit)
        .trim_end();
    let unknown = || format!("unknown rate unit {unit:?} in {text:?}: {RATE_EXAMPLES}");
    // The quantity: bits or bytes, and what is left of the unit (the prefix).
    let lower = per_second.to_ascii_lowercase();
    let (bits, prefix) = if lower.ends_with("bit") {
        (true, &per_second[..per_second.len() - 3])
    } else if let Some(p) = per_second.strip_suffix('b') {
        (true, p)
    } else if let Some(p) = per_second.strip_suffix('B') {
        (false, p)
    } else if lower.ends_with('o') {
        (false, &per_second[..per_second.len() - 1])
    } else if matches!(lower.as_str(), "k" | "m" | "g" | "ki" | "mi" | "gi") {
        return Err(format!(
            "{text:?} is ambiguous: {num}{per_second}bit/s (bits, as links are sold) or \
             {num}{per_second}B/s (bytes)? Write the unit in full"
        ));
    } else {
        return Err(unknown());
    };
    let mult: f64 = match prefix.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(unknown()),
    };
    let bytes = value * mult / if bits { 8.0 } else { 1.0 };
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    if bytes < 0.5 {
        return Err(format!(
            "{text:?} is no rate at all: write a rate above zero ({RATE_EXAMPLES})"
        ));
    }
    Ok(bytes.round() as u64)
}

/// Formats a rate (bytes per second) for people, in bits per second as
/// access links are sold, one decimal at most: `3.9 Mbit/s`, `850 kbit/s`,
/// `20 Mbit/s`; [`parse_rate`] reads it back.
pub fn format_rate(bytes_per_second: u64) -> String {
    const UNITS: [&str; 5] = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
    let mut v = bytes_per_second as f64 * 8.0;
    let mut u = 0;
    while v >= 999.5 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 || v >= 99.95 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        let one = format!("{v:.1}");
        format!("{} {}", one.trim_end_matches(".0"), UNITS[u])
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
        assert_eq!(parse_size("1024B"), Ok(1024));
        assert_eq!(parse_size("2 mib"), Ok(2 << 20));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("lots").unwrap_err().contains("50GiB"));
        assert!(parse_size("5 XB").unwrap_err().contains("unit"));
        assert!(parse_size("").is_err());
    }

    /// Issue 20: the French units the board's page writes are accepted, and
    /// a bare number is refused with both readings spelt out.
    #[test]
    fn french_units_and_no_bare_numbers() {
        assert_eq!(parse_size("50Go"), Ok(50_000_000_000));
        assert_eq!(parse_size("1,5 To"), Ok(1_500_000_000_000));
        assert_eq!(parse_size("500 Mo"), Ok(500_000_000));
        assert_eq!(parse_size("200Ko"), Ok(200_000));
        assert_eq!(parse_size("2 Gio"), Ok(2 << 30));
        assert_eq!(parse_size("12 octets"), Ok(12));
        let e = parse_size("12").unwrap_err();
        assert!(
            e.contains("12B") && e.contains("12GB") && e.contains("12Go"),
            "{e}"
        );
        assert!(parse_size("5 Xo").unwrap_err().contains("unit"));
    }

    /// A size reads back in the unit it was given in.
    #[test]
    fn sizes_read_back_in_their_own_units() {
        for (typed, shown) in [
            ("500MB", "500 MB"),
            ("2GiB", "2 GiB"),
            ("50Go", "50 GB"),
            ("1.5TB", "1.5 TB"),
            ("100GiB", "100 GiB"),
            ("1GiB", "1 GiB"),
            ("12B", "12 bytes"),
            ("1o", "1 byte"),
            ("999.9MB", "1 GB"),
            ("99.94MB", "99.9 MB"),
        ] {
            let b = parse_size(typed).unwrap();
            assert_eq!(format_size_like(b, b), shown, "{typed}");
        }
        // The use beside a quota, in the quota's units.
        assert_eq!(format_size_like(1_610_612_736, 2 << 30), "1.5 GiB");
        assert_eq!(format_size_like(1_500_000_000, 2_000_000_000), "1.5 GB");
        assert_eq!(format_size_like(999_960_000, 10_000_000_000), "1 GB");
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
    fn rates_parse_in_bits_and_bytes() {
        // Bits, as links are sold.
        assert_eq!(parse_rate("2Mbit/s"), Ok(250_000));
        assert_eq!(parse_rate("2 Mbit/s"), Ok(250_000));
        assert_eq!(parse_rate("500kbit/s"), Ok(62_500));
        assert_eq!(parse_rate("20mbit"), Ok(2_500_000));
        assert_eq!(parse_rate("8 Mbps"), Ok(1_000_000));
        assert_eq!(parse_rate("8 Mb/s"), Ok(1_000_000));
        assert_eq!(parse_rate("1 Gbit/s"), Ok(125_000_000));
        assert_eq!(parse_rate("800 bit/s"), Ok(100));
        // Bytes, in English and in French.
        assert_eq!(parse_rate("1.5MB/s"), Ok(1_500_000));
        assert_eq!(parse_rate("200KiB/s"), Ok(204_800));
        assert_eq!(parse_rate("200 kB/s"), Ok(200_000));
        assert_eq!(parse_rate("1,5 Mo/s"), Ok(1_500_000));
        assert_eq!(parse_rate("300 Ko/s"), Ok(300_000));
        assert_eq!(parse_rate("2 Mio/s"), Ok(2 << 20));
        assert_eq!(parse_rate("1MB"), Ok(1_000_000));
    }

    #[test]
    fn ambiguous_or_bare_rates_are_refused_with_examples() {
        for bare in ["20", "1.5", " 3 "] {
            let e = parse_rate(bare).unwrap_err();
            assert!(
                e.contains("no unit") && e.contains("2Mbit/s") && e.contains("MB/s"),
                "{e}"
            );
        }
        let e = parse_rate("20M").unwrap_err();
        assert!(
            e.contains("ambiguous") && e.contains("20Mbit/s") && e.contains("20MB/s"),
            "{e}"
        );
        for bad in ["fast", "", "2 Xbit/s", "3 MHz", "Mbit/s"] {
            assert!(parse_rate(bad).unwrap_err().contains("2Mbit/s"), "{bad}");
        }
        assert!(parse_rate("0 Mbit/s").unwrap_err().contains("above zero"));
    }

    #[test]
    fn rates_format_as_links_are_sold() {
        assert_eq!(format_rate(250_000), "2 Mbit/s");
        assert_eq!(format_rate(487_500), "3.9 Mbit/s");
        assert_eq!(format_rate(2_500_000), "20 Mbit/s");
        assert_eq!(format_rate(106_250), "850 kbit/s");
        assert_eq!(format_rate(12), "96 bit/s");
        assert_eq!(format_rate(0), "0 bit/s");
        assert_eq!(format_rate(1_531), "12.2 kbit/s");
        assert_eq!(format_rate(125_000_000), "1 Gbit/s");
        // What it prints, it reads back.
        for r in [62_500u64, 250_000, 2_500_000, 125_000_000] {
            assert_eq!(parse_rate(&format_rate(r)), Ok(r));
        }
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
