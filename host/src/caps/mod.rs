//! What a provider component may touch, one module per capability. Every policy is checked
//! here, in the host; nothing the guest says is trusted.

pub mod config;
pub mod http;
pub mod keyvalue;
pub mod logs;

use std::sync::{Arc, Mutex};

/// Policy breaches seen during a call. They turn the call's outcome into a fault (exit 6)
/// whatever the guest returned, so a provider cannot hide a denied request behind a retry.
#[derive(Debug, Clone, Default)]
pub struct Violations(Arc<Mutex<Vec<String>>>);

impl Violations {
    /// Records a breach (the text must hold no secret).
    pub fn record(&self, what: String) {
        if let Ok(mut v) = self.0.lock() {
            v.push(what);
        }
    }

    /// Takes the breaches recorded so far.
    pub fn take(&self) -> Vec<String> {
        self.0.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}
