//! Files and folders only their owner may read: the credentials file and the
//! state folder that holds it.
//!
//! | platform | how | read back by |
//! | --- | --- | --- |
//! | Unix | mode 0600 (file), 0700 (folder) | the mode bits |
//! | Windows | a *protected* DACL (no ACE inherited from the parent) with two ACEs, full control for the current user (the SID of the process token) and for SYSTEM; inheritable on the folder, so what is created inside starts private too | `GetNamedSecurityInfoW`: every ACE that allows something must name the user or SYSTEM |
//!
//! On Windows the DACL is set by path (`SetNamedSecurityInfoW`: the handle
//! of a file opened by `std` for reading and writing lacks `WRITE_DAC`), then
//! read back; when the list read back lets others in (Wine 8 merges the
//! folder's inheritable entries despite the "protected" flag), it is set
//! again with `SetFileSecurityW`, which Windows accepts as well.
//! Administrators are not granted access: they can still take ownership, as
//! on any Windows file, but nothing lets another user account read the key.
//! What Wine does with these calls is in `docs/scheduling.md` ("What
//! `coffre schedule` has been tested on") and tested by
//! `client/tests/windows_schedule.rs`.

use std::path::Path;

/// Whether a file or folder can be read by someone else than its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privacy {
    /// Only the owner (and, on Windows, SYSTEM) may open it.
    Private,
    /// Others may: who, in words ("mode 0644", "Everyone (S-1-1-0)").
    Open(String),
}

impl Privacy {
    /// True for [`Privacy::Private`].
    #[cfg(not(unix))]
    pub fn is_private(&self) -> bool {
        matches!(self, Privacy::Private)
    }
}

/// Makes the file at `path` (open as `file`) readable by its owner only.
#[cfg(unix)]
pub fn restrict_file(_path: &Path, file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

/// Makes the folder `dir` usable by its owner only.
#[cfg(unix)]
pub fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Who may read `path`, from its mode bits (group or other bits set: open).
#[cfg(unix)]
pub fn check(path: &Path) -> std::io::Result<Privacy> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    Ok(if mode & 0o077 == 0 {
        Privacy::Private
    } else {
        Privacy::Open(format!("mode {mode:04o}"))
    })
}

/// Makes the file at `path` readable by the current user and SYSTEM only.
#[cfg(windows)]
pub fn restrict_file(path: &Path, _file: &std::fs::File) -> std::io::Result<()> {
    windows::set_private(path, false)
}

/// Makes the folder `dir` usable by the current user and SYSTEM only, and
/// what is created inside it after this.
#[cfg(windows)]
pub fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    windows::set_private(dir, true)
}

/// Who may read `path`, from its DACL read back.
#[cfg(windows)]
pub fn check(path: &Path) -> std::io::Result<Privacy> {
    windows::check(path)
}

/// Elsewhere: nothing is known to be done.
#[cfg(not(any(unix, windows)))]
pub fn restrict_file(_path: &Path, _file: &std::fs::File) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "private files are not supported on this platform",
    ))
}

/// Elsewhere: nothing is known to be done.
#[cfg(not(any(unix, windows)))]
pub fn restrict_dir(_dir: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "private folders are not supported on this platform",
    ))
}

/// Elsewhere: unknown.
#[cfg(not(any(unix, windows)))]
pub fn check(_path: &Path) -> std::io::Result<Privacy> {
    Ok(Privacy::Open("unknown on this platform".into()))
}

// The one place of the client allowed `unsafe` (client/Cargo.toml): Win32
// calls through windows-sys. Every buffer handed to Windows is a Vec<u64> (8-byte
// aligned, as SIDs and ACLs need) sized from what Windows said; every
// pointer Windows returns is used before the buffer that holds it is freed.
#[cfg(windows)]
#[allow(unsafe_code)]
mod windows {
    //! The Win32 calls, each checked; every buffer Windows allocates is freed.

