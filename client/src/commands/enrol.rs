//! `coffre enrol TOKEN`: join the server; the first PC of a subscriber
//! creates its key. The token is one-time: enrolment ends by replacing its
//! secret with the installation's own (`credential.rs`), and a token
//! already used is refused with the device and the date it was used.
//!
//! The token comes from the argument, from standard input (`-`) or from
//! `--token-file`: the last two keep it out of the process arguments, which
//! every local user can read while enrol runs; given as an argument, enrol
//! says so once it is done. Enrolling writes this config file's
//! installation only (`config.rs`): another config file's state is never
//! touched, `--force` or not.

use std::path::Path;

use anyhow::{Context, Result};
use coffre_core::{KdfParams, KeyFile, MasterKey};
use coffre_proto::{ErrorCode, Role, Token};

use crate::cli::EnrolArgs;
use crate::config::{Config, Credentials, Installation, DEFAULT_EXCLUDES};
use crate::credential;
use crate::passphrase::{self, Purpose};
use crate::remote::{replaced_on, Remote, RemoteError};
use crate::session::runtime;

/// Runs `coffre enrol`.
pub fn run(config_path: &Path, args: &EnrolArgs) -> Result<()> {
    // Before any passphrase is asked: the same check `Installation::create` makes.
    crate::config::refuse_existing(config_path, args.force)?;
    let (text, visible) = token_text(args)?;
    let token = Token::parse(text.trim()).map_err(|e| {
        anyhow::anyhow!("this is not a valid enrolment token ({e}): copy the whole `coffre1.…` line that `coffre-server device add` printed")
    })?;
    let paths = if args.paths.is_empty() {
        vec![dirs::home_dir().context("no home folder: pass --path FOLDER")?]
    } else {
        args.paths
            .iter()
            .map(|p| std::path::absolute(p).with_context(|| format!("resolving {}", p.display())))
            .collect::<Result<_>>()?
    };
    let rt = runtime()?;
    let remote = rt
        .block_on(Remote::connect(
            &token.server,
            token.fingerprint,
            token.secret,
        ))
        .map_err(|e| used_token(e, &token))?;
    let master = rt.block_on(unlock_or_create(&remote, args))?;
    let role = remote.role;

    let mut exclude: Vec<String> = DEFAULT_EXCLUDES.iter().map(|s| s.to_string()).collect();
    exclude.extend(args.exclude.iter().cloned());
    let config = Config {
        server: token.server.clone(),
        fingerprint: hex::encode(token.fingerprint),
        subscriber: token.subscriber.clone(),
        device: token.device.clone(),
        paths,
        exclude,
        threads: 0,
        uploads: 8,
        hooks: Default::default(),
        network: Default::default(),
        limits: Default::default(),
        backup: Default::default(),
    };
    let inst = Installation::create(
        config_path,
        config,
        &Credentials {
            secret: token.secret,
            master,
        },
        args.force,
    )?;
    // The token is consumed here: the installation replaces its secret with
    // its own, and the server refuses the token from now on. Interrupted
    // before, the token still works (enrol again, or just run a command).
    let rolled = {
        let _one_at_a_time = inst.lock_credentials()?;
        rt.block_on(credential::roll(&inst, &remote))
    };
    rt.block_on(remote.close());
    rolled?;
    let role = match role {
        Role::Admin => "admin device: may also delete snapshots",
        _ => "backup device",
    };
    outln!(
        "enrolled {} of {} ({role}) with the server at {}",
        inst.config.device,
        inst.config.subscriber,
        inst.config.server
    );
    outln!("configuration: {}", inst.config_path.display());
    outln!(
        "state:         {} (credentials, caches, log; this config file's alone)",
        inst.state_dir().display()
    );
    for p in &inst.config.paths {
        outln!("backs up:      {}", p.display());
    }
    outln!("next: `coffre backup` now, and `coffre schedule install` for every night");
    if visible {
        errln!(
            "coffre: note: the token was visible to every user of this machine in the process \
             list while enrol ran (it is used up now); next time give it as `-` (standard input) \
             or with --token-file FILE"
        );
    }
    Ok(())
}

/// The token's text, and whether it was in the process arguments.
fn token_text(args: &EnrolArgs) -> Result<(String, bool)> {
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading the enrolment token from {} (--token-file)",
                path.display()
            )
        })?;
        return Ok((text, false));
    }
    match args.token.as_deref() {
        Some("-") => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the enrolment token from standard input")?;
            anyhow::ensure!(
                !line.trim().is_empty(),
                "no enrolment token on standard input: paste the `coffre1.…` line, then Enter"
            );
            Ok((line, false))
        }
        Some(token) => Ok((token.to_string(), true)),
        None => anyhow::bail!(
            "give the enrolment token: TOKEN, `-` (standard input) or --token-file FILE"
        ),
    }
}

/// The error of a refused token: one already used names its device and
/// when it was used.
fn used_token(e: RemoteError, token: &Token) -> anyhow::Error {
    match &e {
        RemoteError::Refused(r) if r.code == ErrorCode::Superseded => {
            let (sub, dev) = (&token.subscriber, &token.device);
            anyhow::anyhow!(
                "this token was already used to enrol device {dev:?} of {sub:?} on {} (or was \
                 replaced by a newer one); a token works once: ask the operator for a new one \
                 (`coffre-server device reissue {sub} {dev}`)",
                replaced_on(r)
            )
        }
        _ => e.into(),
    }
}

/// Unwraps the subscriber's key with the passphrase, or creates it (first device).
async fn unlock_or_create(remote: &Remote, args: &EnrolArgs) -> Result<MasterKey> {
    let file = args.passphrase_file.as_deref();
    if let Some(bytes) = remote.key().await? {
        return unlock(&bytes, file, &remote.subscriber);
    }
    let pass = passphrase::obtain(file, Purpose::Create, &remote.subscriber)?;
    let master = MasterKey::generate()?;
    let key_file = KeyFile::wrap(&master, pass.as_bytes(), KdfParams::DEFAULT)?;
    match remote.put_key(key_file.as_bytes().to_vec()).await {
        Ok(()) => Ok(master),
        Err(e) => match remote.key().await {
            // Another PC of the subscriber created the key meanwhile: use it.
            Ok(Some(bytes)) => unlock_with(&bytes, &pass, &remote.subscriber),
            _ => Err(e.into()),
        },
    }
}

/// Unwraps the subscriber's key; a mistyped passphrase on a terminal is
/// asked again (`passphrase::unlock`).
fn unlock(bytes: &[u8], file: Option<&Path>, subscriber: &str) -> Result<MasterKey> {
    let key_file = KeyFile::from_bytes(bytes).context("the key stored on the server is damaged")?;
    passphrase::unlock(file, subscriber, |pass| try_unwrap(&key_file, pass))
}

/// The key, or None for a wrong passphrase.
fn try_unwrap(key_file: &KeyFile, pass: &str) -> Result<Option<MasterKey>> {
    match key_file.unwrap_key(pass.as_bytes()) {
        Ok(master) => Ok(Some(master)),
        Err(coffre_core::Error::WrongPassphrase) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

fn unlock_with(bytes: &[u8], pass: &str, subscriber: &str) -> Result<MasterKey> {
    let key_file = KeyFile::from_bytes(bytes).context("the key stored on the server is damaged")?;
    try_unwrap(&key_file, pass)?.ok_or_else(|| anyhow::anyhow!(
        "wrong passphrase for {subscriber}: nothing was changed (ask the person who enrolled the structure's first PC)"
    ))
}
