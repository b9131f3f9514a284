//! `coffre demo`: the whole product in a minute, with the real programs.
//!
//! A throw-away `coffre-server` (SQLite and packs on local disk, in a
//! temporary directory), one subscriber, this PC enrolled as its admin
//! device, a backup of a folder, an unchanged second backup, and a restore
//! compared byte for byte. Every step prints the command it runs, so the
//! demo doubles as a tutorial.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use coffre_core::units::format_size;

use crate::cli::DemoArgs;

/// Kills the server when the demo ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn show(program: &Path, args: &[&str]) {
    let name = program.file_name().unwrap_or_default().to_string_lossy();
    outln!("\n$ {name} {}", args.join(" "));
}

/// Runs a program, echoing its command line; returns its stdout.
fn step(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    show(program, args);
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    out!("{stdout}");
    if !out.status.success() {
        bail!(
            "{} {} failed ({})",
            program.display(),
            args.join(" "),
            out.status
        );
    }
    Ok(stdout)
}

/// `coffre-server` next to this program (as `cargo build` places them), or on the PATH.
fn server_program() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let name = format!("coffre-server{}", std::env::consts::EXE_SUFFIX);
    let beside = exe.with_file_name(&name);
    if beside.exists() {
        return Ok(beside);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            if dir.join(&name).exists() {
                return Ok(dir.join(&name));
            }
        }
    }
    bail!(
        "the demo needs coffre-server next to coffre ({}): build both with `cargo build --release`",
        beside.display()
    )
}

/// Runs `coffre demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    let started = Instant::now();
    let folder = match &args.folder {
        Some(f) => f.clone(),
        None => std::env::current_dir()?,
    };
    let folder = fs::canonicalize(&folder)
        .with_context(|| format!("the folder to back up, {}", folder.display()))?;
    let server = server_program()?;
    let coffre = std::env::current_exe()?;
    let tmp = tempfile::Builder::new().prefix("coffre-demo-").tempdir()?;
    let work = tmp.path().to_path_buf();
    let data = work.join("server");
    let config = work.join("client").join("config.toml");
    let restored = work.join("restored");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let (data_s, config_s, folder_s, restored_s) = (
        data.display().to_string(),
        config.display().to_string(),
        folder.display().to_string(),
        restored.display().to_string(),
    );
    outln!(
        "coffre demo: a server in {}, this PC enrolled, {} backed up and restored.",
        work.display(),
        folder.display()
    );

    outln!(
        "\n# 1. The association's server: a data directory, a member structure, a device token."
    );
    step(
        &server,
        &["init", "--data", &data_s, "--listen", &listen],
        &[],
    )?;
    step(
        &server,
        &[
            "subscriber",
            "add",
            "demo-asso",
            "--quota",
            "20GiB",
            "--data",
            &data_s,
        ],
        &[],
    )?;
    let token = step(
        &server,
        &[
            "device",
            "add",
            "demo-asso",
            "this-pc",
            "--role",
            "admin",
            "--data",
            &data_s,
        ],
        &[],
    )?;
    let token = token.trim().to_string();
    show(&server, &["run", "--data", &data_s, "&"]);
    let log_path = work.join("server.log");
    let log = fs::File::create(&log_path)?;
    let _daemon = Server(
        Command::new(&server)
            .args(["run", "--data", &data_s])
            .env("COFFRE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting coffre-server")?,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !fs::read_to_string(&log_path)?.contains("listening") {
        if Instant::now() > deadline {
            bail!(
                "the server did not start: {}",
                fs::read_to_string(&log_path)?
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    outln!("\n# 2. On the member's PC: enrol (the first PC creates the structure's key), back up.");
    let pass = "demo passphrase, choose a real one";
    let env = [("COFFRE_PASSPHRASE", pass)];
    let short = format!("{}…", &token[..token.len().min(24)]);
    show(
        &coffre,
        &["enrol", &short, "--path", &folder_s, "--config", &config_s],
    );
    let out = Command::new(&coffre)
        .args(["--config", &config_s, "enrol", &token, "--path", &folder_s])
        .envs(env)
        .output()?;
    out!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!("enrol failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    step(&coffre, &["--config", &config_s, "backup"], &[])?;
    outln!("\n# A second backup of the unchanged folder reads and sends nothing new:");
    step(&coffre, &["--config", &config_s, "backup"], &[])?;
    step(&coffre, &["--config", &config_s, "snapshots"], &[])?;
    step(&coffre, &["--config", &config_s, "status"], &[])?;

    outln!("\n# 3. The technician restores the folder from the latest snapshot.");
    step(
        &coffre,
        &[
            "--config",
            &config_s,
            "restore",
            "latest",
            "--path",
            &folder_s,
            "--target",
            &restored_s,
        ],
        &[],
    )?;
    let name = folder.file_name().map(PathBuf::from).unwrap_or_default();
    let (files, bytes) = compare(&folder, &restored.join(name))?;
    // As many files as the snapshot holds: nothing was left out.
    let listed = Command::new(&coffre)
        .args(["--config", &config_s, "snapshots", "--json"])
        .output()?;
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout)?;
    let in_snapshot = listed["snapshots"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|s| s["files"].as_u64())
        .context("reading the snapshot list")?;
    if in_snapshot != files {
        bail!(
            "the snapshot holds {} but {files} were restored",
            crate::display::count(in_snapshot, "file")
        );
    }
    outln!(
        "\nEvery restored file is identical to its original in {}: {}, {}, every byte compared.",
        folder.display(),
        crate::display::count(files, "file"),
        format_size(bytes)
    );
    outln!("Demo done in {:.1} s.", started.elapsed().as_secs_f64());
    if args.keep {
        let kept = tmp.keep();
        outln!(
            "Kept {} (server data, client config, restored copy).",
            kept.display()
        );
    }
    Ok(())
}

/// Compares every file of the restored tree `copy` with the one at the same
/// place in `orig` (excluded files, such as build caches, were not restored);
/// returns the files and bytes compared.
fn compare(orig: &Path, copy: &Path) -> Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for e in fs::read_dir(copy)? {
        let e = e?;
        let (pc, po) = (e.path(), orig.join(e.file_name()));
        let md = fs::symlink_metadata(&pc)?;
        if md.is_dir() {
            let (f, b) = compare(&po, &pc)?;
            files += f;
            bytes += b;
        } else if md.is_file() {
            if fs::read(&pc)? != fs::read(&po).unwrap_or_default() {
                bail!(
                    "{} differs from the original {}",
                    pc.display(),
                    po.display()
                );
            }
            files += 1;
            bytes += md.len();
        }
    }
    Ok((files, bytes))
}
