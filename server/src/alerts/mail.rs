//! Mail through the association's mail server (SMTP submission), with
//! `lettre`: STARTTLS on 587 by default, implicit TLS on 465, or plain for
//! a relay on this machine; an optional login; rustls with the `ring`
//! provider, the system's CA roots plus `ca_file` (a private CA, or the
//! mail server's own self-signed certificate).
//!
//! A message is plain text (UTF-8, quoted-printable when needed), one mail
//! per recipient. Every error names the server, the port and the way it
//! was dialled, and says what went wrong ("STARTTLS refused by
//! mail.example.org:587: ...").

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::digest::Message;
use crate::config::{MailConfig, MailSecurity};

/// How long one mail may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A configured way out for mail.
#[derive(Debug)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// "mail.example.org:587 (STARTTLS)", for errors.
    server: String,
    security: MailSecurity,
}

impl Mailer {
    /// The mailer `[alerts.mail]` describes; an error says which setting is wrong.
    pub fn new(c: &MailConfig) -> Result<Mailer> {
        let port = c.port.unwrap_or(match c.security {
            MailSecurity::Starttls => 587,
            MailSecurity::Tls => 465,
            MailSecurity::Plain => 25,
        });
        let from: Mailbox = c.from.parse().map_err(|e| {
            anyhow!(
                "[alerts.mail] from = {:?} is not a mail address ({e}): write it like \
                 \"coffre <coffre@asso.example>\"",
                c.from
            )
        })?;
        let tls = || -> Result<TlsParameters> {
            let mut b = TlsParameters::builder(c.host.clone());
            if let Some(path) = &c.ca_file {
                let pem = std::fs::read(path).with_context(|| {
                    format!("[alerts.mail] ca_file: reading {}", path.display())
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    anyhow!(
                        "[alerts.mail] ca_file: {} is not a PEM certificate: {e}",
                        path.display()
                    )
                })?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| anyhow!("[alerts.mail]: TLS settings refused: {e}"))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.as_str())
            .port(port)
            .timeout(Some(TIMEOUT))
            .tls(match c.security {
                MailSecurity::Starttls => Tls::Required(tls()?),
                MailSecurity::Tls => Tls::Wrapper(tls()?),
                MailSecurity::Plain => Tls::None,
            });
        if let Some(user) = &c.username {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                c.password.clone().unwrap_or_default(),
            ));
        }
        let way = match c.security {
            MailSecurity::Starttls => "STARTTLS",
            MailSecurity::Tls => "TLS",
            MailSecurity::Plain => "plain, unencrypted",
        };
        Ok(Mailer {
            transport: builder.build(),
            from,
            server: format!("{}:{port} ({way})", c.host),
            security: c.security,
        })
    }

    /// Sends `message` to `to`.
    pub async fn send(&self, to: &str, message: &Message) -> Result<()> {
        let to_box: Mailbox = to
            .parse()
            .map_err(|e| anyhow!("{to:?} is not a mail address: {e}"))?;
        let mail = lettre::Message::builder()
            .from(self.from.clone())
            .to(to_box)
            .subject(&message.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(message.text.clone())
            .context("composing the mail")?;
        match tokio::time::timeout(TIMEOUT + Duration::from_secs(5), self.transport.send(mail))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow!("{}", self.explain(&e))),
            Err(_) => Err(anyhow!(
                "{} did not answer within {} s",
                self.server,
                TIMEOUT.as_secs()
            )),
        }
    }

    /// What went wrong, with the server and the way it was dialled.
    fn explain(&self, e: &lettre::transport::smtp::Error) -> String {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            why.push_str(": ");
            why.push_str(&s.to_string());
            source = s.source();
        }
        let what = if e.is_tls() || tls_failed(e) || why.contains("STARTTLS") {
            match self.security {
                MailSecurity::Starttls => "STARTTLS refused by",
                _ => "TLS refused by",
            }
        } else if e.is_permanent() {
            "mail refused by"
        } else if e.is_transient() {
            "mail deferred by"
        } else {
            "cannot send through"
        };
        format!("{what} {}: {why}", self.server)
    }
}

/// Whether rustls is among the causes of `e`: lettre reports a failed TLS
/// handshake as a connection error, with rustls's error inside.
fn tls_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        cause = c.source();
    }
    false
}
