//! The `credentials` file of an installation, and whom it is for.
//!
//! ```text
//! # coffre credentials of device "pc1" of "asso-a".
//! # (two more comment lines: keep it private; it changes at every run)
//! subscriber = "asso-a"
//! device = "pc1"
//! fingerprint = "ab12…"          # the server's certificate, hex: the config's `fingerprint`
//! secret = "…"                   # the device secret, hex (rolled at every run)
//! master_key = "…"               # the subscriber's master key, hex
//! ```
//!
//! The file is written whole, 0600 (on Windows an access list for the user
//! and SYSTEM only: `fsmeta::private`), through a temporary file and a rename.
//! The first line and the three fields record which installation the
//! credentials belong to; [`read`] refuses them, before anything connects,
//! unless they name the subscriber, device and server fingerprint of the
//! config that loads them (a file copied from another installation, or the
//! old layout where two configs in one folder shared one file).
//!
//! Files written before the fields existed (issue 18) have only the first
//! line; older ones not even that. Their owner is the one the comment names
//! (the fingerprint is then the config's), or, without a comment, the
//! default `config.toml` only ([`Owner::of`]).

use std::path::Path;

use anyhow::{Context, Result};
use coffre_core::MasterKey;
use serde::{Deserialize, Serialize};

use super::Config;

/// What the device keeps secret: the credential the server checks, and the
/// key that encrypts everything.
pub struct Credentials {
    /// The device secret from the enrolment token (rolled at every run).
    pub secret: [u8; 32],
    /// The subscriber's master key (unwrapped at enrolment).
    pub master: MasterKey,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

/// The TOML of the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subscriber: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    secret: String,
    master_key: String,
}

/// Whom a credentials file is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The installation of this subscriber and device on the server of this
    /// fingerprint (the fields; or the first line, with `fingerprint: None`).
    Named {
        subscriber: String,
        device: String,
        fingerprint: Option<String>,
    },
    /// Nothing says: a file from before issue 17.
    Unrecorded,
}

impl Owner {
    /// The owner recorded in a credentials file's text.
    pub fn of(text: &str) -> Result<Owner> {
        let file: CredentialsFile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        if let (Some(subscriber), Some(device)) = (file.subscriber, file.device) {
            return Ok(Owner::Named {
                subscriber,
                device,
                fingerprint: file.fingerprint,
            });
        }
        match text.lines().next().and_then(parse_comment) {
            Some((device, subscriber)) => Ok(Owner::Named {
                subscriber,
                device,
                fingerprint: None,
            }),
            None => Ok(Owner::Unrecorded),
        }
    }

    /// None if these credentials belong to the config at `config_path`;
    /// else why not, as the sentence a user reads.
    pub fn mismatch(&self, config: &Config, config_path: &Path) -> Option<String> {
        let name = config_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let theirs = |sub: &str, dev: &str, fp: &str| {
            format!(
                "subscriber {sub:?} device {dev:?} on server fingerprint {}",
                short(fp)
            )
        };
        let ours = theirs(&config.subscriber, &config.device, &config.fingerprint);
        match self {
            Owner::Named {
                subscriber,
                device,
                fingerprint,
            } => {
                let fp = fingerprint.as_deref().unwrap_or(&config.fingerprint);
                let same = *subscriber == config.subscriber
                    && *device == config.device
                    && fp.eq_ignore_ascii_case(config.fingerprint.trim());
                (!same).then(|| {
                    format!(
                        "these credentials are for {}, but {name} names {ours}",
                        theirs(subscriber, device, fp)
                    )
                })
            }
            Owner::Unrecorded => (name != "config.toml").then(|| {
                format!(
                    "these credentials do not say which installation they are for (written by an \
                     older coffre), and only the default config.toml may take such a file, not {name}"
                )
            }),
        }
    }
}

/// The first 16 hex digits of a fingerprint, enough to tell two servers apart.
fn short(fingerprint: &str) -> String {
    let fp = fingerprint.trim();
    match fp.get(..16) {
        Some(head) if fp.len() > 16 => format!("{head}…"),
        _ => fp.to_string(),
    }
}

/// The text of a credentials file for the installation of `config`.
pub fn render(config: &Config, credentials: &Credentials) -> Result<String> {
    let file = CredentialsFile {
        subscriber: Some(config.subscriber.clone()),
        device: Some(config.device.clone()),
        fingerprint: Some(config.fingerprint.trim().to_ascii_lowercase()),
        secret: hex::encode(credentials.secret),
        master_key: hex::encode(credentials.master.as_bytes()),
    };
    Ok(format!(
        "{}\n# Anyone with this file can read this subscriber's backups: keep it private.\n# The device secret changes at every run (the server then refuses the older ones): a copy of this file stops working.\n{}",
        comment(&config.device, &config.subscriber),
        toml::to_string(&file)?
    ))
}

