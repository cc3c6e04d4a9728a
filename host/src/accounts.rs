//! What the CLI does to an account: refresh it when due, check it, log it out. Each function
//! keeps the last good token unless a new one is in hand.

use crate::engine::{CachedInfo, Host, Loaded};
use crate::policy::{self, Cutoff, Reason};
use crate::provider::{self, HostState, Provider, Token};
use crate::secret::Secret;
use crate::settings::{Account, Config};
use crate::sinks::Sink;
use crate::store::{AccountDir, StateDir, StoredExtra, StoredToken};
use crate::{Error, time};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::component::Linker;

/// Everything commands share. The engine is created only when a component must run, so a
/// run that finds its token fresh never pays for it.
pub struct Context {
    /// The state directory.
    pub state: StateDir,
    /// The configuration.
    pub config: Config,
    /// Sinks given on the command line, written for every account refreshed.
    pub extra_sinks: Vec<Sink>,
    runtime: OnceLock<(Host, Linker<HostState>)>,
    /// Components already loaded, by path: `run --all` loads each file once.
    loaded: Mutex<HashMap<PathBuf, Arc<Loaded>>>,
    /// Where failures and recoveries are reported.
    pub notifier: crate::notify::Notifier,
    /// Where to keep a Prometheus text file of every account's state, if anywhere.
    pub metrics_file: Option<PathBuf>,
}

/// What `run` did for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The token is fresh; nothing was loaded.
    Fresh,
    /// A new token was stored.
    Refreshed(Reason),
    /// Another run refreshed it while this one waited for the lock.
    RefreshedElsewhere,
}

/// The result of `run` for one account.
#[derive(Debug, Clone)]
pub struct Report {
    /// Account name.
    pub account: String,
    /// What happened.
    pub outcome: Outcome,
    /// The stored token's expiry.
    pub expires_at: Option<i64>,
    /// When the stored token becomes due for a refresh (see [`policy::refresh_at`]).
    pub refresh_at: Option<i64>,
}

/// What `run` was pointed at.
#[derive(Debug, Clone)]
pub enum Target {
    /// A component file.
    File(PathBuf),
    /// A configured account.
    Account(String),
}

impl Target {
    /// A path ending in `.wasm`, or naming an existing file, is a component; anything else
    /// an account name.
    pub fn parse(s: &str) -> Target {
        let p = Path::new(s);
        if s.ends_with(".wasm") || p.is_file() {
            Target::File(p.to_path_buf())
        } else {
            Target::Account(s.to_string())
        }
    }
}

impl Context {
    /// A context over `state` and `config`.
    pub fn new(state: StateDir, config: Config) -> Context {
        let notifier = crate::notify::Notifier::new(&config.file.notify, |v| config.lookup(v));
        Context {
            state,
            config,
            extra_sinks: Vec::new(),
            runtime: OnceLock::new(),
            loaded: Mutex::default(),
            notifier,
            metrics_file: None,
        }
    }

    /// The engine and linker, created on first use.
    pub fn runtime(&self) -> Result<&(Host, Linker<HostState>), Error> {
        if let Some(r) = self.runtime.get() {
            return Ok(r);
        }
        let host = Host::new(self.state.cache_dir())?;
        let linker = provider::linker(&host)?;
        Ok(self.runtime.get_or_init(|| (host, linker)))
    }

