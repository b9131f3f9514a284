//! The Windows client, for real, under Wine: the harness of the Windows
//! end-to-end tests (`client/tests/windows.rs`).
//!
//! It runs the real `coffre.exe` (built for `x86_64-pc-windows-gnu`) under
//! Debian's `wine64`, in a Wine prefix of its own (so a `%APPDATA%` of its
//! own), against the real daemon on loopback. Two gaps of Wine 8.0, not of
//! Windows, are bridged here and nowhere else:
//! - Wine 8.0 has no `bcryptprimitives.dll` (Windows 10 does), whose
//!   `ProcessPrng` Rust's standard library imports: the harness builds a
//!   ten-line one with MinGW (`bcryptprimitives.c`) into the prefix's
//!   `system32`;
//! - Wine refuses one of quinn's socket options: coffre.exe itself falls
//!   back to a plain UDP socket (`coffre_transport::socket`), as a real
//!   Windows that refused them would.
//!
//! What it needs, and how to get it, is said when missing: `wine64`
//! (`apt-get install wine64`), MinGW (`apt-get install gcc-mingw-w64-x86-64`)
//! and `coffre.exe` (`cargo build -p coffre-client --target
//! x86_64-pc-windows-gnu`; `COFFRE_WINDOWS_EXE` names another).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long one Windows command may take before the test calls it hung.
pub const LIMIT: Duration = Duration::from_secs(300);

/// One Wine prefix: a Windows PC of its own.
pub struct Wine {
    /// The prefix (its `drive_c`, registry and wineserver).
    pub prefix: tempfile::TempDir,
    /// `coffre.exe`.
    pub exe: PathBuf,
    wine: PathBuf,
}

/// The first of `names` found as an executable file in PATH or `extra`.
fn find_program(names: &[&str], extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(extra.iter().map(PathBuf::from));
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// The workspace's `target` folder (or `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
            }
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The newest modification time of the Rust sources `coffre.exe` is built
/// from (the client and the crates below it).
fn newest_source() -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, newest);
            } else if p.extension() == Some(OsStr::new("rs")) {
                if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                    *newest = (*newest).max(t);
                }
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest = SystemTime::UNIX_EPOCH;
    walk(&root.join("src"), &mut newest);
    walk(&root.join("../crates"), &mut newest);
    newest
}

/// `coffre.exe`: `COFFRE_WINDOWS_EXE`, or the debug build in the target
/// folder, which must be newer than the sources.
fn coffre_exe() -> PathBuf {
    const BUILD: &str = "cargo build -p coffre-client --target x86_64-pc-windows-gnu \
        (once: rustup target add x86_64-pc-windows-gnu; apt-get install gcc-mingw-w64-x86-64)";
    if let Some(p) = std::env::var_os("COFFRE_WINDOWS_EXE") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "COFFRE_WINDOWS_EXE={} is not a file",
            p.display()
        );
        return p;
    }
    let exe = target_dir().join("x86_64-pc-windows-gnu/debug/coffre.exe");
    let built = std::fs::metadata(&exe)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: build it with {BUILD}", exe.display()));
    assert!(
        built >= newest_source(),
        "{} is older than the sources: build it again with {BUILD}",
        exe.display()
    );
    exe
}

/// Runs `command` to its end, within `limit`; its output.
pub fn run_within(mut command: Command, limit: Duration) -> Output {
    let shown = format!("{command:?}");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let start = Instant::now();
    // The pipes are read by wait_with_output; a thread waits for it.
    let (tx, rx) = std::sync::mpsc::channel();
    let id = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!(
                "{shown} did not finish within {} s",
                start.elapsed().as_secs()
            )
        }
    }
}

