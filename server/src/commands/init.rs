//! `coffre-server init`: create a data directory.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use coffre_store::{PackStorage, Store};

use crate::config::{Config, DataDir, StorageConfig};
use crate::tls::Identity;

/// Creates the catalogue, the TLS identity and `config.toml` in `data`, with
/// the packs kept at `storage` (`local`, or an `s3://` URL).
pub fn run(
    data: &Path,
    listen: SocketAddr,
    public_address: Option<String>,
    storage: &str,
) -> Result<()> {
    let dir = DataDir::new(data);
    if dir.config_path().exists() {
        bail!(
            "{} is already a coffre data directory: nothing was changed",
            data.display()
        );
    }
    let storage_config = (storage != "local").then(|| StorageConfig {
        url: storage.to_string(),
        access_key_id: None,
        secret_access_key: None,
        capacity: None,
    });
    let pack_storage = match &storage_config {
        None => PackStorage::Local,
        Some(s) => s.pack_storage()?,
    };
    // Owner-only (0700; `Store::create` narrows a folder that existed).
    coffre_store::durable::create_dir_all(data)
        .with_context(|| format!("creating {}", data.display()))?;
    let public_address = public_address.unwrap_or_else(|| default_public_address(listen));
    Store::create_with(data, &pack_storage)?;
    let identity = Identity::generate()?;
    identity.save(&dir.tls_dir())?;
    let config = Config::with_storage(listen, public_address, storage_config);
    dir.write_config(&config)?;
    outln!("created the coffre data directory {}", data.display());
    outln!("  listens on       {} (UDP)", config.listen);
    outln!(
        "  clients dial     {} (change public_address in config.toml if that is wrong)",
        config.public_address
    );
    outln!("  packs            {}", pack_storage.describe());
    outln!(
        "  certificate      BLAKE3 {}",
        hex::encode(identity.fingerprint())
    );
    outln!(
        "  board's page     with `run --dashboard 127.0.0.1:8080`; password: dashboard_token in {}",
        dir.config_path().display()
    );
    outln!(
        "next: coffre-server subscriber add NAME --quota 50GiB --data {}",
        data.display()
    );
    Ok(())
}

fn default_public_address(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty());
        format!(
            "{}:{}",
            host.unwrap_or_else(|| "localhost".into()),
            listen.port()
        )
    } else {
        listen.to_string()
    }
}
