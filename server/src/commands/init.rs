//! `coffre-server init`: create a data directory.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use coffre_store::{PackStorage, Store};

use crate::config::{Config, DataDir, StorageConfig};
use crate::tls::Identity;

/// What `init` is asked for.
#[derive(Debug)]
pub struct Options<'a> {
    /// Where the daemon listens.
    pub listen: SocketAddr,
    /// Where PCs dial (written into tokens).
    pub public_address: Option<String>,
    /// `local`, or an `s3://` URL.
    pub storage: &'a str,
    /// Join the bucket's service as this frontend.
    pub frontend: Option<&'a str>,
    /// Take the TLS identity of this folder (another frontend's `tls/`).
    pub identity_from: Option<&'a Path>,
}

/// Creates the catalogue, the TLS identity and `config.toml` in `data`, with
/// the packs kept at `storage` (`local`, or an `s3://` URL); as a frontend
/// of the bucket's service if asked.
pub fn run(data: &Path, options: Options<'_>) -> Result<()> {
    let Options {
        listen,
        public_address,
        storage,
        frontend,
        identity_from,
    } = options;
    if frontend.is_some() && storage == "local" {
        bail!(
            "a frontend keeps everything in the service's bucket: give it with \
             --storage s3://BUCKET?endpoint=URL&region=REGION (nothing was created)"
        );
    }
    let identity = match identity_from {
        Some(from) => Identity::load(from).with_context(|| {
            format!(
                "reading the identity to share from {} (another frontend's DATA/tls)",
                from.display()
            )
        })?,
        None => Identity::generate()?,
    };
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
    let store = Store::create_with(data, &pack_storage)?;
    let service = match frontend {
        Some(name) => Some(store.join_service(name, Some(&public_address))?),
        None => None,
    };
    drop(store);
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
    if let Some(s) = &service {
        outln!(
            "  frontend         {:?}, number {} (its subscribers' ids start at {})",
            s.frontend,
            s.number,
            s.number * 1_000_000_000 + 1
        );
    }
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
