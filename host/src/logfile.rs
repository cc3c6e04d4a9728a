//! The log file, looking after itself: it rotates when it grows past a size or a new (UTC) day
//! begins, and keeps a bounded number of old files (`tokenhost.log.1` is the newest), so no
//! logrotate is needed. Mode 0600: it names accounts and hosts, never secrets.

use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Rotate when the file passes this size, KiB (default 5120).
    pub max_kib: Option<u64>,
    /// Old files kept (default 5).
    pub keep: Option<u32>,
    /// Also rotate when a new UTC day begins (default true).
    pub daily: Option<bool>,
}

/// The log file as a writer.
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    day: i64,
    max_bytes: u64,
    keep: u32,
    daily: bool,
}

fn today() -> i64 {
    crate::time::now().div_euclid(86_400)
}

fn open(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

impl LogFile {
    /// Opens (and if due, first rotates) the log at `path`.
    pub fn open(path: &Path, config: &LogConfig) -> std::io::Result<LogFile> {
        let meta = std::fs::metadata(path).ok();
        let modified_day = meta
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64 / 86_400);
        let mut log = LogFile {
            path: path.to_path_buf(),
            file: open(path)?,
            size: meta.map(|m| m.len()).unwrap_or(0),
            day: modified_day.unwrap_or_else(today),
            max_bytes: config.max_kib.unwrap_or(5120).max(1) << 10,
            keep: config.keep.unwrap_or(5),
            daily: config.daily.unwrap_or(true),
        };
        log.rotate_if_due()?;
        Ok(log)
    }

    fn rotate_if_due(&mut self) -> std::io::Result<()> {
        let new_day = self.daily && self.day != today() && self.size > 0;
        if self.size < self.max_bytes && !new_day {
            return Ok(());
        }
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.file = open(&self.path)?;
        self.size = 0;
        self.day = today();
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Rotate between records, never inside one.
        self.rotate_if_due()?;
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
