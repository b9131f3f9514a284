//! Tree entry names as restore uses them: checked before use, and mapped to
//! one file name of this platform, never interpreted as a path.
//!
//! A name is refused (the entry is reported as damaged, the rest restored)
//! when it is empty, `.` or `..`, or holds `/` or NUL: such a name can only
//! come from a damaged or hostile snapshot (the tree decoder refuses them
//! too; this check does not rely on it).
//!
//! On Windows, names that Linux and macOS allow but Windows cannot hold are
//! **escaped** by a reversible rule ([`escape_windows`], documented in
//! docs/format.md, "Tree entry names on Windows"): each offending byte
//! becomes `%` and two upper-case hex digits, and `%` itself becomes `%25`.
//! The rule is a pure function, tested on every platform; only the decision
//! to apply it is `cfg(windows)`.

use std::ffi::OsString;

/// Why a name from a snapshot cannot be used as a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadName {
    /// An empty name.
    #[error("an empty name")]
    Empty,
    /// `.` or `..`.
    #[error("the name \".\" or \"..\"")]
    Dots,
    /// A `/` (a path, not a name).
    #[error("a name holding '/'")]
    Slash,
    /// A NUL byte.
    #[error("a name holding a NUL byte")]
    Nul,
}

/// Checks that `name` is one plain file name.
pub fn check(name: &[u8]) -> Result<(), BadName> {
    if name.is_empty() {
        Err(BadName::Empty)
    } else if name == b"." || name == b".." {
        Err(BadName::Dots)
    } else if name.contains(&b'/') {
        Err(BadName::Slash)
    } else if name.contains(&0) {
        Err(BadName::Nul)
    } else {
        Ok(())
    }
}

/// The file name `name` (checked) is restored under on this platform.
pub fn os_name(name: &[u8]) -> Result<OsString, BadName> {
    check(name)?;
    Ok(platform_name(name))
}

#[cfg(unix)]
fn platform_name(name: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(name).to_os_string()
}

#[cfg(not(unix))]
fn platform_name(name: &[u8]) -> OsString {
    escape_windows(name).into()
}

/// The names given in one restored folder, so that two names that only
/// differ by case (`Notes.txt`, `notes.txt`: a Linux folder may hold both)
/// do not land on one file where names ignore case (Windows, macOS).
#[derive(Debug, Default)]
pub struct Folder {
    /// Names given so far, case-folded.
    taken: std::collections::HashSet<String>,
}

impl Folder {
    /// The file name `name` (checked) is restored under in this folder.
    pub fn name(&mut self, name: &[u8]) -> Result<OsString, BadName> {
        let os = os_name(name)?;
        if !crate::fsmeta::NAMES_IGNORE_CASE {
            return Ok(os);
        }
        let given = distinct(os.to_string_lossy().into_owned(), |n| {
            self.taken.contains(&fold(n))
        });
        self.taken.insert(fold(&given));
        Ok(given.into())
    }
}

/// A name as a case-insensitive file system compares it.
fn fold(name: &str) -> String {
    name.chars().flat_map(char::to_uppercase).collect()
}

/// `name`, or, when `taken` says a name equal to it but for case is used in
/// the folder, `name` with its first characters escaped (`%XX` per byte),
/// one more at a time, until it is not taken: `notes.txt` beside
/// `Notes.txt` becomes `%6Eotes.txt`. [`unescape_windows`] gives the same
/// bytes back, so the rule stays reversible.
pub fn distinct(name: String, taken: impl Fn(&str) -> bool) -> String {
    let mut current = name;
    let mut from = 0;
    while taken(&current) && from < current.len() {
        if current[from..].starts_with('%') {
            from += 3;
            continue;
        }
        let c = current[from..].chars().next().unwrap_or_default();
        let mut escaped = String::new();
        for b in c.to_string().bytes() {
            push_escaped(&mut escaped, b);
        }
        current.replace_range(from..from + c.len_utf8(), &escaped);
        from += escaped.len();
    }
    current
}

