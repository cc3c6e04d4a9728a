//! Windows file security and replacement for the store, as Unix gets them from modes and
//! `rename`: the state directory and every file the store writes are readable by the current
//! user only (a protected DACL with one entry, full control for the user's SID, in place of
//! 0700/0600), and replacing a file that another process has open for reading waits for it
//! instead of failing at once.

#![cfg(windows)]

use std::ffi::OsStr;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_ACCESS_DENIED, ERROR_SHARING_VIOLATION, HANDLE, HLOCAL, LocalFree,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW, SDDL_REVISION_1,
    SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    ACL, DACL_SECURITY_INFORMATION, GetTokenInformation, PSECURITY_DESCRIPTOR, SetFileSecurityW, TOKEN_QUERY,
    TOKEN_USER, TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::{
    MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH, MoveFileExW,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// How long a replace waits for readers that keep the old file open (Windows refuses to
/// replace a file open without `FILE_SHARE_DELETE`, which most programs' readers are).
const REPLACE_PATIENCE: Duration = Duration::from_secs(2);

/// The DACL of a private folder: full control for the user, inherited by what is created in it
/// (`OICI`), and nothing inherited from above (`P`).
fn folder_sddl(sid: &str) -> String {
    format!("D:P(A;OICI;FA;;;{sid})")
}

/// The DACL of a private file: full control for the user, nothing inherited.
fn file_sddl(sid: &str) -> String {
    format!("D:P(A;;FA;;;{sid})")
}

/// Makes `dir` readable by the current user only, unless it already is.
pub(crate) fn make_private_dir(dir: &Path) -> io::Result<()> {
    let wanted = folder_sddl(user_sid()?);
    // Only when it differs: the state folder is opened at every command.
    if dacl_sddl(dir).is_ok_and(|current| current == wanted) {
        return Ok(());
    }
    set_dacl(dir, &wanted)
}

/// Replaces `path` with `tmp` (a finished temp file beside it): makes `tmp` readable by the
/// current user only, then moves it over `path` (`MoveFileExW`, replacing, written through),
/// retrying for up to [`REPLACE_PATIENCE`] while a reader holds `path` open.
pub(crate) fn replace_private(tmp: &Path, path: &Path) -> io::Result<()> {
    set_dacl(tmp, &file_sddl(user_sid()?))?;
    let (from, to) = (long_wide(tmp)?, long_wide(path)?);
    let deadline = Instant::now() + REPLACE_PATIENCE;
    let mut wait = Duration::from_millis(2);
    loop {
        // SAFETY: both are NUL-terminated UTF-16 strings that outlive the call.
        if unsafe {
            MoveFileExW(from.as_ptr(), to.as_ptr(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)
        } != 0
        {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        let busy = matches!(e.raw_os_error(), Some(c) if c == ERROR_SHARING_VIOLATION as i32 || c == ERROR_ACCESS_DENIED as i32);
        if !busy || Instant::now() >= deadline {
            return Err(e);
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_millis(25));
    }
}

/// The DACL of `path` in SDDL (`D:P(A;;FA;;;S-1-5-21-...)`).
fn dacl_sddl(path: &Path) -> io::Result<String> {
    let name = long_wide(path)?;
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated; the out-pointers are valid; `sd` is freed below.
    let rc = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    let _sd = Local(sd as HLOCAL);
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sd` is the descriptor just read; `text` is freed by `Local`.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let _text = Local(text as HLOCAL);
    // SAFETY: the API returned a NUL-terminated string.
    Ok(unsafe { from_wide_nul(text) })
}

/// Puts the DACL written as `sddl` on `path` as it is (its `P` protects it from inheriting).
/// `SetFileSecurityW` rather than `SetNamedSecurityInfoW`: it neither adds the parent's
/// inheritable entries nor rewrites what a folder's files inherited (files the store writes get
/// their own DACL as they are written); under Wine, whose `SetNamedSecurityInfoW` adds the
/// parent's entries despite the `P`, it is the one that leaves others without access.
fn set_dacl(path: &Path, sddl: &str) -> io::Result<()> {
    let text = wide(OsStr::new(sddl));
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `text` is NUL-terminated; `sd` is freed by `Local`.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            text.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let _sd = Local(sd as HLOCAL);
    let name = long_wide(path)?;
    // SAFETY: `name` is NUL-terminated and `sd` a valid descriptor for the call.
    if unsafe { SetFileSecurityW(name.as_ptr(), DACL_SECURITY_INFORMATION, sd) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The current user's SID (`S-1-5-21-...`), from the process token, read once.
fn user_sid() -> io::Result<&'static str> {
    static SID: OnceLock<Result<String, i32>> = OnceLock::new();
    match SID.get_or_init(|| read_user_sid().map_err(|e| e.raw_os_error().unwrap_or(0))) {
        Ok(sid) => Ok(sid),
        Err(code) => Err(io::Error::from_raw_os_error(*code)),
    }
}

fn read_user_sid() -> io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo-handle of this process needs no closing; `token` is closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let result = (|| {
        let mut len = 0u32;
        // SAFETY: a size query (no buffer); it fails with the size needed.
        unsafe { GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut len) };
        // u64s keep the buffer aligned for TOKEN_USER.
        let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
        // SAFETY: `buf` holds `len` bytes.
        if unsafe { GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), len, &mut len) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the call filled `buf` with a TOKEN_USER.
        let user = unsafe { &*(buf.as_ptr() as *const TOKEN_USER) };
        let mut text: *mut u16 = std::ptr::null_mut();
        // SAFETY: the SID points into `buf`, alive here; `text` is freed by `Local`.
        if unsafe { ConvertSidToStringSidW(user.User.Sid, &mut text) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let _text = Local(text as HLOCAL);
        // SAFETY: the API returned a NUL-terminated string.
        Ok(unsafe { from_wide_nul(text) })
    })();
    // SAFETY: `token` was opened above.
    unsafe { CloseHandle(token) };
    result
}

/// Memory the security APIs allocate with `LocalAlloc`, freed when dropped.
struct Local(HLOCAL);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: allocated by the API that returned it, freed once.
            unsafe { LocalFree(self.0) };
        }
    }
}

fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// # Safety
/// `p` points to a NUL-terminated UTF-16 string.
unsafe fn from_wide_nul(p: *const u16) -> String {
    let mut len = 0;
    // SAFETY: the caller promises a terminating NUL.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` units were just read.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}

/// `path` made absolute as a NUL-terminated UTF-16 string, in the `\\?\` form when it is too
/// long for the plain one (as `std::fs` does for its own calls).
fn long_wide(path: &Path) -> io::Result<Vec<u16>> {
    let abs: Vec<u16> = std::path::absolute(path)?.as_os_str().encode_wide().collect();
    let slash = u16::from(b'\\');
    let verbatim = abs.starts_with(&[slash, slash, u16::from(b'?'), slash]);
    let mut out: Vec<u16> = if abs.len() < 248 || verbatim {
        abs
    } else if let Some(unc) = abs.strip_prefix(&[slash, slash][..]) {
        r"\\?\UNC\".encode_utf16().chain(unc.iter().copied()).collect()
    } else {
        r"\\?\".encode_utf16().chain(abs).collect()
    };
    out.push(0);
    Ok(out)
}
