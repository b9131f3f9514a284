//! This installation's device credential, and how it rolls so that one
//! installation only is the device (issue 17).
//!
//! Every command that connects authenticates with the secret in the
//! `credentials` file, then, before doing any work, replaces it with a new
//! random one of its own ([`roll`], on a server of protocol version 3):
//!
//! 1. `Rekey(new)`: the server records `new` as pending;
//! 2. the client saves `new` into `credentials` (atomically, 0600);
//! 3. `Rekey(new)` again: the server makes it current and retires every
//!    other secret of the device, the enrolment token's included.
//!
//! From then on a copy of this installation (a cloned disk, an image
//! restored elsewhere) holding an earlier secret is refused
//! (`Superseded`), and the real PC's history stays its own. A crash at any
//! step leaves a secret that works: before 2 the old one is still current;
//! after 2 the new one is pending or current, and the server makes a
//! pending one current when it authenticates with it.
//!
//! Two commands of one installation at once (a scheduled backup and a
//! `coffre status`) must not both roll from the same secret: the second
//! would retire the one the first saved. So [`connect`] holds the
//! installation's `credentials.lock` while it reads the secret, connects
//! and rolls; the work itself runs without it.
//!
//! A connection lost during the run is dialled again (`remote/reconnect.rs`)
//! with the secret as it is then: the one this command rolled to, or one a
//! later command of the installation rolled to meanwhile, read from the
//! credentials file under the same lock ([`Saved`]).
//!
//! A command that moves data (backup, restore, dump) and starts while the
//! link is down waits for it as for a lost link ([`AtStart::Wait`]): the
//! same loop, back-off and patience (`reconnect::keep_trying`); each
//! attempt takes the lock and reads the secret afresh, and only the one
//! that connects keeps the lock through the roll, so a quick command of the
//! installation is not held up by a backup waiting for the router.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use coffre_proto::ErrorCode;

use crate::config::{Credentials, Installation};
use crate::remote::{
    keep_trying, link_down, replaced_on, Backoff, GaveUp, LinkEvent, Notice, Remote, RemoteError,
    SecretSource,
};

/// How a command meets a link that is down when it starts
/// (docs/decisions.md, "The link down when a command starts").
#[derive(Clone)]
pub enum AtStart {
    /// Say at once that the server cannot be reached: the quick commands a
    /// person types (`snapshots`, `status`, `ls`...).
    FailFast,
    /// Wait for the link as for one lost during the run (the same back-off,
    /// for up to `[network] reconnect_for`), telling `notice` "link down,
    /// retrying" and "link back after N s": backup, restore, dump. The
    /// connection's later notices go there too.
    Wait(Notice),
}

/// Connects `inst` to its server with its credential, and rolls it; a
/// connection lost later is dialled again for up to `[network]
/// reconnect_for`, and so is a link down at the start if `at_start` says
/// to wait. A refusal (revoked, superseded, a full quota) fails at once.
///
/// If the server says the structure moved to another frontend of the
/// service (issue 22), the configuration's `server` is set to the address
/// it gives and that one is dialled, once (`moved.rs`).
pub fn connect(
    inst: &Installation,
    rt: &tokio::runtime::Runtime,
    at_start: &AtStart,
) -> Result<(Remote, Credentials)> {
    let server = inst.config.server.as_str();
    match connect_at(inst, server, rt, at_start) {
        Err(e) => match crate::moved::moved_to(&e) {
            Some(address) if address != server => {
                crate::moved::rewrite_server(&inst.config_path, &address).with_context(|| {
                    format!("the server says this structure moved to {address}: {e:#}")
                })?;
                errln!(
                    "coffre: this structure's backups moved to {address} (the server {server} \
                     said so); {} now names it",
                    inst.config_path.display()
                );
                connect_at(inst, &address, rt, at_start)
            }
            _ => Err(e),
        },
        connected => connected,
    }
}

/// [`connect`] to `server`.
fn connect_at(
    inst: &Installation,
    server: &str,
    rt: &tokio::runtime::Runtime,
    at_start: &AtStart,
) -> Result<(Remote, Credentials)> {
    let patience = inst.config.network.reconnect_for()?;
    // Checked before any connection: credentials of another installation
    // are refused here, not retried.
    inst.credentials()?;
    let fingerprint = inst.config.fingerprint_bytes()?;
    crate::limits::install(&inst.config.limits);
    let (wait, notice) = match at_start {
        AtStart::FailFast => (Duration::ZERO, None),
        AtStart::Wait(notice) => (patience, Some(notice.clone())),
    };
    // One attempt: the lock, the secret as the file holds it now, a dial
    // (which waits out a busy server); the lock is kept only with the
    // connection, through the roll.
    let attempt = move || async move {
        let lock = inst.lock_credentials()?;
        let creds = inst.credentials()?;
        let remote = patiently(|| Remote::connect(server, fingerprint, creds.secret))
            .await
            .map_err(|e| refused(e, inst))?;
        Ok::<_, anyhow::Error>((remote, creds, lock))
    };
    let the_links = |e: &anyhow::Error| e.downcast_ref::<RemoteError>().is_some_and(link_down);
    let start = tokio::time::Instant::now();
    let mut told = false;
    let tried = rt.block_on(keep_trying(
        wait,
        the_links,
        attempt,
        |e: &anyhow::Error| {
            if let (false, Some(notice)) = (told, &notice) {
                notice(&LinkEvent::Down {
                    cause: cause(e),
                    patience: wait,
                });
                told = true;
            }
        },
    ));
    let (remote, creds, _one_at_a_time) = match tried {
        Ok(connected) => connected,
        Err(GaveUp::Final(e)) => return Err(e),
        Err(GaveUp::Spent(e)) if wait.is_zero() => return Err(e),
        Err(GaveUp::Spent(e)) => {
            return Err(RemoteError::NotReached {
                server: server.to_string(),
                patience: wait,
                detail: cause(&e),
            }
            .into())
        }
    };
    if let Some(notice) = notice {
        if told {
            notice(&LinkEvent::Back {
                after: start.elapsed(),
            });
        }
        remote.on_link(notice);
    }
    rt.block_on(roll(inst, &remote))?;
    remote.reconnect_for(patience, Some(Arc::new(Saved(inst.clone()))));
    Ok((remote, creds))
}

