//! Renders the core's outcomes for people (one line per account, a table, a summary) and for
//! programs (stable JSON, the raw token). Every line on stdout goes through [`out`].

use std::io::{IsTerminal, Write};
use tokenhost::plan::env_var_name;
use tokenhost::service::{Action, Inspection, Outcome, StatusRow};
use tokenhost::store::StoredToken;
use tokenhost::{Error, time};

/// Prints a result line; a closed stdout is not an error.
pub fn out(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Prints `text` as it is (a token, JSON); a closed stdout is not an error.
pub fn raw(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// The error as `main` shows it, with its causes under `-v`.
pub fn error(e: &Error, verbose: bool) {
    let lead = if matches!(e, Error::Interaction { .. }) { "action needed" } else { "error" };
    eprintln!("{lead}: {e}");
    if verbose {
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            for (i, line) in c.to_string().lines().enumerate() {
                eprintln!("{}{line}", if i == 0 { "  caused by: " } else { "    " });
            }
            cause = c.source();
        }
    }
}

/// A warning for people, on stderr.
pub fn warn(text: &str) {
    eprintln!("warning: {text}");
}

/// One `watch` line: a new token, for scripts (it carries the token, as `get` does).
pub fn token_event(account: &str, token: &StoredToken, revision: Option<u64>) -> String {
    serde_json::json!({
        "account": account,
        "provider": token.provider,
        "access_token": token.access_token.expose(),
        "expires_at": token.expires_at,
        "refreshed_at": token.refreshed_at,
        "revision": revision,
    })
    .to_string()
}

/// `expires 2026-11-23T22:00:00Z (in 10h 2m)`.
pub fn expiry(expires_at: Option<i64>) -> String {
    match expires_at {
        Some(e) => format!("expires {} ({})", time::iso(e), time::relative(e, time::now())),
        None => "expiry unknown".into(),
    }
}

/// The one line an outcome gets: `xts: refreshed (no token stored), expires ...`.
pub fn line(o: &Outcome) -> String {
    let what = match &o.action {
        Action::Fresh => "fresh".to_string(),
        Action::Refreshed(reason) => format!("refreshed ({reason})"),
        Action::RefreshedElsewhere => "refreshed by a concurrent run".to_string(),
        Action::RefreshedByAnotherHost => "refreshed by another host".to_string(),
        Action::LoggedIn => "logged in".to_string(),
        Action::Pushed => "token received by push".to_string(),
    };
    format!("{}: {what}, {}", o.account, expiry(o.expires_at))
}

/// The line a failed account gets.
pub fn failure(account: &str, e: &Error) -> String {
    format!("{account}: failed ({}): {e}", e.kind())
}

/// `50 accounts: 45 refreshed, 5 rejected`.
pub fn summary(results: &[(String, Result<Outcome, Error>)]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, r) in results {
        let key = match r {
            Ok(o) if o.action == Action::Fresh => "fresh",
            Ok(o) if o.action == Action::RefreshedByAnotherHost => "refreshed by another host",
            Ok(_) => "refreshed",
            Err(e) => e.kind(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("{} accounts: {}", results.len(), parts.join(", "))
}

/// `status` as a table for people.
pub fn status_table(rows: &[StatusRow]) -> String {
    if rows.is_empty() {
        return "no accounts yet: `tokenhost run provider.wasm` stores the first token".into();
    }
    let now = time::now();
    // Accounts whose tokens a person gets say when the next login is due.
    let logins = rows.iter().any(|r| r.login_due_at.is_some());
    let mut head = vec!["ACCOUNT", "PROVIDER", "STATE", "EXPIRES"];
    head.extend(logins.then_some("LOGIN DUE"));
    head.push("LAST OUTCOME");
    let mut table = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for r in rows {
        let expires = r
            .expires_at
            .map(|e| format!("{} ({})", time::iso(e), time::relative(e, now)))
            .unwrap_or("-".into());
        let last = match (&r.last_outcome, r.last_attempt) {
            (Some(o), Some(at)) => format!("{o} {}", time::relative(at, now)),
            _ => "-".into(),
        };
        let mut row =
            vec![r.account.clone(), r.provider.clone().unwrap_or("-".into()), r.state.into(), expires];
        if logins {
            row.push(match r.login_due_at {
                Some(at) if at <= now => "now".into(),
                Some(at) => time::relative(at, now),
                None => "-".into(),
            });
        }
        row.push(last);
        table.push(row);
    }
    columns(&table)
}

/// `status --json`.
pub fn status_json(rows: &[StatusRow]) -> String {
    serde_json::to_string_pretty(rows).unwrap_or_default()
}

fn columns(table: &[Vec<String>]) -> String {
    let n = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> =
        (0..n).map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0)).collect();
    table
        .iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `get --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The token alone.
    Raw,
    /// A JSON object.
    Json,
    /// `NAME=value` lines.
    Env,
    /// `$env:NAME = 'value'` lines for PowerShell (`tokenhost get ACCOUNT --format powershell |
    /// Invoke-Expression`).
    Powershell,
}

/// What `get` prints; `prefix` names the variables of `--format env`.
pub fn token(token: &StoredToken, format: Format, prefix: &str) -> String {
    match format {
        Format::Raw => {
            let nl = if std::io::stdout().is_terminal() { "\n" } else { "" };
            format!("{}{nl}", token.access_token.expose())
        }
        Format::Json => {
            let extras: serde_json::Map<String, serde_json::Value> =
                token.extras.iter().map(|e| (e.name.clone(), e.value.expose().into())).collect();
            let v = serde_json::json!({
                "account": token.account,
                "provider": token.provider,
                "access_token": token.access_token.expose(),
                "expires_at": token.expires_at,
                "issued_at": token.issued_at,
                "user_id": token.user_id,
                "refreshed_at": token.refreshed_at,
                "extras": extras,
            });
            format!("{v}\n")
        }
        Format::Env => {
            let mut s = format!("{prefix}_ACCESS_TOKEN={}\n", token.access_token.expose());
            for e in &token.extras {
                s.push_str(&format!("{}={}\n", env_var_name(prefix, &e.name), e.value.expose()));
            }
            s
        }
        Format::Powershell => {
            let mut s = powershell_line(&format!("{prefix}_ACCESS_TOKEN"), token.access_token.expose());
            for e in &token.extras {
                s.push_str(&powershell_line(&env_var_name(prefix, &e.name), e.value.expose()));
            }
            s
        }
    }
}

/// `$env:NAME = 'value'`: in a single-quoted PowerShell string nothing expands (`$`, backtick)
/// and a quote is written twice. PowerShell also takes the typographic single quotes for
/// quotes, so those are doubled too. A name that is not a plain identifier goes in braces,
/// where a backtick escapes a brace or a backtick.
fn powershell_line(name: &str, value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            quoted.push(c);
        }
        quoted.push(c);
    }
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("$env:{name} = '{quoted}'\n")
    } else {
        let mut braced = String::new();
        for c in name.chars() {
            if matches!(c, '{' | '}' | '`') {
                braced.push('`');
            }
            braced.push(c);
        }
        format!("${{env:{braced}}} = '{quoted}'\n")
    }
}

