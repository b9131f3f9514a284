//! Volume Shadow Copies (Windows): the one place that makes one, names a
//! file inside it, and deletes it.
//!
//! **Never run.** This module compiles for Windows and its pure parts are
//! unit-tested on Linux, but no test has made a shadow copy: Wine has no
//! Volume Shadow Copy service, and the project has no Windows machine in CI.
//! What runs under Wine is the path where no shadow copy can be made
//! (docs/scheduling.md, "Files another program holds open").
//!
//! **How, and why this way.** A shadow copy is made the way Windows
//! documents for scripts: WMI's `Win32_ShadowCopy.Create(Volume,
//! "ClientAccessible")`, through Windows PowerShell 5.1 (present on every
//! Windows 10 and 11) and its CIM cmdlets. The VSS COM API
//! (`IVssBackupComponents`, as restic's `vss_windows.go` drives it) would
//! need `unsafe` code, which this workspace forbids. WMI answers with the
//! copy's id; `Get-CimInstance Win32_ShadowCopy` gives its device
//! (`\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy7`), below which the
//! volume's folders are found as they were at that instant: `C:\Users\ana\x.pst`
//! is `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy7\Users\ana\x.pst`.
//! [`Shadows`] deletes its copies when dropped (`Remove-CimInstance`); a
//! process killed in between leaves one behind, which Windows deletes when
//! its shadow storage fills (oldest first), or `vssadmin delete shadows`.
//!
//! **Who may.** Only an administrator's elevated process or SYSTEM (the
//! nightly task installed with `coffre schedule install --system`) may make
//! one; the script checks first, so a member's own run is told why there is
//! none without waiting for WMI. A ClientAccessible copy involves the
//! VSS writers (Outlook has none; a database's own writer, where it has one,
//! makes its file consistent in the copy).

use std::path::{Path, PathBuf};

/// What [`Shadows::create`] says when there is no shadow copy.
pub type Unavailable = String;

/// Shadow copies of some volumes, deleted when dropped.
#[derive(Debug, Default)]
pub struct Shadows {
    /// Per volume: its drive (`C:`), the copy's WMI id and its device.
    copies: Vec<Copy>,
}

#[derive(Debug)]
struct Copy {
    drive: String,
    id: String,
    device: String,
}

impl Shadows {
    /// A shadow copy of each volume holding one of `paths`; none, with why,
    /// if this process may not make them or Windows refuses.
    pub fn create(paths: &[&Path]) -> Result<Shadows, Unavailable> {
        let mut drives: Vec<String> = paths
            .iter()
            .filter_map(|p| drive_of(&p.to_string_lossy()))
            .collect();
        drives.sort();
        drives.dedup();
        if drives.is_empty() {
            return Err("the files are not on a local drive (C:, D:...)".into());
        }
        let mut shadows = Shadows::default();
        for drive in drives {
            let (id, device) = platform::create(&drive)?;
            shadows.copies.push(Copy { drive, id, device });
        }
        Ok(shadows)
    }

    /// Where `path` is found in these shadow copies.
    pub fn path_of(&self, path: &Path) -> Option<PathBuf> {
        let path = path.to_string_lossy();
        let drive = drive_of(&path)?;
        let copy = self.copies.iter().find(|c| c.drive == drive)?;
        in_shadow(&copy.device, &path).map(PathBuf::from)
    }
}

impl Drop for Shadows {
    fn drop(&mut self) {
        for c in &self.copies {
            if let Err(why) = platform::delete(&c.id) {
                errln!(
                    "coffre: warning: cannot delete the shadow copy {} of {} ({why}): \
                     `vssadmin delete shadows /shadow={}` deletes it",
                    c.id,
                    c.drive,
                    c.id
                );
            }
        }
    }
}

/// The drive of a Windows path (`C:\x`, `\\?\C:\x`), as `C:`.
fn drive_of(path: &str) -> Option<String> {
    let path = path.strip_prefix(r"\\?\").unwrap_or(path);
    let b = path.as_bytes();
    (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b.len() == 2 || b[2] == b'\\'))
        .then(|| format!("{}:", (b[0] as char).to_ascii_uppercase()))
}

