//! The wasmCloud scheduler: a service component (`wasi:cli/run`) in the same workload as one
//! provider component. It loops: for each account named in its config it reads the stored
//! token from the fleet store (`wasi:keyvalue`), and when the token is due by the host's own
//! rules (`tokenhost_rules::due`) calls the provider's `refresh` and stores the new token under
//! the fleet store's key, in the JSON of the state directory's `token.json`, so `tokenhost get`
//! and the daemons' sinks on any host pick it up.
//!
//! Settings (`wasi:config`, the workload's config):
//! - `accounts`: account names, separated by commas (default: the provider's name)
//! - `kv-bucket`: the fleet store's bucket (default `tokenhost`, as the host's `[store]`)
//! - `tick-secs`: seconds between passes (default 60)
//! - `refresh-ahead-secs`: refresh this long before expiry instead of the provider's own
//! - `lead-secs`: refresh this much earlier still (default 300), so that hosts reading the
//!   account never find its token due while the scheduler runs (and refresh it, with their
//!   leases, only if it stops)
//!
//! Each attempt also updates the account's last outcome (`accounts.<name>.status`, the JSON of
//! the state directory's `status.json`), so `tokenhost status` on any host shows a failure.
//!
//! It never logs a token or a setting's value: a line names the account, what happened and,
//! for a failure, the kind and the provider's message.

mod bindings {
    wit_bindgen::generate!({
        world: "tokenhost:scheduler/scheduler",
        path: [
            "../../wit/deps/io.wit",
            "../../wit/deps/clocks.wit",
            "../../wit/deps/random.wit",
            "../../wit/deps/filesystem.wit",
            "../../wit/deps/sockets.wit",
            "../../wit/deps/cli.wit",
            "../../wit/deps/http.wit",
            "../../wit/deps/config",
            "../../wit/deps/keyvalue",
            "../../wit/since_v0.1.0",
            "wit",
        ],
        // wasi:cli names an unstable interface; the parser must see it to resolve the package.
        features: ["clocks-timezone"],
        generate_all,
    });
}

use bindings::tokenhost::provider::provider::{self, Extra, ProviderError, ProviderInfo, Token};
use bindings::wasi::config::store as config;
use bindings::wasi::keyvalue::store as kv;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokenhost_rules::{Cutoff, Due, Held, keys};

struct Settings {
    accounts: Vec<String>,
    bucket: String,
    tick: Duration,
    refresh_ahead: Option<u32>,
    lead: u32,
}

/// An account that failed: how many times in a row, and when it may be tried again.
#[derive(Clone, Copy)]
struct Failing {
    failures: u32,
    retry_at: i64,
}

fn main() -> ExitCode {
    let info = provider::describe();
    let settings = match Settings::read(&info) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scheduler: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "scheduler: keeping {} fresh with provider {} {} in bucket `{}`, a pass every {} s",
        settings.accounts.join(", "),
        info.name,
        info.version,
        settings.bucket,
        settings.tick.as_secs()
    );
    let mut failing: BTreeMap<String, Failing> = BTreeMap::new();
    let mut quiet: BTreeMap<String, i64> = BTreeMap::new();
    let mut pass = 0u64;
    loop {
        pass += 1;
        for account in &settings.accounts {
            let now = now();
            if failing.get(account).is_some_and(|f| now < f.retry_at) {
                continue; // waiting after a failure: nothing to say until it is tried again
            }
            match tick(&settings, &info, account, now) {
                Ok(Outcome::Fresh(due_at)) => {
                    failing.remove(account);
                    // Said once per token, not at every pass.
                    if quiet.insert(account.clone(), due_at) != Some(due_at) {
                        eprintln!("pass {pass}: {account}: fresh, due in {}", span(due_at - now));
                    }
                }
                Ok(Outcome::Refreshed { reason, expires_at }) => {
                    failing.remove(account);
                    eprintln!(
                        "pass {pass}: {account}: refreshed ({reason}), expires in {}",
                        span(expires_at - now)
                    );
                }
                Err(problem) => {
                    let failures = failing.get(account).map_or(0, |f| f.failures) + 1;
                    let wait = tokenhost_rules::failing_wait_secs(failures) as i64;
                    failing.insert(account.clone(), Failing { failures, retry_at: now + wait });
                    quiet.remove(account);
                    eprintln!(
                        "pass {pass}: {account}: {problem}; nothing stored, next try in {}",
                        span(wait)
                    );
                }
            }
        }
        std::thread::sleep(settings.tick);
    }
}

