//! The link: the connection a [`super::Remote`] sends on, and how it comes
//! back when the network drops (issue 19, "outages cost their length").
//!
//! ```text
//!  request ─► current connection (generation g) ─► lost? ─► recover(g) ─► same request again
//!                                                             │ one redial for all the requests
//!                                                             │ that met the loss of generation g
//!                                                             ▼
//!                       dial, back off 0.5 s doubling to 10 s (jittered), for up to the patience
//!                       ├─► back: generation g+1, "link back after N s"
//!                       └─► patience spent, or refused: the link is down, every request fails
//! ```
//!
//! - **What is a loss.** The connection timed out (QUIC's idle timeout: no
//!   packet from the server for 60 s), was reset (the server restarted and
//!   forgot it), or the server closed it on its way down. A refusal
//!   (quota, revoked device, superseded credential) or a stream the server
//!   stopped is never a loss: retrying would not change its answer.
//! - **One redial.** Every request in flight meets the same loss at once;
//!   each calls [`Link::recover`] with the generation it used. The first
//!   dials under `redial`; the others wait for it and, seeing a newer
//!   generation, send again at once.
//! - **Which requests are sent again**: those the caller marks repeatable
//!   (`Remote::call` decides by type: asking, fetching, storing chunks,
//!   vouching, committing; never rolling a credential, replacing the key or
//!   forgetting a snapshot). A chunk stored twice is stored once (the server
//!   answers "had it"), a manifest committed twice is one snapshot (the
//!   store answers with the existing id), so a request whose answer was lost
//!   is harmless to repeat.
//! - **The secret.** Credentials roll at every connect (`credential.rs`):
//!   the link authenticates with the secret it was last given
//!   ([`Link::set_secret`], after the roll) or, for an installation, the
//!   one its credentials file holds now, read under its credentials lock, so
//!   a `coffre status` that rolled meanwhile does not lock this run out.
//! - **Told.** A [`LinkEvent`] goes to the notice callback when the link is
//!   lost and when it is back; the command decides where it shows (stderr,
//!   above the progress bar, the scheduled run's log).
//! - **Down from the start.** A backup, restore or dump that starts while
//!   the link is down (the router still rebooting at 02:00) waits for it
//!   the same way: `credential::connect` dials through [`keep_trying`],
//!   the loop [`Link::recover`] runs, with the same back-off and patience,
//!   and tells [`LinkEvent::Down`] then [`LinkEvent::Back`]. Quick
//!   commands (`snapshots`, `status`...) fail at once.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffre_proto::{ErrorCode, ErrorReply};

use super::dial::{dial, Dialed};
use super::RemoteError;

/// The back-off of the first redial; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(500);
/// The longest wait between two redials: a link back after a router's
/// reboot is found within 10 s, and a PC does not knock more than six
/// times a minute.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// What the person (or the log) is told about the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The connection was lost; the link is being dialled again for up to
    /// `patience`.
    Lost {
        /// What happened ("timed out").
        cause: String,
        /// How long the run keeps trying.
        patience: Duration,
    },
    /// The link was down when the command started (the first dial got no
    /// answer); it is being dialled again for up to `patience`.
    Down {
        /// What happened ("no answer within 15 s").
        cause: String,
        /// How long the command keeps trying.
        patience: Duration,
    },
    /// The link is back, after `after` of trying.
    Back {
        /// From the loss to the new connection.
        after: Duration,
    },
}

impl fmt::Display for LinkEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkEvent::Lost { cause, patience } => write!(
                f,
                "link lost ({cause}), retrying (for up to {})",
                span(*patience)
            ),
            LinkEvent::Down { cause, patience } => write!(
                f,
                "link down ({cause}), retrying (for up to {})",
                span(*patience)
            ),
            LinkEvent::Back { after } => write!(f, "link back after {} s", after.as_secs()),
        }
    }
}

/// A duration for people: `90 s`, `10 min`.
pub(crate) fn span(d: Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        format!("{} s", d.as_secs_f64().round())
    } else {
        format!("{} min", (s + 30) / 60)
    }
}

/// Where [`LinkEvent`]s go.
pub(crate) type Notice = Arc<dyn Fn(&LinkEvent) + Send + Sync>;

/// Where a redial reads the device's current secret (the installation's
/// credentials file, `credential.rs`). Blocking: it runs on the blocking
/// pool. Returns the secret and a guard held while authenticating with it
/// (the credentials lock).
pub(crate) trait SecretSource: Send + Sync {
    fn current(&self) -> Result<(Box<dyn Send>, [u8; 32]), String>;
}

