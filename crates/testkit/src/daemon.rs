//! The real daemon (`coffre_server::serve`) in this process on
//! 127.0.0.1, its SQLite and packs in a directory of the test, behind the
//! real TLS identity (self-signed, pinned by fingerprint): nothing mocked,
//! the way mini-redis's tests start its server on port 0.
//!
//! Two faces over one way of serving ([`serve`]):
//! - [`TestServer`], on the test's own tokio runtime (`#[tokio::test]`), on
//!   a data directory the test gives: started again on the same directory,
//!   it opens the same store and certificate (the end-to-end tests);
//! - [`Server`], with its own two-thread runtime, for tests that are plain
//!   `#[test]` functions running the `coffre` program: it makes its own
//!   temporary data directory, can keep its packs on any `PackStorage`, and
//!   `restart_after` stops it, lets the test change the directory, and
//!   serves it again at the same address with the same certificate (the
//!   client's tests).
//!
//! Stopping: the daemon stops when its stop channel is used or dropped; its
//! task is awaited so that the store is closed when `stop` returns.

use std::path::Path;
use std::sync::Arc;

use coffre_client::{Remote, RemoteError};
use coffre_proto::Token;
use coffre_server::{Identity, Limits, TransportLimits};
use coffre_store::{Clock, PackStorage, Role, Store, SystemClock};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::store::enrol;