/// `inspect`, for people or (`json`) programs.
pub fn inspection(i: &Inspection, path: &std::path::Path, json: bool) -> String {
    let info = &i.info;
    let prefix = tokenhost::plan::env_prefix(None, &info.name);
    // Required settings as placeholders; optional ones are named after the command.
    let mut cmd = String::from("wasmtime run -S http -S config -S keyvalue");
    for s in info.settings.iter().filter(|s| s.required) {
        cmd.push_str(&format!(" -S config-var={}=<{}>", s.name, s.name));
    }
    cmd.push_str(&format!(" --invoke 'refresh(none)' '{}'", path.display()));
    let optional: Vec<&str> = info.settings.iter().filter(|s| !s.required).map(|s| s.name.as_str()).collect();
    if json {
        let settings: Vec<_> = info
            .settings
            .iter()
            .map(|s| {
                serde_json::json!({"name": s.name, "secret": s.secret, "required": s.required,
                    "description": s.description, "env": env_var_name(&prefix, &s.name)})
            })
            .collect();
        let v = serde_json::json!({
            "world": "tokenhost:provider/token-provider",
            "export": tokenhost::engine::PROVIDER_EXPORT,
            "name": info.name, "version": info.version, "api_version": info.api_version,
            "sha256": i.sha256, "size": i.size, "settings": settings, "hosts": info.hosts,
            "daily_cutoff": info.daily_cutoff.map(|c| serde_json::json!({"hour": c.hour, "minute": c.minute, "utc_offset_minutes": c.utc_offset_minutes})),
            "refresh_ahead_secs": info.refresh_ahead_secs,
            "wasmtime_command": cmd,
            "wasmtime_optional_settings": optional,
        });
        return serde_json::to_string_pretty(&v).unwrap_or_default();
    }
    let cutoff = info
        .daily_cutoff
        .map(|c| {
            format!(
                "{:02}:{:02} at UTC{:+}:{:02}",
                c.hour,
                c.minute,
                c.utc_offset_minutes / 60,
                c.utc_offset_minutes.abs() % 60
            )
        })
        .unwrap_or("none".into());
    let hosts = if info.hosts.is_empty() { "(from settings)".into() } else { info.hosts.join(", ") };
    let mut lines = vec![
        format!("provider     {} {}", info.name, info.version),
        format!("exports      {} (api {})", tokenhost::engine::PROVIDER_EXPORT, info.api_version),
        format!("sha256       {}", i.sha256),
        format!("size         {} bytes", i.size),
        format!("hosts        {hosts}"),
        format!("cut-off      {cutoff}"),
        format!("refresh      {} s before expiry", info.refresh_ahead_secs),
        "settings".to_string(),
    ];
    for s in &info.settings {
        let flags = [Some(if s.required { "required" } else { "optional" }), s.secret.then_some("secret")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(format!(
            "  {:<22} {:<28} {} [{}]",
            s.name,
            env_var_name(&prefix, &s.name),
            s.description,
            flags
        ));
    }
    lines.push(format!("without tokenhost:\n  {cmd}"));
    if !optional.is_empty() {
        lines.push(format!("  (optional: add -S config-var=KEY=VALUE for {})", optional.join(", ")));
    }
    lines.join("\n")
}

/// What `serverless wasmcloud` wrote, and the commands that use it.
pub fn serverless(w: &tokenhost::serverless::Written, account: &str, store: &str) -> String {
    let dir = w.dir.display();
    let secrets = match w.secret_settings.as_slice() {
        [] => "no secret settings".to_string(),
        names => format!("secret settings {} only in secrets.env (mode 0600, git-ignored)", names.join(", ")),
    };
    format!(
        "{account}: wasmCloud workload written to {dir} ({} files; {secrets})\n\
         \x20 run it here:  wash -C {dir} dev --non-interactive\n\
         \x20 read tokens:  tokenhost --store {store} get {account}\n\
         \x20 on a cluster: {dir}/workload.yaml (Secret `{}` from secrets.env)",
        w.files.len(),
        w.secret_name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value back out of a `$env:NAME = '...'` line, by PowerShell's rules for a
    /// single-quoted string: the text between the outer quotes, each doubled quote one quote.
    fn powershell_value(line: &str) -> (String, String) {
        let (lhs, rhs) = line.trim_end_matches('\n').split_once(" = ").expect("an assignment");
        let inner = rhs.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')).expect("single-quoted");
        let quotes = ['\'', '\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'];
        let mut value = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if quotes.contains(&c) {
                assert_eq!(chars.next(), Some(c), "a lone quote would end the string: {line}");
            }
            value.push(c);
        }
        (lhs.to_string(), value)
    }

    #[test]
    fn powershell_lines_quote_every_value_safely() {
        for value in [
            "eyJhbGciOi.plain",
            "it's",
            "''",
            "$env:PATH and $(Remove-Item x) and `n and \"double\"",
            "with spaces\tand a tab",
            "typographic \u{2019}quote\u{2018} \u{201A}\u{201B}",
            "",
        ] {
            let line = powershell_line("XTS_ACCESS_TOKEN", value);
            assert!(line.starts_with("$env:XTS_ACCESS_TOKEN = '") && line.ends_with("'\n"), "{line}");
            assert_eq!(powershell_value(&line), ("$env:XTS_ACCESS_TOKEN".to_string(), value.to_string()));
        }
        assert_eq!(powershell_line("A_B", "it's"), "$env:A_B = 'it''s'\n");
        assert_eq!(powershell_line("DESK-A_X", "v"), "${env:DESK-A_X} = 'v'\n");
        assert_eq!(powershell_line("ODD}`{", "v"), "${env:ODD`}```{} = 'v'\n");
    }
}