/// A random back-off: each wait is between half and all of the current
/// step, and the step doubles up to a cap, so that PCs cut off together do
/// not come back together.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    step: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { step: first, max }
    }

    /// The next wait.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let mut r = [0u8; 2];
        let millis = self.step.as_millis() as u64;
        let jitter = match getrandom::fill(&mut r) {
            Ok(()) => u64::from(u16::from_le_bytes(r)) % (millis / 2 + 1),
            Err(_) => 0,
        };
        let wait = Duration::from_millis(millis / 2 + jitter);
        self.step = (self.step * 2).min(self.max);
        wait
    }
}

/// Why [`keep_trying`] stopped without a connection.
#[derive(Debug)]
pub(crate) enum GaveUp<E> {
    /// A failure that trying again would not change (a refusal, another
    /// certificate than the pinned one).
    Final(E),
    /// The patience was spent; the last attempt's failure.
    Spent(E),
}

/// Runs `attempt` until it succeeds, fails in a way `again` does not pass,
/// or no next attempt would start within `patience` (from the first): the
/// waits between attempts are a [`Backoff`] of 0.5 s doubling to 10 s. Each
/// failure tried again is given to `retrying` first (the first one's
/// notice). The one loop of a redial ([`Link::recover`]) and of a first
/// dial that waits for the link (`credential::connect`); a zero patience
/// makes one attempt.
pub(crate) async fn keep_trying<T, E, F, Fut>(
    patience: Duration,
    again: impl Fn(&E) -> bool,
    mut attempt: F,
    mut retrying: impl FnMut(&E),
) -> Result<T, GaveUp<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = tokio::time::Instant::now();
    let mut backoff = Backoff::new(FIRST_WAIT, MAX_WAIT);
    loop {
        let error = match attempt().await {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        if !again(&error) {
            return Err(GaveUp::Final(error));
        }
        let wait = backoff.next_wait();
        if start.elapsed() + wait >= patience {
            return Err(GaveUp::Spent(error));
        }
        retrying(&error);
        tokio::time::sleep(wait).await;
    }
}

/// Whether a first dial's failure is the link's, worth waiting for: no
/// answer (or no address: the router is not up yet), or a handshake that
/// broke. A refusal (revoked, superseded, a full quota), a busy server
/// (`credential::patiently` waits for it on its own terms) or another
/// certificate than the pinned one is final.
pub(crate) fn link_down(e: &RemoteError) -> bool {
    matches!(
        e,
        RemoteError::Unreachable { .. } | RemoteError::Connection(_)
    )
}

/// The connection now, and how to get another.
pub(super) struct Link {
    server: String,
    fingerprint: [u8; 32],
    /// The protocol version of the first connection: a redial must find the
    /// same (the run chose its requests by it).
    version: u16,
    state: Mutex<State>,
    /// Held by the one request that redials.
    redial: tokio::sync::Mutex<()>,
    secret: Mutex<[u8; 32]>,
    source: Mutex<Option<Arc<dyn SecretSource>>>,
    /// How long to keep dialling after a loss; zero: never redial.
    patience: Mutex<Duration>,
    notice: Mutex<Notice>,
    outages: AtomicU64,
}