/// `path` (on a drive) below a shadow copy's `device`.
fn in_shadow(device: &str, path: &str) -> Option<String> {
    let path = path.strip_prefix(r"\\?\").unwrap_or(path);
    drive_of(path)?;
    let rest = path[2..].trim_start_matches('\\');
    Some(format!("{}\\{rest}", device.trim_end_matches('\\')))
}

/// WMI's answer to `Win32_ShadowCopy.Create` (its documented return codes).
#[cfg_attr(not(windows), allow(dead_code))] // Windows' code; tested everywhere
fn create_error(code: &str) -> String {
    let why = match code.trim() {
        "1" => "access denied",
        "2" => "invalid argument",
        "3" => "volume not found",
        "4" => "volume not supported (shadow copies need NTFS or ReFS)",
        "5" => "unsupported shadow copy context",
        "6" => "not enough shadow storage on the volume",
        "7" => "the volume is in use",
        "8" => "the maximum number of shadow copies is reached",
        "9" => "another shadow copy is being made",
        "10" => "a shadow copy provider vetoed it",
        "11" => "no shadow copy provider is registered",
        "12" => "the shadow copy provider failed",
        _ => "unknown error",
    };
    format!(
        "Windows refused the shadow copy (WMI code {}: {why})",
        code.trim()
    )
}

/// The PowerShell script that makes a shadow copy of `drive` and prints
/// `ID<TAB>DEVICE`; exit 2 when not elevated, 3 when WMI refuses (the code
/// on stdout).
#[cfg_attr(not(windows), allow(dead_code))] // Windows' code; tested everywhere
fn create_script(drive: &str) -> String {
    format!(
        r#"$ErrorActionPreference = 'Stop'
$me = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $me.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {{ exit 2 }}
$r = Invoke-CimMethod -ClassName Win32_ShadowCopy -MethodName Create -Arguments @{{ Volume = '{drive}\'; Context = 'ClientAccessible' }}
if ($r.ReturnValue -ne 0) {{ Write-Output $r.ReturnValue; exit 3 }}
$s = Get-CimInstance -ClassName Win32_ShadowCopy -Filter ("ID='" + $r.ShadowID + "'")
Write-Output ($s.ID + "`t" + $s.DeviceObject)
"#
    )
}

/// The script that deletes the shadow copy `id`.
#[cfg_attr(not(windows), allow(dead_code))] // Windows' code; tested everywhere
fn delete_script(id: &str) -> String {
    format!(
        "$ErrorActionPreference = 'Stop'\n\
         Get-CimInstance -ClassName Win32_ShadowCopy -Filter \"ID='{id}'\" | Remove-CimInstance\n"
    )
}

/// `ID<TAB>DEVICE` as the create script prints it.
#[cfg_attr(not(windows), allow(dead_code))] // Windows' code; tested everywhere
fn parse_created(out: &str) -> Option<(String, String)> {
    let line = out.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let (id, device) = line.split_once('\t')?;
    (id.starts_with('{') && device.starts_with(r"\\?\GLOBALROOT\"))
        .then(|| (id.to_string(), device.to_string()))
}

#[cfg(windows)]
mod platform {
    use std::process::{Command, Stdio};

    /// Windows PowerShell, by its full path (not whatever `powershell` a
    /// PATH finds first: this may run as SYSTEM).
    fn powershell() -> std::path::PathBuf {
        let root = std::env::var_os("SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
        std::path::Path::new(&root).join(r"System32\WindowsPowerShell\v1.0\powershell.exe")
    }

    fn run(script: &str) -> Result<std::process::Output, String> {
        Command::new(powershell())
            .args([
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass",
                "-Command",
                script,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run Windows PowerShell ({e})"))
    }

    pub(super) fn create(drive: &str) -> Result<(String, String), String> {
        let out = run(&super::create_script(drive))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match out.status.code() {
            // Wine's powershell.exe is a stub that prints nothing.
            Some(0) => super::parse_created(&stdout).ok_or_else(|| {
                format!(
                    "Windows PowerShell did not make one: it printed {:?}, not a shadow \
                     copy's id and device",
                    stdout.trim()
                )
            }),
            Some(2) => Err("coffre is not running as an administrator or SYSTEM: \
                 schedule the backup with `coffre schedule install --system`"
                .into()),
            Some(3) => Err(super::create_error(&stdout)),
            _ => Err(format!(
                "making a shadow copy of {drive} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    pub(super) fn delete(id: &str) -> Result<(), String> {
        let out = run(&super::delete_script(id))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

#[cfg(not(windows))]
mod platform {
    pub(super) fn create(_drive: &str) -> Result<(String, String), String> {
        Err("shadow copies are a Windows feature".into())
    }

    pub(super) fn delete(_id: &str) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_on_a_drive_is_found_below_the_shadow_device() {
        let device = r"\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy7";
        assert_eq!(drive_of(r"c:\Users\ana\x.pst").as_deref(), Some("C:"));
        assert_eq!(drive_of(r"\\?\D:\Compta\base.mdb").as_deref(), Some("D:"));
        assert_eq!(drive_of(r"\\server\share\x"), None);
        assert_eq!(drive_of("/home/ana"), None);
        assert_eq!(drive_of(r"C:relative"), None);
        assert_eq!(
            in_shadow(device, r"C:\Users\ana\Outlook\x.pst").as_deref(),
            Some(r"\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy7\Users\ana\Outlook\x.pst")
        );
        assert_eq!(
            in_shadow(&format!("{device}\\"), r"\\?\D:\base.mdb").as_deref(),
            Some(r"\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy7\base.mdb")
        );
        let shadows = Shadows {
            copies: vec![Copy {
                drive: "C:".into(),
                id: "{x}".into(),
                device: device.into(),
            }],
        };
        assert!(shadows.path_of(Path::new(r"D:\other")).is_none());
        // Dropping it would delete the copy: not here.
        std::mem::forget(shadows);
    }

    #[test]
    fn the_scripts_answers_are_read_back() {
        let out = "\r\n{1A2B-33}\t\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy3\r\n";
        assert_eq!(
            parse_created(out),
            Some((
                "{1A2B-33}".to_string(),
                r"\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3".to_string()
            ))
        );
        assert_eq!(parse_created("something else"), None);
        assert!(create_error("6\r\n").contains("not enough shadow storage"));
        assert!(create_error("99").contains("unknown error"));
        let script = create_script("C:");
        assert!(script.contains("Volume = 'C:\\'"), "{script}");
        assert!(script.contains("IsInRole"));
        assert!(delete_script("{1A2B-33}").contains("ID='{1A2B-33}'"));
    }

    #[test]
    fn there_is_no_shadow_copy_off_windows_or_off_a_drive() {
        let err = Shadows::create(&[Path::new("/home/ana/x")]).unwrap_err();
        assert!(err.contains("local drive"), "{err}");
    }
}