/// stdout of a command that must have succeeded.
pub fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Wine {
    /// A new Windows PC: a fresh prefix, with the `bcryptprimitives.dll`
    /// Wine 8.0 lacks.
    pub fn start() -> Wine {
        let wine = find_program(&["wine64", "wine"], &["/usr/lib/wine"]).unwrap_or_else(|| {
            panic!(
                "wine64 is missing: the Windows tests run coffre.exe under Wine \
                 (Debian: apt-get install wine64)"
            )
        });
        let gcc = find_program(&["x86_64-w64-mingw32-gcc"], &[]).unwrap_or_else(|| {
            panic!(
                "x86_64-w64-mingw32-gcc is missing: the Windows tests build a DLL Wine lacks \
                 (Debian: apt-get install gcc-mingw-w64-x86-64)"
            )
        });
        let exe = coffre_exe();
        let prefix = tempfile::Builder::new()
            .prefix("coffre-wine-")
            .tempdir()
            .unwrap();
        let w = Wine { prefix, exe, wine };
        // The prefix: created by a first command (wineboot).
        let mut boot = w.command("wineboot", &["--init"]);
        boot.env("WINEDEBUG", "-all");
        ok(&run_within(boot, LIMIT), "wineboot --init");
        let system32 = w.prefix.path().join("drive_c/windows/system32");
        assert!(system32.is_dir(), "wineboot made no {}", system32.display());
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine");
        let mut build = Command::new(gcc);
        build
            .arg("-shared")
            .arg("-O2")
            .arg("-o")
            .arg(system32.join("bcryptprimitives.dll"))
            .arg(here.join("bcryptprimitives.c"))
            .arg(here.join("bcryptprimitives.def"))
            .arg("-ladvapi32");
        ok(&run_within(build, LIMIT), "building bcryptprimitives.dll");
        w
    }

    /// `program ARGS` run under this prefix's Wine (`program` a Windows
    /// path or a program of Wine's own: `cmd`, `attrib`, `schtasks`).
    pub fn command(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut c = Command::new(&self.wine);
        c.arg(program)
            .args(args)
            .env("WINEPREFIX", self.prefix.path())
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko install prompt: nothing here needs them.
            .env("WINEDLLOVERRIDES", "mscoree=;mshtml=")
            .env_remove("COFFRE_PASSPHRASE")
            .env_remove("DISPLAY");
        c
    }

    /// `coffre.exe ARGS`, with the default configuration (in `%APPDATA%`).
    pub fn coffre(&self, args: &[&str]) -> Command {
        let mut c = self.command(&self.exe, args);
        c.env("COFFRE_CONNECT_TIMEOUT", "10");
        c
    }

    /// Runs `coffre.exe ARGS`, which must succeed: its stdout.
    pub fn coffre_ok(&self, args: &[&str]) -> String {
        ok(
            &run_within(self.coffre(args), LIMIT),
            &format!("coffre.exe {args:?}"),
        )
    }

    /// Runs `coffre.exe ARGS --json`, which must succeed.
    pub fn coffre_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.coffre_ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The Windows path of a Linux path (Wine's `Z:` drive is `/`).
    pub fn win_path(&self, unix: &Path) -> String {
        format!("Z:{}", unix.to_str().unwrap().replace('/', "\\"))
    }

    /// This PC's user profile folder (`C:\users\NAME`) on the Linux side.
    pub fn profile(&self) -> PathBuf {
        let users = self.prefix.path().join("drive_c/users");
        std::fs::read_dir(&users)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name() != Some(OsStr::new("Public")) && p.is_dir())
            .unwrap_or_else(|| panic!("no user profile in {}", users.display()))
    }

    /// `%APPDATA%` (`C:\users\NAME\AppData\Roaming`) on the Linux side.
    pub fn appdata(&self) -> PathBuf {
        self.profile().join("AppData/Roaming")
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        // The prefix's wineserver goes with it.
        let wineserver =
            self.wine
                .with_file_name(if self.wine.file_name() == Some(OsStr::new("wine64")) {
                    "wineserver64"
                } else {
                    "wineserver"
                });
        let server = if wineserver.is_file() {
            wineserver
        } else {
            PathBuf::from("wineserver")
        };
        let _ = Command::new(server)
            .arg("-k")
            .env("WINEPREFIX", self.prefix.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Wine {
    /// Builds the Windows program `tests/wine/NAME.c` with MinGW into this
    /// prefix's `C:\NAME.exe`; its Windows path, for [`Wine::command`].
    pub fn build_c(&self, name: &str) -> String {
        let gcc = find_program(&["x86_64-w64-mingw32-gcc"], &[])
            .expect("x86_64-w64-mingw32-gcc (Debian: apt-get install gcc-mingw-w64-x86-64)");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/wine/{name}.c"));
        let exe = self.prefix.path().join(format!("drive_c/{name}.exe"));
        let mut build = Command::new(gcc);
        build.arg("-O2").arg("-o").arg(&exe).arg(&source);
        ok(&run_within(build, LIMIT), &format!("building {name}.exe"));
        format!(r"C:\{name}.exe")
    }
}

/// Task Scheduler's side (`client/tests/windows_schedule.rs`).
impl Wine {
    /// The task store's file of task `name`
    /// (`C:\windows\system32\tasks\NAME`) on the Linux side.
    pub fn task_file(&self, name: &str) -> PathBuf {
        self.prefix
            .path()
            .join("drive_c/windows/system32/tasks")
            .join(name)
    }

    /// A task store file as text (Wine writes UTF-8 with a byte-order mark,
    /// Windows UTF-16LE).
    pub fn read_task(&self, file: &Path) -> String {
        let bytes =
            std::fs::read(file).unwrap_or_else(|e| panic!("no task file {}: {e}", file.display()));
        match bytes.as_slice() {
            [0xFF, 0xFE, rest @ ..] => String::from_utf16_lossy(
                &rest
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect::<Vec<_>>(),
            ),
            [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
            other => String::from_utf8_lossy(other).into_owned(),
        }
    }

    /// The default configuration's Windows path,
    /// `C:\users\NAME\AppData\Roaming\coffre\config.toml`.
    pub fn default_config_win(&self) -> String {
        let user = self.profile();
        format!(
            r"C:\users\{}\AppData\Roaming\coffre\config.toml",
            user.file_name().unwrap().to_string_lossy()
        )
    }
}
