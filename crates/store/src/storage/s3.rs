//! Packs on an S3-compatible object store (Garage, MinIO, AWS S3), through
//! the `object_store` crate: no hand-written S3 client.
//!
//! The store is synchronous and its callers are threads (tokio's blocking
//! pool in the daemon, the main thread of an admin command), so the backend
//! owns a small tokio runtime and every call spawns its future there and
//! waits on a channel. That never nests runtimes: it works from
//! `spawn_blocking`, from a plain thread, and even (blocking it) from an
//! async task. The runtime is shut down in the background when the store is
//! dropped, which is allowed anywhere.
//!
//! Every request has a connect timeout (5 s) and an overall timeout (120 s);
//! transient failures (connection refused or reset, 5xx, throttling) are
//! retried with exponential back-off for at most 20 s. So a store that is
//! down gives [`Error::ObjectStore`] ("the object store at ... is unreachable
//! or refused ...") within about half a minute, never a hang, and nothing
//! local is changed: the pack's temporary file is removed and the pack never
//! enters the catalogue.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

use super::PackObject;
use crate::error::{Error, Result};
use crate::layout::PACK_SUFFIX;

/// Packs at least this large are uploaded in parts (16 MiB).
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// The size of each part of a multipart upload (8 MiB; S3 wants at least 5).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// How to reach a bucket. Built from `s3://BUCKET[/PREFIX]?endpoint=URL&region=R`
/// and the credentials; its `Debug` never shows the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside the bucket ("" for none; no leading or trailing
    /// slash), so that several servers may share one bucket.
    pub prefix: String,
    /// The S3 API's URL (`http://127.0.0.1:3900` for a local Garage); `None`
    /// for AWS itself.
    pub endpoint: Option<String>,
    /// The region the store expects in signatures (`garage` for Garage's
    /// default configuration).
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key (never printed).
    pub secret_access_key: String,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("url", &self.url())
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl S3Config {
    /// Parses `s3://BUCKET[/PREFIX][?endpoint=URL][&region=REGION]`; the
    /// credentials come from elsewhere (config file or environment).
    pub fn parse(url: &str, access_key_id: &str, secret_access_key: &str) -> Result<S3Config> {
        let bad = |why: &str| {
            Error::BadRequest(format!(
                "storage {url:?}: {why} (write it as s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT&region=REGION)"
            ))
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("an object store URL starts with s3://"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(bad("the bucket name is missing"));
        }
        let mut config = S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", _)) if config.endpoint.is_some() => {
                    return Err(bad(
                        "endpoint is given twice; coffre talks to one S3 endpoint: for a \
                         cluster, give one node's (each frontend its own, nearest node) or a \
                         load balancer's",
                    ))
                }
                Some(("endpoint", v)) if !v.is_empty() => config.endpoint = Some(v.to_string()),
                Some(("region", v)) if !v.is_empty() => config.region = v.to_string(),
                _ => return Err(bad(&format!("unknown or empty parameter {pair:?}"))),
            }
        }
        Ok(config)
    }

    /// The URL, without credentials: `s3://bucket/prefix?endpoint=...&region=...`.
    pub fn url(&self) -> String {
        let mut url = format!("s3://{}", self.bucket);
        if !self.prefix.is_empty() {
            url.push('/');
            url.push_str(&self.prefix);
        }
        url.push_str(&format!("?region={}", self.region));
        if let Some(e) = &self.endpoint {
            url.push_str(&format!("&endpoint={e}"));
        }
        url
    }

    /// Where requests go, for messages.
    fn endpoint_for_people(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region))
    }
}

/// A bucket holding packs, and the runtime its requests run on.
pub(super) struct S3Packs {
    config: S3Config,
    store: Arc<AmazonS3>,
    rt: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for S3Packs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Packs")
            .field("config", &self.config)
            .finish()
    }
}

impl Drop for S3Packs {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl S3Packs {
    pub(super) fn new(config: S3Config) -> Result<S3Packs> {
        if config.access_key_id.is_empty() || config.secret_access_key.is_empty() {
            return Err(Error::BadRequest(format!(
                "no credentials for {}: set access_key_id and secret_access_key under [storage] \
                 in config.toml, or COFFRE_S3_ACCESS_KEY_ID and COFFRE_S3_SECRET_ACCESS_KEY \
                 (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in the environment",
                config.url()
            )));
        }
        // HTTPS to a real S3 uses rustls with the same `ring` provider as
        // coffre's QUIC; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(200),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: 6,
                retry_timeout: Duration::from_secs(20),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120))
                    .with_allow_http(
                        config
                            .endpoint
                            .as_deref()
                            .is_some_and(|e| e.starts_with("http://")),
                    ),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let store = builder.build().map_err(|e| Error::ObjectStore {
            location: config.url(),
            action: "configuring",
            message: e.to_string(),
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("coffre-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::ObjectStore {
                location: config.url(),
                action: "starting the object store's client",
                message: e.to_string(),
            })?;
        Ok(S3Packs {
            config,
            store: Arc::new(store),
            rt: Some(rt),
        })
    }

