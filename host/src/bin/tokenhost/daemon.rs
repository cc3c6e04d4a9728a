//! `tokenhost daemon`: one long-running process that refreshes each account ahead of its
//! expiry (no cron needed), receives the brokers' pushes, serves metrics, and hot-swaps
//! provider components; and `serve-webhook`, which only receives pushes.
//!
//! The loop is a `select!` over signals, finished refreshes and a tick. Each refresh is its
//! own task and each push is answered on its connection's task, so an account whose broker
//! hangs delays no other account and no push. A changed component file is loaded and checked
//! while the old one keeps serving (see [`Service::swap_if_changed`]). SIGHUP reloads the
//! config file; SIGTERM (or Ctrl-C) lets the work in flight finish, then exits 0.

use crate::report::{self, out};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokenhost::listener::{self, Listener, Request};
use tokenhost::plan::{Plan, Planner};
use tokenhost::policy::DAEMON_BACKOFF;
use tokenhost::service::{Action, Outcome, Service, Swap, Watched};
use tokenhost::{Error, ExitCode, time};

/// Where pushes are received unless configured otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8977";

/// Longest wait between two looks at an account (a `check` elsewhere may mark its token dead).
const MAX_SLEEP_SECS: i64 = 60;

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

/// The accounts being looked after, shared with the push handler.
type Plans = tokenhost::service::PushAccounts;

/// When an account is next looked at, and how many failed runs in a row it has had.
#[derive(Default, Clone, Copy)]
struct Due {
    at: i64,
    failures: u32,
}

/// Runs until SIGTERM or Ctrl-C. `reload` makes the planner afresh from the config file (for
/// SIGHUP).
pub async fn run(
    service: Arc<Service>,
    mut planner: Planner,
    named: Vec<String>,
    opts: Options,
    reload: impl Fn(&Planner) -> Result<Planner, Error>,
) -> Result<ExitCode, Error> {
    let list = plans(&service, &planner, &named).await?;
    let mut watched: HashMap<PathBuf, Watched> = HashMap::new();
    watch_new(&service, &list, &mut watched).await?;
    let plans: Plans = Arc::new(RwLock::new(list.into_iter().map(|p| (p.account.clone(), p)).collect()));
    let pushes = match &opts.listen {
        Some(addr) => Some(push_listener(addr, &service, &plans).await?),
        None => None,
    };
    let metrics = match &opts.metrics_listen {
        Some(addr) => Some(metrics_listener(addr, &service).await?),
        None => None,
    };
    let (mut stop, mut hangup) = signals()?;
    out(&format!(
        "daemon: {} account(s): {}{}{}",
        names(&plans).len(),
        names(&plans).join(", "),
        pushes.as_ref().map(|l| format!("; pushes on http://{}/push/ACCOUNT", l.addr())).unwrap_or_default(),
        metrics.as_ref().map(|l| format!("; metrics on http://{}/metrics", l.addr())).unwrap_or_default(),
    ));
    let mut due: HashMap<String, Due> = HashMap::new();
    let mut running: HashSet<String> = HashSet::new();
    let mut refreshes: tokio::task::JoinSet<(String, Result<Outcome, Error>)> = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(opts.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait() => break,
            _ = hangup.wait() => {
                match reload(&planner) {
                    Ok(new) => match self::plans(&service, &new, &named).await {
                        Ok(list) => {
                            let config = new.config();
                            service.set_notifier(tokenhost::notify::Notifier::new(&config.file.notify, |v| config.lookup(v)));
                            if let Err(e) = watch_new(&service, &list, &mut watched).await {
                                tracing::error!("{e}");
                            }
                            if let Ok(mut p) = plans.write() {
                                *p = list.into_iter().map(|p| (p.account.clone(), p)).collect();
                            }
                            planner = new;
                            out(&format!("daemon: config reloaded, {} account(s)", names(&plans).len()));
                        }
                        Err(e) => out(&format!("daemon: config reload refused, keeping the old one: {e}")),
                    },
                    Err(e) => out(&format!("daemon: config reload refused, keeping the old one: {e}")),
                }
            }
            Some(done) = refreshes.join_next(), if !refreshes.is_empty() => {
                let Ok((name, result)) = done else { continue };
                running.remove(&name);
                let now = time::now();
                let d = due.entry(name.clone()).or_default();
                *d = match result {
                    Ok(o) => {
                        if o.action != Action::Fresh {
                            out(&report::line(&o));
                        }
                        let next = o.refresh_at.unwrap_or(now + MAX_SLEEP_SECS);
                        Due { at: next.clamp(now + 1, now + MAX_SLEEP_SECS), failures: 0 }
                    }
                    Err(e) => {
                        out(&report::failure(&name, &e));
                        // The run retried already; wait longer after each failed run.
                        let failures = d.failures + 1;
                        Due { at: now + DAEMON_BACKOFF.next(failures).as_secs() as i64, failures }
                    }
                };
                service.write_metrics();
            }
            _ = tick.tick() => {
                let current: Vec<Plan> = plans.read().map(|p| p.values().cloned().collect()).unwrap_or_default();
                for plan in &current {
                    if let Some(w) = watched.get_mut(&plan.provider) {
                        match service.swap_if_changed(plan, w).await {
                            Swap::Unchanged => {}
                            Swap::Swapped { name, version, sha256 } => out(&format!(
                                "{}: component swapped to {name} {version} (sha256 {})",
                                plan.account,
                                &sha256[..12]
                            )),
                            Swap::Refused(why) => {
                                tracing::error!(account = %plan.account, "new component refused: {why}");
                                out(&format!(
                                    "{}: the new {} is refused, the running component stays: {why}",
                                    plan.account,
                                    plan.provider.display()
                                ));
                            }
                        }
                    }
                }
                let now = time::now();
                for plan in current {
                    if running.contains(&plan.account) || now < due.get(&plan.account).map_or(0, |d| d.at) {
                        continue;
                    }
                    running.insert(plan.account.clone());
                    let service = service.clone();
                    refreshes.spawn(async move { (plan.account.clone(), service.run(&plan, false).await) });
                }
            }
        }
    }
    // Let the refreshes and pushes in flight finish, so a signal never cuts a write short.
    while tokio::time::timeout(Duration::from_secs(60), refreshes.join_next()).await.ok().flatten().is_some()
    {
    }
    if let Some(l) = pushes {
        l.shutdown(Duration::from_secs(60)).await;
    }
    service.write_metrics();
    out("daemon: stopped");
    Ok(ExitCode::Ok)
}

