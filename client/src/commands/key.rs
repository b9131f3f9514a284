//! `coffre key passwd`: change the structure's passphrase from an admin
//! device (the technician's laptop), for the day a volunteer who knew it
//! leaves.
//!
//! The master key does not change, only the key file that wraps it on the
//! server: the PCs already enrolled hold the key itself and keep working,
//! every snapshot stays readable, and from now on a new PC enrols with the
//! new passphrase only. In order, each step before anything is sent:
//!
//! 1. this PC must be an admin device, and the server speak protocol 4;
//! 2. the server's key file (`GetKey`), unlocked with the current
//!    passphrase, must hold this PC's own master key (from its
//!    credentials): a key file of another structure, or one a hostile
//!    server made up, is refused;
//! 3. the same master key is wrapped under the new passphrase (fresh salt
//!    and nonce, the KDF parameters of `enrol`), and the new file is opened
//!    again with the new passphrase to check it gives the same key;
//! 4. `ReplaceKey` sends it with BLAKE3 of the key file read in step 2: the
//!    server swaps only if that is still the one it holds, so of two
//!    technicians at once one wins and the other is told (`Conflict`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use coffre_core::{KdfParams, KeyFile, MasterKey};
use coffre_proto::Role;

use crate::cli::{KeyCommand, KeyPasswdArgs};
use crate::config::Installation;
use crate::credential;
use crate::passphrase::{self, Purpose};
use crate::remote::Remote;
use crate::session::runtime;

/// The protocol version that has `ReplaceKey`.
const REPLACE_KEY_VERSION: u16 = 4;

/// Runs `coffre key ...`.
pub fn run(config_path: &Path, cmd: &KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Passwd(args) => passwd(config_path, args),
    }
}

/// Runs `coffre key passwd`.
fn passwd(config_path: &Path, args: &KeyPasswdArgs) -> Result<()> {
    let inst = Installation::load(config_path)?;
    let rt = runtime()?;
    let (remote, creds) = credential::connect(&inst, &rt, &credential::AtStart::FailFast)?;
    let changed = rt.block_on(change(&remote, &creds.master, args));
    let subscriber = remote.subscriber.clone();
    rt.block_on(remote.close());
    changed?;
    outln!(
        "the passphrase of {subscriber} is changed: a new PC enrols with the new one, the old \
         one no longer opens the server's key file. The PCs already enrolled keep working as \
         they are."
    );
    outln!(
        "it does not change the key itself: revoke the devices of whoever leaves \
         (`coffre-server device revoke {subscriber} DEVICE`)"
    );
    Ok(())
}

/// Steps 1 to 4 of the module doc, on an open connection.
async fn change(remote: &Remote, mine: &MasterKey, args: &KeyPasswdArgs) -> Result<()> {
    let subscriber = &remote.subscriber;
    if remote.role != Role::Admin {
        bail!(
            "only an admin device may change the passphrase of {subscriber}; this PC ({}) is a \
             backup device: run `coffre key passwd` on the technician's laptop (enrolled with an \
             admin token). Nothing was changed",
            remote.device
        );
    }
    if remote.version < REPLACE_KEY_VERSION {
        bail!(
            "the server is too old to change the passphrase (it speaks protocol version {}, this \
             needs {REPLACE_KEY_VERSION}): upgrade the server (coffre-server) first. Nothing was \
             changed",
            remote.version
        );
    }
    let Some(current) = remote.key().await? else {
        bail!(
            "the server keeps no key file for {subscriber}, so there is no passphrase to change: \
             the first PC to enrol creates it"
        );
    };
    let key_file =
        KeyFile::from_bytes(&current).context("the key file stored on the server is damaged")?;
    let (master, old_pass) = passphrase::unlock(
        args.passphrase_file.as_deref(),
        subscriber,
        |pass| match key_file.unwrap_key(pass.as_bytes()) {
            Ok(master) => Ok(Some((master, pass.to_string()))),
            Err(coffre_core::Error::WrongPassphrase) => Ok(None),
            Err(other) => Err(other.into()),
        },
    )?;
    if master != *mine {
        bail!(
            "the server's key file does not hold this PC's key: the passphrase opened it, but it \
             is another key than the one this PC backs up with. Nothing was changed; check that \
             this configuration is the structure's (`coffre status`) and tell the server's \
             operator"
        );
    }
    let new_pass = passphrase::obtain(
        args.new_passphrase_file.as_deref(),
        Purpose::Change,
        subscriber,
    )?;
    if new_pass == old_pass {
        bail!("the new passphrase is the current one: nothing was changed");
    }
    let new_file = wrap_checked(&master, &new_pass)?;
    remote
        .replace_key(*blake3::hash(&current).as_bytes(), new_file)
        .await?;
    Ok(())
}

/// `master` wrapped under `pass` (fresh salt and nonce, the parameters of
/// `enrol`), opened again to check it gives `master` back before it is sent.
fn wrap_checked(master: &MasterKey, pass: &str) -> Result<Vec<u8>> {
    let wrapped = KeyFile::wrap(master, pass.as_bytes(), KdfParams::DEFAULT)?;
    let bytes = wrapped.as_bytes().to_vec();
    let back = KeyFile::from_bytes(&bytes)
        .and_then(|k| k.unwrap_key(pass.as_bytes()))
        .context("the new key file does not open (nothing was sent)")?;
    if back != *master {
        bail!("the new key file opens to another key (nothing was sent): report this bug");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_key_file_opens_with_the_new_passphrase_to_the_same_key_only() {
        let master = MasterKey::from_bytes([9; 32]);
        let a = wrap_checked(&master, "new passphrase").unwrap();
        let b = wrap_checked(&master, "new passphrase").unwrap();
        assert_ne!(a, b, "fresh salt and nonce each time");
        let file = KeyFile::from_bytes(&a).unwrap();
        assert_eq!(file.params(), KdfParams::DEFAULT);
        assert_eq!(file.unwrap_key(b"new passphrase").unwrap(), master);
        assert!(matches!(
            file.unwrap_key(b"old passphrase"),
            Err(coffre_core::Error::WrongPassphrase)
        ));
    }
}
