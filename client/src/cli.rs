//! Command-line arguments of `coffre` (names fixed by DESIGN.md, "The command line").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::limits::{self, Limit};
use crate::schedule;

/// coffre: encrypted, deduplicated backups of this PC to your association's server.
///
/// First enrol this PC with the token your technician gave you
/// (`coffre enrol TOKEN`), then `coffre backup` saves it and
/// `coffre schedule install` does so every night. `coffre snapshots`,
/// `coffre find` and `coffre restore` bring files back.
#[derive(Debug, Parser)]
#[command(name = "coffre", version, propagate_version = true)]
pub struct Cli {
    /// This PC's configuration file [default: coffre/config.toml in the OS
    /// configuration directory, e.g. ~/.config/coffre/config.toml].
    #[arg(long, global = true, env = "COFFRE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join the association's server with an enrolment token.
    ///
    /// The first PC of a member structure creates the structure's key and
    /// protects it with the structure's passphrase (asked twice); every later
    /// PC, and a technician's laptop, unlocks it with the same passphrase.
    /// The passphrase comes from --passphrase-file, COFFRE_PASSPHRASE, or a
    /// prompt (a mistyped one is asked again, 3 times in all). Writes the
    /// config file (what to back up) and its state folder NAME.state beside
    /// it (the credentials, caches, log: one per config file, so several
    /// structures can each have their own config with --config PATH).
    ///
    /// The token can be given as an argument, as `-` (read from standard
    /// input) or with --token-file FILE; the last two keep it out of the
    /// process list that every local user can read, for instance
    /// `coffre --config ~/coffre/asso-a.toml enrol --token-file token.txt`.
    Enrol(EnrolArgs),

    /// Back up this PC now (the configured paths, or the PATHs given).
    ///
    /// Unchanged files are not read again; only chunks the server lacks are
    /// sent. An interrupted backup, run again, sends nothing twice. A path
    /// that does not exist (an unplugged USB disk) is left out with a
    /// warning and the others are backed up; if none exists, nothing is.
    /// The hooks of config.toml's [hooks] run before and after (see the
    /// user guide). Exit status: 0 done; 1 failed (nothing saved); 3 saved
    /// with problems: a path missing, files that could not be read, a
    /// before hook that failed (listed, recorded in the snapshot and shown by
    /// `coffre status`), or an after hook that failed.
    Backup(BackupArgs),

    /// List the snapshots of this member structure (all its PCs).
    Snapshots(SnapshotsArgs),

    /// List the files of a snapshot, under PATH.
    Ls(LsArgs),

    /// Find files by name in every snapshot: which snapshots hold them, with size and date.
    ///
    /// GLOB without "/" matches file names ("*.ods", "bilan*"); with "/" it
    /// matches whole paths ("/home/*/Documents/**/*.pdf"). Case is ignored.
    Find(FindArgs),

    /// Show what changed between two snapshots.
    Diff(DiffArgs),

    /// Restore all or part of a snapshot into a folder.
    ///
    /// Example: bring back the Compta folder as it was in a snapshot of last
    /// Tuesday (see `coffre snapshots`), as /tmp/restored/Compta:
    ///
    ///   coffre restore 3f9a2c --path /home/alice/Documents/Compta --target /tmp/restored
    ///
    /// Only the spreadsheets of 2025:
    ///
    ///   coffre restore latest --path /home/alice/Documents/Compta/2025 --include '*.ods' --include '*.xlsx' --target /tmp/tableurs
    ///
    /// Every chunk is verified. Existing files are never replaced unless
    /// --overwrite; nothing is ever written outside the target, and a link
    /// found there is never followed. Ctrl-C stops cleanly (exit 130); a
    /// restore run again after an interruption skips the files already
    /// restored.
    Restore(RestoreArgs),

