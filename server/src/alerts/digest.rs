//! The messages people read, in French or English: an immediate message
//! for what cannot wait ([`immediate`]), the nightly digest of what is new,
//! with a short "still" part ([`digest`]), and the test message of
//! `coffre-server alerts test` ([`test`]).
//!
//! The words of the board's page are reused ([`Lang`]: sizes, percentages,
//! the advice of each status); only the short phrases of a subject line
//! are here. A [`Message`] is plain text plus the structured events, which
//! `mail` and `webhook` send as they are.

use serde::Serialize;

use super::events::{Event, Kind};
use crate::dashboard::i18n::Lang;
use crate::usage::{percent, Status};

/// A message to one recipient.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// The mail's subject: "[coffre] asso : sauvegardes refusées, quota plein".
    pub subject: String,
    /// The same without the "[coffre] " prefix (a webhook's title).
    pub title: String,
    /// The plain text body.
    pub text: String,
    /// Whether it cannot wait (immediate messages).
    pub urgent: bool,
    /// What it tells, structured (new first, then still true).
    pub events: Vec<Event>,
}

const PREFIX: &str = "[coffre] ";

/// The "still" part names this many facts at most, then how many more: it
/// is a reminder, the page has the rest.
const STILL_SHOWN: usize = 20;

/// The short phrase of an event, for a subject or a list line:
/// "asso : sauvegardes refusées, quota plein".
pub fn headline(lang: Lang, e: &Event) -> String {
    let device = e.device.as_deref().unwrap_or("?");
    let phrase = match (lang, e.kind) {
        (Lang::Fr, Kind::OverQuota) => "sauvegardes refusées, quota plein".to_string(),
        (Lang::En, Kind::OverQuota) => "backups refused, quota full".to_string(),
        (Lang::Fr, Kind::BackupRefused) => {
            format!("sauvegarde de {device} refusée, quota plein")
        }
        (Lang::En, Kind::BackupRefused) => format!("backup of {device} refused, quota full"),
        (Lang::Fr, Kind::NearQuota) => "quota presque atteint".to_string(),
        (Lang::En, Kind::NearQuota) => "near its quota".to_string(),
        (_, Kind::Stale) => {
            let days = match &e.status {
                Some(Status::Stale { days, .. }) => *days,
                _ => 0,
            };
            match lang {
                Lang::Fr => format!("{device} sans sauvegarde depuis {}", days_words(lang, days)),
                Lang::En => format!("{device} not backed up for {}", days_words(lang, days)),
            }
        }
        (Lang::Fr, Kind::NeverBackedUp) => format!("{device} jamais sauvegardé"),
        (Lang::En, Kind::NeverBackedUp) => format!("{device} never backed up"),
        (Lang::Fr, Kind::ClockWrong) => format!("horloge de {device} fausse"),
        (Lang::En, Kind::ClockWrong) => format!("clock of {device} wrong"),
        (Lang::Fr, Kind::CopyRefused) => format!("une copie de {device} a été refusée"),
        (Lang::En, Kind::CopyRefused) => format!("a copy of {device} was refused"),
        (_, Kind::Incomplete) => {
            let problems = match &e.status {
                Some(Status::Incomplete { problems, .. }) => *problems,
                _ => 0,
            };
            lang.last_backup_incomplete(device, problems)
        }
        (_, Kind::FrontendSilent) => {
            let (frontend, minutes) = match &e.status {
                Some(Status::FrontendSilent { frontend, minutes }) => (frontend.as_str(), *minutes),
                _ => ("?", 0),
            };
            match lang {
                Lang::Fr => format!(
                    "le serveur {frontend} qui garde ses sauvegardes ne répond plus depuis {}\u{a0}min",
                    lang.integer(minutes.unsigned_abs())
                ),
                Lang::En => format!(
                    "the server {frontend} keeping its backups silent for {} min",
                    lang.integer(minutes.unsigned_abs())
                ),
            }
        }
        (Lang::Fr, Kind::TaskFailed) => format!("la tâche de nuit «\u{a0}{device}\u{a0}» a échoué"),
        (Lang::En, Kind::TaskFailed) => format!("the nightly task “{device}” failed"),
    };
    match &e.subscriber {
        Some(s) => format!("{}{phrase}", lang.label(s)),
        None => format!("{}{phrase}", lang.label("coffre-server")),
    }
}

/// "5 jours" / "5 days".
fn days_words(lang: Lang, days: i64) -> String {
    let n = days.max(0).unsigned_abs();
    match (lang, n) {
        (Lang::Fr, 1) => "1\u{a0}jour".into(),
        (Lang::Fr, _) => format!("{}\u{a0}jours", lang.integer(n)),
        (Lang::En, 1) => "1 day".into(),
        (Lang::En, _) => format!("{} days", lang.integer(n)),
    }
}