impl Settings {
    fn read(info: &ProviderInfo) -> Result<Settings, String> {
        let accounts: Vec<String> = setting("accounts")?
            .unwrap_or_else(|| info.name.clone())
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        if let Some(bad) = accounts.iter().find(|a| !keys::valid_account(a)) {
            return Err(format!(
                "setting `accounts`: `{bad}` is not an account name (letters, digits, `-` and `_`)"
            ));
        }
        let number = |key: &str| -> Result<Option<u32>, String> {
            setting(key)?
                .map(|v| {
                    v.parse::<u32>().map_err(|_| format!("setting `{key}`: `{v}` is not a whole number"))
                })
                .transpose()
        };
        let tick = number("tick-secs")?.unwrap_or(60);
        if tick == 0 {
            return Err("setting `tick-secs` must be at least 1".into());
        }
        Ok(Settings {
            accounts,
            bucket: setting(keys::BUCKET_SETTING)?.unwrap_or_else(|| keys::DEFAULT_BUCKET.into()),
            tick: Duration::from_secs(tick as u64),
            refresh_ahead: number("refresh-ahead-secs")?,
            lead: number("lead-secs")?.unwrap_or(300),
        })
    }
}

/// A setting of the workload, `None` when unset or blank.
fn setting(key: &str) -> Result<Option<String>, String> {
    match config::get(key) {
        Ok(v) => Ok(v.filter(|v| !v.trim().is_empty())),
        Err(config::Error::Upstream(m) | config::Error::Io(m)) => {
            Err(format!("reading setting `{key}`: {m}"))
        }
    }
}

enum Outcome {
    /// Not due; due at this time.
    Fresh(i64),
    Refreshed {
        reason: &'static str,
        expires_at: i64,
    },
}

/// One account, once: read, decide, refresh, store.
fn tick(settings: &Settings, info: &ProviderInfo, account: &str, now: i64) -> Result<Outcome, String> {
    let bucket = kv::open(&settings.bucket).map_err(|e| storage("opening the bucket", e))?;
    let key = keys::token(account);
    let stored: Option<Value> = match bucket.get(&key).map_err(|e| storage("reading the token", e))? {
        // A value that is not a token is treated as none, and replaced.
        Some(bytes) => serde_json::from_slice::<Value>(&bytes).ok().filter(|v| v["access_token"].is_string()),
        None => None,
    };
    let held = stored.as_ref().map(|t| Held {
        expires_at: t["expires_at"].as_i64(),
        refreshed_at: t["refreshed_at"].as_i64().unwrap_or(0),
        refresh_ahead_secs: t["refresh_ahead_secs"].as_u64().unwrap_or(0) as u32,
    });
    // The hosts' own rule, `lead` earlier.
    let ahead =
        held.map(|h| settings.refresh_ahead.unwrap_or(h.refresh_ahead_secs).saturating_add(settings.lead));
    let reason = match tokenhost_rules::due(held, ahead, now) {
        None => return Ok(Outcome::Fresh(held.map_or(now, |h| h.refresh_at(ahead)))),
        Some(Due::Missing) => "no token stored",
        Some(Due::Expired) => "token expired",
        Some(Due::Expiring) => "token expires soon",
    };
    let fresh = match provider::refresh(stored.as_ref().map(current).as_ref()) {
        Ok(t) => t,
        Err(e) => {
            let (kind, message) = describe_error(e);
            note_outcome(&bucket, account, info, now, Err((kind, &message)));
            return Err(format!("{kind}: {message}"));
        }
    };
    let now = self::now();
    let cutoff = info.daily_cutoff.map(|c| Cutoff {
        hour: c.hour,
        minute: c.minute,
        utc_offset_minutes: c.utc_offset_minutes,
    });
    let jwt = tokenhost_rules::jwt::claims(&fresh.access_token);
    let (expires_at, source) = tokenhost_rules::resolve_expiry(
        fresh.expires_at,
        jwt.as_ref().and_then(|c| c.exp),
        fresh.issued_at,
        cutoff,
        now,
    );
    let token = json!({
        "account": account,
        "provider": info.name,
        "access_token": fresh.access_token,
        "expires_at": expires_at,
        "expiry_source": source,
        "issued_at": fresh.issued_at.or_else(|| jwt.as_ref().and_then(|c| c.iat)),
        "user_id": fresh.user_id.or_else(|| jwt.and_then(|c| c.sub)),
        "extras": fresh.extras.iter().map(|e| json!({"name": e.name, "value": e.value, "secret": e.secret})).collect::<Vec<_>>(),
        "refreshed_at": now,
        "refresh_ahead_secs": settings.refresh_ahead.unwrap_or(info.refresh_ahead_secs),
    });
    let bytes = serde_json::to_vec_pretty(&token).map_err(|e| format!("storage: encoding the token: {e}"))?;
    bucket.set(&key, &bytes).map_err(|e| storage("storing the token", e))?;
    note_outcome(&bucket, account, info, now, Ok(()));
    Ok(Outcome::Refreshed { reason, expires_at })
}

