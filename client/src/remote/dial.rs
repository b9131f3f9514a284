//! One dial: QUIC to the server with its certificate pinned, then hello and
//! `Auth` on the first stream. [`super::Remote::connect`] dials once; the
//! link (`reconnect.rs`) dials again after a loss.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coffre_proto::{ErrorCode, ErrorReply, Request, Response, Role};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::{read_response, RemoteError};

/// The TLS name the server's certificate carries.
const SERVER_NAME: &str = "coffre-server";
const ALPN: &[u8] = b"coffre/1";
/// How long to wait for the server to answer, unless `COFFRE_CONNECT_TIMEOUT`
/// (seconds) says otherwise (slow satellite links want more, tests less).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A connection that hears nothing from the server for this long is lost
/// (QUIC's idle timeout; the server's is the same, `server/src/tls.rs`, and
/// the shorter of the two rules). `COFFRE_IDLE_TIMEOUT` (seconds) overrides
/// it, so that the outage tests take seconds, not minutes. Keep-alives go
/// every quarter of it, so a quiet connection is never taken for a dead one.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Seconds from the environment variable `name`, if it holds a positive number.
fn seconds_from_env(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
        .map(Duration::from_secs_f64)
}

fn connect_timeout() -> Duration {
    seconds_from_env("COFFRE_CONNECT_TIMEOUT").unwrap_or(CONNECT_TIMEOUT)
}

/// QUIC's idle timeout on this PC ([`IDLE_TIMEOUT`] unless overridden).
pub(super) fn idle_timeout() -> Duration {
    seconds_from_env("COFFRE_IDLE_TIMEOUT").unwrap_or(IDLE_TIMEOUT)
}

/// Accepts exactly the certificate whose BLAKE3 fingerprint is pinned.
#[derive(Debug)]
struct Pinned {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if *blake3::hash(end_entity.as_ref()).as_bytes() == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "coffre: pinned certificate mismatch".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The QUIC client configuration that accepts only the certificate with this
/// BLAKE3 fingerprint (public for tests that speak raw bytes to the server).
pub fn client_config(fingerprint: [u8; 32]) -> Result<quinn::ClientConfig, RemoteError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| RemoteError::Connection(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint,
            provider,
        }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| RemoteError::Connection(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    let idle = idle_timeout();
    transport
        .max_idle_timeout(Some(idle.try_into().map_err(|_| {
            RemoteError::Connection(format!("idle timeout {idle:?} too long"))
        })?));
    transport.keep_alive_interval(Some(idle / 4));
    transport.stream_receive_window((16u32 << 20).into());
    transport.receive_window((32u32 << 20).into());
    transport.send_window(64 << 20);
    // Datagrams up to 16 KiB where the path allows it (see the server's tls.rs).
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(16 * 1024);
    transport.mtu_discovery_config(Some(mtu));
    coffre_transport::congestion(&mut transport);
    // A download limit narrows the receive window (limits/mod.rs).
    crate::limits::current().tune(&mut transport);
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// An authenticated connection, fresh from [`dial`].
#[derive(Debug)]
pub(super) struct Dialed {
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    pub subscriber: String,
    pub device: String,
    pub role: Role,
    pub version: u16,
}

/// Connects to `server` ("host:port"), checks its certificate against
/// `fingerprint`, and authenticates with the device `secret`.
pub(super) async fn dial(
    server: &str,
    fingerprint: [u8; 32],
    secret: [u8; 32],
) -> Result<Dialed, RemoteError> {
    let unreachable = |detail: String| RemoteError::Unreachable {
        server: server.to_string(),
        detail,
    };
    let addr: SocketAddr = tokio::net::lookup_host(server)
        .await
        .map_err(|e| unreachable(format!("cannot resolve the address: {e}")))?
        .next()
        .ok_or_else(|| unreachable("the name has no address".into()))?;
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let (mut endpoint, _) = coffre_transport::client_endpoint(bind)
        .map_err(|e| unreachable(format!("cannot open a UDP socket: {e}")))?;
    endpoint.set_default_client_config(client_config(fingerprint)?);
    let connecting = endpoint
        .connect(addr, SERVER_NAME)
        .map_err(|e| unreachable(e.to_string()))?;
    let timeout = connect_timeout();
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {} s",
                timeout.as_secs_f64()
            )))
        }
        Ok(Err(e)) if e.to_string().contains("pinned certificate mismatch") => {
            return Err(RemoteError::CertificateMismatch {
                server: server.to_string(),
            })
        }
        // The daemon refuses past max_connections (a QUIC
        // CONNECTION_REFUSED; older daemons closed with "server busy").
        Ok(Err(quinn::ConnectionError::ConnectionClosed(c)))
            if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED
                || c.reason.as_ref() == b"server busy" =>
        {
            return Err(RemoteError::Refused(ErrorReply {
                code: ErrorCode::Busy,
                message: "too many connections".into(),
                used: 0,
                quota: 0,
            }))
        }
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Ok(Ok(c)) => c,
    };
    // Hello and Auth on the first stream.
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| RemoteError::Connection(e.to_string()))?;
    let io = |e: coffre_proto::stream::ReadError| RemoteError::Connection(e.to_string());
    send.write_all(&coffre_proto::encode_hello())
        .await
        .map_err(|e| RemoteError::Connection(e.to_string()))?;
    coffre_proto::stream::write_request(&mut send, &Request::Auth { secret })
        .await
        .map_err(|e| RemoteError::Connection(e.to_string()))?;
    send.finish()
        .map_err(|e| RemoteError::Connection(e.to_string()))?;
    let mut hello = [0u8; coffre_proto::HELLO_LEN];
    recv.read_exact(&mut hello)
        .await
        .map_err(|e| RemoteError::Connection(e.to_string()))?;
    let response = read_response(&mut recv, None).await.map_err(io)?;
    let version = match coffre_proto::decode_hello(&hello) {
        Ok(v) => v,
        Err(e) => {
            return Err(RemoteError::Refused(ErrorReply {
                code: ErrorCode::UnsupportedVersion,
                message: e.to_string(),
                used: 0,
                quota: 0,
            }))
        }
    };
    match response {
        Response::AuthOk {
            subscriber,
            device,
            role,
        } => Ok(Dialed {
            endpoint,
            conn,
            subscriber,
            device,
            role,
            version,
        }),
        Response::Error(e) => Err(RemoteError::Refused(e)),
        other => Err(RemoteError::Connection(format!(
            "unexpected answer to Auth: {other:?}"
        ))),
    }
}