    /// The account `target` names. For a component file this needs the provider's name: it
    /// comes from the info cache (by content hash) or, the first time, from the component.
    pub async fn resolve(&self, target: &Target) -> Result<Account, Error> {
        match target {
            Target::Account(name) => account_named(&self.config, &self.state, name),
            Target::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| Error::Config(format!("cannot read provider {}: {e}", path.display())))?;
                let sha = crate::engine::sha256_hex(&bytes);
                let name = match crate::engine::cached_info(&self.state.cache_dir(), &sha) {
                    Some(info) => info.name,
                    None => {
                        let (host, linker) = self.runtime()?;
                        let loaded = host.load_bytes(&bytes, &path.display().to_string())?;
                        self.describe(host, linker, &loaded).await?.name
                    }
                };
                // So that `check NAME`, `login NAME` and `logout NAME` find it from anywhere.
                self.state.account(&name)?.remember_provider(path);
                Ok(self.config.account_for_provider(&name, path))
            }
        }
    }

    /// Asks a component about itself without any settings, and caches the answer.
    pub async fn describe(
        &self,
        host: &Host,
        linker: &Linker<HostState>,
        loaded: &Loaded,
    ) -> Result<CachedInfo, Error> {
        let grants = provider::Grants {
            account: "inspect".into(),
            allow_hosts: Some(Vec::new()),
            allow_plain_http: false,
            kv_path: std::env::temp_dir().join("tokenhost-describe-unused"),
            limits: provider::Limits::default(),
        };
        let p = Provider::start(host, linker, loaded, &grants, |_| Ok(Default::default())).await?;
        let info = cached(p.info());
        crate::engine::save_info(&self.state.cache_dir(), &loaded.sha256, &info);
        Ok(info)
    }

    /// From now on, the account whose provider is at `path` runs `loaded` (the daemon's
    /// hot swap), whatever the file holds.
    pub fn pin(&self, path: &Path, loaded: Arc<Loaded>) -> Result<(), Error> {
        self.loaded.lock().map_err(|_| poisoned())?.insert(path.to_path_buf(), loaded);
        Ok(())
    }

    /// The component at `path`, loaded once per process.
    pub fn load(&self, path: &Path) -> Result<Arc<Loaded>, Error> {
        if let Some(l) = self.loaded.lock().map_err(|_| poisoned())?.get(path) {
            return Ok(l.clone());
        }
        let (host, _) = self.runtime()?;
        let loaded = Arc::new(host.load(path)?);
        self.loaded.lock().map_err(|_| poisoned())?.insert(path.to_path_buf(), loaded.clone());
        Ok(loaded)
    }

    /// Starts the account's provider with its settings and grants.
    pub async fn start(&self, account: &Account) -> Result<Provider, Error> {
        let (host, linker) = self.runtime()?;
        let loaded = self.load(&account.provider_path)?;
        let grants = self.config.grants(account, &self.state)?;
        let provider =
            Provider::start(host, linker, &loaded, &grants, |info| self.config.resolve(account, info))
                .await?;
        crate::engine::save_info(&self.state.cache_dir(), &loaded.sha256, &cached(provider.info()));
        Ok(provider)
    }

    /// Refreshes the account if its token is due (or `force`), under its lock.
    pub async fn run(&self, account: &Account, force: bool) -> Result<Report, Error> {
        let started = time::now();
        let dir = self.state.account(&account.name)?;
        let ahead = account.config.refresh_ahead_secs;
        let token = dir.load_token()?;
        let known_invalid =
            token.as_ref().is_some_and(|t| dir.load_status().invalid_token_of == Some(t.refreshed_at));
        let reason = if force {
            Some(Reason::Forced)
        } else if known_invalid {
            Some(Reason::Invalid)
        } else {
            policy::due(token.as_ref(), ahead, started)
        };
        let Some(reason) = reason else {
            if let Some(t) = &token {
                // A sink added or changed since the last refresh gets the token now, not at the
                // next refresh; one that holds it already is not touched.
                let sinks: Vec<Sink> = self.sinks(account).collect();
                self.write_sinks(account, t, &sinks)?;
            }
            return Ok(Report {
                account: account.name.clone(),
                outcome: Outcome::Fresh,
                expires_at: expiry(&token),
                refresh_at: token.as_ref().map(|t| policy::refresh_at(t, ahead)),
            });
        };
        tracing::debug!(account = %account.name, "refresh due: {reason}");

        let _lock = dir.lock()?;
        // Another run may have refreshed while this one waited for the lock: a forced run is
        // satisfied by any token stored since it started, a normal one by a fresh token.
        let before = token.as_ref().map(|t| t.access_token.clone());
        let token = dir.load_token()?;
        let done_elsewhere = if force || known_invalid {
            token.as_ref().map(|t| t.access_token.clone()) != before
        } else {
            policy::due(token.as_ref(), ahead, time::now()).is_none()
        };
        if done_elsewhere {
            return Ok(Report {
                account: account.name.clone(),
                outcome: Outcome::RefreshedElsewhere,
                expires_at: expiry(&token),
                refresh_at: token.as_ref().map(|t| policy::refresh_at(t, ahead)),
            });
        }

        let result = self.refresh_with_retries(account, &dir, token.as_ref()).await;
        let stored = self.finish(account, &dir, result).await?;
        Ok(Report {
            account: account.name.clone(),
            outcome: Outcome::Refreshed(reason),
            expires_at: stored.expires_at,
            refresh_at: Some(policy::refresh_at(&stored, ahead)),
        })
    }

    /// Refreshes, retrying transient failures as the account's retry policy says; every other
    /// failure ends it at once.
    async fn refresh_with_retries(
        &self,
        account: &Account,
        dir: &AccountDir,
        current: Option<&StoredToken>,
    ) -> Result<StoredToken, Error> {
        let retry = self.config.retry(account);
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            let result = self.refresh_locked(account, dir, current).await;
            let Err(Error::Transient(e)) = &result else { return result };
            let wait = retry.delay(attempt, jitter());
            if attempt >= retry.attempts || started.elapsed() + wait > retry.max_total {
                if attempt > 1 {
                    return Err(Error::Transient(format!("{e} (gave up after {attempt} attempts)")));
                }
                return result;
            }
            tracing::warn!(
                account = %account.name,
                "attempt {attempt} of {} failed, retrying in {:.1} s: {e}",
                retry.attempts,
                wait.as_secs_f64()
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn refresh_locked(
        &self,
        account: &Account,
        dir: &AccountDir,
        current: Option<&StoredToken>,
    ) -> Result<StoredToken, Error> {
        tracing::info!(account = %account.name, "instantiating provider {}", account.provider_path.display());
        let mut provider = self.start(account).await?;
        if let Some(t) = current {
            provider.add_secrets(t.secrets());
        }
        let fresh = provider.refresh(current.map(to_wit)).await?;
        self.store_new(account, dir, &provider, fresh)
    }

    /// Records the outcome of getting a new token in the account's status and, on success,
    /// copies the token to the sinks. The caller holds the account's lock.
    pub async fn finish(
        &self,
        account: &Account,
        dir: &AccountDir,
        result: Result<StoredToken, Error>,
    ) -> Result<StoredToken, Error> {
        let before = dir.load_status();
        let mut status = before.clone();
        match &result {
            Ok(stored) => status.succeeded(&stored.provider),
            Err(e) => status.failed(None, e),
        }
        dir.save_status(&status)?;
        if let Some(event) = self.notifier.enabled().then(|| self.notifier.event(&before, &result)).flatten()
        {
            let kept = if result.is_err() { dir.load_token().ok().flatten() } else { None };
            self.notifier.send(&account.name, &event, &result, kept.as_ref()).await;
        }
        let stored = result?;
        let sinks: Vec<Sink> = self.sinks(account).collect();
        self.write_sinks(account, &stored, &sinks)?;
        Ok(stored)
    }

    /// Stores `fresh`, which the provider described by `info` just produced, with its expiry
    /// resolved by the host's policy. The caller holds the account's lock.
    pub fn store_new(
        &self,
        account: &Account,
        dir: &AccountDir,
        provider: &Provider,
        fresh: Token,
    ) -> Result<StoredToken, Error> {
        let info = provider.info();
        let cutoff = info.daily_cutoff.map(|c| Cutoff {
            hour: c.hour,
            minute: c.minute,
            utc_offset_minutes: c.utc_offset_minutes,
        });
        let now = time::now();
        let (expires_at, source) =
            policy::resolve_expiry(fresh.expires_at, &fresh.access_token, fresh.issued_at, cutoff, now);
        if expires_at <= now {
            return Err(Error::Transient(format!(
                "provider `{}` returned a token that expired at {}; the stored one is kept",
                info.name,
                time::iso(expires_at)
            )));
        }
        let stored = StoredToken {
            account: account.name.clone(),
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
            refresh_ahead_secs: account.config.refresh_ahead_secs.unwrap_or(info.refresh_ahead_secs),
            component_sha256: Some(provider.component_sha256().to_string()),
        };
        dir.save_token(&stored)?;
        tracing::info!(account = %account.name, "stored a new token, expires {} ({source})", time::iso(expires_at));
        Ok(stored)
    }

    fn sinks<'a>(&'a self, account: &'a Account) -> impl Iterator<Item = Sink> + 'a {
        account.config.sinks.iter().chain(&self.extra_sinks).cloned()
    }

    fn write_sinks(&self, account: &Account, token: &StoredToken, sinks: &[Sink]) -> Result<(), Error> {
        let prefix = crate::settings::env_prefix(account, &token.provider);
        for sink in sinks {
            if sink
                .write(token, &prefix)
                .map_err(|e| Error::Config(format!("the token is stored, but {e}")))?
            {
                tracing::info!(account = %account.name, "token copied to {}", sink.path().display());
            }
        }
        Ok(())
    }

    /// Asks the broker whether the stored token works.
    pub async fn check(&self, account: &Account) -> Result<StoredToken, Error> {
        let dir = self.state.account(&account.name)?;
        let token = dir.load_token()?.ok_or_else(|| no_token(&account.name))?;
        let mut provider = self.start(account).await?;
        provider.add_secrets(token.secrets());
        let verdict = provider.validate(to_wit(&token)).await;
        if let Err(Error::Rejected(_)) = &verdict {
            // Remembered so that the next `run` logs in again without asking the broker first.
            let mut status = dir.load_status();
            status.invalid_token_of = Some(token.refreshed_at);
            dir.save_status(&status)?;
        }
        verdict.map(|()| token)
    }

    /// Revokes the stored token at the broker and forgets it. A broker that already
    /// considers it invalid is fine; one that cannot be reached keeps it stored.
    pub async fn logout(&self, account: &Account) -> Result<(), Error> {
        let dir = self.state.account(&account.name)?;
        let token = dir.load_token()?.ok_or_else(|| no_token(&account.name))?;
        let _lock = dir.lock()?;
        let mut provider = self.start(account).await?;
        provider.add_secrets(token.secrets());
        match provider.revoke(to_wit(&token)).await {
            Ok(()) | Err(Error::Rejected(_)) => {
                let mut status = dir.load_status();
                status.logged_out_at = Some(time::now());
                dir.save_status(&status)?;
                dir.remove_token()
            }
            Err(e) => Err(e),
        }
    }
}

impl Context {
    /// Rewrites the metrics file, if there is one; a failure is logged, never returned.
    pub fn write_metrics(&self) {
        if let Some(path) = &self.metrics_file
            && let Err(e) = crate::metrics::write(path, &self.state)
        {
            tracing::warn!("{e}");
        }
    }
}

/// The account called `name`: its section of the config file, else (zero-config) `./NAME.wasm`,
/// else the component it last ran from.
pub fn account_named(config: &Config, state: &StateDir, name: &str) -> Result<Account, Error> {
    match config.account(name) {
        Err(e) if !config.file.accounts.contains_key(name) => {
            let local = PathBuf::from(format!("{name}.wasm"));
            let remembered = state.remembered_provider(name);
            match [Some(local), remembered].into_iter().flatten().find(|p| p.is_file()) {
                Some(path) => Ok(config.account_for_provider(name, &path)),
                None => Err(Error::Config(format!("{e}; no ./{name}.wasm either"))),
            }
        }
        other => other,
    }
}

/// The accounts a long-running command looks after: those `named`, else every configured
/// one, else every account that has run from a provider file.
pub fn default_names(config: &Config, state: &StateDir, named: &[String]) -> Vec<String> {
    if !named.is_empty() {
        named.to_vec()
    } else if !config.account_names().is_empty() {
        config.account_names()
    } else {
        state.accounts().into_iter().filter(|n| state.remembered_provider(n).is_some()).collect()
    }
}

/// A number in [-1, 1] that differs between processes and calls.
fn jitter() -> f64 {
    let bits = u64::from_str_radix(&crate::secret::random_hex()[..16], 16).unwrap_or(0);
    (bits as f64 / u64::MAX as f64) * 2.0 - 1.0
}

fn poisoned() -> Error {
    Error::Fault("an earlier task panicked while loading a component".into())
}

/// The message for an account with nothing stored.
pub fn no_token(account: &str) -> Error {
    Error::Config(format!("no token stored for account `{account}`: run `tokenhost run {account}` first"))
}

fn expiry(token: &Option<StoredToken>) -> Option<i64> {
    token.as_ref().and_then(|t| t.expires_at)
}

fn cached(info: &provider::ProviderInfo) -> CachedInfo {
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
pub fn to_wit(t: &StoredToken) -> Token {
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
