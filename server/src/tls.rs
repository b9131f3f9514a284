//! The server's TLS identity: a self-signed certificate made at `init`, pinned
//! by clients through the fingerprint in their enrolment token (no CA, no
//! hostname to get right: the token says which certificate is the server).
//!
//! Fingerprint = BLAKE3 of the certificate's DER bytes; an operator can check
//! it by hand with `b3sum DATA/tls/cert.der`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The TLS name in the certificate; clients connect with it whatever the address.
pub const SERVER_NAME: &str = "coffre-server";
/// ALPN protocol id.
pub const ALPN: &[u8] = b"coffre/1";

/// A certificate and its private key, DER.
#[derive(Clone)]
pub struct Identity {
    /// The certificate.
    pub cert: Vec<u8>,
    /// PKCS#8 private key.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Identity(fingerprint {})",
            hex::encode(self.fingerprint())
        )
    }
}

impl Identity {
    /// A new self-signed certificate for [`SERVER_NAME`].
    pub fn generate() -> Result<Self> {
        let c = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
            .context("generating the TLS certificate")?;
        Ok(Identity {
            cert: c.cert.der().to_vec(),
            key: c.signing_key.serialize_der(),
        })
    }

    /// Reads `cert.der` and `key.der` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .with_context(|| format!("reading {}", dir.join(name).display()))
        };
        Ok(Identity {
            cert: read("cert.der")?,
            key: read("key.der")?,
        })
    }

    /// Writes `cert.der` and `key.der` into `dir`, owner-only from creation
    /// (0600, the folder 0700: the key is never readable by another user,
    /// not even for an instant).
    pub fn save(&self, dir: &Path) -> Result<()> {
        coffre_store::durable::create_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        coffre_store::write_atomic(&dir.join("cert.der"), &self.cert)?;
        coffre_store::write_atomic(&dir.join("key.der"), &self.key)?;
        Ok(())
    }

    /// What clients pin.
    pub fn fingerprint(&self) -> [u8; 32] {
        fingerprint(&self.cert)
    }

    /// The QUIC server configuration: TLS 1.3 with this identity, and the
    /// transport limits of the daemon.
    pub fn server_config(&self, limits: &TransportLimits) -> Result<quinn::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.cert.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone())),
            )
            .context("loading the TLS certificate")?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(limits.server_transport()));
        Ok(config)
    }
}

/// BLAKE3 of a certificate's DER bytes.
pub fn fingerprint(cert_der: &[u8]) -> [u8; 32] {
    *blake3::hash(cert_der).as_bytes()
}

/// QUIC transport settings shared by server and client.
#[derive(Debug, Clone)]
pub struct TransportLimits {
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Requests in flight per connection.
    pub max_streams: u32,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            idle_timeout: Duration::from_secs(60),
            max_streams: 64,
        }
    }
}

impl TransportLimits {
    /// The quinn transport configuration: windows sized for 4 MiB blobs on a
    /// fast link, idle timeout, stream limit.
    pub fn transport(&self) -> quinn::TransportConfig {
        let mut t = quinn::TransportConfig::default();
        t.max_idle_timeout(Some(
            self.idle_timeout
                .try_into()
                .expect("idle timeout fits QUIC's range"),
        ));
        t.keep_alive_interval(Some(self.idle_timeout / 3));
        t.max_concurrent_bidi_streams(self.max_streams.into());
        t.max_concurrent_uni_streams(0u32.into());
        t.stream_receive_window((16u32 << 20).into());
        t.receive_window((64u32 << 20).into());
        t.send_window(16 << 20);
        t.mtu_discovery_config(Some(mtu_discovery()));
        coffre_transport::congestion(&mut t);
        t
    }
}

/// The server's receive window per stream ([`TransportLimits::server_transport`]).
pub const SERVER_STREAM_WINDOW: u32 = 512 * 1024;

impl TransportLimits {
    /// The server's transport: [`TransportLimits::transport`] with receive
    /// windows that bound what QUIC buffers for a connection the daemon is
    /// not reading (its requests waiting for the memory budget, daemon
    /// `budget` module): [`SERVER_STREAM_WINDOW`] per stream and
    /// `max_streams` times that per connection (32 MiB by default). That
    /// product is what makes the budget deadlock-free: streams left unread
    /// can never take the whole connection window, so a request that holds
    /// its reservation always receives its bytes. 512 KiB per stream still
    /// carries 25 MB/s per stream at a 20 ms round trip, 8 uploads in flight
    /// 200 MB/s.
    pub fn server_transport(&self) -> quinn::TransportConfig {
        let mut t = self.transport();
        t.stream_receive_window(SERVER_STREAM_WINDOW.into());
        t.receive_window(
            (u64::from(SERVER_STREAM_WINDOW) * u64::from(self.max_streams))
                .try_into()
                .expect("the window fits QUIC's range"),
        );
        t
    }
}

/// Path MTU discovery up to 16 KiB datagrams: found on loopback and jumbo-frame
/// LANs (far fewer packets to encrypt and send), while ordinary 1500-byte paths
/// settle at quinn's usual 1452 after a few lost probes.
pub fn mtu_discovery() -> quinn::MtuDiscoveryConfig {
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(16 * 1024);
    mtu
}
