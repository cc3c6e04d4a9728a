//! `tokenhost daemon`: one long-running process that refreshes each account ahead of its
//! expiry (no cron needed), retries with backoff, receives the brokers' pushes, serves metrics,
//! and hot-swaps provider components.
//!
//! A component file that changes is loaded and checked (a valid component, the contract's
//! world and API version, the same provider, no host the running one did not declare) while the
//! old one keeps serving; only then does the account switch to it. A refused file is logged and
//! the old component stays. SIGHUP reloads the config file; SIGTERM (or Ctrl-C) lets the refresh
//! in flight finish, then exits 0. Everything happens on one task, one thing at a time, so a
//! signal never cuts a write short.

use crate::accounts::{Context, Outcome};
use crate::engine::Loaded;
use crate::provider::Provider;
use crate::serve::{Response, Server};
use crate::settings::{Account, Config};
use crate::{Error, ExitCode, time};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where pushes are received, if anywhere.
    pub listen: Option<String>,
    /// Where `GET /metrics` is served, if anywhere.
    pub metrics_listen: Option<String>,
    /// How often files and expiries are looked at.
    pub tick: Duration,
}

/// What the daemon knows of one component file.
struct Watched {
    stamp: Option<(u64, SystemTime)>,
    sha256: String,
    name: String,
    hosts: Vec<String>,
}

/// When an account is next looked at, and how many failures in a row it has had.
#[derive(Default, Clone, Copy)]
struct Due {
    at: i64,
    failures: u32,
}

/// Longest wait between two looks at an account (a `check` elsewhere may mark its token dead).
const MAX_SLEEP_SECS: i64 = 60;

/// Runs until SIGTERM or Ctrl-C. `reload` reads the config file again (for SIGHUP); `select`
/// picks the accounts a config serves.
pub async fn run(
    mut ctx: Context,
    opts: Options,
    reload: impl Fn() -> Result<Config, Error>,
    select: impl Fn(&Config) -> Vec<String>,
) -> Result<ExitCode, Error> {
    let mut accounts = accounts(&ctx.config, &ctx.state, &select(&ctx.config))?;
    let mut watched: HashMap<PathBuf, Watched> = HashMap::new();
    for account in &accounts {
        watch(&ctx, account, &mut watched).await?;
    }
    let names = Arc::new(Mutex::new(accounts.iter().map(|a| a.name.clone()).collect::<Vec<_>>()));
    let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
    let _webhook = match &opts.listen {
        Some(addr) => Some(crate::webhook::listen(addr, names.clone(), tx)?),
        None => None,
    };
    let _metrics = match &opts.metrics_listen {
        Some(addr) => Some(metrics_server(addr, ctx.state.clone())?),
        None => None,
    };
    let mut due: HashMap<String, Due> = HashMap::new();
    let (mut stop, mut hangup) = signals()?;
    crate::cli::out(&format!(
        "daemon: {} account(s): {}{}{}",
        accounts.len(),
        names.lock().map(|n| n.join(", ")).unwrap_or_default(),
        _webhook
            .as_ref()
            .map(|s| format!("; pushes on http://{}/push/ACCOUNT", s.addr()))
            .unwrap_or_default(),
        _metrics.as_ref().map(|s| format!("; metrics on http://{}/metrics", s.addr())).unwrap_or_default(),
    ));
    loop {
        tokio::select! {
            biased;
            _ = stop.wait() => break,
            _ = hangup.wait() => {
                match reload() {
                    Ok(config) => {
                        match self::accounts(&config, &ctx.state, &select(&config)) {
                            Ok(list) => {
                                ctx.notifier = crate::notify::Notifier::new(&config.file.notify, |v| config.lookup(v));
                                ctx.config = config;
                                for account in &list {
                                    if !watched.contains_key(&account.provider_path)
                                        && let Err(e) = watch(&ctx, account, &mut watched).await
                                    {
                                        tracing::error!(account = %account.name, "{e}");
                                    }
                                }
                                accounts = list;
                                if let Ok(mut n) = names.lock() {
                                    *n = accounts.iter().map(|a| a.name.clone()).collect();
                                }
                                crate::cli::out(&format!("daemon: config reloaded, {} account(s)", accounts.len()));
                            }
                            Err(e) => crate::cli::out(&format!("daemon: config reload refused, keeping the old one: {e}")),
                        }
                    }
                    Err(e) => crate::cli::out(&format!("daemon: config reload refused, keeping the old one: {e}")),
                }
            }
            Some((name, body, reply)) = pushes.recv() => {
                let response = match accounts.iter().find(|a| a.name == name) {
                    Some(account) => crate::webhook::handle(&ctx, account, &body).await,
                    None => Response::json(404, &serde_json::json!({"status": "error", "detail": "no such account"})),
                };
                let _ = reply.send(response);
            }
            _ = tokio::time::sleep(opts.tick) => {
                for account in &accounts {
                    swap_if_changed(&ctx, account, &mut watched).await;
                    let now = time::now();
                    let d = due.entry(account.name.clone()).or_default();
                    if now < d.at {
                        continue;
                    }
                    *d = refresh(&ctx, account, *d).await;
                }
                ctx.write_metrics();
            }
        }
    }
    crate::cli::out("daemon: stopped");
    Ok(ExitCode::Ok)
}

fn accounts(
    config: &Config,
    state: &crate::store::StateDir,
    names: &[String],
) -> Result<Vec<Account>, Error> {
    if names.is_empty() {
        return Err(Error::Config("the daemon has no accounts: configure them in tokenhost.toml".into()));
    }
    names.iter().map(|name| crate::accounts::account_named(config, state, name)).collect()
}

