//! `coffre enrol TOKEN`: join the server; the first PC of a subscriber
//! creates its key. The token is one-time: enrolment ends by replacing its
//! secret with the installation's own (`credential.rs`), and a token
//! already used is refused with the device and the date it was used.

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
    let token = Token::parse(args.token.trim()).map_err(|e| {
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
    println!(
        "enrolled {} of {} ({role}) with the server at {}",
        inst.config.device, inst.config.subscriber, inst.config.server
    );
    println!("configuration: {}", inst.config_path.display());
    for p in &inst.config.paths {
        println!("backs up:      {}", p.display());
    }
    println!("next: `coffre backup` now, and `coffre schedule install` for every night");
    Ok(())
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

fn unlock(bytes: &[u8], file: Option<&Path>, subscriber: &str) -> Result<MasterKey> {
    let pass = passphrase::obtain(file, Purpose::Unlock, subscriber)?;
    unlock_with(bytes, &pass, subscriber)
}

fn unlock_with(bytes: &[u8], pass: &str, subscriber: &str) -> Result<MasterKey> {
    let key_file = KeyFile::from_bytes(bytes).context("the key stored on the server is damaged")?;
    key_file.unwrap_key(pass.as_bytes()).map_err(|e| match e {
        coffre_core::Error::WrongPassphrase => anyhow::anyhow!(
            "wrong passphrase for {subscriber}: nothing was changed (ask the person who enrolled the structure's first PC)"
        ),
        other => other.into(),
    })
}
