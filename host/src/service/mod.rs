//! The core: runs plans and returns typed outcomes, never printing. One [`Service`] per
//! process; every account's work is its own task on the multi-threaded runtime, file locks are
//! waited for without blocking a thread, and fsyncs and compiles step off the runtime's
//! threads, so a locked, slow or hanging account never holds up another.
//!
//! Each operation keeps the last good token unless a new one is in hand.

use crate::accounts::Account;
use crate::caps::keyvalue::KvBacking;
use crate::engine::{CachedInfo, Host, Loaded};
use crate::fleet::{Fleet, Written};
use crate::notify::Notifier;
use crate::plan::{Plan, Planner, Target};
use crate::policy::{self, Claims, Cutoff, Reason};
use crate::provider::{self, Grants, HostState, Provider, ProviderInfo, Token};
use crate::secret::Secret;
use crate::store::{StateDir, StoredExtra, StoredToken};
use crate::{Error, off_thread, time};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use wasmtime::component::Linker;

pub mod push;
pub mod swap;

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The token is fresh; nothing was loaded.
    Fresh,
    /// A new token was stored, for this reason.
    Refreshed(Reason),
    /// Another run on this host stored a new token while this one waited for the account's lock.
    RefreshedElsewhere,
    /// Another host of the fleet stored a new token while this one waited for the lease (or
    /// first, while this one's lease had lapsed).
    RefreshedByAnotherHost,
    /// A person logged in and the token was stored.
    LoggedIn,
    /// The broker pushed a token and it was stored.
    Pushed,
}

/// The result of an operation on one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Account name.
    pub account: String,
    /// What happened.
    pub action: Action,
    /// The stored token's expiry.
    pub expires_at: Option<i64>,
    /// When the stored token becomes due for a refresh.
    pub refresh_at: Option<i64>,
}

impl Outcome {
    fn of(plan: &Plan, action: Action, token: Option<&StoredToken>) -> Outcome {
        Outcome {
            account: plan.account.clone(),
            action,
            expires_at: token.and_then(|t| t.expires_at),
            refresh_at: token.map(|t| policy::refresh_at(t, plan.refresh_ahead)),
        }
    }
}

/// One row of `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusRow {
    /// Account name.
    pub account: String,
    /// Provider name, when known.
    pub provider: Option<String>,
    /// `fresh`, `expiring`, `expired` or `missing`.
    pub state: &'static str,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Seconds until expiry (negative: ago).
    pub expires_in_secs: Option<i64>,
    /// Where the expiry came from.
    pub expiry_source: Option<String>,
    /// Unix seconds.
    pub refreshed_at: Option<i64>,
    /// The broker's user id.
    pub user_id: Option<String>,
    /// `refreshed` or the kind of the last failure.
    pub last_outcome: Option<String>,
    /// Unix seconds.
    pub last_attempt: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Unix seconds by which a person must log in (now, when no working token is stored), for
    /// an account whose tokens a person gets.
    pub login_due_at: Option<i64>,
}

/// A provider component described, for `inspect`.
pub struct Inspection {
    /// What it says about itself.
    pub info: ProviderInfo,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Size of the file in bytes.
    pub size: u64,
}

/// What [`Service::deployment`] found.
pub struct Deployment {
    /// What the provider says of itself, with the account's settings visible.
    pub info: ProviderInfo,
    /// The values of its settings.
    pub settings: BTreeMap<String, Secret>,
    /// `host[:port]`s it may reach.
    pub hosts: Vec<String>,
}

/// The core service.
pub struct Service {
    state: StateDir,
    runtime: OnceLock<(Host, Linker<HostState>)>,
    /// Components loaded so far, by path (and pinned there by a hot swap); concurrent first
    /// loads of one file wait for a single compile.
    loaded: Mutex<HashMap<PathBuf, Arc<tokio::sync::OnceCell<Arc<Loaded>>>>>,
    notifier: RwLock<Arc<Notifier>>,
    metrics_file: Option<PathBuf>,
    /// The store shared with other hosts, if any (else the state directory's files).
    fleet: Option<Arc<Fleet>>,
}

/// A new token, or the one another host stored first.
enum Saved {
    /// Ours was stored.
    Ours(StoredToken),
    /// Another host stored a newer token while this one refreshed: ours was dropped.
    Theirs(Option<StoredToken>),
}

