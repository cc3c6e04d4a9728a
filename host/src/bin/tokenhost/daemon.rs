//! `tokenhost daemon`: one long-running process that refreshes each account ahead of its
//! expiry (no cron needed), receives the brokers' pushes, serves metrics, hot-swaps provider
//! components, and reminds people to log in where a broker needs one daily; and
//! `serve-webhook`, which only receives pushes.
//!
//! Its listener serves the pushes (`/push/ACCOUNT`), the login links its reminders send
//! (`/login/ACCOUNT?d=DAY&k=KEY`, which start a browser login) and those logins' answers.
//!
//! The loop is a `select!` over signals, finished refreshes and a tick. Each refresh is its
//! own task and each push is answered on its connection's task, so an account whose broker
//! hangs delays no other account and no push. A changed component file is loaded and checked
//! while the old one keeps serving (see [`Service::swap_if_changed`]). SIGHUP reloads the
//! config file; SIGTERM (or Ctrl-C) lets the work in flight finish, then exits 0.

use crate::report::{self, out};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};
use tokenhost::listener::{self, Listener, Request, Response};
use tokenhost::login::{Logins, html};
use tokenhost::plan::{Plan, Planner};
use tokenhost::policy::DAEMON_BACKOFF;
use tokenhost::remind::Reminders;
use tokenhost::secret::Secret;
use tokenhost::service::swap::{Swap, Watched};
use tokenhost::service::{Action, Outcome, Service};
use tokenhost::{Error, ExitCode, time};

/// Where pushes are received unless configured otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8977";

/// Longest wait between two looks at an account (a `check` elsewhere may mark its token dead).
const MAX_SLEEP_SECS: i64 = 60;

/// How often the accounts are looked at for login reminders, inside a reminder window.
const REMIND_EVERY: Duration = Duration::from_secs(30);

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
type Plans = tokenhost::service::push::PushAccounts;

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
    let links = Arc::new(Links::default());
    // With a fleet store, a token any host stores reaches this host's sinks at once.
    let fan_out = service.fleet().is_some().then(|| tokio::spawn(fan_out(service.clone(), plans.clone())));
    let pushes = match &opts.listen {
        Some(addr) => Some(daemon_listener(addr, &service, &plans, &links).await?),
        None => None,
    };
    links.configure(&service, &planner)?;
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
    let mut reminding: Option<tokio::task::JoinHandle<()>> = None;
    let mut reminded_at: Option<Instant> = None;
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
                            if let Err(e) = links.configure(&service, &new) {
                                out(&format!("daemon: [remind] refused, reminders keep their old settings: {e}"));
                            }
                            reminded_at = None;
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
                        if matches!(e, Error::Interaction { .. }) {
                            // A person is needed: a reminder may be due now, not in 30 s.
                            reminded_at = None;
                        }
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
                if let Some((reminders, key)) = links.reminders()
                    && reminders.window(now).is_some()
                    && reminded_at.is_none_or(|t| t.elapsed() >= REMIND_EVERY)
                    && reminding.as_ref().is_none_or(|t| t.is_finished())
                {
                    reminded_at = Some(Instant::now());
                    let accounts: Vec<String> = current.iter().map(|p| p.account.clone()).collect();
                    reminding = Some(tokio::spawn(remind(service.clone(), accounts, reminders, key)));
                }
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
    if let Some(r) = reminding {
        let _ = tokio::time::timeout(Duration::from_secs(60), r).await;
    }
    if let Some(f) = fan_out {
        f.abort();
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
    Listener::bind(addr, listener::Limits::default(), push_handler(service, plans))
        .await
        .map_err(|e| Error::Config(format!("cannot listen for pushes on {addr}: {e}")))
}

fn push_handler(service: &Arc<Service>, plans: &Plans) -> listener::Handler {
    service.push_handler(plans.clone(), |account, result| match result {
        Ok(o) => out(&report::line(o)),
        Err(e) => out(&format!("{account}: push refused ({}): {e}", e.kind())),
    })
}

