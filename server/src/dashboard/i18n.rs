//! The page's words in French and English, and numbers, sizes, percentages
//! and dates as each language writes them ("1,5 Go" / "1.5 GB").
//!
//! Everything here returns plain text: the page escapes it.

use crate::usage::{whole_percent, Skew, SkewUnit, Status, NEAR_QUOTA_PERCENT};

/// The page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// French: the default (the associations we serve are French first).
    Fr,
    /// English.
    En,
}

/// A no-break space: between a number and its unit, before French colons.
const NBSP: char = '\u{a0}';
/// A narrow no-break space: French thousands separator.
const NNBSP: char = '\u{202f}';

impl Lang {
    /// `"fr"` or `"en"`, for `<html lang>` and `?lang=`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// The language of `?lang=fr` or `?lang=en` (any case, any region).
    pub fn from_code(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next().unwrap_or("");
        if primary.eq_ignore_ascii_case("fr") {
            Some(Lang::Fr)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The language an `Accept-Language` header prefers: of French and
    /// English, the one with the higher q-value (the first listed on a tie);
    /// French when the header is absent or accepts neither.
    pub fn negotiate(accept_language: Option<&str>) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in accept_language.unwrap_or("").split(',') {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Lang::from_code) else {
                continue;
            };
            let mut q = 1.0f32;
            for param in parts {
                if let Some((k, v)) = param.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        // An unreadable q-value is not a preference.
                        q = v
                            .trim()
                            .parse()
                            .ok()
                            .filter(|q| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0);
                    }
                }
            }
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Fr, |(_, lang)| lang)
    }

    /// The fixed words of the page.
    pub fn text(self) -> &'static Text {
        match self {
            Lang::Fr => &FR,
            Lang::En => &EN,
        }
    }

    /// `label: ` with the language's spacing ("Économie : ", "Saving: ").
    pub fn label(self, label: &str) -> String {
        match self {
            Lang::Fr => format!("{label}{NBSP}: "),
            Lang::En => format!("{label}: "),
        }
    }

    /// A whole number with thousands separators: "12 345" / "12,345".
    pub fn integer(self, n: u64) -> String {
        let sep = match self {
            Lang::Fr => NNBSP,
            Lang::En => ',',
        };
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        out
    }

    /// A number with at most one decimal, without a trailing zero: "1,5" / "1.5", "50".
    pub fn decimal(self, v: f64) -> String {
        let text = format!("{v:.1}");
        let text = text.strip_suffix(".0").unwrap_or(&text).to_string();
        match self {
            Lang::Fr => text.replace('.', ","),
            Lang::En => text,
        }
    }

    /// Bytes in decimal units (1 GB = 10^9 bytes), as people read them:
    /// "512 octets", "1,5 Go", "123 Go" / "512 bytes", "1.5 GB", "123 GB".
    pub fn bytes(self, bytes: u64) -> String {
        self.bytes_like(bytes, 0)
    }

    /// [`Lang::bytes`] in the units `like` reads best in (usually the
    /// quota: [`coffre_core::units::is_binary_size`]), so that a quota given
    /// as `2GiB` reads "2 Gio" / "2 GiB" and the use beside it in the same
    /// units, and one given as `50GB` or `50Go` reads "50 Go" (issue 20).
    pub fn bytes_like(self, bytes: u64, like: u64) -> String {
        let binary = coffre_core::units::is_binary_size(like);
        let units: [&str; 6] = match (self, binary) {
            (Lang::Fr, false) => ["octets", "ko", "Mo", "Go", "To", "Po"],
            (Lang::En, false) => ["bytes", "kB", "MB", "GB", "TB", "PB"],
            (Lang::Fr, true) => ["octets", "Kio", "Mio", "Gio", "Tio", "Pio"],
            (Lang::En, true) => ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"],
        };
        let (number, unit) =
            coffre_core::units::scaled(bytes, if binary { 1024.0 } else { 1000.0 });
        let number = match number.parse::<u64>() {
            Ok(whole) => self.integer(whole),
            Err(_) => match self {
                Lang::Fr => number.replace('.', ","),
                Lang::En => number,
            },
        };
        format!("{number}{NBSP}{}", units[unit])
    }

    /// A percentage of quota: "25 %" / "25%", rounded as
    /// [`whole_percent`] says (down below the quota), as `usage` prints it.
    pub fn percent(self, p: f64) -> String {
        let number = match whole_percent(p) {
            Some(0) if p > 0.0 => match self {
                Lang::Fr => format!("<{NBSP}1"),
                Lang::En => "<1".to_string(),
            },
            Some(n) => self.integer(n),
            None => "∞".to_string(),
        };
        match self {
            Lang::Fr => format!("{number}{NBSP}%"),
            Lang::En => format!("{number}%"),
        }
    }

    /// How long ago, in words: "il y a 3 jours" / "3 days ago".
    pub fn ago(self, seconds: i64) -> String {
        let s = seconds.max(0);
        let (n, unit) = match s {
            0..60 => {
                return match self {
                    Lang::Fr => "à l’instant".into(),
                    Lang::En => "just now".into(),
                }
            }
            60..3_600 => (s / 60, Unit::Minute),
            3_600..86_400 => (s / 3_600, Unit::Hour),
            _ if s < 60 * 86_400 => (s / 86_400, Unit::Day),
            _ if s < 730 * 86_400 => (s / (30 * 86_400), Unit::Month),
            _ => (s / (365 * 86_400), Unit::Year),
        };
        let one = n == 1;
        match self {
            Lang::Fr => {
                let word = match unit {
                    Unit::Minute => {
                        if one {
                            "minute"
                        } else {
                            "minutes"
                        }
                    }
                    Unit::Hour => {
                        if one {
                            "heure"
                        } else {
                            "heures"
                        }
                    }
                    Unit::Day => {
                        if one {
                            "jour"
                        } else {
                            "jours"
                        }
                    }
                    Unit::Month => "mois",
                    Unit::Year => {
                        if one {
                            "an"
                        } else {
                            "ans"
                        }
                    }
                };
                format!("il y a {n}{NBSP}{word}")
            }
            Lang::En => {
                let word = match unit {
                    Unit::Minute => "minute",
                    Unit::Hour => "hour",
                    Unit::Day => "day",
                    Unit::Month => "month",
                    Unit::Year => "year",
                };
                format!("{n}{NBSP}{word}{} ago", if one { "" } else { "s" })
            }
        }
    }

    /// A date and time in this server's time zone: "23 novembre 2026 à
    /// 17:54" / "23 November 2026, 17:54".
    pub fn date_time(self, unix: i64) -> String {
        let Ok(t) = jiff::Timestamp::from_second(unix) else {
            return unix.to_string();
        };
        let z = t.to_zoned_datetime(jiff::tz::TimeZone::system());
        let month = usize::try_from(z.month() - 1).unwrap_or(0).min(11);
        match self {
            Lang::Fr => format!(
                "{} {} {} à {:02}:{:02}",
                z.day(),
                FR_MONTHS[month],
                z.year(),
                z.hour(),
                z.minute()
            ),
            Lang::En => format!(
                "{} {} {}, {:02}:{:02}",
                z.day(),
                EN_MONTHS[month],
                z.year(),
                z.hour(),
                z.minute()
            ),
        }
    }

    /// The status word of a badge.
    pub fn status(self, status: &Status) -> &'static str {
        let t = self.text();
        match status {
            Status::OverQuota => t.over_quota,
            Status::BackupRefused { .. } => t.backup_refused,
            Status::NearQuota => t.near_quota,
            Status::Stale { .. } => t.stale,
            Status::NeverBackedUp { .. } => t.never_backed_up,
            Status::ClockWrong { .. } => t.clock_wrong,
            Status::CopyRefused { .. } => t.copy_refused,
            Status::Incomplete { .. } => t.incomplete,
            Status::InProgress { .. } => t.in_progress,
            Status::FrontendSilent { .. } => t.frontend_silent,
            Status::Ok => t.ok,
        }
    }

    /// What a status means and what to do about it, in one sentence (none for ok).
    pub fn advice(self, status: &Status) -> Option<String> {
        let near = NEAR_QUOTA_PERCENT;
        Some(match (self, status) {
            (_, Status::Ok) => return None,
            (Lang::Fr, Status::OverQuota) => {
                "Quota dépassé (ou égal à 0)\u{a0}: les nouvelles sauvegardes sont refusées. \
                 Ce qui libère vraiment de la place, c’est d’augmenter le quota. Oublier \
                 d’anciennes sauvegardes ne libère que ce qu’elles seules contiennent (souvent \
                 peu, les fichiers étant partagés entre sauvegardes), et seulement après le \
                 ménage de la nuit."
                    .into()
            }
            (Lang::En, Status::OverQuota) => "Over quota (or a quota of 0): new backups are \
                 refused. What really frees space is raising the quota. Forgetting old backups \
                 frees only what they alone hold (often little: files are shared between \
                 backups), and only after the night’s clean-up."
                .into(),
            (
                Lang::Fr,
                Status::BackupRefused {
                    device,
                    at,
                    missing,
                    leftover,
                },
            ) => {
                let mut text = format!(
                    "La sauvegarde de «{NBSP}{device}{NBSP}» a été refusée le {}\u{a0}: quota \
                     plein, il manquait au moins {}.",
                    self.date_time(*at),
                    self.bytes(*missing)
                );
                if *leftover > 0 {
                    text.push_str(&format!(
                        " Ce qu’elle avait déjà envoyé ({}) est gardé et compte dans le quota\u{a0}: \
                         elle reprendra là où elle s’est arrêtée.",
                        self.bytes(*leftover)
                    ));
                }
                text.push_str(
                    " Pour qu’elle passe, augmentez le quota\u{a0}; retirer d’anciennes \
                     sauvegardes n’y suffit presque jamais.",
                );
                text
            }
            (
                Lang::En,
                Status::BackupRefused {
                    device,
                    at,
                    missing,
                    leftover,
                },
            ) => {
                let mut text = format!(
                    "The backup of “{device}” was refused on {}: the quota is full, at least {} \
                     more was needed.",
                    self.date_time(*at),
                    self.bytes(*missing)
                );
                if *leftover > 0 {
                    text.push_str(&format!(
                        " What it had already sent ({}) is kept and counts in the quota: it \
                         will go on where it stopped.",
                        self.bytes(*leftover)
                    ));
                }
                text.push_str(
                    " For it to pass, raise the quota; removing old backups almost never \
                     frees enough.",
                );
                text
            }
            (Lang::Fr, Status::NearQuota) => format!(
                "Plus de {near}{NBSP}% du quota est utilisé\u{a0}: prévoyez de l’augmenter \
                 avant que les sauvegardes soient refusées."
            ),
            (Lang::En, Status::NearQuota) => format!(
                "{near}% of the quota or more is used: plan to raise it before backups are refused."
            ),
            (Lang::Fr, Status::Stale { device, days }) => format!(
                "«{NBSP}{device}{NBSP}» n’a pas été sauvegardé depuis {days}{NBSP}jours\u{a0}: \
                 demandez à la structure de le laisser allumé la nuit, ou appelez le technicien."
            ),
            (Lang::En, Status::Stale { device, days }) => format!(
                "“{device}” has not been backed up for {days}{NBSP}days: ask the structure \
                 to leave it on at night, or call the technician."
            ),
            (Lang::Fr, Status::NeverBackedUp { device }) => format!(
                "«{NBSP}{device}{NBSP}» est inscrit mais n’a jamais été sauvegardé\u{a0}: \
                 appelez le technicien."
            ),
            (Lang::En, Status::NeverBackedUp { device }) => {
                format!("“{device}” is enrolled but has never been backed up: call the technician.")
            }
            (Lang::Fr, Status::ClockWrong { device, skew }) => format!(
                "L’horloge de ce PC est fausse\u{a0}: «{NBSP}{device}{NBSP}» est {} le \
                 serveur. Ses sauvegardes sont gardées, datées de leur arrivée. Faites remettre \
                 son heure à jour (pile de la carte mère\u{a0}?), ou appelez le technicien\u{a0}: \
                 une horloge trafiquée peut trahir un virus.",
                self.skew(*skew)
            ),
            (Lang::En, Status::ClockWrong { device, skew }) => format!(
                "This PC’s clock is wrong: “{device}” is {} the server. Its backups are kept, \
                 dated by their arrival. Have its time set right (the motherboard’s battery?), \
                 or call the technician: a tampered clock can be a sign of a virus.",
                self.skew(*skew)
            ),
            (Lang::Fr, Status::CopyRefused { device, times }) => format!(
                "Un autre ordinateur s’est présenté comme «{NBSP}{device}{NBSP}» avec un \
                 identifiant remplacé (copie de disque, jeton utilisé deux fois) et a été refusé \
                 ({}). Les sauvegardes de «{NBSP}{device}{NBSP}» ne sont pas touchées. Si c’est \
                 le vrai ordinateur qui est refusé, le technicien le réinscrit \
                 (coffre-server device reissue).",
                self.copies_refused(*times)
            ),
            (Lang::En, Status::CopyRefused { device, times }) => format!(
                "Another computer presented itself as “{device}” with a replaced credential (a \
                 copied disk, a token used twice) and was refused ({}). The backups of \
                 “{device}” are untouched. If the real computer is the one refused, the \
                 technician enrols it again (coffre-server device reissue).",
                self.copies_refused(*times)
            ),
            (Lang::Fr, Status::Incomplete { device, problems }) => format!(
                "Dernière sauvegarde de «{NBSP}{device}{NBSP}» incomplète ({})\u{a0}: un \
                 dossier manquait (disque USB débranché, dossier renommé), des fichiers étaient \
                 illisibles ou une commande préalable a échoué. Le reste est sauvegardé\u{a0}; \
                 «{NBSP}coffre status{NBSP}» sur ce PC dit quoi.",
                self.problems(*problems)
            ),
            (Lang::En, Status::Incomplete { device, problems }) => format!(
                "Last backup of “{device}” incomplete ({}): a folder was missing (a USB disk \
                 unplugged, a folder renamed), files could not be read or a hook failed. The \
                 rest is backed up; “coffre status” on that PC says what.",
                self.problems(*problems)
            ),
            (Lang::Fr, Status::InProgress { device, .. }) => format!(
                "La sauvegarde de «{NBSP}{device}{NBSP}» est longue (une première sauvegarde \
                 sur une ligne lente prend des jours)\u{a0}: ce qui est envoyé est gardé à \
                 chaque point d’étape et elle reprend là où elle s’est arrêtée. Laissez le PC \
                 allumé la nuit."
            ),
            (Lang::En, Status::InProgress { device, .. }) => format!(
                "The backup of “{device}” is long (a first backup over a slow line takes \
                 days): what is sent is kept at every checkpoint, and it goes on where it \
                 stopped. Leave the PC on at night."
            ),
            (Lang::Fr, Status::FrontendSilent { frontend, minutes }) => format!(
                "Le serveur «{NBSP}{frontend}{NBSP}» qui garde les sauvegardes de cette \
                 structure ne donne plus de nouvelles depuis {}{NBSP}min{NBSP}: ses PC ne \
                 peuvent ni sauvegarder ni restaurer. Relancez-le, ou, si sa machine est \
                 perdue, reprenez ses structures sur un autre serveur («{NBSP}coffre-server \
                 take-over --from {frontend}{NBSP}»){NBSP}: rien n’est perdu, tout est dans \
                 le stockage.",
                self.integer(minutes.unsigned_abs())
            ),
            (Lang::En, Status::FrontendSilent { frontend, minutes }) => format!(
                "The server “{frontend}” keeping this structure’s backups has been silent for \
                 {} min: its PCs can neither back up nor restore. Restart it or, if its \
                 machine is lost, take its structures over on another server (“coffre-server \
                 take-over --from {frontend}”): nothing is lost, everything is in the storage.",
                self.integer(minutes.unsigned_abs())
            ),
        })
    }

    /// "première sauvegarde en cours (12 Go envoyés, dernier point
    /// d’étape il y a 2 heures)" / "first backup in progress (12 GB sent,
    /// last checkpoint 2 hours ago)".
    pub fn in_progress(self, first: bool, bytes: u64, ago: i64) -> String {
        let (size, ago) = (self.bytes(bytes), self.ago(ago));
        match (self, first) {
            (Lang::Fr, true) => format!(
                "première sauvegarde en cours ({size} envoyés, dernier point d’étape {ago})"
            ),
            (Lang::Fr, false) => {
                format!("sauvegarde en cours ({size} envoyés, dernier point d’étape {ago})")
            }
            (Lang::En, true) => {
                format!("first backup in progress ({size} sent, last checkpoint {ago})")
            }
            (Lang::En, false) => {
                format!("backup in progress ({size} sent, last checkpoint {ago})")
            }
        }
    }

    /// "dernière sauvegarde de pc incomplète (1 problème)" / "last backup
    /// of pc incomplete (1 problem)".
    pub fn last_backup_incomplete(self, device: &str, problems: u64) -> String {
        match self {
            Lang::Fr => format!(
                "dernière sauvegarde de {device} incomplète ({})",
                self.problems(problems)
            ),
            Lang::En => format!(
                "last backup of {device} incomplete ({})",
                self.problems(problems)
            ),
        }
    }

    /// "2 problèmes" / "2 problems".
    pub fn problems(self, n: u64) -> String {
        let count = self.integer(n);
        match (self, n) {
            (Lang::Fr, 1) => format!("1{NBSP}problème"),
            (Lang::Fr, _) => format!("{count}{NBSP}problèmes"),
            (Lang::En, 1) => "1 problem".into(),
            (Lang::En, _) => format!("{count} problems"),
        }
    }

    /// A PC clock's skew in words: "en avance de 8 jours sur" / "8 days
    /// ahead of".
    pub fn skew(self, skew: i64) -> String {
        let (n, unit, ahead) = Skew(skew).parts();
        let s = if n == 1 { "" } else { "s" };
        match self {
            Lang::Fr => {
                let word = match unit {
                    SkewUnit::Minute => "minute",
                    SkewUnit::Hour => "heure",
                    SkewUnit::Day => "jour",
                    SkewUnit::Year => "an",
                };
                let way = if ahead { "en avance" } else { "en retard" };
                format!("{way} de {n}{NBSP}{word}{s} sur")
            }
            Lang::En => {
                let word = match unit {
                    SkewUnit::Minute => "minute",
                    SkewUnit::Hour => "hour",
                    SkewUnit::Day => "day",
                    SkewUnit::Year => "year",
                };
                let way = if ahead { "ahead of" } else { "behind" };
                format!("{n}{NBSP}{word}{s} {way}")
            }
        }
    }

    /// "3 connexions refusées" / "3 connections refused".
    pub fn copies_refused(self, times: u64) -> String {
        let n = self.integer(times);
        match (self, times) {
            (Lang::Fr, 1) => format!("1{NBSP}connexion refusée"),
            (Lang::Fr, _) => format!("{n}{NBSP}connexions refusées"),
            (Lang::En, 1) => "1 connection refused".into(),
            (Lang::En, _) => format!("{n} connections refused"),
        }
    }

    /// The saving of dedup and compression in words: "Ses données (31,8 Go)
    /// occupent 12,3 Go ici : 2,6 fois moins." When an unfinished (refused)
    /// backup left `leftover` bytes, they are named for what they are, never
    /// called "backup history" (issue 20).
    pub fn saving(
        self,
        ratio: Option<f64>,
        data_bytes: u64,
        used_bytes: u64,
        leftover: u64,
    ) -> String {
        let (data, used, left) = (
            self.bytes(data_bytes),
            self.bytes(used_bytes),
            self.bytes(leftover),
        );
        match (self, ratio) {
            (Lang::Fr, _) if leftover > 0 && data_bytes == 0 => format!(
                "aucune sauvegarde terminée\u{a0}; {used} occupés ici, dont {left} envoyés par \
                 une sauvegarde inachevée, gardés pour qu’elle reprenne."
            ),
            (Lang::En, _) if leftover > 0 && data_bytes == 0 => format!(
                "no backup finished yet; {used} taken here, of which {left} sent by an \
                 unfinished backup, kept for it to go on."
            ),
            (Lang::Fr, Some(_)) if leftover > 0 => format!(
                "ses données ({data}) occupent {used} ici, dont {left} envoyés par une \
                 sauvegarde inachevée, gardés pour qu’elle reprenne."
            ),
            (Lang::En, Some(_)) if leftover > 0 => format!(
                "its data ({data}) takes {used} here, of which {left} sent by an unfinished \
                 backup, kept for it to go on."
            ),
            (Lang::Fr, None) => "pas encore de données.".into(),
            (Lang::En, None) => "no data yet.".into(),
            (Lang::Fr, Some(r)) if r >= 1.1 => format!(
                "ses données ({data}) occupent {used} ici, {}{NBSP}fois moins.",
                self.decimal(r)
            ),
            (Lang::En, Some(r)) if r >= 1.1 => format!(
                "its data ({data}) takes {used} here, {}{NBSP}times less.",
                self.decimal(r)
            ),
            (Lang::Fr, Some(_)) => format!(
                "ses données ({data}) occupent {used} ici, historique des sauvegardes compris."
            ),
            (Lang::En, Some(_)) => {
                format!("its data ({data}) takes {used} here, backup history included.")
            }
        }
    }

    /// "Page générée le ..." / "Generated on ...".
    pub fn generated(self, unix: i64) -> String {
        match self {
            Lang::Fr => format!("Page générée le {}.", self.date_time(unix)),
            Lang::En => format!("Generated on {}.", self.date_time(unix)),
        }
    }

    /// The short explanation under the title.
    pub fn intro(self) -> &'static str {
        match self {
            Lang::Fr => {
                "Une carte par structure adhérente\u{a0}: la place que ses sauvegardes occupent \
                 sur le serveur, comparée à son quota, et la dernière sauvegarde de chacun de ses \
                 ordinateurs. Les structures qui demandent une action viennent en premier."
            }
            Lang::En => {
                "One card per member structure: the space its backups take on the server \
                 against its quota, and the last backup of each of its computers. The \
                 structures that need action come first."
            }
        }
    }

    /// "How to read this page": its title and what each number and word means.
    pub fn help(self, stale_days: u32) -> (&'static str, [String; 6]) {
        let near = NEAR_QUOTA_PERCENT;
        match self {
            Lang::Fr => (
                "Comment lire cette page",
                [
                    "La barre et «\u{a0}utilisés\u{a0}»\u{a0}: ce que la structure coûte \
                     réellement sur le serveur, une fois ses fichiers dédoublonnés (un fichier \
                     présent sur plusieurs ordinateurs ou dans plusieurs sauvegardes n’est gardé \
                     qu’une fois), compressés et chiffrés. C’est ce que limite le quota."
                        .into(),
                    format!(
                        "Quota presque atteint\u{a0}: {near}{NBSP}% ou plus. Quota dépassé (ou \
                         quota de 0)\u{a0}: les nouvelles sauvegardes sont refusées, rien de ce \
                         qui est déjà gardé n’est effacé. Sauvegarde refusée\u{a0}: la dernière \
                         sauvegarde d’un ordinateur a été refusée faute de place\u{a0}; augmenter \
                         le quota la laisse passer. Les cartes rouges viennent en premier."
                    ),
                    format!(
                        "Sauvegarde en retard\u{a0}: un ordinateur sans sauvegarde réussie depuis \
                         plus de {stale_days}{NBSP}jours. Jamais sauvegardé\u{a0}: un ordinateur \
                         inscrit qui n’a encore envoyé aucune sauvegarde. Horloge du PC \
                         fausse\u{a0}: l’heure de l’ordinateur était fausse de plus d’un jour à sa \
                         dernière sauvegarde\u{a0}; ses sauvegardes sont gardées, datées de leur \
                         arrivée sur le serveur, comme «\u{a0}il y a…\u{a0}»."
                    ),
                    "Sauvegardes conservées\u{a0}: les versions gardées selon la règle de \
                     conservation de la structure (par exemple les 7 derniers jours, puis une \
                     par semaine et par mois)."
                        .into(),
                    "Économie\u{a0}: ce que pèsent ses données (la dernière sauvegarde de chaque \
                     ordinateur) comparé à la place qu’elles occupent ici, historique compris."
                        .into(),
                    "Copie refusée\u{a0}: un autre ordinateur a présenté l’identifiant d’un \
                     ordinateur inscrit après qu’il a été remplacé (disque copié, jeton utilisé \
                     deux fois)\u{a0}; il a été refusé, rien n’a changé pour le vrai."
                        .into(),
                ],
            ),
            Lang::En => (
                "How to read this page",
                [
                    "The bar and “used”: what the structure really costs on the server, once \
                     its files are deduplicated (a file on several computers or in several \
                     backups is kept once), compressed and encrypted. This is what the quota \
                     limits."
                        .into(),
                    format!(
                        "Near quota: {near}% or more. Over quota (or a quota of 0): new backups \
                         are refused; nothing already kept is deleted. Backup refused: a \
                         computer’s last backup was refused for lack of space; raising the quota \
                         lets it through. Red cards come first."
                    ),
                    format!(
                        "Stale backup: a computer without a successful backup for more than \
                         {stale_days}{NBSP}days. Never backed up: a computer enrolled that has \
                         not sent any backup yet. PC clock wrong: the computer’s time was more \
                         than a day off at its last backup; its backups are kept, dated by their \
                         arrival on the server, as is “… ago”."
                    ),
                    "Backups kept: the versions kept under the structure’s retention rule \
                     (for example the last 7 days, then one a week and one a month)."
                        .into(),
                    "Saving: what its data weighs (each computer’s latest backup) against the \
                     space it takes here, history included."
                        .into(),
                    "Copy refused: another computer presented the credential of an enrolled one \
                     after it was replaced (a copied disk, a token used twice); it was refused, \
                     nothing changed for the real one."
                        .into(),
                ],
            ),
        }
    }

    /// "3 structures : 1 demande une action, 1 à surveiller."
    pub fn summary(self, total: usize, act: usize, watch: usize) -> String {
        let n = self.integer(total as u64);
        match self {
            Lang::Fr => {
                let s = if total == 1 {
                    "structure"
                } else {
                    "structures"
                };
                if act == 0 && watch == 0 {
                    return format!("{n}{NBSP}{s}, tout va bien.");
                }
                let mut parts = Vec::new();
                if act > 0 {
                    parts.push(if act == 1 {
                        "1 demande une action".to_string()
                    } else {
                        format!("{act} demandent une action")
                    });
                }
                if watch > 0 {
                    parts.push(format!("{watch} à surveiller"));
                }
                format!("{n}{NBSP}{s}{NBSP}: {}.", parts.join(", "))
            }
            Lang::En => {
                let s = if total == 1 {
                    "structure"
                } else {
                    "structures"
                };
                if act == 0 && watch == 0 {
                    return format!("{n} {s}, all fine.");
                }
                let mut parts = Vec::new();
                if act > 0 {
                    parts.push(format!(
                        "{act} need{} action",
                        if act == 1 { "s" } else { "" }
                    ));
                }
                if watch > 0 {
                    parts.push(format!("{watch} to watch"));
                }
                format!("{n} {s}: {}.", parts.join(", "))
            }
        }
    }

    /// "12,3 Go utilisés sur 50 Go (25 %)", in the quota's units; with a
    /// quota of 0, "12 Mo utilisés, quota de 0 : toute sauvegarde est refusée".
    pub fn used_of_quota(self, used: u64, quota: u64, percent: f64) -> String {
        let (u, q, p) = (
            self.bytes_like(used, quota),
            self.bytes_like(quota, quota),
            self.percent(percent),
        );
        match (self, quota) {
            (Lang::Fr, 0) => {
                format!("{u} utilisés, quota de 0{NBSP}: toute sauvegarde est refusée")
            }
            (Lang::En, 0) => format!("{u} used, a quota of 0: every backup is refused"),
            (Lang::Fr, _) => format!("{u} utilisés sur {q} ({p})"),
            (Lang::En, _) => format!("{u} used of {q} ({p})"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

pub(super) const FR_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
pub(super) const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The fixed words of the page in one language.
#[derive(Debug)]
pub struct Text {
    /// The page's title.
    pub title: &'static str,
    /// "Backups kept" label.
    pub snapshots: &'static str,
    /// "Saving" label.
    pub saving: &'static str,
    /// "Computers" label.
    pub devices: &'static str,
    /// A device that never backed up.
    pub never: &'static str,
    /// A revoked device.
    pub revoked: &'static str,
    /// No device enrolled yet.
    pub no_device: &'static str,
    /// No subscriber yet.
    pub empty: &'static str,
    /// Where the numbers come from.
    pub footer: &'static str,
    /// The link to the other language: its name, and its code.
    pub other_language: (&'static str, &'static str),
    /// Status words.
    pub ok: &'static str,
    /// Status words.
    pub near_quota: &'static str,
    /// Status words.
    pub over_quota: &'static str,
    /// Status words.
    pub backup_refused: &'static str,
    /// Beside a technician's admin device, instead of its last backup.
    pub admin_device: &'static str,
    /// Status words.
    pub stale: &'static str,
    /// Status words.
    pub never_backed_up: &'static str,
    /// Status words; also beside the device.
    pub clock_wrong: &'static str,
    /// Status words.
    pub copy_refused: &'static str,
    /// A device's latest snapshot has problems.
    pub incomplete: &'static str,
    /// A long backup on its way (checkpoints).
    pub in_progress: &'static str,
    pub frontend_silent: &'static str,
    /// The last backup, in a tooltip.
    pub last_backup: &'static str,
}

static FR: Text = Text {
    title: "Sauvegardes des structures adhérentes",
    snapshots: "Sauvegardes conservées",
    saving: "Économie",
    devices: "Ordinateurs",
    never: "jamais sauvegardé",
    revoked: "retiré du service",
    no_device: "aucun ordinateur inscrit",
    empty: "Aucune structure n’est encore inscrite.",
    footer: "Les mêmes chiffres sont donnés par la commande «\u{a0}coffre-server usage\u{a0}». \
             Pour tout problème, contactez la personne qui gère le serveur de sauvegarde.",
    other_language: ("English", "en"),
    ok: "OK",
    near_quota: "Quota presque atteint",
    over_quota: "Quota dépassé",
    backup_refused: "Sauvegarde refusée",
    admin_device: "poste du technicien (ne sauvegarde pas)",
    stale: "Sauvegarde en retard",
    never_backed_up: "Jamais sauvegardé",
    clock_wrong: "Horloge du PC fausse",
    copy_refused: "Copie refusée",
    incomplete: "Sauvegarde incomplète",
    in_progress: "Sauvegarde en cours",
    frontend_silent: "Serveur muet",
    last_backup: "Dernière sauvegarde",
};

static EN: Text = Text {
    title: "Backups of the member structures",
    snapshots: "Backups kept",
    saving: "Saving",
    devices: "Computers",
    never: "never backed up",
    revoked: "retired",
    no_device: "no computer enrolled",
    empty: "No structure is enrolled yet.",
    footer: "The same numbers come from the command “coffre-server usage”. \
             For any problem, contact the person who runs the backup server.",
    other_language: ("Français", "fr"),
    ok: "OK",
    near_quota: "Near quota",
    over_quota: "Over quota",
    backup_refused: "Backup refused",
    admin_device: "technician’s device (does not back up)",
    stale: "Stale backup",
    never_backed_up: "Never backed up",
    clock_wrong: "PC clock wrong",
    copy_refused: "Copy refused",
    incomplete: "Backup incomplete",
    in_progress: "Backup in progress",
    frontend_silent: "Server silent",
    last_backup: "Last backup",
};

#[cfg(test)]
mod tests {
    use super::Lang::{En, Fr};
    use super::*;

    #[test]
    fn accept_language_with_q_values() {
        assert_eq!(Lang::negotiate(None), Fr);
        assert_eq!(Lang::negotiate(Some("")), Fr);
        assert_eq!(
            Lang::negotiate(Some("de-DE,de;q=0.9")),
            Fr,
            "neither: French"
        );
        assert_eq!(Lang::negotiate(Some("*")), Fr);
        assert_eq!(Lang::negotiate(Some("fr-FR,fr;q=0.9,en;q=0.8")), Fr);
        assert_eq!(Lang::negotiate(Some("en-US,en;q=0.9")), En);
        assert_eq!(Lang::negotiate(Some("de,en;q=0.5")), En);
        assert_eq!(Lang::negotiate(Some("fr;q=0.3, EN-gb;q=0.7")), En);
        assert_eq!(Lang::negotiate(Some("en;q=0, fr;q=0.1")), Fr);
        assert_eq!(Lang::negotiate(Some("en;q=0")), Fr, "q=0 refuses");
        assert_eq!(Lang::negotiate(Some("en;q=bad,fr;q=0.2")), Fr);
        assert_eq!(Lang::negotiate(Some("en, fr")), En, "a tie: the first");
        assert_eq!(
            Lang::negotiate(Some("english")),
            Fr,
            "not a language tag we know"
        );
    }

    #[test]
    fn numbers_as_each_language_writes_them() {
        assert_eq!(Fr.bytes(1_500_000_000), "1,5\u{a0}Go");
        assert_eq!(En.bytes(1_500_000_000), "1.5\u{a0}GB");
        assert_eq!(En.bytes(512), "512\u{a0}bytes");
        assert_eq!(Fr.bytes(0), "0\u{a0}octets");
        assert_eq!(Fr.bytes(50_000_000_000), "50\u{a0}Go");
        assert_eq!(En.bytes(123_456_000_000), "123\u{a0}GB");
        assert_eq!(En.bytes(999_999_999), "1\u{a0}GB");
        assert_eq!(En.bytes(u64::MAX), "18,447\u{a0}PB");
        assert_eq!(Fr.integer(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(En.integer(1_234), "1,234");
        assert_eq!(En.integer(999), "999");
        assert_eq!(Fr.percent(25.7), "25\u{a0}%");
        assert_eq!(En.percent(99.9), "99%");
        assert_eq!(En.percent(0.2), "<1%");
        assert_eq!(En.percent(0.0), "0%");
        assert_eq!(En.percent(112.4), "112%");
        // Issue 20: a quota given in GiB reads in GiB (Gio), with the use
        // beside it; one given in GB (or Go) in GB.
        assert_eq!(Fr.bytes_like(2 << 30, 2 << 30), "2\u{a0}Gio");
        assert_eq!(En.bytes_like(1_610_612_736, 2 << 30), "1.5\u{a0}GiB");
        assert_eq!(Fr.bytes_like(50_000_000_000, 50_000_000_000), "50\u{a0}Go");
        assert_eq!(
            Fr.used_of_quota(12_000_000, 0, f64::INFINITY),
            "12\u{a0}Mo utilisés, quota de 0\u{a0}: toute sauvegarde est refusée"
        );
        assert_eq!(
            En.used_of_quota(1_610_612_736, 2 << 30, 75.0),
            "1.5\u{a0}GiB used of 2\u{a0}GiB (75%)"
        );
        assert_eq!(Fr.decimal(2.62), "2,6");
    }

    #[test]
    fn time_in_words() {
        assert_eq!(Fr.ago(10), "à l’instant");
        assert_eq!(En.ago(-5), "just now");
        assert_eq!(En.ago(60), "1\u{a0}minute ago");
        assert_eq!(Fr.ago(2 * 3600), "il y a 2\u{a0}heures");
        assert_eq!(Fr.ago(3 * 86_400 + 5), "il y a 3\u{a0}jours");
        assert_eq!(En.ago(3 * 86_400), "3\u{a0}days ago");
        assert_eq!(Fr.ago(86_400), "il y a 1\u{a0}jour");
        assert_eq!(Fr.ago(90 * 86_400), "il y a 3\u{a0}mois");
        assert_eq!(En.ago(800 * 86_400), "2\u{a0}years ago");
    }

    #[test]
    fn a_wrong_clock_in_words() {
        assert_eq!(Fr.skew(8 * 86_400), "en avance de 8\u{a0}jours sur");
        assert_eq!(En.skew(-25 * 31_557_600), "25\u{a0}years behind");
        assert_eq!(En.skew(3_600), "1\u{a0}hour ahead of");
        let wrong = Status::ClockWrong {
            device: "pc".into(),
            skew: 8 * 86_400,
        };
        assert_eq!(Fr.status(&wrong), "Horloge du PC fausse");
        assert!(Fr
            .advice(&wrong)
            .unwrap()
            .contains("L’horloge de ce PC est fausse"));
        assert!(En
            .advice(&wrong)
            .unwrap()
            .starts_with("This PC’s clock is wrong: “pc” is 8\u{a0}days ahead of the server."));
    }

    #[test]
    fn summary_and_saving() {
        assert_eq!(
            En.summary(3, 1, 1),
            "3 structures: 1 needs action, 1 to watch."
        );
        assert_eq!(Fr.summary(1, 0, 0), "1\u{a0}structure, tout va bien.");
        assert!(En
            .saving(Some(2.6), 2_600_000_000, 1_000_000_000, 0)
            .contains("2.6\u{a0}times less"));
        assert!(En.saving(Some(0.8), 800, 1000, 0).contains("history"));
        assert!(En.saving(Some(0.8), 800, 1000, 300).contains("unfinished"));
        assert!(Fr.saving(None, 0, 1000, 1000).contains("inachevée"));
        assert_eq!(Fr.saving(None, 0, 0, 0), "pas encore de données.");
    }
}