/// The device names Windows reserves, whatever the extension.
#[cfg_attr(not(windows), allow(dead_code))] // the rule is tested everywhere, applied on Windows
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// True for a byte Windows refuses in a file name, or that the escape rule
/// itself uses (`%`).
#[cfg_attr(not(windows), allow(dead_code))] // the rule is tested everywhere, applied on Windows
fn offending(b: u8) -> bool {
    b < 0x20
        || b == 0x7f
        || matches!(
            b,
            b'\\' | b'/' | b':' | b'*' | b'?' | b'"' | b'<' | b'>' | b'|' | b'%'
        )
}

/// True when the part of `name` before its first `.` is a reserved device
/// name (`CON`, `com1`, `LPT9.txt`, ...).
#[cfg_attr(not(windows), allow(dead_code))] // the rule is tested everywhere, applied on Windows
fn is_reserved(name: &[u8]) -> bool {
    // Windows ignores spaces at the end of the stem ("CON .txt" is CON).
    let stem = name
        .split(|&b| b == b'.')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    RESERVED
        .iter()
        .any(|r| stem.eq_ignore_ascii_case(r.as_bytes()))
}

#[cfg_attr(not(windows), allow(dead_code))] // the rule is tested everywhere, applied on Windows
fn push_escaped(out: &mut String, b: u8) {
    out.push_str(&format!("%{b:02X}"));
}