    /// Write one file of a snapshot to standard output, or a folder as a tar stream
    ///
    /// For the quick "send me last week's version", without restoring into a folder:
    ///
    ///   coffre dump latest /home/alice/Documents/budget.ods > budget-lastweek.ods
    ///   coffre dump 3f9a2c1d /home/alice/Compta | tar -x -C /tmp/x
    ///
    /// PATH is the path as it was on the backed-up PC (`coffre find NAME` and
    /// `coffre ls SNAPSHOT` show it). A folder comes as a tar stream whose names
    /// start with the folder's own (Compta/...), with permissions, dates and
    /// symbolic links (kept as links, never followed).
    ///
    /// Every chunk is verified as restore does: a damaged one stops the output
    /// with an error and exit status 1, never garbage (what was written before
    /// it is incomplete: delete it).
    ///
    /// A folder, or a file that is not text, is not written to a terminal:
    /// redirect to a file or a pipe, or pass --force. A text file is shown.
    #[command(verbatim_doc_comment)]
    Dump(DumpArgs),

    /// Check that every snapshot is complete on the server (--read-data: and decrypt everything).
    Check(CheckArgs),

    /// Show this member structure's quota and usage, and this PC's last backup.
    Status(StatusArgs),

    /// Delete a snapshot (admin devices only: a backup PC can only add)
    ///
    /// Give the id as `coffre snapshots` shows it, 8 hex digits that match
    /// exactly one snapshot:
    ///
    ///   coffre forget 3f9a2c1d
    ///
    /// It shows what it deletes (id, time, device, files, size, paths), then
    /// deletes it. So that a slip cannot delete the wrong snapshot:
    ///   - a shorter prefix (`coffre forget 3`), or `latest`, deletes nothing
    ///     unless --yes: it shows what it names and the command to delete it;
    ///   - a prefix that matches several snapshots deletes nothing, even with
    ///     --yes: it lists them.
    ///
    /// A damaged snapshot (see `coffre snapshots`) is deleted like any other.
    /// The chunks only this snapshot used are freed by the server's garbage
    /// collection; routine clean-up is the server's retention policy.
    #[command(verbatim_doc_comment)]
    Forget(ForgetArgs),

    /// The structure's key: change its passphrase (admin devices only).
    #[command(subcommand)]
    Key(KeyCommand),

    /// Run the backup every night through the OS scheduler.
    #[command(subcommand)]
    Schedule(ScheduleCommand),

    /// Measure how fast this machine chunks, hashes, compresses and encrypts.
    ///
    /// Runs every stage of the backup hot path on generated data held in memory
    /// (no disk, no network), on one core and then on all cores, and prints the
    /// throughput in MB/s (10^6 bytes per second). Use it to size a backup
    /// window or to compare machines: a backup cannot go faster than the
    /// "whole path" line, and slower disks or networks only lower it.
    Benchmark(BenchmarkArgs),

    /// Show the whole product in a minute: a throw-away server, this PC enrolled, a backup and a restore.
    ///
    /// Starts a coffre server in a temporary directory (local disk, SQLite),
    /// enrols a device, backs up FOLDER (default: the current directory),
    /// restores it into the temporary directory and compares every byte.
    /// Nothing outside the temporary directory is written.
    Demo(DemoArgs),
}

/// Options of `coffre enrol`.
#[derive(Debug, Args)]
pub struct EnrolArgs {
    /// The enrolment token (`coffre1.…`) printed by `coffre-server device
    /// add`, or `-` to read it from standard input (one line).
    ///
    /// The arguments of a running program are visible to every user of this
    /// machine (`ps`), and the token is a secret until enrol has used it:
    /// on a shared machine, give it as `-` and paste it, or with --token-file.
    #[arg(
        value_name = "TOKEN",
        required_unless_present = "token_file",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,

    /// Read the enrolment token from this file instead (no other user sees
    /// it; delete the file after: the token works once anyway).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// A folder to back up (repeat for several) [default: your home folder].
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// A pattern not to back up, .gitignore syntax (repeat; added to the defaults).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Read the structure's passphrase from this file (else COFFRE_PASSPHRASE, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Replace an existing enrolment of this installation (this config
    /// file and its state folder only; other config files keep theirs).
    #[arg(long)]
    pub force: bool,
}

