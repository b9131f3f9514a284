//! Command-line arguments of `coffre-server` (names fixed by DESIGN.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// coffre-server: the backup server an association runs for its member structures.
///
/// One daemon, one data directory. Member structures are "subscribers", each
/// with a quota; their PCs are "devices", enrolled with a token. Admin commands
/// work while the daemon runs.
#[derive(Debug, Parser)]
#[command(name = "coffre-server", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--data DIR`, taken by every subcommand.
#[derive(Debug, Args, Clone)]
pub struct DataArg {
    /// The server's data directory (catalogue, packs, certificate, config).
    #[arg(long, value_name = "DIR", env = "COFFRE_DATA")]
    pub data: PathBuf,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: catalogue, TLS certificate, config.toml.
    Init {
        #[command(flatten)]
        data: DataArg,
        /// Address and UDP port to listen on.
        #[arg(long, default_value = "0.0.0.0:7443", value_name = "HOST:PORT")]
        listen: SocketAddr,
        /// Address clients dial, written into enrolment tokens
        /// [default: this machine's host name and the listen port].
        #[arg(long, value_name = "HOST:PORT")]
        public_address: Option<String>,
        /// Where to keep the packs: `local` (the data directory) or an
        /// S3-compatible bucket, `s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION`.
        /// The credentials come from the environment (COFFRE_S3_ACCESS_KEY_ID
        /// and COFFRE_S3_SECRET_ACCESS_KEY, or AWS_ACCESS_KEY_ID and
        /// AWS_SECRET_ACCESS_KEY) or from [storage] in config.toml; the bucket
        /// is checked before anything is created.
        #[arg(long, default_value = "local", value_name = "URL")]
        storage: String,
        /// Join the service of the --storage bucket as frontend NAME (issue
        /// 22: several servers over one bucket, each serving the subscribers
        /// placed on it; docs/operator-guide.md, "A national service"). The
        /// name is unique in the service; a frontend rebuilt on a new
        /// machine takes its old name again, then `take-over --from NAME`.
        #[arg(long, value_name = "NAME", requires = "storage")]
        frontend: Option<String>,
        /// Use the TLS identity (cert.der, key.der) of this folder, another
        /// frontend's DATA/tls: the frontends of a service share one
        /// identity, so a PC's pinned certificate holds on whichever serves
        /// it [default: a new identity].
        #[arg(long, value_name = "DIR")]
        identity_from: Option<PathBuf>,
    },
    /// Make this server a frontend of the service of its bucket (issue 22).
    ///
    /// For a server that already runs with its packs in the bucket
    /// (`move-packs` first): its subscribers keep their ids (it takes the
    /// number 0, which only one frontend may have), its key files and
    /// manifests are copied into the bucket, and its record is written
    /// with the public address of config.toml. The other frontends are
    /// created with `init --frontend NAME --identity-from DATA/tls` on
    /// the same bucket. Runs beside the daemon; restart the daemon after.
    Join {
        #[command(flatten)]
        data: DataArg,
        /// The frontend's name in the service (letters, digits, '-', '_').
        #[arg(long, value_name = "NAME")]
        frontend: String,
    },
    /// Serve the subscribers of another frontend of the service, from the
    /// bucket alone (issue 22).
    ///
    /// --from NAME: every subscriber frontend NAME served (its machine is
    /// lost, or it is being emptied): for each, the bucket's account file is
    /// rewritten to name this frontend (the old one, if it still runs,
    /// stops committing and collecting for it), then its devices, key,
    /// packs and snapshots are read from the bucket into this catalogue.
    /// --subscriber NAME: one subscriber, wherever it is served (a planned
    /// move; its PCs are told the new address by the old frontend). Runs
    /// beside this frontend's daemon; run it again after a failure. Then
    /// point the old frontend's address at this one, or give its PCs this
    /// frontend's address (docs/operator-guide.md).
    TakeOver {
        #[command(flatten)]
        data: DataArg,
        /// The frontend whose subscribers to take over.
        #[arg(
            long,
            value_name = "FRONTEND",
            required_unless_present = "subscriber",
            conflicts_with = "subscriber"
        )]
        from: Option<String>,
        /// The one subscriber to take over.
        #[arg(long, value_name = "NAME")]
        subscriber: Option<String>,
        /// Print JSON: [{"id", "rebuilt": {"subscriber", "devices", "packs", "snapshots", ...}, "note"}].
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon (QUIC for clients) until Ctrl-C or SIGTERM.
    ///
    /// With --dashboard (or `dashboard = "HOST:PORT"` in config.toml), it
    /// also serves the board's web page and Prometheus metrics (/metrics)
    /// over plain HTTP, protected by `dashboard_token` from config.toml.
    Run {
        #[command(flatten)]
        data: DataArg,
        /// Also serve the board's web page and /metrics on this TCP address,
        /// e.g. 127.0.0.1:8080 behind a reverse proxy that adds HTTPS. The
        /// page asks for the password `dashboard_token` of config.toml (any
        /// user name); scripts send it as "Authorization: Bearer TOKEN".
        /// Overrides `dashboard` in config.toml.
        #[arg(long, value_name = "HOST:PORT")]
        dashboard: Option<SocketAddr>,
    },
    /// Manage member structures (subscribers) and their quotas.
    #[command(subcommand)]
    Subscriber(SubscriberCommand),
    /// Try the alerts (mail, webhooks) and see tonight's digest before it leaves.
    ///
    /// With an [alerts] section in config.toml, the daemon tells people
    /// what the board's page shows: at once, within `check_every` seconds,
    /// what cannot wait (backups refused because the quota is full, a copy
    /// of a PC refused, a nightly task failed or found damage); after the
    /// nightly run, one digest per recipient of what is new since the last
    /// one, with a short "still" part, and nothing when nothing is new. The
    /// operator's addresses ([alerts] operator) hear of everything, each
    /// structure's contact (`subscriber set NAME --contact ADDRESS`) of its
    /// own structure. See docs/operator-guide.md, "Alerts: mail and webhooks".
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Enrol, list, reissue and revoke devices (PCs).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Apply the retention policies now: per device, keep what the policy keeps, remove the rest.
    ///
    /// Each subscriber's policy (`subscriber set NAME --retention ...`, or
    /// the default "last=3,daily=7,weekly=4,monthly=12") applies to each of
    /// its devices separately, so one PC's many snapshots never push out
    /// another's. Snapshots are dated by when this server RECEIVED them, in
    /// this server's local time, never by the PC's clock (which may be wrong
    /// or forged). No count is spent faster than one a day: "last=N" keeps
    /// every snapshot received on the N most recent days the PC sent one (at
    /// least the N newest), "hourly=N" the newest of each hour of those
    /// days; daily, weekly, monthly and yearly keep the newest of each of the
    /// N most recent periods that have one; "within=14d" keeps what was
    /// received within 14 days before the newest. So a PC taken over by
    /// ransomware that sends hundreds of snapshots pushes out no more
    /// history than one backup a night would. With --dry-run, lists every
    /// snapshot (when received, and the PC's own time) with keep or remove
    /// and the rules that keep it, and changes nothing. Removing a snapshot frees its manifest; the chunks
    /// only it used are freed by the next garbage collection (`coffre-server
    /// gc`, or the daemon's nightly run).
    Prune {
        #[command(flatten)]
        data: DataArg,
        /// Only this subscriber [default: all].
        #[arg(value_name = "SUBSCRIBER")]
        subscriber: Option<String>,
        /// Show what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON: {"snapshots": [{"subscriber", "device", "id", "received", "pc_time", "keep", "rules"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Free the space no snapshot needs any more (garbage collection).
    ///
    /// Marks every chunk the remaining snapshots reference, deletes the
    /// others, removes packs left empty, and rewrites ("repacks") packs
    /// whose unreferenced part reaches --repack-threshold; used bytes go down
    /// by what the disk got back. Runs beside the daemon and its backups: a
    /// subscriber with a backup in progress is left for the next run, and
    /// chunks uploaded within --grace are kept, so an interrupted backup
    /// resumes with them. The daemon runs it every night after the
    /// retention policies (config.toml: nightly_at).
    Gc {
        #[command(flatten)]
        data: DataArg,
        /// Only this subscriber [default: all].
        #[arg(value_name = "SUBSCRIBER")]
        subscriber: Option<String>,
        /// Keep unreferenced chunks uploaded less than this long ago, e.g. 0, 12h, 1d, 1w.
        #[arg(long, default_value = "1d", value_parser = parse_duration)]
        grace: u64,
        /// Rewrite a pack when at least this part of it is unreferenced, e.g. 20% or 0.2.
        #[arg(long, default_value = "20%", value_parser = parse_fraction)]
        repack_threshold: f64,
        /// Report what would be freed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON: {"subscribers": [{"subscriber", "deleted_chunks", "used_before", "used_after", ...}]}.
        #[arg(long)]
        json: bool,
    },
    /// Check the stored data against the checksums taken when it was written.
    ///
    /// Re-reads every pack and manifest (or a part with --sample),
    /// without any key: each blob against its checksum, each pack's own index
    /// against the catalogue, each manifest against its snapshot id. Reports
    /// the damaged chunks and the snapshots and devices they affect. With
    /// --repair, damaged chunks are quarantined (copied to
    /// DATA/quarantine/, removed from the catalogue, their packs rewritten):
    /// the server then answers that it no longer has them, and the next backup
    /// of a PC that still has the files sends them again, which heals every
    /// snapshot that lists them. Exit status 3 when damage is found. The
    /// daemon verifies a thirtieth of the packs every night.
    Verify {
        #[command(flatten)]
        data: DataArg,
        /// Only this subscriber [default: all].
        #[arg(value_name = "SUBSCRIBER")]
        subscriber: Option<String>,
        /// Quarantine what is damaged, so that the next backups send it again.
        #[arg(long)]
        repair: bool,
        /// Check only part K of N of the packs and of the manifests (e.g. 3/30); every manifest when damage is found.
        #[arg(long, value_name = "K/N", value_parser = parse_sample)]
        sample: Option<(u64, u64)>,
        /// Print JSON: {"subscribers": [{"subscriber", "damaged": [...], "affected": [...], ...}]}.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the catalogue (catalog.sqlite) from the packs and manifests alone.
    ///
    /// For a catalogue lost or damaged beyond repair: every subscriber comes
    /// back from its account.json, key, packs (each lists its own blobs) and
    /// manifests (each names its device and lists its chunks), with its
    /// devices, their credentials, snapshots and exact used bytes. Stop the
    /// daemon first. An existing catalogue is refused unless --replace, which
    /// keeps it as catalog.sqlite.replaced-<time>. Packs or manifests that
    /// cannot be read are left out and reported, with the snapshots that miss
    /// chunks because of them; then run `verify`.
    RebuildCatalog {
        #[command(flatten)]
        data: DataArg,
        /// Replace the existing catalogue (kept aside, not deleted).
        #[arg(long)]
        replace: bool,
        /// Print JSON: {"subscribers": [{"subscriber", "devices", "packs", "snapshots", "used_bytes", "problems", ...}]}.
        #[arg(long)]
        json: bool,
    },
    /// Move the packs to another storage (e.g. from the data directory to an
    /// S3-compatible bucket), then make config.toml point at it.
    ///
    /// Stop the daemon first. Every pack is checked against its own index
    /// and copied; packs already there (same name and size) are skipped, so
    /// an interrupted move is resumed by running it again. The source is not
    /// deleted: run `verify`, then remove the old packs yourself
    /// (docs/operator-guide.md). Credentials as for `init --storage`.
    MovePacks {
        #[command(flatten)]
        data: DataArg,
        /// Where to: `s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION`, or `local`.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Print JSON: {"copied", "already_there", "bytes", "storage"}.
        #[arg(long)]
        json: bool,
    },
    /// Storage use per subscriber: quota, used, %, snapshots, last backup.
    ///
    /// Per subscriber: the quota, what is stored (after dedup, compression and
    /// encryption: what the subscriber costs), the percentage, what its data
    /// weighs (each device's latest snapshot, summed) and the saving ratio,
    /// the snapshots, each device's last backup, and a status in plain words:
    /// ok, near quota (90 %), over quota, stale (a device without a backup
    /// for --stale-days), never backed up.
    ///
    /// With --history: the daily history instead (what the board's chart
    /// draws) and when each quota, and the server's disk or bucket, is full
    /// at the current pace. The daemon records a line per subscriber every
    /// hour (the day's last wins) and keeps every day for 100 days, one a
    /// week to 400 days, one a month to ten years. The forecast fits a
    /// straight line (least squares) through the last 30 days, after the
    /// last clean-up (a fall of more than 10 %), from today's use; it needs
    /// 7 days, and gives no date when use is flat or falling or the date is
    /// more than 5 years away. Examples:
    ///
    ///   coffre-server usage --history                       last 30 days, every subscriber
    ///
    ///   coffre-server usage --history --subscriber jardins --days 365 --csv > jardins.csv
    ///
    ///   coffre-server usage --history --json | jq '.subscribers[] | {name, full_by}'
    ///
    /// "full_by" is a date (YYYY-MM-DD, UTC) and "full_by_unix" its midnight
    /// in Unix seconds, both null when there is none ("forecast" says why:
    /// full, not_at_this_pace, too_few_days, no_limit). For the server,
    /// "used_bytes" in CSV is what fills its storage (the disk's used space,
    /// or what coffre stores against `capacity` in [storage] of config.toml).
    #[command(verbatim_doc_comment)]
    Usage {
        #[command(flatten)]
        data: DataArg,
        /// Print the daily history and the "full by" forecast (see above).
        #[arg(long)]
        history: bool,
        /// With --history: only this subscriber.
        #[arg(long, value_name = "NAME", requires = "history")]
        subscriber: Option<String>,
        /// With --history: the last N days [default: 30].
        #[arg(long, value_name = "N", requires = "history", value_parser = clap::value_parser!(u32).range(1..=3660))]
        days: Option<u32>,
        /// Print JSON: {"subscribers": [{"name", "quota_bytes", "used_bytes", "percent", "status", "devices": [...], ...}]}.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV with a header line (one line per subscriber).
        #[arg(long)]
        csv: bool,
        /// A device without a backup for this many days is stale
        /// [default: `stale_days` in config.toml, 3 if absent].
        #[arg(long, value_name = "DAYS")]
        stale_days: Option<u32>,
    },
}

/// `coffre-server subscriber ...`
#[derive(Debug, Subcommand)]
pub enum SubscriberCommand {
    /// Add a member structure with a storage quota.
    Add {
        /// Short name: letters, digits, '.', '_' and '-' (e.g. "asso-jardins").
        name: String,
        /// Hard quota: bytes stored after dedup, compression and encryption.
        /// With a unit: 50GB or 50Go (10^9 bytes), 50GiB or 50Gio (2^30),
        /// 500MB, 500Mo, 1.5TB, 1,5To; a bare number is refused (12 bytes or
        /// 12 GB?), 0 aside (refuses every backup).
        #[arg(long, value_parser = parse_size)]
        quota: u64,
        /// Retention policy, e.g. "last=3,daily=7,weekly=4,monthly=12,within=14d" (see `prune --help`).
        #[arg(long)]
        retention: Option<String>,
        /// Who hears about this structure's alerts (its own only): mail
        /// addresses and webhook URLs, comma-separated, e.g.
        /// "presidente@asso.example,https://ntfy.sh/?topic=asso".
        #[arg(long, value_name = "ADDR[,ADDR]")]
        contact: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// List subscribers.
    List {
        #[command(flatten)]
        data: DataArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one subscriber and its devices.
    Show {
        /// The subscriber.
        name: String,
        #[command(flatten)]
        data: DataArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a subscriber's quota, retention or contact.
    Set {
        /// The subscriber.
        name: String,
        /// New hard quota, with a unit as for `add` (100GB, 100Go, 100GiB).
        /// Lowering it below the current use refuses new backups, never
        /// deletes: the command echoes the new value and warns.
        #[arg(long, value_parser = parse_size)]
        quota: Option<u64>,
        /// New retention policy ("default" for the server's default; see `prune --help`).
        #[arg(long)]
        retention: Option<String>,
        /// Who hears about this structure's alerts: mail addresses and
        /// webhook URLs, comma-separated; "" removes them (the operator
        /// still hears of everything).
        #[arg(long, value_name = "ADDR[,ADDR]")]
        contact: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
}

/// `coffre-server alerts ...`
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Send a test message to every recipient and say which worked and why not.
    ///
    /// Every address of [alerts] operator and every structure's contact
    /// gets one message (or only --to). Each line says "sent" or "FAILED"
    /// with the reason, e.g. "STARTTLS refused by mail.example.org:587:
    /// ..." or "POST https://ntfy.sh/ answered 403". Exit status 1 if one
    /// failed. Records nothing: the daemon's alerts are not affected.
    Test {
        #[command(flatten)]
        data: DataArg,
        /// Only this address (a mail address or a webhook URL).
        #[arg(long, value_name = "ADDRESS")]
        to: Option<String>,
    },
    /// Print what tonight's digest would say to each recipient, without sending it.
    ///
    /// The digest tells what is new since the last one (in full) and what
    /// is still true (one short line); a recipient with nothing new gets
    /// nothing. What cannot wait has already left, at once, and shows here
    /// under "still".
    Preview {
        #[command(flatten)]
        data: DataArg,
        /// The language: fr or en [default: each recipient's, from [alerts] languages and lang].
        #[arg(long, value_name = "LANG")]
        lang: Option<String>,
    },
}

/// Device roles.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Can back up and read its subscriber's data; cannot delete anything.
    Backup,
    /// A technician's device: can also forget snapshots.
    Admin,
}

/// `coffre-server device ...`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Enrol a device: prints its one-time enrolment token to paste into `coffre enrol`.
    ///
    /// The token is consumed by `coffre enrol`: the PC then replaces the
    /// token's secret with its own, and rolls it at every run, so the same
    /// token pasted on a second machine, or a copy of the PC's disk, is
    /// refused (and shown in `device list`, `usage` and on the board). For a
    /// reinstalled PC, `device reissue` gives the same device a new token.
    Add {
        /// The subscriber it belongs to.
        subscriber: String,
        /// A name for the PC (e.g. "compta-pc").
        device: String,
        /// What the device may do.
        #[arg(long, value_enum, default_value = "backup")]
        role: RoleArg,
        #[command(flatten)]
        data: DataArg,
    },
    /// List devices, of one subscriber or of all.
    List {
        /// Only this subscriber's devices.
        subscriber: Option<String>,
        #[command(flatten)]
        data: DataArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give a device a new one-time enrolment token: for a reinstalled or replaced PC.
    ///
    /// The device keeps its name, its backups and its history; every earlier
    /// credential of it (its old token, the old installation's own secret)
    /// is refused from now on, with a message that says the operator
    /// replaced it. Run `coffre enrol TOKEN --force` on the PC with the new
    /// token. Use it when a PC was reinstalled or restored from an image,
    /// when `device list` shows refused copies and the real PC is the one
    /// refused, or when a token was lost before use. A revoked device stays
    /// revoked: add a new device instead.
    Reissue {
        /// The subscriber.
        subscriber: String,
        /// The device.
        device: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Revoke a device: it is refused at its next connection; its data stays.
    Revoke {
        /// The subscriber.
        subscriber: String,
        /// The device.
        device: String,
        #[command(flatten)]
        data: DataArg,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    coffre_core::units::parse_size(s)
}

fn parse_duration(s: &str) -> Result<u64, String> {
    coffre_core::units::parse_duration(s)
}

/// `20%` or `0.2`.
fn parse_fraction(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("{s:?} is not a fraction: write it like 20% or 0.2"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s:?} is out of range: give 0% to 100%"))
    }
}

/// `K/N`: part K (0 to N-1) of N.
fn parse_sample(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("{s:?} is not a part: write it like 3/30 (part 3 of 30, counting from 0)");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (u64, u64) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || k >= n {
        return Err(bad());
    }
    Ok((n, k))
}
