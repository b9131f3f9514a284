//! Alerts that reach people (issue 20): what the board's page shows, told
//! by mail and webhooks to the operator (everything) and to each
//! structure's contact (its own structure only).
//!
//! - [`events`]: the facts, from the board's report and the maintenance
//!   runs; **which status is told, and how urgently, is decided there**.
//! - [`state`]: what was told to whom (`DATA/alerts.json`), and what is new.
//! - [`digest`]: the words (French or English): immediate, digest, test.
//! - [`mail`], [`webhook`]: the two ways out.
//!
//! When: [`watch`] looks every `check_every` seconds (default 300) and
//! sends each new urgent fact once, at once; after the daemon's nightly run
//! [`Alerts::digest`] sends each recipient one digest of what is new since
//! the last (nothing if nothing is). A delivery that fails is logged and
//! tried again at the next look; nothing here stops the daemon, and the
//! store is read on the blocking pool, never on the QUIC service's threads.

pub mod digest;
pub mod events;
pub mod mail;
pub mod state;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use coffre_store::Store;
use tracing::{info, warn};

use crate::config::{AlertsConfig, Config};
use crate::dashboard::i18n::Lang;
use crate::usage::{Row, Status};
use digest::Message;
use events::Event;
use mail::Mailer;
use state::State;
use webhook::Poster;

/// The alerts of one data directory, as config.toml's `[alerts]` says.
#[derive(Debug)]
pub struct Alerts {
    config: AlertsConfig,
    lang: Lang,
    /// The addresses that read another language.
    languages: BTreeMap<String, Lang>,
    data: PathBuf,
    stale_days: u32,
    mailer: Option<Mailer>,
    poster: Poster,
    state: tokio::sync::Mutex<State>,
}

/// What the report says now, and who hears of which structure.
#[derive(Debug)]
pub struct Look {
    /// When (the store's clock).
    pub now: i64,
    /// Every fact.
    pub events: Vec<Event>,
    /// Each structure's contact addresses.
    pub contacts: Vec<(String, Vec<String>)>,
}

/// Whether an address is a webhook (an `http://` or `https://` URL) rather
/// than a mail address.
pub fn is_webhook(address: &str) -> bool {
    address.starts_with("https://") || address.starts_with("http://")
}

