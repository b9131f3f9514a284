//! `coffre-server device add|list|revoke`.

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
            let dir = DataDir::new(&data.data);
            let config = dir.config()?;
            let identity =
                Identity::load(&dir.tls_dir()).context("reading the server certificate")?;
            let role = match role {
                RoleArg::Backup => Role::Backup,
                RoleArg::Admin => Role::Admin,
            };
            let secret = open_store(&data.data)?.add_device(&subscriber, &device, role)?;
            let token = Token {
                server: config.public_address.clone(),
                fingerprint: identity.fingerprint(),
                subscriber: subscriber.clone(),
                device: device.clone(),
                secret,
            };
            eprintln!("enrolled device {device} ({role}) of {subscriber}; on that PC run:");
            eprintln!();
            eprintln!("    coffre enrol TOKEN");
            eprintln!();
            eprintln!(
                "with this token (it is a password: send it privately; it works until revoked):"
            );
            println!("{}", token.encode()?);
        }
        DeviceCommand::List {
            subscriber,
            data,
            json,
        } => {
            let list = open_store(&data.data)?.list_devices(subscriber.as_deref())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "devices": list }))?
                );
            } else if list.is_empty() {
                println!("no devices: enrol one with `coffre-server device add SUBSCRIBER DEVICE`");
            } else {
                println!(
                    "{:<24} {:<20} {:<7} {:<8} last backup",
                    "subscriber", "device", "role", "state"
                );
                for d in list {
                    let state = if d.revoked.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<24} {:<20} {:<7} {:<8} {}",
                        d.subscriber,
                        d.name,
                        d.role,
                        state,
                        when(d.last_backup)
                    );
                }
            }
        }
        DeviceCommand::Revoke {
            subscriber,
            device,
            data,
        } => {
            open_store(&data.data)?.revoke_device(&subscriber, &device)?;
            println!("revoked {device} of {subscriber}: it is refused from its next connection; its backups stay");
        }
    }
    Ok(())
}