/// Escapes a tree entry name into one file name Windows can hold.
///
/// The rule: every byte of `\ / : * ? " < > |`, every control byte
/// (0x00-0x1F, 0x7F), `%` itself, and every byte of a sequence that is not
/// UTF-8 becomes `%XX` (upper-case hex of the byte); a trailing `.` or space
/// becomes `%2E` or `%20`; a reserved device name (CON, PRN, AUX, NUL,
/// COM1-9, LPT1-9, any case, with or without an extension) has its first
/// letter escaped (`CON.txt` -> `%43ON.txt`). A name that needs none of this
/// is unchanged (`Compta 2025.ods` stays). [`unescape_windows`] gives the
/// bytes back.
#[cfg_attr(not(windows), allow(dead_code))] // the rule is tested everywhere, applied on Windows
pub fn escape_windows(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    let reserved = is_reserved(name);
    for (i, chunk) in name.utf8_chunks().enumerate() {
        let valid = chunk.valid();
        for (j, c) in valid.char_indices() {
            let first = i == 0 && j == 0;
            if c.is_ascii() && (offending(c as u8) || (first && reserved)) {
                push_escaped(&mut out, c as u8);
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            push_escaped(&mut out, b);
        }
    }
    if out.ends_with('.') || out.ends_with(' ') {
        let last = out.pop().unwrap_or_default();
        push_escaped(&mut out, last as u8);
    }
    out
}

/// The bytes [`escape_windows`] was given; `None` if `name` is not an
/// escaped name (a `%` not followed by two hex digits).
#[cfg_attr(not(test), allow(dead_code))] // the rule's other half, for its tests and readers
pub fn unescape_windows(name: &str) -> Option<Vec<u8>> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// True when `name` is one file name Windows can create as given: not empty,
/// not `.` or `..`, no forbidden or control character, no trailing dot or
/// space, not a reserved device name.
#[cfg_attr(not(test), allow(dead_code))] // the rule's other half, for its tests and readers
pub fn is_safe_windows_name(name: &str) -> bool {
    let b = name.as_bytes();
    !name.is_empty()
        && name != "."
        && name != ".."
        && !b.iter().any(|&c| c != b'%' && offending(c))
        && !name.ends_with('.')
        && !name.ends_with(' ')
        && !is_reserved(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_names_pass_and_paths_are_refused() {
        assert_eq!(check(b"Compta 2025.ods"), Ok(()));
        assert_eq!(check(b".bashrc"), Ok(()));
        assert_eq!(check(b"..."), Ok(()));
        assert_eq!(check(b""), Err(BadName::Empty));
        assert_eq!(check(b"."), Err(BadName::Dots));
        assert_eq!(check(b".."), Err(BadName::Dots));
        assert_eq!(check(b"a/b"), Err(BadName::Slash));
        assert_eq!(check(b"/etc/x"), Err(BadName::Slash));
        assert_eq!(check(b"a\0b"), Err(BadName::Nul));
        assert!(os_name(b"../x").is_err());
    }

    #[test]
    fn names_that_differ_only_by_case_are_kept_apart_reversibly() {
        let mut taken = std::collections::HashSet::new();
        for (name, given) in [
            ("Notes.txt", "Notes.txt"),
            ("notes.txt", "%6Eotes.txt"),
            ("NOTES.TXT", "%4EOTES.TXT"),
            ("%6Eotes.txt", "%256Eotes.txt"),
            ("été", "été"),
            ("Été", "%C3%89té"),
        ] {
            let escaped = escape_windows(name.as_bytes());
            let out = distinct(escaped, |n| taken.contains(&fold(n)));
            assert_eq!(out, given, "{name}");
            assert!(taken.insert(fold(&out)), "{out} collides");
            assert_eq!(unescape_windows(&out).as_deref(), Some(name.as_bytes()));
        }
        // Nothing taken: the name as escaped.
        assert_eq!(distinct("a".into(), |_| false), "a");
        // Everything taken: it ends, fully escaped.
        assert_eq!(distinct("ab".into(), |_| true), "%61%62");
    }

    #[test]
    fn windows_escapes_what_windows_cannot_hold() {
        for (name, escaped) in [
            (&b"Compta 2025.ods"[..], "Compta 2025.ods"),
            (b"a\\b", "a%5Cb"),
            (b"C:", "C%3A"),
            (b"..\\..\\Windows", "..%5C..%5CWindows"),
            (b"why?", "why%3F"),
            (b"100%", "100%25"),
            (b"a<b>c|d*e\"f", "a%3Cb%3Ec%7Cd%2Ae%22f"),
            (b"tab\there", "tab%09here"),
            (b"end.", "end%2E"),
            (b"end ", "end%20"),
            (b"CON", "%43ON"),
            (b"con.txt", "%63on.txt"),
            (b"LPT9.tar.gz", "%4CPT9.tar.gz"),
            (b"CONSOLE", "CONSOLE"),
            (b"COM10", "COM10"),
            (b"CON .txt", "%43ON .txt"),
            (b".", "%2E"),
            (b"..", ".%2E"),
            (b"\xff\xfe", "%FF%FE"),
            (b"\xc3\xa9t\xc3\xa9", "\u{e9}t\u{e9}"),
        ] {
            assert_eq!(escape_windows(name), escaped, "{name:?}");
            assert!(is_safe_windows_name(escaped), "{escaped}");
            assert_eq!(unescape_windows(escaped).as_deref(), Some(name));
        }
        assert_eq!(unescape_windows("bad%4"), None);
        assert_eq!(unescape_windows("bad%zz"), None);
    }

    proptest! {
        #[test]
        fn escaping_round_trips(name in proptest::collection::vec(any::<u8>(), 1..64)) {
            let escaped = escape_windows(&name);
            prop_assert_eq!(unescape_windows(&escaped), Some(name));
        }

        #[test]
        fn escaping_gives_one_safe_component(name in proptest::collection::vec(any::<u8>(), 1..64)) {
            let escaped = escape_windows(&name);
            prop_assert!(is_safe_windows_name(&escaped), "{:?} -> {:?}", name, escaped);
            prop_assert!(!escaped.contains(['/', '\\']));
        }

        #[test]
        fn windows_like_names_escape_safely(
            name in "(CON|con|Aux|NUL|COM[1-9]|LPT[1-9]|[a-z]{1,3})(\\.[a-z]{0,3})?[ .:\\\\%]{0,2}"
        ) {
            let escaped = escape_windows(name.as_bytes());
            prop_assert!(is_safe_windows_name(&escaped), "{:?} -> {:?}", name, escaped);
            prop_assert_eq!(unescape_windows(&escaped), Some(name.into_bytes()));
        }
    }
}