/// The stored token as the provider's `current`.
fn current(t: &Value) -> Token {
    let text = |v: &Value| v.as_str().map(str::to_string);
    Token {
        access_token: text(&t["access_token"]).unwrap_or_default(),
        expires_at: t["expires_at"].as_i64(),
        issued_at: t["issued_at"].as_i64(),
        user_id: text(&t["user_id"]),
        extras: t["extras"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some(Extra {
                    name: text(&e["name"])?,
                    value: text(&e["value"])?,
                    secret: e["secret"].as_bool().unwrap_or(true),
                })
            })
            .collect(),
    }
}

/// The provider's error as the host names its kind (`rejected`, `transient`, ...) and one line.
fn describe_error(e: ProviderError) -> (&'static str, String) {
    match e {
        ProviderError::Config(p) => ("config", format!("setting `{}`: {}", p.key, p.message)),
        ProviderError::Rejected(m) => ("rejected", m),
        ProviderError::Transient(m) => ("transient", m),
        ProviderError::Protocol(m) => {
            ("transient", format!("the broker's answer could not be understood: {m}"))
        }
        ProviderError::InteractionRequired(i) => match i.url {
            Some(url) => ("interaction-required", format!("{} ({url})", i.message)),
            None => ("interaction-required", i.message),
        },
        ProviderError::Unsupported(m) => ("config", m),
    }
}

/// Updates the account's last outcome, keeping what else is there (what `check` and `logout`
/// noted on a host). Best effort: the token is what matters, and a failure to note the outcome
/// is logged with the next pass's line anyway.
fn note_outcome(
    bucket: &kv::Bucket,
    account: &str,
    info: &ProviderInfo,
    now: i64,
    outcome: Result<(), (&str, &str)>,
) {
    let key = keys::status(account);
    let mut status = bucket
        .get(&key)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"consecutive_failures": 0, "refresh_count": 0}));
    let failures = status["consecutive_failures"].as_u64().unwrap_or(0);
    status["provider"] = json!(info.name);
    status["last_attempt"] = json!(now);
    match outcome {
        Ok(()) => {
            status["last_success"] = json!(now);
            status["last_outcome"] = json!("refreshed");
            status["last_error"] = Value::Null;
            status["consecutive_failures"] = json!(0);
            status["refresh_count"] = json!(status["refresh_count"].as_u64().unwrap_or(0) + 1);
            if let Some(o) = status.as_object_mut() {
                o.remove("invalid_token_of");
            }
        }
        Err((kind, message)) => {
            status["last_outcome"] = json!(kind);
            status["last_error"] = json!(message);
            status["consecutive_failures"] = json!(failures + 1);
        }
    }
    if let Ok(bytes) = serde_json::to_vec_pretty(&status) {
        let _ = bucket.set(&key, &bytes);
    }
}

fn storage(what: &str, e: kv::Error) -> String {
    let why = match e {
        kv::Error::NoSuchStore => "no such bucket (set `kv-bucket`)".to_string(),
        kv::Error::AccessDenied => "access denied".to_string(),
        kv::Error::Other(m) => m,
    };
    format!("storage: {what}: {why}")
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `7h 59m`, `4m`, `30s`.
fn span(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