/// Refreshes `account` if its token is due; says when to look again.
async fn refresh(ctx: &Context, account: &Account, d: Due) -> Due {
    let now = time::now();
    match ctx.run(account, false).await {
        Ok(report) => {
            if report.outcome != Outcome::Fresh {
                crate::cli::out(&crate::cli::report_line(&report));
            }
            let next = report.refresh_at.unwrap_or(now + MAX_SLEEP_SECS);
            Due { at: next.clamp(now + 1, now + MAX_SLEEP_SECS), failures: 0 }
        }
        Err(e) => {
            crate::cli::out(&format!("{}: failed ({}): {e}", account.name, e.kind()));
            // The run retried already; wait longer after each failed run, up to half an hour.
            let failures = d.failures + 1;
            let wait = (30i64 << failures.min(6).saturating_sub(1)).min(1800);
            Due { at: now + wait, failures }
        }
    }
}

/// Records the account's component as it is now (loaded, pinned, its name and hosts).
async fn watch(
    ctx: &Context,
    account: &Account,
    watched: &mut HashMap<PathBuf, Watched>,
) -> Result<(), Error> {
    let path = &account.provider_path;
    let loaded = ctx.load(path)?;
    let provider = ctx.start(account).await?;
    watched.insert(
        path.clone(),
        Watched {
            stamp: stamp(path),
            sha256: loaded.sha256.clone(),
            name: provider.info().name.clone(),
            hosts: provider.info().hosts.clone(),
        },
    );
    Ok(())
}

fn stamp(path: &std::path::Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// Switches the account to its component file's new contents if they pass the checks.
async fn swap_if_changed(ctx: &Context, account: &Account, watched: &mut HashMap<PathBuf, Watched>) {
    let path = &account.provider_path;
    let Some(w) = watched.get_mut(path) else { return };
    let now = stamp(path);
    if now == w.stamp {
        return;
    }
    w.stamp = now;
    let Ok(bytes) = std::fs::read(path) else {
        crate::cli::out(&format!(
            "{}: {} cannot be read; the running component stays",
            account.name,
            path.display()
        ));
        return;
    };
    if crate::engine::sha256_hex(&bytes) == w.sha256 {
        return;
    }
    match check(ctx, account, &bytes, w).await {
        Ok((loaded, name, hosts)) => {
            let (sha, version) = (loaded.sha256.clone(), name.1);
            if let Err(e) = ctx.pin(path, loaded) {
                tracing::error!("{e}");
                return;
            }
            crate::cli::out(&format!(
                "{}: component swapped to {} {version} (sha256 {})",
                account.name,
                name.0,
                &sha[..12]
            ));
            *w = Watched { stamp: now, sha256: sha, name: name.0, hosts };
        }
        Err(why) => {
            tracing::error!(account = %account.name, "new component refused: {why}");
            crate::cli::out(&format!(
                "{}: the new {} is refused, the running component stays: {why}",
                account.name,
                path.display()
            ));
        }
    }
}

type Checked = (Arc<Loaded>, (String, String), Vec<String>);

/// Loads `bytes` and runs the checks a swap must pass.
async fn check(ctx: &Context, account: &Account, bytes: &[u8], old: &Watched) -> Result<Checked, String> {
    let (host, linker) = ctx.runtime().map_err(|e| e.to_string())?;
    let loaded = Arc::new(
        host.load_bytes(bytes, &account.provider_path.display().to_string()).map_err(|e| e.to_string())?,
    );
    let grants = ctx.config.grants(account, &ctx.state).map_err(|e| e.to_string())?;
    let provider = Provider::start(host, linker, &loaded, &grants, |info| ctx.config.resolve(account, info))
        .await
        .map_err(|e| e.to_string())?;
    let info = provider.info();
    if info.name != old.name {
        return Err(format!("it is provider `{}`, not `{}`", info.name, old.name));
    }
    let new_hosts: Vec<&str> =
        info.hosts.iter().filter(|h| !old.hosts.contains(h)).map(String::as_str).collect();
    if !new_hosts.is_empty() {
        return Err(format!("it declares hosts the running one did not: {}", new_hosts.join(", ")));
    }
    Ok((loaded, (info.name.clone(), info.version.clone()), info.hosts.clone()))
}

fn metrics_server(addr: &str, state: crate::store::StateDir) -> Result<Server, Error> {
    Server::bind_limited(addr, 0, move |req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/metrics") => {
            Response::raw(200, "text/plain; version=0.0.4", crate::metrics::render(&state))
        }
        _ => Response::raw(404, "text/plain", "see /metrics"),
    })
    .map_err(|e| Error::Config(format!("cannot serve metrics on {addr}: {e}")))
}

/// SIGTERM or Ctrl-C.
struct Stop {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

/// SIGHUP (never, off Unix).
struct Hangup {
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

fn signals() -> Result<(Stop, Hangup), Error> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let io = |e| Error::io("listening for signals", e);
        Ok((
            Stop { term: signal(SignalKind::terminate()).map_err(io)? },
            Hangup { hup: signal(SignalKind::hangup()).map_err(io)? },
        ))
    }
    #[cfg(not(unix))]
    Ok((Stop {}, Hangup {}))
}

impl Stop {
    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl Hangup {
    async fn wait(&mut self) {
        #[cfg(unix)]
        self.hup.recv().await;
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    }
}
