//! `coffre-server device add|list|reissue|revoke`. A token is one-time: the
//! PC's `coffre enrol` replaces its secret with its own (the store's
//! `credentials` module), so `list` says whether a token still works and
//! how many copies of a device were refused.

use std::path::Path;

use anyhow::{Context, Result};
use coffre_proto::Token;
use coffre_store::Role;

use super::{open_store, when};
use crate::cli::{DeviceCommand, RoleArg};
use crate::config::DataDir;
use crate::tls::Identity;

/// Runs a `device` subcommand.
pub fn run(cmd: DeviceCommand) -> Result<()> {
    match cmd {
        DeviceCommand::Add {
            subscriber,
            device,
            role,
            data,
        } => {
            let role = match role {
                RoleArg::Backup => Role::Backup,
                RoleArg::Admin => Role::Admin,
            };
            // The server's address and certificate first: an unreadable one
            // fails before the device is added.
            let origin = Origin::read(&data.data)?;
            let secret = open_store(&data.data)?.add_device(&subscriber, &device, role)?;
            errln!("enrolled device {device} ({role}) of {subscriber}; on that PC run:");
            errln!();
            errln!("    coffre enrol TOKEN");
            errln!();
            origin.print_token(subscriber, device, secret)?;
        }
        DeviceCommand::Reissue {
            subscriber,
            device,
            data,
        } => {
            let origin = Origin::read(&data.data)?;
            let secret = open_store(&data.data)?.reissue_device(&subscriber, &device)?;
            errln!(
                "new token for device {device} of {subscriber}: its backups and history stay; \
                 every earlier credential of it is refused from now on. On the PC run:"
            );
            errln!();
            errln!("    coffre enrol TOKEN --force");
            errln!();
            origin.print_token(subscriber, device, secret)?;
        }
        DeviceCommand::List {
            subscriber,
            data,
            json,
        } => {
            let list = open_store(&data.data)?.list_devices(subscriber.as_deref())?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "devices": list }))?
                );
            } else if list.is_empty() {
                outln!("no devices: enrol one with `coffre-server device add SUBSCRIBER DEVICE`");
            } else {
                outln!(
                    "{:<24} {:<20} {:<7} {:<8} last backup",
                    "subscriber",
                    "device",
                    "role",
                    "state"
                );
                for d in list {
                    let state = match (d.revoked, d.token_live) {
                        (Some(_), _) => "revoked",
                        (None, true) => "token",
                        (None, false) => "active",
                    };
                    let refused = match d.clone_refusals {
                        0 => String::new(),
                        n => format!("  refused copies: {n}, last {}", when(d.last_clone_refusal)),
                    };
                    outln!(
                        "{:<24} {:<20} {:<7} {:<8} {}{refused}",
                        d.subscriber,
                        d.name,
                        d.role,
                        state,
                        when(d.last_backup)
                    );
                }
                outln!(
                    "state token: its enrolment token still works (not enrolled yet, or a client \
                     older than protocol 3); refused copies: connections with a replaced \
                     credential of the device (a cloned disk, a token pasted twice: \
                     `device reissue` if the real PC is the one refused)"
                );
            }
        }
        DeviceCommand::Revoke {
            subscriber,
            device,
            data,
        } => {
            open_store(&data.data)?.revoke_device(&subscriber, &device)?;
            outln!("revoked {device} of {subscriber}: it is refused from its next connection; its backups stay");
        }
    }
    Ok(())
}

/// Where a token sends the PC: the server's public address and the
/// fingerprint of its certificate.
struct Origin {
    server: String,
    fingerprint: [u8; 32],
}

impl Origin {
    fn read(data: &Path) -> Result<Origin> {
        let dir = DataDir::new(data);
        let config = dir.config()?;
        let identity = Identity::load(&dir.tls_dir()).context("reading the server certificate")?;
        Ok(Origin {
            server: config.public_address,
            fingerprint: identity.fingerprint(),
        })
    }

    /// Prints the enrolment token of `device` of `subscriber` with
    /// `secret` (on stdout: the only line there) and what it is (on stderr).
    fn print_token(self, subscriber: String, device: String, secret: [u8; 32]) -> Result<()> {
        let token = Token {
            server: self.server,
            fingerprint: self.fingerprint,
            subscriber,
            device,
            secret,
        };
        errln!(
            "with this token (it is a password: send it privately; it is one-time: `coffre \
             enrol` consumes it, and the PC then holds its own credential):"
        );
        outln!("{}", token.encode()?);
        Ok(())
    }
}