/// What a failed first dial met, in a few words ("no answer within 15 s").
fn cause(e: &anyhow::Error) -> String {
    match e.downcast_ref::<RemoteError>() {
        Some(RemoteError::Unreachable { detail, .. }) => detail.clone(),
        Some(RemoteError::Connection(detail)) => detail.clone(),
        _ => format!("{e:#}"),
    }
}

/// The installation's secret as its credentials file holds it now, read
/// under its credentials lock, which the redial holds while it
/// authenticates (so no other command rolls the secret meanwhile).
struct Saved(Installation);

impl SecretSource for Saved {
    fn current(&self) -> Result<(Box<dyn Send>, [u8; 32]), String> {
        let lock = self.0.lock_credentials().map_err(|e| format!("{e:#}"))?;
        let creds = self.0.credentials().map_err(|e| format!("{e:#}"))?;
        Ok((Box::new(lock), creds.secret))
    }
}

/// How long a command keeps trying while the server says it is busy (its
/// connection caps are full: many PCs of one office behind one address at
/// 02:00, or a flood the server is holding off). Past it, the command fails
/// with the server's "busy" sentence; a scheduled run tries again later.
pub const BUSY_PATIENCE: Duration = Duration::from_secs(120);

/// Runs `connect` again while the server answers `Busy`, with a random
/// back-off (0.5 s doubling to 8 s, jittered so that PCs refused together
/// do not come back together), for up to [`BUSY_PATIENCE`].
async fn patiently<F, Fut>(mut connect: F) -> Result<Remote, RemoteError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Remote, RemoteError>>,
{
    let start = tokio::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(8));
    let mut told = false;
    loop {
        match connect().await {
            Err(e) if e.code() == Some(ErrorCode::Busy) && start.elapsed() < BUSY_PATIENCE => {
                if !told {
                    errln!(
                        "coffre: the server is busy; trying again for up to {} s",
                        BUSY_PATIENCE.as_secs()
                    );
                    told = true;
                }
                tokio::time::sleep(backoff.next_wait()).await;
            }
            other => return other,
        }
    }
}

/// Replaces this installation's device secret with a new one (see the
/// module doc). Does nothing on a server older than protocol version 3:
/// the secret then stays the one of the enrolment token.
pub async fn roll(inst: &Installation, remote: &Remote) -> Result<()> {
    if remote.version < 3 {
        return Ok(());
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| anyhow::anyhow!("the system random number generator failed: {e}"))?;
    remote
        .rekey(secret)
        .await
        .context("installing a new device credential on the server")?;
    inst.save_secret(&secret).context(
        "nothing changed on the server: the current credential still works; free space or fix \
         the permissions of the configuration folder, then run the command again",
    )?;
    let current = remote
        .rekey(secret)
        .await
        .context("confirming the new device credential (it is saved: the next run confirms it)")?;
    anyhow::ensure!(
        current,
        "the server did not make the new device credential current: run the command again"
    );
    // A redial authenticates with the new secret (the old one is retired).
    remote.set_secret(secret);
    Ok(())
}

/// The error of a refused connection, in this installation's words: a
/// superseded credential names the device and what to ask the operator.
fn refused(e: RemoteError, inst: &Installation) -> anyhow::Error {
    match &e {
        RemoteError::Refused(r) if r.code == ErrorCode::Superseded => {
            let (sub, dev) = (&inst.config.subscriber, &inst.config.device);
            anyhow::anyhow!(
                "this PC's credential for device {dev:?} of {sub:?} was replaced on {} by \
                 another installation of the device (a copy of this PC's disk, or its token \
                 enrolled on another machine) or by the operator: the server refuses this \
                 installation and changed nothing. If this PC should be the device, ask the \
                 operator for a new token (`coffre-server device reissue {sub} {dev}`), then run \
                 `coffre enrol TOKEN --force`",
                replaced_on(r)
            )
        }
        _ => e.into(),
    }
}