/// The addresses of a contact list: "a@x, https://h/t" → ["a@x", "https://h/t"].
pub fn addresses(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

impl Alerts {
    /// The alerts config.toml describes, `None` without `[alerts]`; an error
    /// names the setting that is wrong.
    pub fn new(data: &Path, config: &Config) -> Result<Option<Alerts>> {
        let Some(c) = &config.alerts else {
            return Ok(None);
        };
        let lang = Lang::from_code(&c.lang)
            .ok_or_else(|| anyhow!("[alerts] lang = {:?}: write \"fr\" or \"en\"", c.lang))?;
        let mut languages = BTreeMap::new();
        for (address, code) in &c.languages {
            let l = Lang::from_code(code).ok_or_else(|| {
                anyhow!("[alerts] languages: {address:?} = {code:?}: write \"fr\" or \"en\"")
            })?;
            languages.insert(address.clone(), l);
        }
        if c.check_every == 0 {
            bail!("[alerts] check_every = 0: give a number of seconds, e.g. 300");
        }
        if c.mail.is_none() {
            if let Some(a) = c.operator.iter().find(|a| !is_webhook(a)) {
                bail!(
                    "[alerts] operator has the mail address {a:?} but there is no [alerts.mail] \
                     section to send mail through (docs/operator-guide.md, \"Alerts: mail and \
                     webhooks\")"
                );
            }
        }
        let mailer = c.mail.as_ref().map(Mailer::new).transpose()?;
        let poster = Poster::new(c.webhook.as_ref())?;
        Ok(Some(Alerts {
            lang,
            languages,
            data: data.to_path_buf(),
            stale_days: config.stale_days,
            mailer,
            poster,
            state: tokio::sync::Mutex::new(State::load(data)?),
            config: c.clone(),
        }))
    }

    /// The language of the messages to `to`: its own (`[alerts]
    /// languages`), else `[alerts] lang`.
    pub fn lang_of(&self, to: &str) -> Lang {
        self.languages.get(to).copied().unwrap_or(self.lang)
    }

    /// Reads the report, the maintenance runs and the contacts (blocking).
    pub fn look(store: &Store, stale_days: u32) -> Result<Look> {
        let now = store.now();
        let (rows, others) = crate::usage::rows_and_frontends(store, now, stale_days)?;
        let rows = told_here(store, rows, &others, now)?;
        let runs = store.maintenance_runs()?;
        let contacts = store
            .list_subscribers()?
            .into_iter()
            .filter_map(|s| s.contact.map(|c| (s.name, addresses(&c))))
            .collect();
        Ok(Look {
            now,
            events: events::events(&rows, &runs),
            contacts,
        })
    }

    /// [`Alerts::look`] on the blocking pool.
    async fn look_async(&self, store: &Arc<Store>) -> Result<Look> {
        let (store, days) = (store.clone(), self.stale_days);
        tokio::task::spawn_blocking(move || Alerts::look(&store, days)).await?
    }

    /// Who hears of what: each operator address everything, each contact
    /// address its structures' facts (one pass over the events, one lookup
    /// per contact: a national service's 10,000 structures stay cheap).
    pub fn audience<'a>(&self, look: &'a Look) -> BTreeMap<String, Vec<&'a Event>> {
        let mut by_structure: BTreeMap<&str, Vec<&'a Event>> = BTreeMap::new();
        for e in &look.events {
            if let Some(s) = &e.subscriber {
                by_structure.entry(s).or_default().push(e);
            }
        }
        let mut out: BTreeMap<String, Vec<&'a Event>> = BTreeMap::new();
        for a in &self.config.operator {
            out.insert(a.clone(), look.events.iter().collect());
        }
        for (name, list) in &look.contacts {
            let theirs = by_structure.get(name.as_str());
            let mut seen: Vec<&str> = Vec::new();
            for a in list {
                // The operator hears of everything already; an address listed
                // twice for one structure hears of it once.
                if self.config.operator.contains(a) || seen.contains(&a.as_str()) {
                    continue;
                }
                seen.push(a);
                out.entry(a.clone())
                    .or_default()
                    .extend(theirs.into_iter().flatten());
            }
        }
        out
    }

    /// Sends `message` to `to`, by mail or webhook.
    pub async fn deliver(&self, to: &str, message: &Message) -> Result<()> {
        if is_webhook(to) {
            self.poster.send(to, message).await
        } else {
            match &self.mailer {
                Some(m) => m.send(to, message).await,
                None => {
                    bail!("no [alerts.mail] section in config.toml to send mail to {to} through")
                }
            }
        }
    }

    /// [`Alerts::deliver`] within one look: once the mail server failed,
    /// the other mails of the look wait for the next one rather than each
    /// waiting for the same timeout (webhooks go on).
    async fn deliver_in(&self, mail: &mut MailInLook, to: &str, message: &Message) -> Result<()> {
        if is_webhook(to) {
            return self.deliver(to, message).await;
        }
        if let Some(why) = &mail.failed {
            bail!("the mail server failed earlier in this look ({why})");
        }
        let result = self.deliver(to, message).await;
        if let Err(e) = &result {
            mail.failed = Some(format!("{e:#}"));
        }
        result
    }

    /// One look for what cannot wait: each new urgent fact is sent once to
    /// each of its recipients; a digest owed since a failed one is tried
    /// again. Returns how many messages left.
    pub async fn check(&self, store: &Arc<Store>) -> Result<usize> {
        let look = self.look_async(store).await?;
        let audience = self.audience(&look);
        let mut state = self.state.lock().await;
        let mut look_mail = MailInLook::default();
        let before = state.clone();
        state.recipients.retain(|to, _| audience.contains_key(to));
        let mut sent = 0;
        for (to, events) in &audience {
            state.forget_gone(to, events);
            let urgent: Vec<&Event> = events.iter().copied().filter(|e| e.urgent()).collect();
            let new = state.changes(to, &urgent, look.now, None).new;
            if !new.is_empty() {
                let message =
                    digest::immediate(self.lang_of(to), &new, self.config.board_url.as_deref());
                match self.deliver_in(&mut look_mail, to, &message).await {
                    Ok(()) => {
                        info!(to = %to, subject = %message.subject, "alert sent");
                        state.told(to, &new, look.now);
                        sent += 1;
                    }
                    Err(e) => {
                        warn!(to = %to, "alert not delivered, tried again in {} s: {e:#}", self.config.check_every)
                    }
                }
            }
            if state.recipient(to).digest_owed {
                sent += usize::from(
                    self.digest_to(&mut state, &mut look_mail, to, events, look.now)
                        .await,
                );
            }
        }
        if *state != before {
            self.save(&state).await;
        }
        Ok(sent)
    }

    /// The nightly digest to every recipient that has something new.
    /// Returns how many left.
    pub async fn digest(&self, store: &Arc<Store>) -> Result<usize> {
        let look = self.look_async(store).await?;
        let audience = self.audience(&look);
        let mut state = self.state.lock().await;
        let mut look_mail = MailInLook::default();
        let mut sent = 0;
        for (to, events) in &audience {
            state.forget_gone(to, events);
            sent += usize::from(
                self.digest_to(&mut state, &mut look_mail, to, events, look.now)
                    .await,
            );
        }
        self.save(&state).await;
        Ok(sent)
    }

    /// The digest to `to`: sent if something is new (then recorded), owed if it fails.
    async fn digest_to(
        &self,
        state: &mut State,
        mail: &mut MailInLook,
        to: &str,
        events: &[&Event],
        now: i64,
    ) -> bool {
        let changes = state.changes(to, events, now, self.config.repeat_days);
        let Some(message) = digest::digest(
            self.lang_of(to),
            &changes.new,
            &changes.still,
            self.config.board_url.as_deref(),
        ) else {
            state.recipient(to).digest_owed = false;
            return false;
        };
        match self.deliver_in(mail, to, &message).await {
            Ok(()) => {
                info!(to = %to, subject = %message.subject, "digest sent");
                state.told(to, &changes.new, now);
                let r = state.recipient(to);
                r.last_digest = Some(now);
                r.digest_owed = false;
                true
            }
            Err(e) => {
                warn!(to = %to, "digest not delivered, tried again at the next look: {e:#}");
                state.recipient(to).digest_owed = true;
                false
            }
        }
    }

    /// What tonight's digest would send to each recipient (nothing for one
    /// with nothing new), in `lang` or each one's own, without sending or
    /// recording anything. For the `alerts preview` command: it waits for
    /// the state's lock, so it is not for async code.
    pub fn preview(&self, look: &Look, lang: Option<Lang>) -> Vec<(String, Option<Message>)> {
        let state = self.state.blocking_lock();
        self.audience(look)
            .into_iter()
            .map(|(to, events)| {
                let mut s = state.clone();
                s.forget_gone(&to, &events);
                let c = s.changes(&to, &events, look.now, self.config.repeat_days);
                let lang = lang.unwrap_or_else(|| self.lang_of(&to));
                let m = digest::digest(lang, &c.new, &c.still, self.config.board_url.as_deref());
                (to, m)
            })
            .collect()
    }

    /// Every recipient `alerts test` writes to: the operator's addresses and
    /// every contact's.
    pub fn everyone(&self, look: &Look) -> Vec<String> {
        self.audience(look).into_keys().collect()
    }

    /// The test message to `to`.
    pub fn test_message(&self, to: &str) -> Message {
        digest::test(self.lang_of(to), self.config.board_url.as_deref())
    }

    async fn save(&self, state: &State) {
        let (state, data) = (state.clone(), self.data.clone());
        match tokio::task::spawn_blocking(move || state.save(&data)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("cannot record what the alerts told: {e:#}"),
            Err(e) => warn!("cannot record what the alerts told: {e}"),
        }
    }

    /// Seconds between two looks.
    pub fn check_every(&self) -> Duration {
        Duration::from_secs(self.config.check_every)
    }
}