impl Service {
    /// A service over `state`, telling `notifier` about failures and recoveries and keeping a
    /// metrics file at `metrics_file`. The engine starts only when a component must run.
    pub fn new(state: StateDir, notifier: Notifier, metrics_file: Option<PathBuf>) -> Service {
        Service {
            state,
            runtime: OnceLock::new(),
            loaded: Mutex::default(),
            notifier: RwLock::new(Arc::new(notifier)),
            metrics_file,
            fleet: None,
        }
    }

    /// Keeps tokens, outcomes, provider storage and leases in `fleet`, shared with other hosts
    /// (the state directory keeps a copy of the last token this host saw).
    pub fn with_fleet(mut self, fleet: Option<Fleet>) -> Service {
        self.fleet = fleet.map(Arc::new);
        self
    }

    /// The fleet store, if there is one.
    pub fn fleet(&self) -> Option<&Arc<Fleet>> {
        self.fleet.as_ref()
    }

    /// The storage of account `name`.
    fn account(&self, name: &str) -> Result<Account, Error> {
        Ok(Account::new(self.state.account(name)?, self.fleet.as_ref(), name))
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// From now on, failures and recoveries go to `notifier` (a reloaded config).
    pub fn set_notifier(&self, notifier: Notifier) {
        if let Ok(mut n) = self.notifier.write() {
            *n = Arc::new(notifier);
        }
    }

    fn notifier(&self) -> Arc<Notifier> {
        self.notifier.read().map(|n| n.clone()).unwrap_or_default()
    }

    /// The plan for `target`: a configured account, or a component file (whose provider names
    /// the account: from the info cache, else asked once).
    pub async fn resolve(&self, planner: &Planner, target: &str) -> Result<Plan, Error> {
        match Target::parse(target) {
            Target::Account(name) => planner.plan(&name),
            Target::File(path) => {
                let cache = self.state.cache_dir();
                let sha = off_thread(|| crate::engine::fingerprint(&cache, &path))?.sha256;
                let name = match crate::engine::cached_info(&cache, &sha) {
                    Some(info) => info.name,
                    // Loaded as for a run, so the run that follows does not load it again.
                    None => self.describe(&*self.load(&path).await?).await?.name,
                };
                // So that `check NAME`, `login NAME` and `logout NAME` find it from anywhere.
                let dir = self.state.account(&name)?;
                off_thread(|| dir.remember_provider(&path));
                Ok(planner.plan_provider(&name, &path))
            }
        }
    }

    fn runtime(&self) -> Result<&(Host, Linker<HostState>), Error> {
        if let Some(r) = self.runtime.get() {
            return Ok(r);
        }
        let host = Host::new(self.state.cache_dir())?;
        let linker = provider::linker(&host)?;
        Ok(self.runtime.get_or_init(|| (host, linker)))
    }

    /// The component at `path`, loaded once per process (or the one a swap pinned there).
    async fn load(&self, path: &Path) -> Result<Arc<Loaded>, Error> {
        let cell = self.loaded.lock().map_err(|_| poisoned())?.entry(path.to_path_buf()).or_default().clone();
        let (host, _) = self.runtime()?;
        cell.get_or_try_init(|| async { off_thread(|| host.load(path)).map(Arc::new) }).await.cloned()
    }

    /// Asks a component about itself without any settings or hosts, and caches the answer.
    async fn describe(&self, loaded: &Loaded) -> Result<CachedInfo, Error> {
        let (host, linker) = self.runtime()?;
        let p = Provider::start(host, linker, loaded, &Grants::bare(), |_| Ok(Default::default())).await?;
        let info = cached(p.info());
        self.remember_info(&loaded.sha256, &info);
        Ok(info)
    }

    fn remember_info(&self, sha256: &str, info: &CachedInfo) {
        let cache = self.state.cache_dir();
        if crate::engine::cached_info(&cache, sha256).as_ref() != Some(info) {
            off_thread(|| crate::engine::save_info(&cache, sha256, info));
        }
    }

    /// Starts the plan's provider with its settings and grants, and the account's storage.
    async fn start(&self, plan: &Plan, account: &Account) -> Result<Provider, Error> {
        let loaded = self.load(&plan.provider).await?;
        self.start_loaded(plan, &loaded, account.kv().await?).await
    }

    async fn start_loaded(&self, plan: &Plan, loaded: &Loaded, kv: KvBacking) -> Result<Provider, Error> {
        let (host, linker) = self.runtime()?;
        let grants = Grants {
            account: plan.account.clone(),
            allow_hosts: plan.allow_hosts.clone(),
            allow_plain_http: plan.allow_plain_http,
            kv,
            limits: plan.limits,
        };
        let provider = Provider::start(host, linker, loaded, &grants, |info| plan.settings(info)).await?;
        self.remember_info(&loaded.sha256, &cached(provider.info()));
        Ok(provider)
    }

    /// Refreshes the account if its token is due (or `force`), under its lock.
    pub async fn run(&self, plan: &Plan, force: bool) -> Result<Outcome, Error> {
        let started = time::now();
        let account = self.account(&plan.account)?;
        let token = account.load_token().await?;
        let known_invalid = match &token {
            Some(t) => account.load_status().await?.invalid_token_of == Some(t.refreshed_at),
            None => false,
        };
        let reason = if force {
            Some(Reason::Forced)
        } else if known_invalid {
            Some(Reason::Invalid)
        } else {
            policy::due(token.as_ref(), plan.refresh_ahead, started)
        };
        let Some(reason) = reason else {
            if let Some(t) = &token {
                // A sink added or changed since the last refresh gets the token now, not at the
                // next refresh; one that holds it already is not touched.
                self.write_sinks(plan, t)?;
            }
            return Ok(Outcome::of(plan, Action::Fresh, token.as_ref()));
        };
        tracing::debug!(account = %plan.account, "refresh due: {reason}");

        let lock = account.lock().await?;
        // Another run may have refreshed while this one waited for the lock: a forced run is
        // satisfied by any token stored since it started, a normal one by a fresh token.
        let before = token.as_ref().map(|t| t.access_token.clone());
        let token = match account.load_token().await {
            Ok(t) => t,
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };
        let done_elsewhere = if force || known_invalid {
            token.as_ref().map(|t| t.access_token.clone()) != before
        } else {
            policy::due(token.as_ref(), plan.refresh_ahead, time::now()).is_none()
        };
        if done_elsewhere {
            lock.release().await;
            return self.elsewhere(plan, token);
        }
        let result = self.refresh_with_retries(plan, &account, token.as_ref()).await;
        let outcome = match result {
            Ok(Saved::Theirs(theirs)) => self.elsewhere(plan, theirs),
            result => {
                let result = result.map(|saved| match saved {
                    Saved::Ours(t) => t,
                    Saved::Theirs(_) => unreachable!("handled above"),
                });
                self.finish(plan, &account, result, Some(false))
                    .await
                    .map(|stored| Outcome::of(plan, Action::Refreshed(reason), Some(&stored)))
            }
        };
        lock.release().await;
        outcome
    }

    /// Another run (or host) stored `token` first: the sinks get it.
    fn elsewhere(&self, plan: &Plan, token: Option<StoredToken>) -> Result<Outcome, Error> {
        if let Some(t) = &token {
            self.write_sinks(plan, t)?;
        }
        let action =
            if self.fleet.is_some() { Action::RefreshedByAnotherHost } else { Action::RefreshedElsewhere };
        Ok(Outcome::of(plan, action, token.as_ref()))
    }

    /// Runs every plan, at most `jobs` at once, each on its own task: one failing, locked or
    /// hanging account never stops or delays the others. Results are sorted by account.
    pub async fn run_all(
        self: &Arc<Self>,
        plans: Vec<(String, Result<Plan, Error>)>,
        force: bool,
        jobs: usize,
    ) -> Vec<(String, Result<Outcome, Error>)> {
        let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut names = HashMap::new();
        for (name, plan) in plans {
            let (service, permits) = (self.clone(), permits.clone());
            let handle = tasks.spawn(async move {
                let plan = plan?;
                let _permit = permits.acquire_owned().await.map_err(|_| Error::fault("shutting down"))?;
                service.run(&plan, force).await
            });
            names.insert(handle.id(), name);
        }
        let mut results = Vec::new();
        while let Some(done) = tasks.join_next_with_id().await {
            let (id, result) = match done {
                Ok((id, r)) => (id, r),
                Err(e) => (e.id(), Err(Error::fault(format!("the account's task failed: {e}")))),
            };
            results.push((names.remove(&id).unwrap_or_default(), result));
        }
        results.sort_by(|a, b| a.0.cmp(&b.0));
        results
    }

    /// Refreshes, retrying transient failures as the plan's retry policy says; every other
    /// failure ends it at once.
    async fn refresh_with_retries(
        &self,
        plan: &Plan,
        account: &Account,
        current: Option<&StoredToken>,
    ) -> Result<Saved, Error> {
        let retry = plan.retry;
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            let result = self.refresh_once(plan, account, current).await;
            let Err(Error::Transient { message, .. }) = &result else { return result };
            let wait = retry.backoff.next(attempt);
            if attempt >= retry.attempts || started.elapsed() + wait > retry.max_total {
                return Err(Error::Transient { message: message.clone(), attempts: attempt });
            }
            tracing::warn!(
                account = %plan.account,
                "attempt {attempt} of {} failed, retrying in {:.1} s: {message}",
                retry.attempts,
                wait.as_secs_f64()
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn refresh_once(
        &self,
        plan: &Plan,
        account: &Account,
        current: Option<&StoredToken>,
    ) -> Result<Saved, Error> {
        tracing::info!(account = %plan.account, "instantiating provider {}", plan.provider.display());
        let mut provider = self.start(plan, account).await?;
        if let Some(t) = current {
            provider.add_secrets(t.secrets());
        }
        let fresh = provider.refresh(current.map(to_wit)).await;
        // What the provider keeps (a pending request's id, a refresh token) is kept even when
        // the refresh fails: it may be what the next attempt needs.
        account.save_kv(provider.take_kv_changes()).await?;
        let fresh = fresh?;
        let claims = Claims::of(&fresh.access_token);
        self.store_new(plan, account, (provider.info(), provider.component_sha256()), fresh, claims).await
    }

    /// Records the outcome of getting a new token in the account's status, and whether a
    /// person gets its tokens (`by_person` logged in, `None`: as before; or the provider asked
    /// for one); tells the notifier if it is news and, on success, copies the token to the
    /// sinks. The caller holds the account's lock.
    async fn finish(
        &self,
        plan: &Plan,
        account: &Account,
        result: Result<StoredToken, Error>,
        by_person: Option<bool>,
    ) -> Result<StoredToken, Error> {
        let before = account.load_status().await?;
        let mut status = before.clone();
        match &result {
            Ok(stored) => status.succeeded(&stored.provider),
            Err(e) => status.failed(None, e),
        }
        status.person_login =
            by_person.unwrap_or(before.person_login) || matches!(result, Err(Error::Interaction { .. }));
        account.save_status(&status, false).await?;
        let notifier = self.notifier();
        if let Some(event) = notifier.enabled().then(|| notifier.event(&before, &result)).flatten() {
            let kept = if result.is_err() { account.local().load_token().ok().flatten() } else { None };
            notifier.send(&plan.account, &event, &result, kept.as_ref()).await;
        }
        let stored = result?;
        self.write_sinks(plan, &stored)?;
        Ok(stored)
    }

    /// Stores `fresh` (whose JWT claims are `claims`), just produced by `provider`, with its
    /// expiry resolved by the host's policy. The caller holds the account's lock.
    async fn store_new(
        &self,
        plan: &Plan,
        account: &Account,
        (info, sha256): (&ProviderInfo, &str),
        fresh: Token,
        claims: Claims,
    ) -> Result<Saved, Error> {
        let cutoff = info.daily_cutoff.map(|c| Cutoff {
            hour: c.hour,
            minute: c.minute,
            utc_offset_minutes: c.utc_offset_minutes,
        });
        let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let now = clock.as_secs() as i64;
        let (expires_at, source) =
            policy::resolve_expiry(fresh.expires_at, claims, fresh.issued_at, cutoff, now);
        if expires_at <= now {
            return Err(Error::transient(format!(
                "provider `{}` returned a token that expired at {}; the stored one is kept",
                info.name,
                time::iso(expires_at)
            )));
        }
        let stored = StoredToken {
            account: plan.account.clone(),
            provider: info.name.clone(),
            access_token: Secret::new(fresh.access_token),
            expires_at: Some(expires_at),
            expiry_source: source.into(),
            issued_at: fresh.issued_at,
            user_id: fresh.user_id,
            extras: fresh
                .extras
                .into_iter()
                .map(|e| StoredExtra { name: e.name, value: Secret::new(e.value), secret: e.secret })
                .collect(),
            refreshed_at: now,
            refreshed_at_micros: Some(clock.subsec_micros()),
            refresh_ahead_secs: plan.refresh_ahead.unwrap_or(info.refresh_ahead_secs),
            component_sha256: Some(sha256.to_string()),
        };
        if let Written::Superseded = account.save_token(&stored).await? {
            tracing::info!(account = %plan.account, "another host stored a newer token first; ours is dropped");
            return Ok(Saved::Theirs(account.load_token().await?));
        }
        tracing::info!(account = %plan.account, "stored a new token, expires {} ({source})", time::iso(expires_at));
        Ok(Saved::Ours(stored))
    }

    /// Makes every sink of the plan hold `token` (one that does already is not rewritten).
    fn write_sinks(&self, plan: &Plan, token: &StoredToken) -> Result<(), Error> {
        let prefix = plan.env_prefix(&token.provider);
        for sink in &plan.sinks {
            let wrote = off_thread(|| sink.write(token, &prefix))
                .map_err(|e| Error::Config(format!("the token is stored, but {e}")))?;
            if wrote {
                tracing::info!(account = %plan.account, "token copied to {}", sink.path().display());
            }
        }
        Ok(())
    }

    /// Asks the broker whether the stored token works. A token the broker refuses is noted,
    /// so that the next `run` logs in again without asking first.
    pub async fn check(&self, plan: &Plan) -> Result<StoredToken, Error> {
        let account = self.account(&plan.account)?;
        let token = account.load_token().await?.ok_or_else(|| no_token(&plan.account))?;
        let mut provider = self.start(plan, &account).await?;
        provider.add_secrets(token.secrets());
        let verdict = provider.validate(to_wit(&token)).await;
        account.save_kv(provider.take_kv_changes()).await?;
        if let Err(Error::Rejected(_)) = &verdict {
            let mut status = account.load_status().await?;
            status.invalid_token_of = Some(token.refreshed_at);
            account.save_status(&status, false).await?;
        }
        verdict.map(|()| token)
    }

    /// Revokes the stored token at the broker and forgets it. A broker that already
    /// considers it invalid is fine; one that cannot be reached keeps it stored.
    pub async fn logout(&self, plan: &Plan) -> Result<(), Error> {
        let account = self.account(&plan.account)?;
        let token = account.load_token().await?.ok_or_else(|| no_token(&plan.account))?;
        let lock = account.lock().await?;
        let result = async {
            let mut provider = self.start(plan, &account).await?;
            provider.add_secrets(token.secrets());
            let revoked = provider.revoke(to_wit(&token)).await;
            account.save_kv(provider.take_kv_changes()).await?;
            match revoked {
                Ok(()) | Err(Error::Rejected(_)) => {
                    let mut status = account.load_status().await?;
                    status.logged_out_at = Some(time::now());
                    account.save_status(&status, true).await?;
                    account.remove_token().await
                }
                Err(e) => Err(e),
            }
        }
        .await;
        lock.release().await;
        result
    }

    /// A browser login's second half: the provider exchanges what the broker sent back, and
    /// the token is stored (see [`crate::login`]).
    pub(crate) async fn complete_login(
        &self,
        plan: &Plan,
        provider: &mut Provider,
        params: &[(String, String)],
    ) -> Result<Outcome, Error> {
        let account = self.account(&plan.account)?;
        let lock = account.lock().await?;
        let result = async {
            // Read under the lease: the token is written over this revision.
            account.load_token().await?;
            let fresh = provider.complete_login(params).await;
            account.save_kv(provider.take_kv_changes()).await?;
            let result = match fresh {
                Ok(fresh) => {
                    let claims = Claims::of(&fresh.access_token);
                    self.store_new(
                        plan,
                        &account,
                        (provider.info(), provider.component_sha256()),
                        fresh,
                        claims,
                    )
                    .await
                    .and_then(ours)
                }
                Err(e) => Err(e),
            };
            let stored = self.finish(plan, &account, result, Some(true)).await?;
            Ok(Outcome::of(plan, Action::LoggedIn, Some(&stored)))
        }
        .await;
        lock.release().await;
        result
    }

    /// The provider of `plan`, started for a login.
    pub(crate) async fn start_for_login(&self, plan: &Plan) -> Result<Provider, Error> {
        self.start(plan, &self.account(&plan.account)?).await
    }

    /// The stored token of `account`, for another program; an expired one is an error. With a
    /// fleet store that cannot be reached, the last token this host saw is the answer while it
    /// is fresh, with a note saying so.
    pub async fn token(&self, account: &str) -> Result<(StoredToken, Option<String>), Error> {
        let storage = self.account(account)?;
        let (token, note) = match storage.load_token().await {
            Ok(t) => (t, None),
            Err(e @ Error::Transient { .. }) => {
                let local = storage.local().load_token()?;
                let fresh = local.as_ref().is_some_and(|t| t.expires_at.is_none_or(|x| x > time::now()));
                if !fresh {
                    return Err(e);
                }
                let note = format!("{e}; this is the last token this host saw, still fresh");
                (local, Some(note))
            }
            Err(e) => return Err(e),
        };
        let token = token.ok_or_else(|| no_token(account))?;
        let now = time::now();
        match token.expires_at {
            Some(e) if e <= now => Err(Error::Config(format!(
                "the token of `{account}` expired at {}: run `tokenhost run {account}`",
                time::iso(e)
            ))),
            _ => Ok((token, note)),
        }
    }

    /// Copies a token the fleet store holds to this host: the state directory's copy and the
    /// plan's sinks (each written only if it does not hold it yet). Whether it was new here.
    pub fn take_from_fleet(&self, plan: &Plan, token: &StoredToken) -> Result<bool, Error> {
        let dir = self.state.account(&plan.account)?;
        let new = crate::accounts::mirror(&dir, token)?;
        self.write_sinks(plan, token)?;
        Ok(new)
    }

    /// Sends `account`'s login reminder if one is due now (see [`crate::remind`]): the account's
    /// tokens come from a person, it is inside today's window, not reminded today, and its token
    /// is missing, dead, or dies before the window closes. Returns whether it went out.
    pub async fn remind(
        &self,
        account: &str,
        reminders: &crate::remind::Reminders,
        key: &Secret,
        now: i64,
    ) -> Result<bool, Error> {
        let Some(window) = reminders.window(now) else { return Ok(false) };
        let storage = self.account(account)?;
        if !storage.load_status().await?.person_login {
            return Ok(false);
        }
        let lock = storage.lock().await?;
        let result = async {
            let mut status = storage.load_status().await?;
            if !status.person_login || status.reminded_on.as_deref() == Some(window.day.as_str()) {
                return Ok(false);
            }
            let token = storage.load_token().await?;
            let expires_at = token.as_ref().and_then(|t| t.expires_at);
            let dead = token.as_ref().is_some_and(|t| status.invalid_token_of == Some(t.refreshed_at));
            if !crate::remind::Reminders::needs_login(&window, expires_at, dead) {
                return Ok(false);
            }
            let link = reminders.link(key, account, &window.day);
            self.notifier().remind(account, expires_at, dead, link.as_deref()).await;
            status.reminded_on = Some(window.day.clone());
            storage.save_status(&status, false).await?;
            Ok(true)
        }
        .await;
        lock.release().await;
        result
    }

    /// The status rows of `account`, or of every account known to the store or the
    /// configuration.
    pub async fn status(&self, planner: &Planner, account: Option<&str>) -> Result<Vec<StatusRow>, Error> {
        let mut names = match account {
            Some(a) => vec![a.to_string()],
            None => {
                let mut n = match &self.fleet {
                    Some(f) => f.accounts().await?,
                    None => self.state.accounts(),
                };
                n.extend(planner.config().account_names());
                n
            }
        };
        names.sort();
        names.dedup();
        let now = time::now();
        let mut rows = Vec::with_capacity(names.len());
        for name in &names {
            let storage = self.account(name)?;
            let token = storage.load_token().await?;
            let status = storage.load_status().await?;
            let state = match (&token, policy::due(token.as_ref(), planner.refresh_ahead(name), now)) {
                (None, _) => "missing",
                (Some(_), None) => "fresh",
                (Some(_), Some(Reason::Expiring)) => "expiring",
                (Some(_), Some(_)) => "expired",
            };
            let t = token.as_ref();
            let dead = t.is_some_and(|t| status.invalid_token_of == Some(t.refreshed_at));
            let login_due_at = status.person_login.then(|| match t.and_then(|t| t.expires_at) {
                Some(e) if !dead => e,
                _ => now,
            });
            rows.push(StatusRow {
                account: name.clone(),
                provider: t.map(|t| t.provider.clone()).or(status.provider.clone()),
                state,
                expires_at: t.and_then(|t| t.expires_at),
                expires_in_secs: t.and_then(|t| t.remaining(now)),
                expiry_source: t.map(|t| t.expiry_source.clone()),
                refreshed_at: t.map(|t| t.refreshed_at),
                user_id: t.and_then(|t| t.user_id.clone()),
                last_outcome: status.last_outcome,
                last_attempt: status.last_attempt,
                last_error: status.last_error,
                consecutive_failures: status.consecutive_failures,
                login_due_at,
            });
        }
        Ok(rows)
    }

    /// Describes the component at `path` (checked as any provider is, run with no settings).
    pub async fn inspect(&self, path: &Path) -> Result<Inspection, Error> {
        let (host, linker) = self.runtime()?;
        let loaded = off_thread(|| host.load(path))?;
        let p = Provider::start(host, linker, &loaded, &Grants::bare(), |_| Ok(Default::default())).await?;
        Ok(Inspection { info: p.info().clone(), sha256: loaded.sha256.clone(), size: loaded.size })
    }

    /// What running the account elsewhere takes: its component started with the account's
    /// settings (so hosts that depend on them are known), what it says of itself, the
    /// settings' values, and the hosts it may reach.
    pub async fn deployment(&self, plan: &Plan) -> Result<Deployment, Error> {
        let loaded = self.load(&plan.provider).await?;
        let provider = self.start_loaded(plan, &loaded, KvBacking::Loaded(Default::default())).await?;
        let info = provider.info().clone();
        let settings = plan.settings(&info)?;
        let hosts = plan.allow_hosts.clone().unwrap_or_else(|| info.hosts.clone());
        if let Some(fleet) = &self.fleet {
            // The store reached now, so that a wrong address is said here and not in the
            // workload's log, and its buckets made (the leases' with per-key TTLs).
            fleet.ensure_bucket().await?;
        }
        Ok(Deployment { info, settings, hosts })
    }

    /// Rewrites the metrics file, if there is one; a failure is logged, never returned.
    pub fn write_metrics(&self) {
        if let Some(path) = &self.metrics_file
            && let Err(e) = off_thread(|| crate::metrics::write(path, &self.state))
        {
            tracing::warn!("{e}");
        }
    }
}

impl Service {
    /// Waits for the work that outlives a command: compiled components being written to the
    /// cache.
    pub fn settle(&self) {
        if let Some((host, _)) = self.runtime.get() {
            host.wait_for_cache();
        }
    }
}

impl Drop for Service {
    /// A component compiled in this process is in the cache before the process goes on.
    fn drop(&mut self) {
        self.settle();
    }
}

fn poisoned() -> Error {
    Error::fault("an earlier task panicked while loading a component")
}

/// Our token, as stored; another host's being newer is a failure here (a push or a login is
/// this host's own, and the lease should have kept others out).
fn ours(saved: Saved) -> Result<StoredToken, Error> {
    match saved {
        Saved::Ours(t) => Ok(t),
        Saved::Theirs(_) => Err(Error::transient(
            "another host stored a newer token while this one was being taken (its lease lapsed); it was not stored",
        )),
    }
}

/// The message for an account with nothing stored.
fn no_token(account: &str) -> Error {
    Error::Config(format!("no token stored for account `{account}`: run `tokenhost run {account}` first"))
}

fn cached(info: &ProviderInfo) -> CachedInfo {
    CachedInfo {
        name: info.name.clone(),
        version: info.version.clone(),
        daily_cutoff: info.daily_cutoff.map(|c| Cutoff {
            hour: c.hour,
            minute: c.minute,
            utc_offset_minutes: c.utc_offset_minutes,
        }),
        refresh_ahead_secs: info.refresh_ahead_secs,
    }
}

/// The stored token as the provider interface carries it.
fn to_wit(t: &StoredToken) -> Token {
    Token {
        access_token: t.access_token.expose().to_string(),
        expires_at: t.expires_at,
        issued_at: t.issued_at,
        user_id: t.user_id.clone(),
        extras: t
            .extras
            .iter()
            .map(|e| provider::Extra {
                name: e.name.clone(),
                value: e.value.expose().to_string(),
                secret: e.secret,
            })
            .collect(),
    }
}