/// `serve-webhook`: receives pushes for the `named` accounts (else the default selection) on
/// `listen` until the process ends.
pub async fn serve_webhook(
    service: Arc<Service>,
    planner: &Planner,
    named: &[String],
    listen: &str,
) -> Result<ExitCode, Error> {
    let list = plans(&service, planner, named).await?;
    // Load every component now: the first push should not wait for a compile.
    let mut watched = HashMap::new();
    watch_new(&service, &list, &mut watched).await?;
    let names: Vec<String> = list.iter().map(|p| p.account.clone()).collect();
    let plans: Plans = Arc::new(RwLock::new(list.into_iter().map(|p| (p.account.clone(), p)).collect()));
    let listener = push_listener(listen, &service, &plans).await?;
    out(&format!("receiving pushes on http://{}/push/ACCOUNT for {}", listener.addr(), names.join(", ")));
    let (mut stop, _) = signals()?;
    stop.wait().await;
    listener.shutdown(Duration::from_secs(60)).await;
    Ok(ExitCode::Ok)
}

async fn plans(service: &Service, planner: &Planner, named: &[String]) -> Result<Vec<Plan>, Error> {
    let names = planner.select(named);
    if names.is_empty() {
        return Err(Error::Config(
            "no accounts to look after: name them, configure them in tokenhost.toml, or run a provider file once"
                .into(),
        ));
    }
    let mut list = Vec::new();
    for name in &names {
        list.push(service.resolve(planner, name).await?);
    }
    Ok(list)
}

fn names(plans: &Plans) -> Vec<String> {
    let mut n: Vec<String> = plans.read().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    n.sort();
    n
}

/// Loads, checks and remembers each component file not watched yet.
async fn watch_new(
    service: &Service,
    list: &[Plan],
    watched: &mut HashMap<PathBuf, Watched>,
) -> Result<(), Error> {
    for plan in list {
        if !watched.contains_key(&plan.provider) {
            let w = service.watch(plan).await.map_err(|e| prefixed(&plan.account, e))?;
            watched.insert(plan.provider.clone(), w);
        }
    }
    Ok(())
}

fn prefixed(account: &str, e: Error) -> Error {
    match e {
        Error::Config(m) => Error::Config(format!("{account}: {m}")),
        other => other,
    }
}

/// `POST /push/<account>`: the body goes to the account's provider, and the token it yields
/// is stored if the host's replay policy lets it.
async fn push_listener(addr: &str, service: &Arc<Service>, plans: &Plans) -> Result<Listener, Error> {
    let handler = service.push_handler(plans.clone(), |account, result| match result {
        Ok(o) => out(&report::line(o)),
        Err(e) => out(&format!("{account}: push refused ({}): {e}", e.kind())),
    });
    Listener::bind(addr, listener::Limits::default(), handler)
        .await
        .map_err(|e| Error::Config(format!("cannot listen for pushes on {addr}: {e}")))
}

/// `GET /metrics`: the Prometheus text of every account.
async fn metrics_listener(addr: &str, service: &Arc<Service>) -> Result<Listener, Error> {
    let state = service.state().clone();
    let handler = listener::handler(move |req: Request| {
        let state = state.clone();
        async move {
            match (req.method == http::Method::GET, req.path.as_str()) {
                (true, "/metrics") => {
                    listener::text(200, "text/plain; version=0.0.4", tokenhost::metrics::render(&state))
                }
                _ => listener::text(404, "text/plain", "see /metrics"),
            }
        }
    });
    Listener::bind(addr, listener::Limits { max_body: 0, ..Default::default() }, handler)
        .await
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
