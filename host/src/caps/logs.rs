//! The guest's stdout and stderr: captured, stripped of secrets and logged line by line,
//! tagged with the account. Never passed through to the host's own stdout.

use crate::secret::{Secret, redact};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// Most bytes kept per stream and call; a guest writing more gets a write error.
pub const CAPACITY: usize = 1 << 20;

/// One captured stream.
#[derive(Clone)]
pub struct GuestOutput {
    name: &'static str,
    pipe: MemoryOutputPipe,
    logged: usize,
}

impl GuestOutput {
    /// A fresh capture called `name` (`stdout`/`stderr`).
    pub fn new(name: &'static str) -> GuestOutput {
        GuestOutput { name, pipe: MemoryOutputPipe::new(CAPACITY), logged: 0 }
    }

    /// The pipe to hand to the WASI context.
    pub fn pipe(&self) -> MemoryOutputPipe {
        self.pipe.clone()
    }

    /// Logs every complete line written since the last flush, with `secrets` masked.
    pub fn flush(&mut self, account: &str, secrets: &[Secret]) {
        let all = self.pipe.contents();
        let new = &all[self.logged.min(all.len())..];
        let text = String::from_utf8_lossy(new);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!(account = %account, "provider {}: {}", self.name, redact(line, secrets));
        }
        self.logged = all.len();
    }
}