/// What an event means and what to do, in sentences: the numbers, then
/// the board's advice for its status.
fn explain(lang: Lang, e: &Event) -> Vec<String> {
    let mut lines = Vec::new();
    if let (Some(used), Some(quota)) = (e.used_bytes, e.quota_bytes) {
        lines.push(format!(
            "{}.",
            lang.used_of_quota(used, quota, percent(used, quota))
        ));
    }
    match (&e.status, e.kind) {
        (Some(status), _) => lines.extend(lang.advice(status)),
        (None, Kind::TaskFailed) => {
            let task = e.device.as_deref().unwrap_or("?");
            let when = e.since.map(|t| lang.date_time(t)).unwrap_or_default();
            lines.push(match lang {
                Lang::Fr if task == "verify" => format!(
                    "La vérification de nuit du {when} a trouvé des données abîmées ou n’a pas \
                     pu finir. Le journal du serveur dit quelle structure\u{a0}; lancez \
                     «\u{a0}coffre-server verify\u{a0}» puis, s’il le faut, \
                     «\u{a0}coffre-server verify NOM --repair\u{a0}»."
                ),
                Lang::En if task == "verify" => format!(
                    "The nightly verify of {when} found damaged data or could not finish. The \
                     server's log says which structure; run “coffre-server verify”, then if \
                     needed “coffre-server verify NAME --repair”."
                ),
                Lang::Fr => format!(
                    "La tâche «\u{a0}{task}\u{a0}» du {when} a échoué\u{a0}: le journal du \
                     serveur dit pourquoi\u{a0}; «\u{a0}coffre-server {task}\u{a0}» la relance."
                ),
                Lang::En => format!(
                    "The “{task}” task of {when} failed: the server's log says why; \
                     “coffre-server {task}” runs it again."
                ),
            });
        }
        (None, _) => {}
    }
    lines
}

/// The immediate message of `events` (at least one), all urgent.
pub fn immediate(lang: Lang, events: &[&Event], board_url: Option<&str>) -> Message {
    let title = match events {
        [one] => headline(lang, one),
        [first, rest @ ..] => match lang {
            Lang::Fr => format!(
                "{} (et {} autre{})",
                headline(lang, first),
                rest.len(),
                s(rest.len())
            ),
            Lang::En => format!("{} (and {} more)", headline(lang, first), rest.len()),
        },
        [] => String::new(),
    };
    let mut text = String::from(match lang {
        Lang::Fr => "Ceci ne peut pas attendre le résumé de la nuit\u{a0}:\n",
        Lang::En => "This cannot wait for the nightly digest:\n",
    });
    for e in events {
        item(&mut text, lang, e);
    }
    footer(&mut text, lang, board_url);
    Message {
        subject: format!("{PREFIX}{title}"),
        title,
        text,
        urgent: true,
        events: events.iter().map(|e| (*e).clone()).collect(),
    }
}

/// The nightly digest: `new` in full, `still` in a short list; `None` when
/// nothing is new (nothing is sent then).
pub fn digest(
    lang: Lang,
    new: &[&Event],
    still: &[&Event],
    board_url: Option<&str>,
) -> Option<Message> {
    if new.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = Vec::new();
    for e in new {
        let name = e.subscriber.as_deref().unwrap_or("coffre-server");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let n = new.len();
    // A subject stays short: three names, then how many more.
    let mut who = names.iter().take(3).copied().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        who.push_str(&format!(", +{}", names.len() - 3));
    }
    let title = match lang {
        Lang::Fr => format!(
            "{}{} nouveauté{} ({who})",
            lang.label("Résumé de la nuit"),
            n,
            s(n),
        ),
        Lang::En => format!("{}{n} new ({who})", lang.label("Nightly digest")),
    };
    let mut text = String::from(match lang {
        Lang::Fr => "Nouveau depuis le dernier résumé\u{a0}:\n",
        Lang::En => "New since the last digest:\n",
    });
    for e in new {
        item(&mut text, lang, e);
    }
    if !still.is_empty() {
        text.push('\n');
        text.push_str(&lang.label(match lang {
            Lang::Fr => "Toujours vrai",
            Lang::En => "Still",
        }));
        let mut list: Vec<String> = still
            .iter()
            .take(STILL_SHOWN)
            .map(|e| headline(lang, e))
            .collect();
        if still.len() > STILL_SHOWN {
            let more = still.len() - STILL_SHOWN;
            list.push(match lang {
                Lang::Fr => format!("et {more} autre{} (voir la page)", s(more)),
                Lang::En => format!("and {more} more (see the page)"),
            });
        }
        text.push_str(&list.join(match lang {
            Lang::Fr => "\u{a0}; ",
            Lang::En => "; ",
        }));
        text.push_str(".\n");
    }
    footer(&mut text, lang, board_url);
    Some(Message {
        subject: format!("{PREFIX}{title}"),
        title,
        text,
        urgent: false,
        events: new.iter().chain(still).map(|e| (*e).clone()).collect(),
    })
}

