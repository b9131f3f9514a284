//! `coffre schedule install | remove | status`: the nightly backup through the
//! OS scheduler (the platform code is in [`crate::schedule`]).

use std::path::Path;

use anyhow::Result;

use crate::cli::ScheduleCommand;
use crate::config::Installation;
use crate::display::{age, local_time};
use crate::run_record::RunRecord;
use crate::schedule::{self, Plan, Scope};

/// `--system`, or what suits the user running the command (root: a system unit).
fn scope(system: bool) -> Scope {
    if system {
        Scope::System
    } else {
        Scope::for_current_user()
    }
}

/// Runs `coffre schedule ...`.
pub fn run(config: &Path, cmd: &ScheduleCommand) -> Result<()> {
    let inst = Installation::load(config)?;
    match cmd {
        ScheduleCommand::Install(args) => {
            let (hour, minute) = schedule::parse_time(&args.at)?;
            let installed = schedule::install(&Plan {
                hour,
                minute,
                exe: std::env::current_exe()?,
                config: inst.config_path.clone(),
                scope: scope(args.scope.system),
                on_battery: !args.ac_only,
            })?;
            outln!(
                "the backup of this PC runs every day at {hour:02}:{minute:02} ({})",
                installed.backend
            );
            for f in &installed.files {
                outln!("wrote {}", f.display());
            }
            if let Some(next) = &installed.next_run {
                outln!("next run: {next}");
            }
            if !installed.detail.is_empty() {
                outln!("{}", installed.detail);
            }
            outln!(
                "each run appends to {} and `coffre status` shows its outcome",
                inst.log_path().display()
            );
        }
        ScheduleCommand::Remove(args) => {
            let removed = schedule::remove(&inst.config_path, scope(args.system))?;
            outln!("{removed}");
        }
        ScheduleCommand::Status(args) => {
            let st = schedule::status(&inst.config_path, scope(args.system))?;
            if st.installed {
                let at = st
                    .at
                    .map(|(h, m)| format!(" at {h:02}:{m:02}"))
                    .unwrap_or_default();
                let backend = st.backend.map(|b| b.to_string()).unwrap_or_default();
                outln!("nightly backup{at}: installed ({backend})");
                if let Some(next) = &st.next_run {
                    outln!("next run:  {next}");
                }
                match st.on_battery {
                    Some(true) => outln!("power:     runs on battery too"),
                    Some(false) => outln!("power:     mains only (--ac-only)"),
                    None => {}
                }
            } else {
                outln!("no nightly backup is scheduled: `coffre schedule install [--at HH:MM]`");
            }
            if !st.detail.is_empty() {
                outln!("{}", st.detail);
            }
            match RunRecord::load(&inst) {
                Some(r) => outln!(
                    "last run:  {} ({}){}: {}: {}",
                    local_time(r.finished),
                    age(r.finished),
                    if r.scheduled {
                        ", scheduled"
                    } else {
                        ", by hand"
                    },
                    r.result,
                    r.message
                ),
                None => outln!("last run:  none yet"),
            }
            outln!("log:       {}", inst.log_path().display());
        }
    }
    Ok(())
}