    use std::ffi::c_void;
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::{null, null_mut};

    use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, ERROR_SUCCESS, HANDLE};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, GetNamedSecurityInfoW, SetNamedSecurityInfoW, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        AclSizeInformation, AddAccessAllowedAceEx, CreateWellKnownSid, EqualSid, GetAce,
        GetAclInformation, GetLengthSid, GetTokenInformation, InitializeAcl,
        InitializeSecurityDescriptor, SetFileSecurityW, SetSecurityDescriptorControl,
        SetSecurityDescriptorDacl, TokenUser, WinLocalSystemSid, ACCESS_ALLOWED_ACE, ACE_HEADER,
        ACL, ACL_REVISION, ACL_SIZE_INFORMATION, CONTAINER_INHERIT_ACE, DACL_SECURITY_INFORMATION,
        OBJECT_INHERIT_ACE, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
        SECURITY_DESCRIPTOR, SECURITY_MAX_SID_SIZE, SE_DACL_PROTECTED, TOKEN_QUERY, TOKEN_USER,
    };
    use windows_sys::Win32::Storage::FileSystem::FILE_ALL_ACCESS;
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    use super::Privacy;

    /// `ACCESS_ALLOWED_ACE_TYPE` (winnt.h).
    const ACCESS_ALLOWED: u8 = 0;
    /// `SECURITY_DESCRIPTOR_REVISION` (winnt.h).
    const SD_REVISION: u32 = 1;

    fn wide(path: &Path) -> Vec<u16> {
        path.as_os_str().encode_wide().chain(Some(0)).collect()
    }

    /// A call that returns a Win32 `BOOL`.
    fn check_bool(ok: i32, what: &str) -> io::Result<()> {
        if ok != 0 {
            Ok(())
        } else {
            let e = io::Error::last_os_error();
            Err(io::Error::new(e.kind(), format!("{what}: {e}")))
        }
    }

    /// A call that returns a Win32 error code.
    fn check_code(code: u32, what: &str) -> io::Result<()> {
        if code == ERROR_SUCCESS {
            Ok(())
        } else {
            let e = io::Error::from_raw_os_error(code as i32);
            Err(io::Error::new(e.kind(), format!("{what}: {e}")))
        }
    }

    /// The user SID of this process's token (a copy: 8-byte aligned buffer).
    fn current_user() -> io::Result<Vec<u64>> {
        // SAFETY: the token handle is closed once read; GetTokenInformation
        // writes at most `buf.len() * 8` bytes; the TOKEN_USER it wrote
        // points into `buf`, alive while the SID is copied out of it.
        unsafe {
            let mut token: HANDLE = null_mut();
            check_bool(
                OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token),
                "OpenProcessToken",
            )?;
            let mut len = 0u32;
            GetTokenInformation(token, TokenUser, null_mut(), 0, &mut len);
            let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
            let got = GetTokenInformation(
                token,
                TokenUser,
                buf.as_mut_ptr().cast(),
                (buf.len() * 8) as u32,
                &mut len,
            );
            CloseHandle(token);
            check_bool(got, "GetTokenInformation(TokenUser)")?;
            let user = &*(buf.as_ptr() as *const TOKEN_USER);
            let sid = user.User.Sid;
            let n = GetLengthSid(sid) as usize;
            let mut copy = vec![0u64; n.div_ceil(8)];
            std::ptr::copy_nonoverlapping(sid as *const u8, copy.as_mut_ptr().cast::<u8>(), n);
            Ok(copy)
        }
    }

    /// The SID of SYSTEM (S-1-5-18).
    fn system() -> io::Result<Vec<u64>> {
        let mut buf = vec![0u64; (SECURITY_MAX_SID_SIZE as usize).div_ceil(8)];
        let mut len = (buf.len() * 8) as u32;
        // SAFETY: `buf` holds SECURITY_MAX_SID_SIZE bytes, as `len` says.
        unsafe {
            check_bool(
                CreateWellKnownSid(
                    WinLocalSystemSid,
                    null_mut(),
                    buf.as_mut_ptr().cast(),
                    &mut len,
                ),
                "CreateWellKnownSid(SYSTEM)",
            )?;
        }
        Ok(buf)
    }

    fn psid(sid: &[u64]) -> PSID {
        sid.as_ptr() as PSID
    }

    /// `S-1-5-21-…`, for messages.
    fn sid_text(sid: PSID) -> String {
        // SAFETY: `sid` is a valid SID; the string Windows allocates ends
        // with a 0, is read up to it, then freed with LocalFree.
        unsafe {
            let mut text = null_mut();
            if ConvertSidToStringSidW(sid, &mut text) == 0 {
                return "an unknown account".into();
            }
            let len = (0..).take_while(|&i| *text.add(i) != 0).count();
            let s = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
            LocalFree(text.cast());
            s
        }
    }

    /// The usual name of a well-known SID, else the SID itself.
    fn who(sid: &str) -> String {
        let name = match sid {
            "S-1-1-0" => "Everyone",
            "S-1-5-11" => "Authenticated Users",
            "S-1-5-32-545" => "Users",
            "S-1-5-32-544" => "Administrators",
            "S-1-3-0" => "the creator owner",
            _ => return sid.to_string(),
        };
        format!("{name} ({sid})")
    }

    pub(super) fn set_private(path: &Path, inherit: bool) -> io::Result<()> {
        let user = current_user()?;
        let system = system()?;
        let flags = if inherit {
            OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE
        } else {
            0
        };
        let name = wide(path);
        // SAFETY: the ACL buffer is sized for its header and two ACEs with
        // their SIDs, 8-byte aligned; the SIDs, the ACL, the descriptor and
        // the path outlive every call that is given them.
        unsafe {
            let size = std::mem::size_of::<ACL>()
                + 2 * std::mem::size_of::<ACCESS_ALLOWED_ACE>()
                + GetLengthSid(psid(&user)) as usize
                + GetLengthSid(psid(&system)) as usize;
            let mut acl = vec![0u64; size.div_ceil(8)];
            let acl_ptr = acl.as_mut_ptr() as *mut ACL;
            check_bool(
                InitializeAcl(acl_ptr, (acl.len() * 8) as u32, ACL_REVISION),
                "InitializeAcl",
            )?;
            for sid in [&user, &system] {
                check_bool(
                    AddAccessAllowedAceEx(acl_ptr, ACL_REVISION, flags, FILE_ALL_ACCESS, psid(sid)),
                    "AddAccessAllowedAceEx",
                )?;
            }
            check_code(
                SetNamedSecurityInfoW(
                    name.as_ptr(),
                    SE_FILE_OBJECT,
                    DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                    null_mut(),
                    null_mut(),
                    acl_ptr,
                    null(),
                ),
                "SetNamedSecurityInfoW",
            )?;
            if check(path)?.is_private() {
                return Ok(());
            }
            // Wine 8 answers success but adds the parent folder's
            // inheritable entries (Everyone may read) despite
            // PROTECTED_DACL_SECURITY_INFORMATION. SetFileSecurityW with a
            // descriptor marked SE_DACL_PROTECTED sets the list as given,
            // under Wine as on Windows.
            let mut sd = SECURITY_DESCRIPTOR::default();
            let sd_ptr = (&mut sd as *mut SECURITY_DESCRIPTOR).cast();
            check_bool(
                InitializeSecurityDescriptor(sd_ptr, SD_REVISION),
                "InitializeSecurityDescriptor",
            )?;
            check_bool(
                SetSecurityDescriptorDacl(sd_ptr, 1, acl_ptr, 0),
                "SetSecurityDescriptorDacl",
            )?;
            check_bool(
                SetSecurityDescriptorControl(sd_ptr, SE_DACL_PROTECTED, SE_DACL_PROTECTED),
                "SetSecurityDescriptorControl",
            )?;
            check_bool(
                SetFileSecurityW(
                    name.as_ptr(),
                    DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                    sd_ptr,
                ),
                "SetFileSecurityW",
            )?;
        }
        match check(path)? {
            Privacy::Private => Ok(()),
            Privacy::Open(who) => Err(io::Error::other(format!(
                "the access list was set but does not hold: {who}"
            ))),
        }
    }

    pub(super) fn check(path: &Path) -> io::Result<Privacy> {
        let user = current_user()?;
        let system = system()?;
        let name = wide(path);
        // SAFETY: `dacl` points into the descriptor `sd`, which Windows
        // allocated and which is freed after `read_dacl` is done with both.
        unsafe {
            let mut dacl: *mut ACL = null_mut();
            let mut sd: PSECURITY_DESCRIPTOR = null_mut();
            check_code(
                GetNamedSecurityInfoW(
                    name.as_ptr(),
                    SE_FILE_OBJECT,
                    DACL_SECURITY_INFORMATION,
                    null_mut(),
                    null_mut(),
                    &mut dacl,
                    null_mut(),
                    &mut sd,
                ),
                "GetNamedSecurityInfoW",
            )?;
            let found = read_dacl(dacl, &user, &system);
            LocalFree(sd);
            found
        }
    }

    /// Every ACE that allows access must name the user or SYSTEM, and the
    /// DACL must be there (a null DACL lets everyone in). Whether it is
    /// protected is not asked: Wine does not keep the flag, and on Windows
    /// an unprotected list holds the entries inherited from `%APPDATA%`
    /// (Administrators among them), which this check already reports.
    ///
    /// # Safety
    /// `dacl` is null or the DACL of a security descriptor still allocated;
    /// `user` and `system` hold SIDs.
    unsafe fn read_dacl(dacl: *mut ACL, user: &[u64], system: &[u64]) -> io::Result<Privacy> {
        if dacl.is_null() {
            return Ok(Privacy::Open(
                "it has no access list at all: everyone may read it".into(),
            ));
        }
        let mut others = Vec::new();
        let mut info = ACL_SIZE_INFORMATION::default();
        check_bool(
            GetAclInformation(
                dacl,
                (&mut info as *mut ACL_SIZE_INFORMATION).cast(),
                std::mem::size_of::<ACL_SIZE_INFORMATION>() as u32,
                AclSizeInformation,
            ),
            "GetAclInformation",
        )?;
        for i in 0..info.AceCount {
            let mut ace: *mut c_void = null_mut();
            check_bool(GetAce(dacl, i, &mut ace), "GetAce")?;
            let header = &*(ace as *const ACE_HEADER);
            if header.AceType != ACCESS_ALLOWED {
                // Deny ACEs grant nothing; object ACEs do not occur on files.
                continue;
            }
            let sid = std::ptr::addr_of!((*(ace as *const ACCESS_ALLOWED_ACE)).SidStart) as PSID;
            if EqualSid(sid, psid(user)) == 0 && EqualSid(sid, psid(system)) == 0 {
                others.push(who(&sid_text(sid)));
            }
        }
        if !others.is_empty() {
            others.dedup();
            return Ok(Privacy::Open(format!(
                "its access list lets in {}",
                others.join(", ")
            )));
        }
        Ok(Privacy::Private)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_made_private_reads_back_private_and_an_open_one_says_how() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        let file = std::fs::File::create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(check(&path).unwrap(), Privacy::Open("mode 0644".into()));
        restrict_file(&path, &file).unwrap();
        assert_eq!(check(&path).unwrap(), Privacy::Private);
        let sub = dir.path().join("state");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert_eq!(check(&sub).unwrap(), Privacy::Open("mode 0750".into()));
        restrict_dir(&sub).unwrap();
        assert_eq!(check(&sub).unwrap(), Privacy::Private);
    }
}
