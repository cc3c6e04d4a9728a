//! The state directory: one folder per account with its token, its last outcome, its
//! key-value data and its lock; plus the compile cache and the log.
//!
//! ```text
//! <state>/                 0700
//!   tokenhost.log
//!   cache/<sha256>-<engine>.cwasm, <sha256>.info.json
//!   accounts/<account>/    0700
//!     token.json           0600, written by temp file + fsync + rename
//!     status.json          0600, last attempt and outcome
//!     kv.json              0600, the provider's own storage
//!     lock                 held while refreshing
//! ```

use crate::secret::Secret;
use crate::{Error, time};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// One account's folder.
#[derive(Debug, Clone)]
pub(crate) struct AccountDir {
    name: String,
    dir: PathBuf,
}

/// A stored token and what the host knows about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken {
    /// Account it belongs to.
    pub account: String,
    /// Provider name that produced it.
    pub provider: String,
    /// The token itself.
    pub access_token: Secret,
    /// When it stops working (unix seconds), as resolved by [`crate::policy::resolve_expiry`].
    pub expires_at: Option<i64>,
    /// Where `expires_at` came from: `provider`, `jwt`, `cutoff` or `assumed`.
    pub expiry_source: String,
    /// When the broker issued it.
    pub issued_at: Option<i64>,
    /// The broker's user id.
    pub user_id: Option<String>,
    /// Named values that came with it.
    pub extras: Vec<StoredExtra>,
    /// When tokenhost stored it.
    pub refreshed_at: i64,
    /// The microseconds of `refreshed_at` (the old XTS file shows them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at_micros: Option<u32>,
    /// Refresh this long before `expires_at`.
    pub refresh_ahead_secs: u32,
    /// SHA-256 of the provider component that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_sha256: Option<String>,
}

/// A named value stored with a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredExtra {
    /// Name, as the provider gave it.
    pub name: String,
    /// Value (wrapped so it never prints by accident, secret or not).
    pub value: Secret,
    /// Whether the provider marked it secret (hidden from `status`).
    pub secret: bool,
}

/// What happened the last times the account was refreshed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AccountStatus {
    /// Provider name.
    pub provider: Option<String>,
    /// Last time a refresh was attempted.
    pub last_attempt: Option<i64>,
    /// `refreshed`, or the kind of the last failure.
    pub last_outcome: Option<String>,
    /// The last failure's message (already free of secrets).
    pub last_error: Option<String>,
    /// Last successful refresh.
    pub last_success: Option<i64>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Successful refreshes so far.
    pub refresh_count: u64,
    /// The broker called the token refreshed at this time invalid (from `check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_token_of: Option<i64>,
    /// When the token was last revoked with `logout`: tokens issued before are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_out_at: Option<i64>,
    /// A person gets this account's tokens (a browser login, or the broker asked for one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub person_login: bool,
    /// The day (`YYYY-MM-DD`) a login reminder last went out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminded_on: Option<String>,
}

/// Where an account notes the component it last ran from.
const PROVIDER_FILE: &str = "provider.path";

/// Held while an account refreshes; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct AccountLock {
    _file: File,
}

impl StateDir {
    /// The default location: `$XDG_STATE_HOME/tokenhost`, else `~/.local/state/tokenhost`
    /// (`%LOCALAPPDATA%\tokenhost` on Windows).
    pub fn default_path() -> PathBuf {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        if cfg!(windows)
            && let Some(p) = env("LOCALAPPDATA")
        {
            return p.join("tokenhost");
        }
        if let Some(p) = env("XDG_STATE_HOME") {
            return p.join("tokenhost");
        }
        match env("HOME") {
            Some(home) => home.join(".local").join("state").join("tokenhost"),
            None => PathBuf::from(".tokenhost-state"),
        }
    }

