//! The log file, looking after itself: it rotates when it grows past a size or a new (UTC) day
//! begins, and keeps a bounded number of old files (`tokenhost.log.1` is the newest), so no
//! logrotate is needed. Mode 0600: it names accounts and hosts, never secrets. It is opened
//! (and rotated if due) at the first line written, so a run with nothing to log never touches it.

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
    open: Option<Open>,
    max_bytes: u64,
    keep: u32,
    daily: bool,
    failed: bool,
}

struct Open {
    file: File,
    size: u64,
    day: i64,
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
    /// The log at `path`, opened at the first write.
    pub fn new(path: &Path, config: &LogConfig) -> LogFile {
        LogFile {
            path: path.to_path_buf(),
            open: None,
            max_bytes: config.max_kib.unwrap_or(5120).max(1) << 10,
            keep: config.keep.unwrap_or(5),
            daily: config.daily.unwrap_or(true),
            failed: false,
        }
    }

    /// The open file, opened (and rotated first, if due) now if it was not.
    fn file(&mut self) -> std::io::Result<&mut Open> {
        if self.open.is_none() {
            let meta = std::fs::metadata(&self.path).ok();
            let modified_day = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64 / 86_400);
            self.open = Some(Open {
                file: open(&self.path)?,
                size: meta.map(|m| m.len()).unwrap_or(0),
                day: modified_day.unwrap_or_else(today),
            });
        }
        self.rotate_if_due()?;
        self.open.as_mut().ok_or_else(|| std::io::Error::other("the log file is not open"))
    }

    fn rotate_if_due(&mut self) -> std::io::Result<()> {
        let Some(o) = &self.open else { return Ok(()) };
        let new_day = self.daily && o.day != today() && o.size > 0;
        if o.size < self.max_bytes && !new_day {
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
        self.open = Some(Open { file: open(&self.path)?, size: 0, day: today() });
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Rotate between records, never inside one.
        let open = match self.file() {
            Ok(o) => o,
            Err(e) => {
                if !std::mem::replace(&mut self.failed, true) {
                    eprintln!("warning: cannot write the log file {}: {e}", self.path.display());
                }
                return Err(e);
            }
        };
        let n = open.file.write(buf)?;
        open.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.open {
            Some(o) => o.file.flush(),
            None => Ok(()),
        }
    }
}
