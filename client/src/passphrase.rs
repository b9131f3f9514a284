//! The structure's passphrase: from `--passphrase-file`, the
//! `COFFRE_PASSPHRASE` environment variable, or a prompt on the terminal, in
//! that order. `enrol` needs it: it unwraps (or, for the first device,
//! wraps) the subscriber's master key; `key passwd` asks the current one and
//! a new one (`--new-passphrase-file`, `COFFRE_NEW_PASSPHRASE`, or a prompt).
//!
//! [`obtain`] gives one passphrase; [`unlock`] gives them to a check until
//! one opens the key: a person at a terminal may mistype, so they are asked
//! again, [`ATTEMPTS`] times in all ("wrong passphrase, try again (2 left)");
//! a file or the environment variable does not change between two tries, so
//! a wrong one fails at once, naming where it came from.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The shortest passphrase accepted for a new key.
pub const MIN_LEN: usize = 8;

/// What the passphrase is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Unlock the key the subscriber already has (through [`unlock`], which
    /// asks again on a terminal).
    Unlock,
    /// Protect a new key: asked twice on a terminal.
    Create,
    /// The new passphrase of an existing key (`coffre key passwd`): asked
    /// twice on a terminal; from `--new-passphrase-file` or
    /// `COFFRE_NEW_PASSPHRASE` (never `COFFRE_PASSPHRASE`, which holds the
    /// current one).
    Change,
}

impl Purpose {
    /// The environment variable that gives this passphrase.
    pub fn env_var(self) -> &'static str {
        match self {
            Purpose::Unlock | Purpose::Create => "COFFRE_PASSPHRASE",
            Purpose::Change => "COFFRE_NEW_PASSPHRASE",
        }
    }
}

/// How many times a person at a terminal may type the passphrase that
/// unlocks a key.
pub const ATTEMPTS: u32 = 3;

/// Obtains the passphrase and gives it to `check`, which opens the key with
/// it and returns `Ok(None)` when the passphrase is wrong: from a terminal,
/// up to [`ATTEMPTS`] times; from `file` or `COFFRE_PASSPHRASE`, once. A
/// wrong passphrase in the end is an error that says "wrong passphrase for
/// SUBSCRIBER" and that nothing was changed. For `coffre enrol`, and any
/// command that must unlock the structure's key (the old passphrase of a
/// passphrase change).
pub fn unlock<T>(
    file: Option<&Path>,
    subscriber: &str,
    check: impl FnMut(&str) -> Result<Option<T>>,
) -> Result<T> {
    if let Some((pass, source)) = from_source(file, Purpose::Unlock)? {
        return once(&pass, &source, subscriber, check);
    }
    retry(
        || prompt(Purpose::Unlock, subscriber),
        |line| errln!("{line}"),
        subscriber,
        check,
    )
}

/// One passphrase from a file or the environment: no second try.
fn once<T>(
    pass: &str,
    source: &str,
    subscriber: &str,
    mut check: impl FnMut(&str) -> Result<Option<T>>,
) -> Result<T> {
    if pass.is_empty() {
        bail!("the passphrase is empty ({source})");
    }
    match check(pass)? {
        Some(t) => Ok(t),
        None => bail!(
            "wrong passphrase for {subscriber} ({source}): nothing was changed; correct it (ask \
             the person who enrolled the structure's first PC)"
        ),
    }
}

/// The terminal loop: `ask` reads a passphrase, `tell` shows a line, `check`
/// tries it; [`ATTEMPTS`] tries in all.
fn retry<T>(
    mut ask: impl FnMut() -> Result<String>,
    mut tell: impl FnMut(&str),
    subscriber: &str,
    mut check: impl FnMut(&str) -> Result<Option<T>>,
) -> Result<T> {
    for attempt in 1..=ATTEMPTS {
        let pass = ask()?;
        if !pass.is_empty() {
            if let Some(t) = check(&pass)? {
                return Ok(t);
            }
        }
        let left = ATTEMPTS - attempt;
        if left > 0 {
            let what = if pass.is_empty() { "empty" } else { "wrong" };
            tell(&format!("{what} passphrase, try again ({left} left)"));
        }
    }
    bail!(
        "wrong passphrase for {subscriber}, {ATTEMPTS} times: nothing was changed (ask the person \
         who enrolled the structure's first PC)"
    )
}

/// The passphrase of `file` (`--passphrase-file`, `--new-passphrase-file`)
/// or of `purpose`'s environment variable, and a description of where it
/// came from.
fn from_source(file: Option<&Path>, purpose: Purpose) -> Result<Option<(String, String)>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the passphrase file {}", path.display()))?;
        // A trailing newline is an editor's, not part of the passphrase.
        return Ok(Some((
            text.trim_end_matches(['\n', '\r']).to_string(),
            format!("from the file {}", path.display()),
        )));
    }
    let var = purpose.env_var();
    Ok(std::env::var(var).ok().map(|p| (p, format!("from {var}"))))
}