    /// Opens (creating, mode 0700) the state directory at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<StateDir, Error> {
        let root = root.into();
        create_private_dir(&root)?;
        create_private_dir(&root.join("accounts"))?;
        Ok(StateDir { root })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The compiled-component cache.
    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// The host's log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("tokenhost.log")
    }

    /// The folder of account `name` (created if missing).
    pub(crate) fn account(&self, name: &str) -> Result<AccountDir, Error> {
        validate_account_name(name)?;
        let dir = self.root.join("accounts").join(name);
        create_private_dir(&dir)?;
        Ok(AccountDir { name: name.to_string(), dir })
    }

    /// The component account `name` last ran from (see [`AccountDir::remember_provider`]).
    pub(crate) fn remembered_provider(&self, name: &str) -> Option<PathBuf> {
        validate_account_name(name).ok()?;
        let text = fs::read_to_string(self.root.join("accounts").join(name).join(PROVIDER_FILE)).ok()?;
        Some(PathBuf::from(text.trim_end_matches('\n')))
    }

    /// Accounts that have a folder, sorted.
    pub fn accounts(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.root.join("accounts"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| validate_account_name(n).is_ok())
            .collect();
        names.sort();
        names
    }
}

impl AccountDir {
    /// The stored token, if any. A file that cannot be read as a token is an error, never
    /// silently treated as missing (that would trigger a refresh over a good token).
    pub(crate) fn load_token(&self) -> Result<Option<StoredToken>, Error> {
        read_json(&self.dir.join("token.json"))
    }

    /// Replaces the stored token atomically.
    pub(crate) fn save_token(&self, token: &StoredToken) -> Result<(), Error> {
        write_json(&self.dir.join("token.json"), token)
    }

    /// Forgets the token (after a logout).
    pub(crate) fn remove_token(&self) -> Result<(), Error> {
        match fs::remove_file(self.dir.join("token.json")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing the token of `{}`", self.name), e))
            }
            _ => Ok(()),
        }
    }

    /// The last outcome (empty when never attempted).
    pub(crate) fn load_status(&self) -> AccountStatus {
        read_json(&self.dir.join("status.json")).ok().flatten().unwrap_or_default()
    }

    /// Records the last outcome. Not fsynced: it only informs, and a damaged one reads as
    /// empty. A logout is the exception (see [`AccountDir::save_logout`]).
    pub(crate) fn save_status(&self, status: &AccountStatus) -> Result<(), Error> {
        let path = self.dir.join("status.json");
        write_replace(&path, &json_bytes(status)?)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// Records a status that carries a logout durably: replayed pushes are judged by it.
    pub(crate) fn save_logout(&self, status: &AccountStatus) -> Result<(), Error> {
        write_json(&self.dir.join("status.json"), status)
    }

    /// Notes that the account runs the component at `path`, for commands that name the
    /// account without a config file.
    pub(crate) fn remember_provider(&self, path: &Path) {
        let Ok(abs) = std::path::absolute(path) else { return };
        let file = self.dir.join(PROVIDER_FILE);
        let line = format!("{}\n", abs.display());
        if fs::read_to_string(&file).ok().as_deref() != Some(line.as_str())
            && let Err(e) = write_replace(&file, line.as_bytes())
        {
            tracing::debug!("could not note the provider of `{}`: {e}", self.name);
        }
    }

    /// The provider's key-value file.
    pub(crate) fn kv_path(&self) -> PathBuf {
        self.dir.join("kv.json")
    }

    /// Waits for the account's exclusive lock without blocking the thread, so that other
    /// accounts go on while this one waits (for another process's refresh, say).
    pub async fn lock(&self) -> Result<AccountLock, Error> {
        let path = self.dir.join("lock");
        let file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let mut wait = std::time::Duration::from_millis(2);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(AccountLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_millis(50));
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(Error::io(format!("locking {}", path.display()), e));
                }
            }
        }
    }
}

impl StoredToken {
    /// Seconds left before expiry (negative once expired), if the expiry is known.
    pub fn remaining(&self, now: i64) -> Option<i64> {
        self.expires_at.map(|e| e - now)
    }

    /// Every secret value in it, for redaction.
    pub fn secrets(&self) -> Vec<Secret> {
        let mut s = vec![self.access_token.clone()];
        s.extend(self.extras.iter().filter(|e| e.secret).map(|e| e.value.clone()));
        s
    }
}

impl AccountStatus {
    /// Records a successful refresh.
    pub fn succeeded(&mut self, provider: &str) {
        let now = time::now();
        self.provider = Some(provider.to_string());
        self.last_attempt = Some(now);
        self.last_success = Some(now);
        self.last_outcome = Some("refreshed".into());
        self.last_error = None;
        self.consecutive_failures = 0;
        self.refresh_count += 1;
        self.invalid_token_of = None;
    }