/// Options of `coffre backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// What to back up [default: `paths` of config.toml].
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Also leave out what matches this pattern (.gitignore syntax; repeat).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// A tag to record in the snapshot (repeat).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,

    /// Read every file again and ask the server about every chunk (ignore the local caches).
    #[arg(long)]
    pub no_cache: bool,

    /// Run by the scheduler: append to the log file beside config.toml, no progress bar.
    #[arg(long)]
    pub scheduled: bool,

    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The bandwidth limits of a command that moves data (backup, restore,
/// dump, check).
#[derive(Debug, Args)]
#[command(next_help_heading = "Bandwidth")]
pub struct LimitArgs {
    /// Send at most RATE on the link (backup), so the office's other
    /// traffic keeps its share: as links are sold ("2Mbit/s",
    /// "500kbit/s") or in bytes ("200kB/s", "1.5MB/s", "1,5 Mo/s"); `off`
    /// for none. A bare number is refused: bits or bytes? Wins over
    /// config.toml's [limits], its daytime hours included (see the user
    /// guide, "Limiting the bandwidth").
    #[arg(long, value_name = "RATE", value_parser = parse_limit)]
    pub limit_upload: Option<Limit>,

    /// Receive at most RATE on the link (restore, dump, check
    /// --read-data); the same forms as --limit-upload.
    #[arg(long, value_name = "RATE", value_parser = parse_limit)]
    pub limit_download: Option<Limit>,
}

impl LimitArgs {
    /// The limits for `limits::set_options`.
    pub fn options(&self) -> limits::Options {
        limits::Options {
            upload: self.limit_upload,
            download: self.limit_download,
        }
    }
}

fn parse_limit(text: &str) -> Result<Limit, String> {
    text.parse()
}

/// Options of `coffre snapshots`.
#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only this device's snapshots.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,

    /// Print {"snapshots": [{"id", "time", "device", "paths", ...}]}.
    #[arg(long)]
    pub json: bool,
}

/// Options of `coffre ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// `latest`, or the first digits of a snapshot id.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,

    /// A folder as it was on the backed-up PC [default: the top].
    #[arg(value_name = "PATH")]
    pub path: Option<String>,

    /// List everything below, not just one level.
    #[arg(long, short = 'R')]
    pub recursive: bool,

    /// With `latest`: this device's newest snapshot.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,

    /// Print {"entries": [{"path", "type", "size", "mtime", "mode"}]}.
    #[arg(long)]
    pub json: bool,
}

/// Options of `coffre find`.
#[derive(Debug, Args)]
pub struct FindArgs {
    /// What to look for: "bilan*.ods", or a path pattern with "/".
    #[arg(value_name = "GLOB")]
    pub glob: String,

    /// Only this device's snapshots.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,

    /// Print {"matches": [{"snapshot", "time", "device", "path", "type", "size", "mtime"}]}.
    #[arg(long)]
    pub json: bool,
}

/// Options of `coffre diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot.
    #[arg(value_name = "SNAP_A")]
    pub a: String,
    /// The newer snapshot.
    #[arg(value_name = "SNAP_B")]
    pub b: String,
    /// With `latest`: this device's newest snapshot.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// Print {"changes": [{"change", "path"}]}.
    #[arg(long)]
    pub json: bool,
}

/// Options of `coffre restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// `latest`, or the first digits of a snapshot id (see `coffre snapshots`).
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,

    /// Restore only this file or folder, given as it was on the backed-up PC
    /// (e.g. /home/alice/Documents/Compta); it lands as TARGET/Compta.
    #[arg(long, value_name = "SUBPATH")]
    pub path: Option<String>,

    /// The folder to restore into (created if needed).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,

    /// Restore only what matches this pattern, and the folders leading to it
    /// (repeat: any of them). As `coffre find`: without "/" it matches names
    /// ("*.ods"), with "/" whole paths as on the backed-up PC
    /// ("/home/*/Documents/Compta/2025/**"); case is ignored. A folder that
    /// matches comes back whole.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,

    /// Leave out what matches this pattern (repeat); a folder that matches is
    /// skipped whole ("--exclude '*.tmp' --exclude '/home/*/Downloads'").
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Replace existing files and links that differ from the snapshot (a
    /// link where the snapshot has a folder is replaced by the folder).
    #[arg(long)]
    pub overwrite: bool,

    /// With `latest`: this device's newest snapshot.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,

    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Options of `coffre dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// `latest`, or the first digits of a snapshot id (see `coffre snapshots`).
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,

    /// The file or folder as it was on the backed-up PC (e.g. /home/alice/Documents/budget.ods).
    #[arg(value_name = "PATH")]
    pub path: String,

    /// With `latest`: this device's newest snapshot.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,

    /// Write to a terminal even what is not text (a tar stream, a binary file).
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Options of `coffre check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also download and decrypt every chunk (slow: reads everything).
    #[arg(long)]
    pub read_data: bool,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Options of `coffre status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `coffre forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The snapshot's id as `coffre snapshots` shows it (its first 8 hex
    /// digits, or more); a shorter prefix or `latest` needs --yes.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,

    /// With `latest`: this device's newest snapshot. With an id: refuse
    /// unless the snapshot is this device's.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,

    /// Delete what a shorter prefix or `latest` names without asking for
    /// the 8 digits (it is still shown first). An ambiguous prefix is
    /// refused even so.
    #[arg(long)]
    pub yes: bool,
}

