//! Webhooks: one JSON `POST` per message, readable by ntfy (publishing as
//! JSON), Gotify, and chat bridges (Matrix hookshot, Slack-like relays):
//!
//! ```json
//! {"title": "asso : sauvegardes refusées, quota plein", "message": "plain text",
//!  "priority": 5, "urgent": true, "topic": "asso-coffre", "tags": ["coffre"],
//!  "events": [{"kind": "over_quota", "subscriber": "asso", "value": "", ...}]}
//! ```
//!
//! `priority` is 5 for what cannot wait and 3 for a digest (ntfy's 1 to 5;
//! Gotify reads it as a number too). `topic` is the URL's `topic` query
//! parameter if it has one, else its last path segment: ntfy takes JSON on
//! its root URL and the topic from the body (`https://ntfy.sh/?topic=asso-coffre`).
//! HTTPS uses rustls with the `ring` provider and the system's CA roots,
//! plus `[alerts.webhook] ca_file`; `token` is sent as a bearer token.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use super::digest::Message;
use super::events::Event;
use crate::config::WebhookConfig;

/// How long one POST may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(20);

/// What a webhook receives.
#[derive(Debug, Serialize)]
pub struct Body<'a> {
    /// The subject, without "[coffre] ".
    pub title: &'a str,
    /// The plain text.
    pub message: &'a str,
    /// 5 (urgent) or 3.
    pub priority: u8,
    /// Whether it cannot wait.
    pub urgent: bool,
    /// For ntfy: the topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// For ntfy: tags shown beside the title.
    pub tags: [&'a str; 1],
    /// What it tells, structured, each with its `key`.
    pub events: Vec<Keyed<'a>>,
}

/// An event with its key.
#[derive(Debug, Serialize)]
pub struct Keyed<'a> {
    /// `subscriber/kind/device`.
    pub key: String,
    /// The event.
    #[serde(flatten)]
    pub event: &'a Event,
}

/// The body of `message` sent to `url`.
pub fn body<'a>(url: &str, message: &'a Message) -> Body<'a> {
    Body {
        title: &message.title,
        message: &message.text,
        priority: if message.urgent { 5 } else { 3 },
        urgent: message.urgent,
        topic: topic(url),
        tags: ["coffre"],
        events: message
            .events
            .iter()
            .map(|e| Keyed {
                key: e.key(),
                event: e,
            })
            .collect(),
    }
}

fn topic(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    if let Some((_, t)) = url.query_pairs().find(|(k, _)| k == "topic") {
        return Some(t.into_owned());
    }
    url.path_segments()?
        .rfind(|s| !s.is_empty())
        .map(str::to_string)
}

/// An HTTP client for the webhooks.
#[derive(Debug, Clone)]
pub struct Poster {
    client: reqwest::Client,
    token: Option<String>,
}

impl Poster {
    /// The client `[alerts.webhook]` describes (or the defaults).
    pub fn new(c: Option<&WebhookConfig>) -> Result<Poster> {
        // The workspace's one rustls provider, as for the object store.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("coffre-server/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = c.and_then(|c| c.ca_file.as_ref()) {
            let pem = std::fs::read(path)
                .with_context(|| format!("[alerts.webhook] ca_file: reading {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                anyhow!(
                    "[alerts.webhook] ca_file: {} is not a PEM certificate: {e}",
                    path.display()
                )
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        Ok(Poster {
            client: builder
                .build()
                .map_err(|e| anyhow!("the webhooks' HTTP client: {e}"))?,
            token: c.and_then(|c| c.token.clone()),
        })
    }

    /// POSTs `message` to `url`; anything but a 2xx answer is an error.
    pub async fn send(&self, url: &str, message: &Message) -> Result<()> {
        let json = serde_json::to_vec(&body(url, message))?;
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(json);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.map_err(|e| {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(": ");
                why.push_str(&s.to_string());
                source = s.source();
            }
            anyhow!("POST {url} failed: {why}")
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        Err(anyhow!("POST {url} answered {status}: {}", text.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_comes_from_the_query_or_the_path() {
        assert_eq!(
            topic("https://ntfy.sh/?topic=asso-coffre").as_deref(),
            Some("asso-coffre")
        );
        assert_eq!(
            topic("https://ntfy.example/alerts").as_deref(),
            Some("alerts")
        );
        assert_eq!(topic("https://ntfy.example/").as_deref(), None);
    }
}