/// The message of `coffre-server alerts test`.
pub fn test(lang: Lang, board_url: Option<&str>) -> Message {
    let title = match lang {
        Lang::Fr => "message d’essai".to_string(),
        Lang::En => "test message".to_string(),
    };
    let mut text = String::from(match lang {
        Lang::Fr => {
            "Ceci est un essai des alertes de coffre-server (coffre-server alerts test)\u{a0}: \
             si vous le lisez, les alertes vous parviennent. Vous recevrez un résumé la nuit \
             quand il y a du nouveau, et un message aussitôt pour ce qui ne peut pas attendre \
             (sauvegardes refusées, copie refusée, tâche de nuit en échec).\n"
        }
        Lang::En => {
            "This is a test of coffre-server's alerts (coffre-server alerts test): if you read \
             it, alerts reach you. You will get a digest at night when there is something new, \
             and a message at once for what cannot wait (backups refused, a copy refused, a \
             nightly task failed).\n"
        }
    });
    footer(&mut text, lang, board_url);
    Message {
        subject: format!("{PREFIX}{title}"),
        title,
        text,
        urgent: false,
        events: Vec::new(),
    }
}

fn item(text: &mut String, lang: Lang, e: &Event) {
    text.push_str("\n* ");
    text.push_str(&headline(lang, e));
    text.push('\n');
    for line in explain(lang, e) {
        text.push_str("  ");
        text.push_str(&line);
        text.push('\n');
    }
}

fn footer(text: &mut String, lang: Lang, board_url: Option<&str>) {
    if let Some(url) = board_url {
        text.push('\n');
        text.push_str(&lang.label(match lang {
            Lang::Fr => "Tableau de bord",
            Lang::En => "The board's page",
        }));
        text.push_str(url);
        text.push('\n');
    }
    text.push_str(match lang {
        Lang::Fr => "\n-- \ncoffre-server, le serveur de sauvegarde de l’association.\n",
        Lang::En => "\n-- \ncoffre-server, the association's backup server.\n",
    });
}

fn s(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over() -> Event {
        Event {
            kind: Kind::OverQuota,
            subscriber: Some("asso-lumiere".into()),
            device: None,
            value: String::new(),
            status: Some(Status::OverQuota),
            used_bytes: Some(1_200_000_000),
            quota_bytes: Some(1_000_000_000),
            since: None,
        }
    }

    fn stale() -> Event {
        Event {
            kind: Kind::Stale,
            subscriber: Some("coop-velo".into()),
            device: Some("pc-atelier".into()),
            value: "1".into(),
            status: Some(Status::Stale {
                device: "pc-atelier".into(),
                days: 5,
            }),
            used_bytes: None,
            quota_bytes: None,
            since: Some(1),
        }
    }

    #[test]
    fn an_immediate_message_says_what_and_who_with_the_numbers() {
        let m = immediate(Lang::Fr, &[&over()], Some("https://board.example/"));
        assert_eq!(
            m.subject,
            "[coffre] asso-lumiere\u{a0}: sauvegardes refusées, quota plein"
        );
        assert!(
            m.text
                .contains("1,2\u{a0}Go utilisés sur 1\u{a0}Go (120\u{a0}%)"),
            "{}",
            m.text
        );
        assert!(
            m.text.contains("Quota dépassé"),
            "the board's advice: {}",
            m.text
        );
        assert!(m.text.contains("https://board.example/"));
        let m = immediate(Lang::En, &[&over(), &stale()], None);
        assert_eq!(
            m.subject,
            "[coffre] asso-lumiere: backups refused, quota full (and 1 more)"
        );
        assert!(
            m.text.contains("1.2\u{a0}GB used of 1\u{a0}GB (120%)"),
            "{}",
            m.text
        );
    }

    #[test]
    fn a_digest_tells_what_is_new_and_briefly_what_is_still_true() {
        assert!(digest(Lang::Fr, &[], &[&over()], None).is_none());
        let m = digest(Lang::En, &[&stale()], &[&over()], None).unwrap();
        assert_eq!(m.subject, "[coffre] Nightly digest: 1 new (coop-velo)");
        assert!(m
            .text
            .contains("* coop-velo: pc-atelier not backed up for 5 days"));
        assert!(m
            .text
            .contains("Still: asso-lumiere: backups refused, quota full."));
        assert_eq!(m.events.len(), 2);
        let many: Vec<Event> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|name| Event {
                subscriber: Some((*name).into()),
                ..stale()
            })
            .collect();
        let refs: Vec<&Event> = many.iter().collect();
        let long = digest(Lang::En, &refs[..1], &[&over(); 22], None).unwrap();
        assert!(
            long.text.contains("quota full; and 2 more (see the page)."),
            "{}",
            long.text
        );
        assert_eq!(
            digest(Lang::En, &refs, &[], None).unwrap().subject,
            "[coffre] Nightly digest: 5 new (a, b, c, +2)"
        );
        let m = digest(Lang::Fr, &[&stale()], &[], None).unwrap();
        assert!(m
            .text
            .contains("coop-velo\u{a0}: pc-atelier sans sauvegarde depuis 5\u{a0}jours"));
        assert!(!m.text.contains("Toujours vrai"));
    }
}