/// `coffre schedule`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Back up every night at --at (a systemd timer that catches up a missed night at next boot; cron without systemd).
    Install(ScheduleInstallArgs),
    /// Stop the nightly backup.
    Remove(ScheduleScopeArgs),
    /// Show when the next backup runs and how the last one went.
    Status(ScheduleScopeArgs),
}

/// `coffre key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Change the structure's passphrase, for the day a volunteer who knew it leaves.
    ///
    /// From the technician's laptop (an admin device): fetches the key file
    /// the server keeps, unlocks it with the current passphrase, checks it
    /// holds this PC's key, wraps the same key under the new passphrase
    /// (asked twice, at least 8 characters) and replaces the server's copy.
    /// From then on a new PC enrols with the new passphrase only; the PCs
    /// already enrolled keep working untouched (they hold the key). It does
    /// not change the key itself: whoever copied the key or an enrolled PC's
    /// files still has it (revoke their devices with `coffre-server device
    /// revoke`). For scripts: --passphrase-file or COFFRE_PASSPHRASE for the
    /// current passphrase, --new-passphrase-file or COFFRE_NEW_PASSPHRASE for
    /// the new one.
    Passwd(KeyPasswdArgs),
}

/// Options of `coffre key passwd`.
#[derive(Debug, Args)]
pub struct KeyPasswdArgs {
    /// Read the current passphrase from this file (else COFFRE_PASSPHRASE, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Read the new passphrase from this file (else COFFRE_NEW_PASSPHRASE, else a prompt, twice).
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
}

/// Options of `coffre schedule install`.
#[derive(Debug, Args)]
pub struct ScheduleInstallArgs {
    /// The time of the nightly backup, 24-hour HH:MM.
    #[arg(long, default_value_t = schedule::format_time(schedule::DEFAULT_TIME), value_name = "HH:MM")]
    pub at: String,

    /// Back up on mains power only: not started while the PC runs on
    /// battery (Windows also stops it when unplugged). Without it the backup
    /// runs on battery too, since laptops are often unplugged at night.
    /// Windows Task Scheduler and systemd only (cron and launchd refuse it).
    #[arg(long)]
    pub ac_only: bool,

    #[command(flatten)]
    pub scope: ScheduleScopeArgs,
}

/// Which scheduler.
#[derive(Debug, Args)]
pub struct ScheduleScopeArgs {
    /// A system-wide job, which runs without anyone logged in (the default
    /// when run as root; a normal user gets a job of their own).
    #[arg(long)]
    pub system: bool,
}

/// Options of `coffre benchmark`.
#[derive(Debug, Args)]
pub struct BenchmarkArgs {
    /// Print JSON: {"results": [{"name", "threads", "mb_per_s"}, ...]}.
    #[arg(long)]
    pub json: bool,

    /// Seconds to spend on each measurement (longer is steadier).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub seconds: f64,

    /// Size of the generated data set, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub size: usize,

    /// Thread counts to measure, comma-separated [default: 1 and all cores].
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub threads: Vec<usize>,

    /// Measure only these stages, comma-separated (e.g. "chunk+id,whole path text").
    #[arg(long, value_delimiter = ',', value_name = "STAGE,...")]
    pub only: Vec<String>,
}

/// Options of `coffre demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The folder to back up and restore [default: the current directory].
    #[arg(value_name = "FOLDER")]
    pub folder: Option<PathBuf>,

    /// Keep the temporary directory (server data, restored copy) and print where it is.
    #[arg(long)]
    pub keep: bool,
}