    /// The object's path in the bucket.
    fn path(&self, key: &str) -> ObjectPath {
        if self.config.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.config.prefix))
        }
    }

    pub(super) fn describe(&self, key: &str) -> String {
        format!("s3://{}/{}", self.config.bucket, self.path(key))
    }

    fn error(&self, action: &'static str, key: &str, e: impl fmt::Display) -> Error {
        Error::ObjectStore {
            location: format!(
                "{} ({})",
                self.config.endpoint_for_people(),
                self.describe(key)
            ),
            action,
            message: e.to_string(),
        }
    }

    /// Runs a request on the backend's runtime and waits for it.
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Option<T> {
        let rt = self.rt.as_ref()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().ok()
    }

    /// Runs a request that returns an object_store result.
    fn call<T: Send + 'static>(
        &self,
        action: &'static str,
        key: &str,
        fut: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> Result<std::result::Result<T, object_store::Error>> {
        self.run(fut)
            .ok_or_else(|| self.error(action, key, "the object store's client was stopped"))
    }

    /// Uploads the local file `tmp` whole under `key`; returns once the store
    /// acknowledged it.
    pub(super) fn upload(&self, key: &str, tmp: &Path) -> Result<()> {
        let action = "storing";
        let mut file = File::open(tmp).map_err(|e| Error::io(tmp, e))?;
        let size = file.metadata().map_err(|e| Error::io(tmp, e))?.len();
        let path = self.path(key);
        if size < MULTIPART_THRESHOLD {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes)
                .map_err(|e| Error::io(tmp, e))?;
            let store = self.store.clone();
            return self
                .call(action, key, async move {
                    store.put(&path, PutPayload::from(bytes)).await
                })?
                .map(|_| ())
                .map_err(|e| self.error(action, key, e));
        }
        let store = self.store.clone();
        let p = path.clone();
        let mut upload = self
            .call(action, key, async move { store.put_multipart(&p).await })?
            .map_err(|e| self.error(action, key, e))?;
        let mut sent = 0u64;
        let mut failed = None;
        while sent < size {
            let mut part = vec![0u8; PART_SIZE.min((size - sent) as usize)];
            if let Err(e) = file.read_exact(&mut part) {
                failed = Some(Error::io(tmp, e));
                break;
            }
            sent += part.len() as u64;
            let fut = upload.put_part(PutPayload::from(part));
            match self.call(action, key, fut) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failed = Some(self.error(action, key, e));
                    break;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let finished = self.run(async move {
            let result = match failed {
                None => upload.complete().await.map(|_| ()).map_err(Err),
                Some(e) => {
                    let _ = upload.abort().await;
                    Err(Ok(e))
                }
            };
            result
        });
        match finished {
            Some(Ok(())) => Ok(()),
            Some(Err(Ok(e))) => Err(e),
            Some(Err(Err(e))) => Err(self.error(action, key, e)),
            None => Err(self.error(action, key, "the object store's client was stopped")),
        }
    }

    pub(super) fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Option<Vec<u8>>> {
        let (store, path) = (self.store.clone(), self.path(key));
        let end = offset.saturating_add(len);
        match self.call("reading", key, async move {
            store.get_range(&path, offset..end).await
        })? {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("reading", key, e)),
        }
    }

    pub(super) fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let (store, path) = (self.store.clone(), self.path(key));
        let got = self.call("reading", key, async move {
            match store.get(&path).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            }
        })?;
        match got {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("reading", key, e)),
        }
    }

    pub(super) fn exists(&self, key: &str) -> Result<bool> {
        let (store, path) = (self.store.clone(), self.path(key));
        match self.call("looking up", key, async move { store.head(&path).await })? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("looking up", key, e)),
        }
    }

    pub(super) fn remove(&self, key: &str) -> Result<()> {
        let (store, path) = (self.store.clone(), self.path(key));
        match self.call("deleting", key, async move { store.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("deleting", key, e)),
        }
    }

    /// The packs under `dir` (a key ending in `/`), every page of the listing.
    pub(super) fn list(&self, dir: &str) -> Result<Vec<PackObject>> {
        Ok(self
            .list_objects(dir)?
            .into_iter()
            .filter_map(|mut o| {
                let name = o.name.strip_suffix(PACK_SUFFIX)?.to_string();
                o.name = name;
                Some(o)
            })
            .collect())
    }

    /// The objects directly under `dir` (a key ending in `/`), by file name,
    /// without temporary ones (a leading dot); every page of the listing.
    pub(super) fn list_objects(&self, dir: &str) -> Result<Vec<PackObject>> {
        let (store, path) = (self.store.clone(), self.path(dir.trim_end_matches('/')));
        let listed = self
            .call("listing", dir, async move {
                store.list_with_delimiter(Some(&path)).await
            })?
            .map_err(|e| self.error("listing", dir, e))?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|o| {
                let name = o.location.filename()?.to_string();
                (!name.starts_with('.')).then(|| PackObject {
                    name,
                    size: o.size,
                    modified: o.last_modified.timestamp(),
                })
            })
            .collect())
    }

    /// Stores `bytes` under `key` (one PUT, replacing the object); returns
    /// once the store acknowledged it.
    pub(super) fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let (store, path) = (self.store.clone(), self.path(key));
        self.call("storing", key, async move {
            store.put(&path, PutPayload::from(bytes)).await
        })?
        .map(|_| ())
        .map_err(|e| self.error("storing", key, e))
    }

    /// Checks that the bucket answers and the credentials are accepted (a
    /// listing of the prefix).
    pub(super) fn check(&self) -> Result<()> {
        let store = self.store.clone();
        let path =
            (!self.config.prefix.is_empty()).then(|| ObjectPath::from(self.config.prefix.as_str()));
        self.call("checking", "", async move {
            store.list_with_delimiter(path.as_ref()).await
        })?
        .map(|_| ())
        .map_err(|e| self.error("checking", "", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_debug_never_shows_the_secret() {
        let c = S3Config::parse(
            "s3://packs/asso/one/?endpoint=http://127.0.0.1:3900&region=garage",
            "GK123",
            "very-secret",
        )
        .unwrap();
        assert_eq!(c.bucket, "packs");
        assert_eq!(c.prefix, "asso/one");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(c.region, "garage");
        assert_eq!(
            c.url(),
            "s3://packs/asso/one?region=garage&endpoint=http://127.0.0.1:3900"
        );
        assert!(!format!("{c:?}").contains("very-secret"));
        assert!(!c.url().contains("very-secret"));
        let plain = S3Config::parse("s3://b", "k", "s").unwrap();
        assert_eq!((plain.prefix.as_str(), plain.endpoint), ("", None));
        for bad in [
            "http://b",
            "s3://",
            "s3://b?endpoint=",
            "s3://b?colour=red",
            "s3://b?endpoint=http://n1:3900&endpoint=http://n2:3900",
        ] {
            let e = S3Config::parse(bad, "k", "s").unwrap_err();
            assert!(e.to_string().contains("s3://BUCKET"), "{bad}: {e}");
        }
    }

    #[test]
    fn missing_credentials_say_where_to_put_them() {
        let c = S3Config::parse("s3://b?endpoint=http://127.0.0.1:9", "", "").unwrap();
        let e = S3Packs::new(c).unwrap_err();
        assert!(e.to_string().contains("COFFRE_S3_ACCESS_KEY_ID"), "{e}");
    }

    #[test]
    fn a_store_that_is_down_is_a_clear_error_within_bounded_time() {
        // Nothing listens on port 9 of loopback: connection refused, retried,
        // then reported, from a plain thread and from inside a runtime.
        let c = S3Config::parse(
            "s3://b?endpoint=http://127.0.0.1:9&region=garage",
            "k",
            "secret-xyz",
        )
        .unwrap();
        let packs = Arc::new(S3Packs::new(c).unwrap());
        let started = std::time::Instant::now();
        let e = packs
            .read_range("subscribers/1/packs/x.pack", 0, 10)
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("http://127.0.0.1:9") && text.contains("unreachable"),
            "{text}"
        );
        assert!(!text.contains("secret-xyz"), "{text}");
        assert!(e.is_retryable());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let p = packs.clone();
        let from_blocking = rt
            .block_on(async move { tokio::task::spawn_blocking(move || p.exists("k")).await })
            .unwrap();
        assert!(matches!(from_blocking, Err(Error::ObjectStore { .. })));
        drop(rt);
        // Dropping the store inside a runtime does not panic either.
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move { drop(packs) });
    }
}