/// Obtains the passphrase (one try: see [`unlock`] to ask again when it is wrong).
pub fn obtain(file: Option<&Path>, purpose: Purpose, subscriber: &str) -> Result<String> {
    let pass = match from_source(file, purpose)? {
        Some((p, _)) => p,
        None => prompt(purpose, subscriber)?,
    };
    if pass.is_empty() {
        bail!("the passphrase is empty");
    }
    if purpose != Purpose::Unlock && pass.chars().count() < MIN_LEN {
        bail!(
            "the passphrase must have at least {MIN_LEN} characters: it protects every backup of {subscriber}"
        );
    }
    Ok(pass)
}

/// Fails unless a person can type the passphrase for `purpose`.
fn terminal_ready(purpose: Purpose, subscriber: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        let new = purpose == Purpose::Change;
        bail!(
            "the {}passphrase of {subscriber} is needed: type it in a terminal, or set {}, or pass --{}passphrase-file FILE",
            if new { "new " } else { "" },
            purpose.env_var(),
            if new { "new-" } else { "" },
        );
    }
    Ok(())
}

fn prompt(purpose: Purpose, subscriber: &str) -> Result<String> {
    terminal_ready(purpose, subscriber)?;
    match purpose {
        Purpose::Unlock => Ok(rpassword::prompt_password(format!(
            "Passphrase of {subscriber}: "
        ))?),
        Purpose::Create => {
            errln!(
                "{subscriber} has no key yet: this PC creates it. Choose the structure's passphrase \
                 (at least {MIN_LEN} characters). Write it down and keep it safe: without it, \
                 a new PC cannot restore anything."
            );
            let a = rpassword::prompt_password("New passphrase: ")?;
            let b = rpassword::prompt_password("Same passphrase again: ")?;
            if a != b {
                bail!("the two passphrases differ: nothing was created, run `coffre enrol` again");
            }
            Ok(a)
        }
        Purpose::Change => {
            errln!(
                "Choose the new passphrase of {subscriber} (at least {MIN_LEN} characters). Write \
                 it down and keep it safe: from now on, a new PC enrols with it, not the old one."
            );
            let a = rpassword::prompt_password("New passphrase: ")?;
            let b = rpassword::prompt_password("Same passphrase again: ")?;
            if a != b {
                bail!(
                    "the two passphrases differ: nothing was changed, run `coffre key passwd` again"
                );
            }
            Ok(a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The terminal loop with typed lines and a key opened by "right".
    fn typed(lines: &[&str]) -> (Result<&'static str>, Vec<String>, usize) {
        let mut typed = lines.iter().map(|s| s.to_string());
        let mut told = Vec::new();
        let mut asked = 0;
        let r = retry(
            || {
                asked += 1;
                Ok(typed.next().expect("asked once too often"))
            },
            |l| told.push(l.to_string()),
            "asso",
            |p| Ok((p == "right").then_some("key")),
        );
        (r, told, asked)
    }

    #[test]
    fn a_terminal_asks_again_after_a_wrong_passphrase() {
        let (r, told, asked) = typed(&["wrnog", "", "right"]);
        assert_eq!(r.unwrap(), "key");
        assert_eq!(asked, 3);
        assert_eq!(
            told,
            [
                "wrong passphrase, try again (2 left)",
                "empty passphrase, try again (1 left)"
            ]
        );
        let (r, _, asked) = typed(&["right"]);
        assert_eq!((r.unwrap(), asked), ("key", 1));
    }

    #[test]
    fn three_wrong_passphrases_fail_clearly() {
        let (r, told, asked) = typed(&["a", "b", "c"]);
        let e = r.unwrap_err().to_string();
        assert_eq!(asked, 3);
        assert_eq!(told.len(), 2, "{told:?}");
        assert!(
            e.contains("wrong passphrase for asso, 3 times: nothing was changed"),
            "{e}"
        );
    }

    #[test]
    fn a_file_or_the_environment_is_tried_once() {
        let mut tries = 0;
        let e = once("wrong", "from COFFRE_PASSPHRASE", "asso", |_| {
            tries += 1;
            Ok(None::<()>)
        })
        .unwrap_err()
        .to_string();
        assert_eq!(tries, 1);
        assert!(
            e.contains("wrong passphrase for asso (from COFFRE_PASSPHRASE): nothing was changed"),
            "{e}"
        );
        assert!(once("", "from the file p", "asso", |_| Ok(Some(())))
            .unwrap_err()
            .to_string()
            .contains("empty"));
    }
}
