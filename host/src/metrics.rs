//! A Prometheus text file (for node_exporter's textfile collector) describing every account
//! in the state directory: token expiry, last success and attempt, last outcome, refresh count.
//! Written atomically, so the collector never reads half a file. No secret is in it.

use crate::Error;
use crate::store::{StateDir, write_replace};
use std::fmt::Write as _;
use std::path::Path;

/// Every outcome `tokenhost_last_outcome` has a series for.
const OUTCOMES: [&str; 7] =
    ["refreshed", "config", "rejected", "transient", "interaction-required", "fault", "io"];

/// One metric: name, type, help, and its series (labels, value).
type Metric = (&'static str, &'static str, &'static str, Vec<(String, f64)>);

/// The metrics of every account under `state`.
pub fn render(state: &StateDir) -> String {
    let mut gauges: Vec<Metric> = vec![
        ("tokenhost_token_expiry_timestamp_seconds", "gauge", "When the stored token expires.", vec![]),
        ("tokenhost_last_success_timestamp_seconds", "gauge", "When a token was last obtained.", vec![]),
        ("tokenhost_last_attempt_timestamp_seconds", "gauge", "When a refresh was last tried.", vec![]),
        ("tokenhost_consecutive_failures", "gauge", "Failed refreshes since the last success.", vec![]),
        ("tokenhost_refreshes_total", "counter", "Tokens obtained so far.", vec![]),
        ("tokenhost_last_outcome", "gauge", "1 for the outcome of the last refresh attempt.", vec![]),
    ];
    for name in state.accounts() {
        let Ok(dir) = state.account(&name) else { continue };
        let token = dir.load_token().ok().flatten();
        let status = dir.load_status();
        let label = format!("account=\"{name}\"");
        let mut put = |i: usize, labels: String, v: Option<f64>| {
            if let Some(v) = v {
                gauges[i].3.push((labels, v));
            }
        };
        put(0, label.clone(), token.and_then(|t| t.expires_at).map(|e| e as f64));
        put(1, label.clone(), status.last_success.map(|t| t as f64));
        put(2, label.clone(), status.last_attempt.map(|t| t as f64));
        put(3, label.clone(), Some(status.consecutive_failures as f64));
        put(4, label.clone(), Some(status.refresh_count as f64));
        if let Some(last) = &status.last_outcome {
            for o in OUTCOMES {
                put(5, format!("{label},outcome=\"{o}\""), Some(if o == last { 1.0 } else { 0.0 }));
            }
        }
    }
    let mut out = String::new();
    for (name, kind, help, series) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in series {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
    out
}

/// Writes [`render`] to `path` atomically (not fsynced: the next run writes it again).
pub fn write(path: &Path, state: &StateDir) -> Result<(), Error> {
    write_replace(path, render(state).as_bytes())
        .map_err(|e| Error::io(format!("writing the metrics file {}", path.display()), e))?;
    // Mode 0644: a collector running as another user must read it; it holds no secret.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
    }
    Ok(())
}