/// Serves `store` with `identity` on `addr` ("127.0.0.1:0": any free port)
/// under `limits`, on runtime `rt`, until the returned sender is used or
/// dropped. Returns the address it listens on.
pub fn serve(
    rt: &tokio::runtime::Handle,
    identity: &Identity,
    addr: &str,
    store: Arc<Store>,
    limits: Limits,
) -> (String, oneshot::Sender<()>, JoinHandle<()>) {
    let endpoint = {
        let _guard = rt.enter();
        quinn::Endpoint::server(
            identity.server_config(&TransportLimits::default()).unwrap(),
            addr.parse().unwrap(),
        )
        .unwrap()
    };
    let addr = endpoint.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = rt.spawn(async move {
        coffre_server::serve(endpoint, store, limits, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop, task)
}

/// A server running on the test's runtime on 127.0.0.1, on a data directory.
#[derive(Debug)]
pub struct TestServer {
    pub addr: String,
    pub fingerprint: [u8; 32],
    pub store: Arc<Store>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(data: &Path) -> TestServer {
        Self::start_with(data, Limits::default()).await
    }

    /// Serves `data` (created with a new certificate in `data/tls`, or
    /// opened with the one there) under `limits`.
    pub async fn start_with(data: &Path, limits: Limits) -> TestServer {
        Self::start_with_clock(data, limits, Arc::new(SystemClock)).await
    }

    /// [`TestServer::start_with`] on a store whose time is `clock`'s (a
    /// `ManualClock` makes days pass for the daemon without a sleep).
    pub async fn start_with_clock(
        data: &Path,
        limits: Limits,
        clock: Arc<dyn Clock>,
    ) -> TestServer {
        let tls = data.join("tls");
        let local = PackStorage::Local;
        let (store, identity) = if tls.exists() {
            (
                Store::open_with_clock(data, &local, clock).unwrap(),
                Identity::load(&tls).unwrap(),
            )
        } else {
            let id = Identity::generate().unwrap();
            id.save(&tls).unwrap();
            (Store::create_with_clock(data, &local, clock).unwrap(), id)
        };
        let store = Arc::new(store);
        let rt = tokio::runtime::Handle::current();
        let (addr, stop, task) = serve(&rt, &identity, "127.0.0.1:0", store.clone(), limits);
        TestServer {
            addr,
            fingerprint: identity.fingerprint(),
            store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A new device of `subscriber` (added with `quota` if new): its secret.
    pub fn device(&self, subscriber: &str, quota: u64, device: &str, role: Role) -> [u8; 32] {
        enrol(&self.store, subscriber, quota, device, role)
    }

    /// The client's pinned connection, authenticated with `secret`.
    pub async fn connect(&self, secret: [u8; 32]) -> Result<Remote, RemoteError> {
        Remote::connect(&self.addr, self.fingerprint, secret).await
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

/// A real server in this process on 127.0.0.1, with its own runtime and
/// temporary data directory; stopped when dropped.
#[derive(Debug)]
pub struct Server {
    pub addr: String,
    pub fingerprint: [u8; 32],
    pub store: Arc<Store>,
    identity: Identity,
    rt: tokio::runtime::Runtime,
    /// Where its packs are.
    pub storage: PackStorage,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        Server::start_in(&std::env::temp_dir())
    }

    /// A server whose data directory is a new folder in `parent`.
    pub fn start_in(parent: &Path) -> Server {
        Server::start_with(parent, PackStorage::Local)
    }

    /// A server whose packs are kept on `storage`.
    pub fn start_on(storage: PackStorage) -> Server {
        Server::start_with(&std::env::temp_dir(), storage)
    }

    fn start_with(parent: &Path, storage: PackStorage) -> Server {
        let dir = tempfile::tempdir_in(parent).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let identity = Identity::generate().unwrap();
        let store = Arc::new(Store::create_with(dir.path(), &storage).unwrap());
        let mut server = Server {
            addr: "127.0.0.1:0".into(),
            fingerprint: identity.fingerprint(),
            store,
            identity,
            rt,
            storage,
            stop: None,
            task: None,
            dir,
        };
        server.serve();
        server
    }

    /// Starts the daemon on `self.addr` (port 0: any) with `self.store`.
    fn serve(&mut self) {
        let (addr, stop, task) = serve(
            self.rt.handle(),
            &self.identity,
            &self.addr,
            self.store.clone(),
            Limits::default(),
        );
        self.addr = addr;
        self.stop = Some(stop);
        self.task = Some(task);
    }

    /// Stops the daemon and closes the store, runs `f` on the data
    /// directory, then serves it again at the same address with the same
    /// certificate (the PCs' tokens stay valid).
    pub fn restart_after(&mut self, f: impl FnOnce(&Path)) {
        let storage = self.storage.clone();
        self.restart_on(storage, f);
    }

    /// [`Server::restart_after`], serving again with the packs on `storage`.
    pub fn restart_on(&mut self, storage: PackStorage, f: impl FnOnce(&Path)) {
        self.shut_down();
        // An empty store elsewhere holds the place while the real one is closed.
        let spare = tempfile::tempdir().unwrap();
        let store = std::mem::replace(
            &mut self.store,
            Arc::new(Store::create(spare.path()).unwrap()),
        );
        assert_eq!(Arc::strong_count(&store), 1, "the store is still in use");
        drop(store);
        f(self.dir.path());
        self.storage = storage;
        self.store = Arc::new(Store::open_with(self.dir.path(), &self.storage).unwrap());
        drop(spare);
        self.serve();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = self.rt.block_on(task);
        }
    }

    /// Its TLS identity (another server of the same service shares it).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A new device of `subscriber` (created with `quota` if new): its token.
    pub fn token(&self, subscriber: &str, quota: u64, device: &str, role: Role) -> String {
        let secret = enrol(&self.store, subscriber, quota, device, role);
        self.token_of(subscriber, device, secret)
    }

    /// A new token for an existing device, as `coffre-server device
    /// reissue` makes it: every earlier credential of the device is refused.
    pub fn reissue(&self, subscriber: &str, device: &str) -> String {
        let secret = self.store.reissue_device(subscriber, device).unwrap();
        self.token_of(subscriber, device, secret)
    }

    fn token_of(&self, subscriber: &str, device: &str, secret: [u8; 32]) -> String {
        Token {
            server: self.addr.clone(),
            fingerprint: self.fingerprint,
            subscriber: subscriber.into(),
            device: device.into(),
            secret,
        }
        .encode()
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}
