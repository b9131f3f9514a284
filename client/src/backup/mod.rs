//! The backup: walk, skip what the files cache knows, read, chunk, dedup,
//! compress, encrypt and upload what is new, write the trees, commit the
//! snapshot.
//!
//! ```text
//! walk ─► files cache ─► pipeline (all cores: read → chunk → id → dedup → seal)
//!                              │ sealed blobs (the outbox, ≤ 4 MiB: back-pressure)
//!                              ▼
//!                         uploader (async): has-chunks per batch, then up to
//!                         `uploads` puts in flight; each confirmed id is journaled
//! trees (bottom-up, deduplicated like data) ─► manifest ─► commit ─► files cache
//! ```
//!
//! One file per stage, the way restic's `internal/archiver/` keeps one
//! (`blob_saver.go`, `file_saver.go`, `tree_saver.go`):
//!
//! | file | stage |
//! | --- | --- |
//! | `run` | the run: its seven steps in order, each a named function; `Options`; a path missing tonight is left out and recorded, the rest backed up |
//! | `known` | what is known before reading: the files cache, the chunks on the server (files cache, journal, latest manifest of each device), the parent |
//! | `plan` | which files must be read (the files cache decides) |
//! | `read` | passes of the hot path over files of the read list (the first over all; then the files set aside) |
//! | `set_aside` | files another program holds open: set aside, read from a shadow copy or retried at the end of the run, else their previous version kept and said |
//! | `bridge` | **the one sync/async crossing**: the outbox (pipeline → uploader), confirmed ids (uploader → journal thread), the end of the upload |
//! | `upload` | the uploader task: has-chunks per batch, small blobs grouped, puts in flight |
//! | `checkpoint` | checkpoints of a long backup: every 30 minutes or 1 GiB sent, a snapshot of the files done whose chunks the server confirmed, marked as a checkpoint (protocol 5) |
//! | `journal` | the journal of confirmed uploads (`cache/uploaded`) |
//! | `trees` | the trees, bottom-up, and the next files cache |
//! | `deleted` | the files deleted since the last run (from the files cache, else the parent's trees) |
//! | `report` | `Report`, what the command prints and records |
//!
//! **Dedup.** A chunk is sealed only if no earlier snapshot of the subscriber
//! (the latest of each device), the files cache, or the journal of an
//! interrupted run names it; a sealed chunk is sent only if the server says it
//! does not have it. So a rerun after an interruption sends nothing twice.
//!
//! **Nothing committed is lost, nothing half-made is visible.** The snapshot
//! exists only once the server has checked that every chunk it names is
//! durable. If the server no longer has a chunk the caches promised (an
//! admin deleted snapshots), the commit is refused and [`run`] is called
//! again without the caches.

mod bridge;
mod checkpoint;
mod deleted;
mod journal;
mod known;
mod plan;
mod read;
mod report;
mod run;
mod set_aside;
mod trees;
mod upload;

pub(crate) use report::Report;
pub(crate) use run::{run, Options};