/// What one look learnt of the mail server.
#[derive(Debug, Default)]
struct MailInLook {
    /// Why it failed, if it did.
    failed: Option<String>,
}

/// The daemon's watcher: a look at once, then every `check_every`. Never
/// returns; an error is logged and the next look comes all the same.
pub async fn watch(alerts: Arc<Alerts>, store: Arc<Store>) {
    info!(
        every = alerts.config.check_every,
        operator = alerts.config.operator.len(),
        "alerts: watching for what cannot wait"
    );
    loop {
        if let Err(e) = alerts.check(&store).await {
            warn!("alerts: cannot read the report: {e:#}");
        }
        tokio::time::sleep(alerts.check_every()).await;
    }
}

/// On a frontend of a service (issue 22), the rows whose facts this
/// frontend tells, so that each is told once across the service: its own
/// structures, and those of a silent frontend if this one's name comes
/// first among the frontends that are not silent (`others`: the other
/// frontends' records, as the report read them).
fn told_here(
    store: &Store,
    rows: Vec<Row>,
    others: &[coffre_store::FrontendRecord],
    now: i64,
) -> Result<Vec<Row>> {
    let Some(me) = store.service()?.map(|s| s.frontend) else {
        return Ok(rows);
    };
    let first_alive = others
        .iter()
        .filter(|r| now.saturating_sub(r.updated) < crate::usage::SILENT_AFTER)
        .map(|r| r.name.clone())
        .chain(std::iter::once(me.clone()))
        .min();
    let tells_silent = first_alive.as_deref() == Some(me.as_str());
    Ok(rows
        .into_iter()
        .filter(|r| {
            r.frontend.as_deref() == Some(me.as_str())
                || (tells_silent
                    && r.status
                        .iter()
                        .any(|s| matches!(s, Status::FrontendSilent { .. })))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::Kind;

    fn event(subscriber: Option<&str>, kind: Kind) -> Event {
        Event {
            kind,
            subscriber: subscriber.map(str::to_string),
            device: None,
            value: String::new(),
            status: None,
            used_bytes: None,
            quota_bytes: None,
            since: None,
        }
    }

    #[test]
    fn the_operator_hears_of_everything_and_a_contact_of_its_own_structure_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new("127.0.0.1:1".parse().unwrap(), "h:1".into());
        config.alerts = Some(
            toml::from_str(
                r#"operator = ["op@x.example", "https://hook.example/t"]
                   [mail]
                   host = "localhost"
                   from = "coffre@x.example""#,
            )
            .unwrap(),
        );
        let alerts = Alerts::new(dir.path(), &config).unwrap().unwrap();
        let look = Look {
            now: 0,
            events: vec![
                event(Some("a"), Kind::OverQuota),
                event(Some("b"), Kind::Stale),
                event(None, Kind::TaskFailed),
                event(Some("a"), Kind::NearQuota),
            ],
            contacts: vec![
                (
                    "a".into(),
                    addresses("ca@x.example, op@x.example,ca@x.example"),
                ),
                ("b".into(), addresses("cb@x.example")),
                ("c".into(), addresses("cc@x.example")),
            ],
        };
        let heard: Vec<(String, Vec<String>)> = alerts
            .audience(&look)
            .into_iter()
            .map(|(to, events)| (to, events.iter().map(|e| e.key()).collect()))
            .collect();
        let all = [
            "a/over_quota/-",
            "b/stale/-",
            "-/task_failed/-",
            "a/near_quota/-",
        ];
        assert_eq!(
            heard,
            [
                (
                    "ca@x.example".into(),
                    vec!["a/over_quota/-".into(), "a/near_quota/-".into()]
                ),
                ("cb@x.example".into(), vec!["b/stale/-".into()]),
                ("cc@x.example".into(), vec![]),
                (
                    "https://hook.example/t".into(),
                    all.map(String::from).to_vec()
                ),
                ("op@x.example".into(), all.map(String::from).to_vec()),
            ]
        );
        // A mail address without [alerts.mail] is refused at start, with where to look.
        config.alerts.as_mut().unwrap().mail = None;
        let e = Alerts::new(dir.path(), &config).unwrap_err().to_string();
        assert!(
            e.contains("\"op@x.example\"") && e.contains("[alerts.mail]"),
            "{e}"
        );
    }
}
