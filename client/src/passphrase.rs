//! The structure's passphrase: from `--passphrase-file`, the
//! `COFFRE_PASSPHRASE` environment variable, or a prompt on the terminal, in
//! that order. `enrol` needs it: it unwraps (or, for the first device,
//! wraps) the subscriber's master key; `key passwd` asks the current one and
//! a new one (`--new-passphrase-file`, `COFFRE_NEW_PASSPHRASE`, or a prompt).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The shortest passphrase accepted for a new key.
pub const MIN_LEN: usize = 8;

/// What the passphrase is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Unlock the key the subscriber already has.
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

/// Obtains the passphrase.
pub fn obtain(file: Option<&Path>, purpose: Purpose, subscriber: &str) -> Result<String> {
    let from_source = if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the passphrase file {}", path.display()))?;
        // A trailing newline is an editor's, not part of the passphrase.
        Some(text.trim_end_matches(['\n', '\r']).to_string())
    } else {
        std::env::var(purpose.env_var()).ok()
    };
    let pass = match from_source {
        Some(p) => p,
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

fn prompt(purpose: Purpose, subscriber: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        bail!(
            "the {}passphrase of {subscriber} is needed: type it in a terminal, or set {}, or pass --{}passphrase-file FILE",
            if purpose == Purpose::Change { "new " } else { "" },
            purpose.env_var(),
            if purpose == Purpose::Change { "new-" } else { "" },
        );
    }
    match purpose {
        Purpose::Unlock => Ok(rpassword::prompt_password(format!(
            "Passphrase of {subscriber}: "
        ))?),
        Purpose::Create => {
            eprintln!(
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
            eprintln!(
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