struct State {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    generation: u64,
    /// Set when the link could not come back: every request fails with it.
    down: Option<RemoteError>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap();
        f.debug_struct("Link")
            .field("server", &self.server)
            .field("generation", &state.generation)
            .field("down", &state.down)
            .field("outages", &self.outages.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// How a connection ended, for a request that failed on it.
pub(super) enum Ended {
    /// Still open: the request failed on its own (a stopped stream).
    Open,
    /// The server closed it because the device was revoked.
    Revoked,
    /// The network or the server went away: worth dialling again.
    Lost(String),
    /// Closed for another reason (closed here, a protocol error).
    Closed,
}

/// How `conn` ended (see [`Ended`]).
pub(super) fn ended(conn: &quinn::Connection) -> Ended {
    use quinn::ConnectionError as E;
    match conn.close_reason() {
        None => Ended::Open,
        Some(E::ApplicationClosed(c))
            if c.error_code == coffre_proto::REVOKED_CLOSE_CODE.into() =>
        {
            Ended::Revoked
        }
        // Code 0: the daemon shutting down (a restart, an upgrade).
        Some(e @ E::ApplicationClosed(_)) if application_code(&e) == Some(0) => {
            Ended::Lost("the server restarted".into())
        }
        Some(e @ (E::TimedOut | E::Reset)) => Ended::Lost(e.to_string()),
        Some(_) => Ended::Closed,
    }
}

fn application_code(e: &quinn::ConnectionError) -> Option<u64> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

impl Link {
    pub(super) fn new(server: &str, fingerprint: [u8; 32], secret: [u8; 32], d: &Dialed) -> Link {
        Link {
            server: server.to_string(),
            fingerprint,
            version: d.version,
            state: Mutex::new(State {
                endpoint: d.endpoint.clone(),
                conn: d.conn.clone(),
                generation: 0,
                down: None,
            }),
            redial: tokio::sync::Mutex::new(()),
            secret: Mutex::new(secret),
            source: Mutex::new(None),
            patience: Mutex::new(Duration::ZERO),
            notice: Mutex::new(Arc::new(|e: &LinkEvent| errln!("coffre: {e}"))),
            outages: AtomicU64::new(0),
        }
    }

    /// The connection to send on and its generation, or why there is none.
    pub(super) fn current(&self) -> Result<(quinn::Connection, u64), RemoteError> {
        let s = self.state.lock().unwrap();
        match &s.down {
            Some(e) => Err(e.clone()),
            None => Ok((s.conn.clone(), s.generation)),
        }
    }

    /// The connection now, up or not.
    pub(super) fn connection(&self) -> quinn::Connection {
        self.state.lock().unwrap().conn.clone()
    }

    /// Whether a lost connection is dialled again.
    pub(super) fn reconnects(&self) -> bool {
        !self.patience.lock().unwrap().is_zero()
    }

    pub(super) fn set_patience(&self, patience: Duration) {
        *self.patience.lock().unwrap() = patience;
    }

    pub(super) fn set_source(&self, source: Arc<dyn SecretSource>) {
        *self.source.lock().unwrap() = Some(source);
    }

    pub(super) fn set_secret(&self, secret: [u8; 32]) {
        *self.secret.lock().unwrap() = secret;
    }

    pub(super) fn notice(&self) -> Notice {
        self.notice.lock().unwrap().clone()
    }

    pub(super) fn set_notice(&self, notice: Notice) -> Notice {
        std::mem::replace(&mut *self.notice.lock().unwrap(), notice)
    }

    pub(super) fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    fn tell(&self, event: &LinkEvent) {
        let notice = self.notice.lock().unwrap().clone();
        notice(event);
    }

    /// The connection of generation `seen` was lost (`cause`): returns once
    /// a newer one is up (dialled here, or by the request that got here
    /// first), or fails with why the link stays down.
    pub(super) async fn recover(&self, seen: u64, cause: &str) -> Result<(), RemoteError> {
        let _one = self.redial.lock().await;
        {
            let s = self.state.lock().unwrap();
            if let Some(e) = &s.down {
                return Err(e.clone());
            }
            if s.generation != seen {
                return Ok(());
            }
        }
        let patience = *self.patience.lock().unwrap();
        self.outages.fetch_add(1, Ordering::Relaxed);
        self.tell(&LinkEvent::Lost {
            cause: cause.to_string(),
            patience,
        });
        let start = tokio::time::Instant::now();
        let failed = match keep_trying(patience, passing, || self.dial_now(), |_| {}).await {
            // Final: the run chose its requests by the first version.
            Ok(d) if d.version != self.version => RemoteError::Connection(format!(
                "the server changed its protocol version during the run ({} to {}): \
                 it was upgraded",
                self.version, d.version
            )),
            Ok(d) => {
                let mut s = self.state.lock().unwrap();
                s.endpoint = d.endpoint;
                s.conn = d.conn;
                s.generation += 1;
                drop(s);
                self.tell(&LinkEvent::Back {
                    after: start.elapsed(),
                });
                return Ok(());
            }
            Err(GaveUp::Final(e)) => e,
            Err(GaveUp::Spent(e)) => RemoteError::LinkDown {
                patience,
                detail: e.to_string(),
            },
        };
        self.state.lock().unwrap().down = Some(failed.clone());
        Err(failed)
    }

    /// One dial with the device's current secret.
    async fn dial_now(&self) -> Result<Dialed, RemoteError> {
        let source = self.source.lock().unwrap().clone();
        let (guard, secret): (Box<dyn Send>, [u8; 32]) = match source {
            None => (Box::new(()), *self.secret.lock().unwrap()),
            Some(source) => tokio::task::spawn_blocking(move || source.current())
                .await
                .map_err(|e| RemoteError::Connection(e.to_string()))?
                .map_err(RemoteError::Connection)?,
        };
        let dialed = dial(&self.server, self.fingerprint, secret).await;
        drop(guard);
        dialed
    }

    /// Closes the connection cleanly (the server then seals what was
    /// uploaded) and waits for the close to reach it.
    pub(super) async fn close(&self) {
        let endpoint = {
            let s = self.state.lock().unwrap();
            s.conn.close(0u32.into(), b"bye");
            s.endpoint.clone()
        };
        endpoint.wait_idle().await;
    }
}

/// Whether a failed dial is the network's, worth trying again: no answer,
/// a broken handshake, or a server too busy to seat us; not a refusal of
/// this device or a certificate that is not the pinned one.
fn passing(e: &RemoteError) -> bool {
    matches!(
        e,
        RemoteError::Unreachable { .. }
            | RemoteError::Connection(_)
            | RemoteError::Refused(ErrorReply {
                code: ErrorCode::Busy,
                ..
            })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_to_its_cap_and_waits_between_half_and_all_of_a_step() {
        let mut b = Backoff::new(FIRST_WAIT, MAX_WAIT);
        let mut step = FIRST_WAIT;
        for _ in 0..12 {
            let w = b.next_wait();
            assert!(w >= step / 2 && w <= step, "{w:?} outside {step:?}");
            step = (step * 2).min(MAX_WAIT);
        }
        assert_eq!(b.step, MAX_WAIT);
    }

    #[test]
    fn events_read_as_the_person_is_told() {
        let lost = LinkEvent::Lost {
            cause: "timed out".into(),
            patience: Duration::from_secs(600),
        };
        assert_eq!(
            lost.to_string(),
            "link lost (timed out), retrying (for up to 10 min)"
        );
        let back = LinkEvent::Back {
            after: Duration::from_millis(93_400),
        };
        assert_eq!(back.to_string(), "link back after 93 s");
        let down = LinkEvent::Down {
            cause: "no answer within 15 s".into(),
            patience: Duration::from_secs(600),
        };
        assert_eq!(
            down.to_string(),
            "link down (no answer within 15 s), retrying (for up to 10 min)"
        );
        assert_eq!(span(Duration::from_secs(90)), "90 s");
        assert_eq!(span(Duration::from_secs(150)), "3 min");
    }

    #[test]
    fn keep_trying_retries_what_it_is_told_to_within_the_patience_and_nothing_else() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let unreachable = || RemoteError::Unreachable {
            server: "s:1".into(),
            detail: "no answer within 2 s".into(),
        };
        // Two failures of the link, then an answer: three attempts, two
        // told.
        let (mut attempts, mut told) = (0, 0);
        let got = rt.block_on(keep_trying(
            Duration::from_secs(30),
            link_down,
            || {
                attempts += 1;
                let n = attempts;
                async move {
                    if n < 3 {
                        Err(unreachable())
                    } else {
                        Ok(n)
                    }
                }
            },
            |_| told += 1,
        ));
        assert_eq!(got.unwrap(), 3);
        assert_eq!(told, 2);
        // A refusal: one attempt, final.
        let mut attempts = 0;
        let got: Result<(), _> = rt.block_on(keep_trying(
            Duration::from_secs(30),
            link_down,
            || {
                attempts += 1;
                async {
                    Err(RemoteError::Refused(ErrorReply {
                        code: ErrorCode::Revoked,
                        message: String::new(),
                        used: 0,
                        quota: 0,
                    }))
                }
            },
            |_| {},
        ));
        assert!(matches!(got, Err(GaveUp::Final(RemoteError::Refused(_)))));
        assert_eq!(attempts, 1);
        // No patience: one attempt, spent.
        let mut attempts = 0;
        let got: Result<(), _> = rt.block_on(keep_trying(
            Duration::ZERO,
            link_down,
            || {
                attempts += 1;
                async { Err(unreachable()) }
            },
            |_| panic!("nothing is tried again"),
        ));
        assert!(matches!(
            got,
            Err(GaveUp::Spent(RemoteError::Unreachable { .. }))
        ));
        assert_eq!(attempts, 1);
    }

    #[test]
    fn only_the_networks_failures_are_dialled_again() {
        let refused = |code| {
            RemoteError::Refused(ErrorReply {
                code,
                message: String::new(),
                used: 0,
                quota: 0,
            })
        };
        assert!(passing(&RemoteError::Unreachable {
            server: "s:1".into(),
            detail: "timed out".into()
        }));
        assert!(passing(&RemoteError::Connection("reset".into())));
        assert!(passing(&refused(ErrorCode::Busy)));
        // At the start, a busy server is credential::patiently's to wait for.
        assert!(link_down(&RemoteError::Connection("reset".into())));
        assert!(!link_down(&refused(ErrorCode::Busy)));
        assert!(!link_down(&refused(ErrorCode::Revoked)));
        assert!(!passing(&refused(ErrorCode::Revoked)));
        assert!(!passing(&refused(ErrorCode::Superseded)));
        assert!(!passing(&refused(ErrorCode::QuotaExceeded)));
        assert!(!passing(&RemoteError::CertificateMismatch {
            server: "s:1".into()
        }));
    }
}