/// The first line of the file, as every coffre since issue 17 wrote it.
fn comment(device: &str, subscriber: &str) -> String {
    format!("# coffre credentials of device {device:?} of {subscriber:?}.")
}

/// The secret and key of a credentials file's text (`path` for messages).
pub fn parse(text: &str, path: &Path) -> Result<Credentials> {
    let file: CredentialsFile = toml::from_str(text)
        .map_err(|e| anyhow::anyhow!("{} is damaged: {}", path.display(), e.message()))?;
    let mut secret = [0u8; 32];
    let mut master = [0u8; 32];
    hex::decode_to_slice(file.secret.trim(), &mut secret)
        .and_then(|()| hex::decode_to_slice(file.master_key.trim(), &mut master))
        .map_err(|_| anyhow::anyhow!("expected 64 hex digits"))
        .with_context(|| format!("{} is damaged", path.display()))?;
    Ok(Credentials {
        secret,
        master: MasterKey::from_bytes(master),
    })
}

/// (device, subscriber) from `# coffre credentials of device "X" of "Y".`
/// (both quoted as Rust's `{:?}` quotes a string).
fn parse_comment(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("# coffre credentials of device ")?;
    let (device, rest) = quoted(rest)?;
    let rest = rest.strip_prefix(" of ")?;
    let (subscriber, rest) = quoted(rest)?;
    (rest.trim_end() == ".").then_some((device, subscriber))
}

/// A string as `{:?}` writes it, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let body = &s[1..];
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                'u' => {
                    let (_, '{') = chars.next()? else {
                        return None;
                    };
                    let mut hex = String::new();
                    loop {
                        match chars.next()?.1 {
                            '}' => break,
                            h => hex.push(h),
                        }
                    }
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sub: &str, dev: &str) -> Config {
        Config {
            server: "localhost:7443".into(),
            fingerprint: "ab".repeat(32),
            subscriber: sub.into(),
            device: dev.into(),
            paths: vec![],
            exclude: vec![],
            threads: 0,
            uploads: 8,
            hooks: Default::default(),
            network: Default::default(),
            limits: Default::default(),
            backup: Default::default(),
        }
    }

    fn creds() -> Credentials {
        Credentials {
            secret: [1; 32],
            master: MasterKey::from_bytes([2; 32]),
        }
    }

    #[test]
    fn a_file_records_its_owner_and_refuses_another_config() {
        let a = config("asso-a", "pc1");
        let text = render(&a, &creds()).unwrap();
        let owner = Owner::of(&text).unwrap();
        assert_eq!(owner.mismatch(&a, Path::new("/x/asso-a.toml")), None);
        let b = config("asso-b", "pc2");
        let why = owner.mismatch(&b, Path::new("/x/asso-b.toml")).unwrap();
        assert!(
            why.contains(
                r#"for subscriber "asso-a" device "pc1" on server fingerprint abababababababab…"#
            ) && why.contains(r#"asso-b.toml names subscriber "asso-b" device "pc2""#),
            "{why}"
        );
        // Same names, another server.
        let mut other = a.clone();
        other.fingerprint = "cd".repeat(32);
        assert!(owner.mismatch(&other, Path::new("/x/a.toml")).is_some());
        let c = parse(&text, Path::new("c")).unwrap();
        assert_eq!((c.secret, c.master.as_bytes()), ([1; 32], &[2; 32]));
    }

    #[test]
    fn an_old_file_is_owned_by_its_comment_or_the_default_config() {
        let old =
            "# coffre credentials of device \"pc \\\"1\\\"\" of \"asso-\\u{e9}\".\n# keep it\n\
                   secret = \"00\"\nmaster_key = \"00\"\n";
        let owner = Owner::of(old).unwrap();
        assert_eq!(
            owner,
            Owner::Named {
                subscriber: "asso-é".into(),
                device: "pc \"1\"".into(),
                fingerprint: None
            }
        );
        assert_eq!(
            owner.mismatch(&config("asso-é", "pc \"1\""), Path::new("/x/any.toml")),
            None
        );
        // Rust's own quoting is what the old code wrote.
        assert_eq!(
            parse_comment(&comment("pc\t2", "l'asso")),
            Some(("pc\t2".into(), "l'asso".into()))
        );
        let oldest = "secret = \"00\"\nmaster_key = \"00\"\n";
        let owner = Owner::of(oldest).unwrap();
        assert_eq!(owner, Owner::Unrecorded);
        let c = config("asso", "pc");
        assert_eq!(owner.mismatch(&c, Path::new("/x/config.toml")), None);
        assert!(owner.mismatch(&c, Path::new("/x/asso.toml")).is_some());
    }
}