/// Copies every token the fleet store gets to this host's sinks, for the accounts it looks
/// after; reconnects when the watch ends.
async fn fan_out(service: Arc<Service>, plans: Plans) {
    use futures_util::StreamExt;
    let Some(fleet) = service.fleet().cloned() else { return };
    let mut said = false;
    loop {
        match fleet.watch_tokens().await {
            Ok(tokens) => {
                if !std::mem::replace(&mut said, true) {
                    out(&format!("daemon: watching the fleet store at {} for new tokens", fleet.url()));
                }
                let mut tokens = std::pin::pin!(tokens);
                while let Some((account, token, _)) = tokens.next().await {
                    let Some(plan) = plans.read().ok().and_then(|p| p.get(&account).cloned()) else {
                        continue;
                    };
                    match service.take_from_fleet(&plan, &token) {
                        Ok(true) => out(&format!(
                            "{account}: token from the fleet store, {}",
                            report::expiry(token.expires_at)
                        )),
                        Ok(false) => {}
                        Err(e) => out(&report::failure(&account, &e)),
                    }
                }
            }
            Err(e) => tracing::warn!("watching the fleet store: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `watch`: a JSON line for every token stored, the current ones first; from the fleet store
/// (any host), else from this host's state directory (looked at twice a second).
pub async fn watch(service: &Arc<Service>, only: Option<&str>) -> Result<ExitCode, Error> {
    use futures_util::StreamExt;
    let wanted = |a: &str| only.is_none_or(|o| o == a);
    if let Some(fleet) = service.fleet() {
        let mut tokens = std::pin::pin!(fleet.watch_tokens().await?);
        while let Some((account, token, revision)) = tokens.next().await {
            if wanted(&account) {
                out(&report::token_event(&account, &token, Some(revision)));
            }
        }
        return Err(Error::transient(format!("the store at {} ended the watch", fleet.url())));
    }
    let mut seen: HashMap<String, i64> = HashMap::new();
    loop {
        let state = service.state();
        for account in state.accounts().into_iter().filter(|a| wanted(a)) {
            let Ok((token, _)) = service.token(&account).await else { continue };
            if seen.get(&account) != Some(&token.refreshed_at) {
                seen.insert(account.clone(), token.refreshed_at);
                out(&report::token_event(&account, &token, None));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sends the login reminders due now, one account after another.
async fn remind(service: Arc<Service>, accounts: Vec<String>, reminders: Arc<Reminders>, key: Secret) {
    for account in accounts {
        match service.remind(&account, &reminders, &key, time::now()).await {
            Ok(true) => out(&format!("{account}: login reminder sent")),
            Ok(false) => {}
            Err(e) => tracing::warn!(account = %account, "login reminder not sent: {e}"),
        }
    }
}

/// The daemon's logins: the reminders (with the key of their links) and the logins started
/// from those links.
#[derive(Default)]
struct Links {
    logins: Arc<Logins>,
    reminders: RwLock<Option<(Arc<Reminders>, Secret)>>,
    /// Where the daemon's listener listens.
    own: OnceLock<SocketAddr>,
}

impl Links {
    /// Takes `[remind]` from the planner's config (none: no reminders, no links).
    fn configure(&self, service: &Service, planner: &Planner) -> Result<(), Error> {
        let new = match &planner.config().file.remind {
            Some(config) => {
                let own = self.own.get().map(|a| a.to_string());
                let reminders = Reminders::new(config, own.as_deref())?;
                let key = match self.reminders() {
                    Some((_, key)) => key,
                    None => tokenhost::remind::link_key(service.state().path())?,
                };
                Some((Arc::new(reminders), key))
            }
            None => None,
        };
        if let Ok(mut r) = self.reminders.write() {
            *r = new;
        }
        Ok(())
    }

    fn reminders(&self) -> Option<(Arc<Reminders>, Secret)> {
        self.reminders.read().ok().and_then(|r| r.clone())
    }

    /// `GET /login/ACCOUNT?d=DAY&k=KEY`: a valid link starts a browser login and sends the
    /// browser on to it.
    async fn start(&self, service: &Arc<Service>, plans: &Plans, account: &str, req: &Request) -> Response {
        let plan = plans.read().ok().and_then(|p| p.get(account).cloned());
        let (Some(plan), Some((reminders, key)), Some(own)) = (plan, self.reminders(), self.own.get()) else {
            return html(404, "Not found", "No login link is served for this account here.");
        };
        let (day, k) = (req.param("d").unwrap_or(""), req.param("k").unwrap_or(""));
        let Some(base) =
            reminders.link_base().filter(|_| reminders.link_valid(&key, account, day, k, time::now()))
        else {
            tracing::warn!(account, "login: a login link that is not valid (any more) was refused");
            return html(
                403,
                "Link not valid",
                "This login link is not valid (any more): links work on the day of their reminder. \
                 Run `tokenhost login` on the machine, or wait for the next reminder.",
            );
        };
        match self.logins.begin_served(service, &plan, base, *own).await {
            Ok((shown, finished)) => {
                out(&format!("{account}: login started from a reminder link"));
                let account = account.to_string();
                tokio::spawn(async move {
                    match finished.await {
                        Ok(Ok(o)) => out(&report::line(&o)),
                        Ok(Err(e)) => out(&report::failure(&account, &e)),
                        Err(_) => {}
                    }
                });
                let mut page = html(302, "Logging in", "Going on to the login page...");
                if let Ok(v) = http::HeaderValue::from_str(&shown) {
                    page.headers_mut().insert(http::header::LOCATION, v);
                }
                page
            }
            Err(e) => html(500, "Login not started", &format!("The login could not start: {e}")),
        }
    }
}

/// The daemon's listener: pushes, login links, and the answers of the logins they start.
async fn daemon_listener(
    addr: &str,
    service: &Arc<Service>,
    plans: &Plans,
    links: &Arc<Links>,
) -> Result<Listener, Error> {
    let push = push_handler(service, plans);
    let shared = (service.clone(), plans.clone(), links.clone());
    let handler = listener::handler(move |req: Request| {
        let (service, plans, links) = shared.clone();
        let push = push.clone();
        async move {
            if let Some(account) = req.path.strip_prefix("/login/") {
                return links.start(&service, &plans, account, &req).await;
            }
            if !req.path.starts_with("/push/")
                && let Some(page) = links.logins.answer(&service, req.clone()).await
            {
                return page;
            }
            push(req).await
        }
    });
    let listener = Listener::bind(addr, listener::Limits::default(), handler)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    let _ = links.own.set(listener.addr());
    Ok(listener)
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

/// SIGTERM or Ctrl-C; on Windows Ctrl-C, Ctrl-Break, the console window closing and the
/// system shutting down (a service's daemon).
struct Stop {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(windows)]
    windows: WindowsStop,
}

/// The console events that stop the daemon on Windows, besides Ctrl-C. For the closing console
/// and the shutdown, tokio's handler holds the process while the work in flight finishes
/// (Windows allows about 5 s for a closing console, then ends the process).
#[cfg(windows)]
struct WindowsStop {
    ctrl_break: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
    shutdown: tokio::signal::windows::CtrlShutdown,
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
    #[cfg(windows)]
    {
        use tokio::signal::windows::{ctrl_break, ctrl_close, ctrl_shutdown};
        let io = |e| Error::io("listening for console events", e);
        let windows = WindowsStop {
            ctrl_break: ctrl_break().map_err(io)?,
            close: ctrl_close().map_err(io)?,
            shutdown: ctrl_shutdown().map_err(io)?,
        };
        Ok((Stop { windows }, Hangup {}))
    }
    #[cfg(not(any(unix, windows)))]
    Ok((Stop {}, Hangup {}))
}

impl Stop {
    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(windows)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.windows.ctrl_break.recv() => {}
            _ = self.windows.close.recv() => {}
            _ = self.windows.shutdown.recv() => {}
        }
        #[cfg(not(any(unix, windows)))]
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