    /// Records a failure.
    pub fn failed(&mut self, provider: Option<&str>, err: &Error) {
        if let Some(p) = provider {
            self.provider = Some(p.to_string());
        }
        self.last_attempt = Some(time::now());
        self.last_outcome = Some(err.kind().into());
        self.last_error = Some(err.to_string());
        self.consecutive_failures += 1;
    }
}

/// Account names become folder names: keep them to `[A-Za-z0-9._-]`, not starting with `.`.
pub(crate) fn validate_account_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid account name `{name}`: use letters, digits, `.`, `_` and `-` (at most 64)"
        )))
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Config(format!("{} is damaged ({e}); move it away to start afresh", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    write_atomic(path, &json_bytes(value)?).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

pub(crate) fn json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Config(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a part, and
/// so that the new one survives a power loss once this returns: a temp file beside it (mode
/// 0600), fsync, rename over, fsync the folder. For tokens, the provider's own storage and the
/// sinks other programs read. Temp files that a killed writer left in the folder are removed
/// first (see [`sweep_stale_temps`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, true)
}

/// As [`write_atomic`], without the fsyncs: readers still see the old file or the new one, but
/// a power loss may leave either (or, on some file systems, an empty file). For what can be
/// made again or is only informative: the last outcome, caches, the metrics file.
pub(crate) fn write_replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    sweep_stale_temps(dir);
    let tmp = dir.join(format!(".{name}.{}.{}{TEMP_SUFFIX}", std::process::id(), unique()));
    let result = (|| {
        let mut f = private_options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        #[cfg(windows)]
        crate::winfs::replace_private(&tmp, path)?;
        #[cfg(not(windows))]
        fs::rename(&tmp, path)?;
        if durable && let Ok(d) = File::open(dir) {
            // Not every platform can fsync a folder; the rename itself is what matters.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

const TEMP_SUFFIX: &str = ".tmp";

/// A writer killed between creating its temp file and renaming it (kill -9, power loss)
/// leaves the temp file behind, holding a token. Ours are `.<name>.<pid>.<n>.tmp`; one is stale
/// when its writer is no longer running (known on Linux) or it is older than a minute (no
/// write takes that long). Others' files and live writers' files are left alone.
fn sweep_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_writer) else { continue };
        if pid == std::process::id() {
            continue;
        }
        let age = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
        if age.is_some_and(|a| a > std::time::Duration::from_secs(60)) || !process_running(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The writer's pid, if `name` is one of our temp files.
fn temp_writer(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    let mut parts = inner.rsplitn(3, '.');
    let (_n, pid, file) = (parts.next()?.parse::<u64>().ok()?, parts.next()?, parts.next()?);
    (!file.is_empty()).then_some(())?;
    pid.parse().ok()
}

fn process_running(pid: u32) -> bool {
    if cfg!(target_os = "linux") { Path::new("/proc").join(pid.to_string()).exists() } else { true }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Creates `dir` (and parents) and makes it 0700, tightening it if it was looser (on Windows:
/// an owner-only DACL that what is created inside inherits).
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(format!("making {} private", dir.display()), e))?;
        }
    }
    #[cfg(windows)]
    crate::winfs::make_private_dir(dir)
        .map_err(|e| Error::io(format!("making {} readable by this user only", dir.display()), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_temp_files_name_a_writer() {
        assert_eq!(temp_writer(".token.json.4242.7.tmp"), Some(4242));
        assert_eq!(temp_writer(".status.json.1.0.tmp"), Some(1));
        for other in ["token.json", ".token.json.tmp", ".x.abc.1.tmp", "..1.2.tmp", "notes.4242.7.tmp"] {
            assert_eq!(temp_writer(other), None, "{other}");
        }
    }

    #[test]
    fn account_names_cannot_escape() {
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_account_name(bad).is_err(), "{bad}");
        }
        for good in ["upstox", "xts-client_01", "a.b"] {
            assert!(validate_account_name(good).is_ok(), "{good}");
        }
    }
}
