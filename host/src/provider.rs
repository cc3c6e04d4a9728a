//! One running provider: a component instantiated for one account, with exactly the
//! capabilities that account grants and a memory cap and deadline on every call.

use crate::Error;
use crate::caps::config::Settings;
use crate::caps::http::HttpPolicy;
use crate::caps::keyvalue::{KvStore, KvView};
use crate::caps::logs::GuestOutput;
use crate::caps::{self, Violations};
use crate::engine::{API_VERSION, Host, Loaded};
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use crate::bindings::exports::tokenhost::provider::provider::{
    DailyCutoff, Extra, ProviderError, ProviderInfo, Setting, Token,
};

/// Limits applied to every call into a component.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Linear memory cap.
    pub memory_bytes: usize,
    /// Wall-clock deadline of one call, HTTP waits included.
    pub call_timeout: Duration,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for an answer's first byte, and between bytes.
    pub read_timeout: Duration,
    /// Largest HTTP response body.
    pub max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 64 << 20,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(20),
            max_response_bytes: 1 << 20,
        }
    }
}

/// What an account grants its provider.
#[derive(Debug, Clone)]
pub(crate) struct Grants {
    /// Account name.
    pub account: String,
    /// Hosts the user allows; `None` means the provider's declared hosts.
    pub allow_hosts: Option<Vec<String>>,
    /// Allow plain `http://` beyond loopback.
    pub allow_plain_http: bool,
    /// Where the account's key-value data lives.
    pub kv: crate::caps::keyvalue::KvBacking,
    /// Limits.
    pub limits: Limits,
}

impl Grants {
    /// No host and default limits: for asking a component about itself.
    pub fn bare() -> Grants {
        Grants {
            account: "inspect".into(),
            allow_hosts: Some(Vec::new()),
            allow_plain_http: false,
            kv: crate::caps::keyvalue::KvBacking::Loaded(Default::default()),
            limits: Limits::default(),
        }
    }
}

/// Everything a component's store holds.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: HttpPolicy,
    settings: Settings,
    kv: KvStore,
    memory: MemoryCap,
    /// When the call in progress must stop (see [`Provider::arm`]).
    deadline: Instant,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// Caps linear memory and remembers that the cap was hit, so a trap that follows can be
/// reported as the limit it is.
struct MemoryCap {
    cap: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The linker every provider is instantiated with: WASI without files, sockets or
/// environment, `wasi:http` through [`HttpPolicy`], config and key-value scoped to the account.
pub(crate) fn linker(host: &Host) -> Result<Linker<HostState>, Error> {
    let fault = |e: wasmtime::Error| Error::fault_from("setting up the sandbox failed", &e, str::to_string);
    let mut linker = Linker::new(host.engine());
    // Only the WASI interfaces the contract allows (see `engine::ALLOWED_IMPORTS`): no files,
    // no sockets. Linking those too cost a fifth of a warm refresh's instructions.
    wasmtime_wasi::p2::add_to_linker_proxy_interfaces_async(&mut linker).map_err(fault)?;
    {
        use wasmtime_wasi::cli::{WasiCli, WasiCliView};
        use wasmtime_wasi::p2::bindings::{cli, random};
        use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
        let l = &mut linker;
        let ctx = <HostState as WasiCliView>::cli;
        let rng = <HostState as WasiRandomView>::random;
        random::insecure::add_to_linker::<_, WasiRandom>(l, rng).map_err(fault)?;
        random::insecure_seed::add_to_linker::<_, WasiRandom>(l, rng).map_err(fault)?;
        cli::exit::add_to_linker::<_, WasiCli>(l, ctx).map_err(fault)?;
        cli::environment::add_to_linker::<_, WasiCli>(l, ctx).map_err(fault)?;
        cli::terminal_input::add_to_linker::<_, WasiCli>(l, ctx).map_err(fault)?;
        cli::terminal_output::add_to_linker::<_, WasiCli>(l, ctx).map_err(fault)?;
        cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, ctx).map_err(fault)?;
        cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, ctx).map_err(fault)?;
        cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, ctx).map_err(fault)?;
    }
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(fault)?;
    caps::config::add_to_linker(&mut linker, |s: &mut HostState| &mut s.settings).map_err(fault)?;
    caps::keyvalue::add_to_linker(&mut linker, |s: &mut HostState| KvView {
        table: &mut s.table,
        store: &mut s.kv,
    })
    .map_err(fault)?;
    Ok(linker)
}

/// A provider instantiated for one account.
pub(crate) struct Provider {
    store: Store<HostState>,
    exports: crate::bindings::ProviderHost,
    info: ProviderInfo,
    account: String,
    limits: Limits,
    violations: Violations,
    stdout: GuestOutput,
    stderr: GuestOutput,
    /// Secret values known to the host (settings, tokens), masked in everything it relays.
    secrets: Vec<Secret>,
    /// SHA-256 of the component file.
    sha256: String,
}

/// One call into the guest: armed with the deadline, bounded in wall-clock time, its outcome
/// mapped by [`Provider::guest_result`].
macro_rules! guest_call {
    ($self:ident, $what:literal, $method:ident $(, $arg:expr)*) => {{
        $self.arm();
        let fut = $self.exports.tokenhost_provider_provider().$method(&mut $self.store $(, $arg)*);
        let r = tokio::time::timeout($self.limits.call_timeout, fut).await;
        $self.guest_result($what, r)
    }};
}

impl Provider {
    /// Instantiates `loaded` for an account, asks it to describe itself, then hands it the
    /// settings it declared: `resolve` maps the declared settings to their values.
    pub async fn start(
        host: &Host,
        linker: &Linker<HostState>,
        loaded: &Loaded,
        grants: &Grants,
        resolve: impl FnOnce(&ProviderInfo) -> Result<BTreeMap<String, Secret>, Error>,
    ) -> Result<Provider, Error> {
        let violations = Violations::default();
        let stdout = GuestOutput::new("stdout");
        let stderr = GuestOutput::new("stderr");
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.pipe()).stderr(stderr.pipe());
        wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        let limits = grants.limits;
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: HttpPolicy {
                account: grants.account.clone(),
                allow: Vec::new(),
                allow_from: "the provider",
                allow_plain_http: grants.allow_plain_http,
                connect_timeout: limits.connect_timeout,
                read_timeout: limits.read_timeout,
                max_response_bytes: limits.max_response_bytes,
                violations: violations.clone(),
            },
            settings: Settings::new(&grants.account, violations.clone()),
            kv: KvStore::new(grants.kv.clone()),
            memory: MemoryCap { cap: limits.memory_bytes, hit: false },
            deadline: Instant::now() + limits.call_timeout,
        };
        let mut store = Store::new(host.engine(), state);
        store.limiter(|s| &mut s.memory);
        // At every epoch tick the guest yields to the runtime, so a component that computes
        // for long never holds up other accounts; past the call's deadline it is stopped.
        store.epoch_deadline_callback(|ctx| {
            Ok(if Instant::now() >= ctx.data().deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store.set_epoch_deadline(1);

        let mut stderr = stderr;
        let instantiate =
            crate::bindings::ProviderHost::instantiate_async(&mut store, &loaded.component, linker);
        let exports = match tokio::time::timeout(limits.call_timeout, instantiate).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                stderr.flush(&grants.account, &[]);
                return Err(limit_or_trap(&store, &limits, "instantiation", e, &[]));
            }
            Err(_) => return Err(deadline(&limits, "instantiation")),
        };
        let mut provider = Provider {
            store,
            exports,
            info: empty_info(),
            account: grants.account.clone(),
            limits,
            violations,
            stdout,
            stderr,
            secrets: Vec::new(),
            sha256: loaded.sha256.clone(),
        };

        // First pass: no settings are readable, so describe() tells what it declares.
        let bare = provider.describe_call().await?;
        check_info(&bare)?;
        let values = resolve(&bare)?;
        provider.secrets =
            bare.settings.iter().filter(|s| s.secret).filter_map(|s| values.get(&s.name).cloned()).collect();
        let keys = bare.settings.iter().map(|s| s.name.clone());
        provider.store.data_mut().settings.declare(keys, values);
        // Second pass: hosts may depend on settings (a broker's root URL).
        let info = provider.describe_call().await?;
        check_info(&info)?;
        let hooks = &mut provider.store.data_mut().hooks;
        match &grants.allow_hosts {
            Some(list) => {
                hooks.allow = list.clone();
                hooks.allow_from = "tokenhost.toml";
            }
            None => hooks.allow = info.hosts.clone(),
        }
        provider.info = info;
        Ok(provider)
    }

    /// What the provider said about itself (with its settings visible).
    pub fn info(&self) -> &ProviderInfo {
        &self.info
    }

    /// SHA-256 of the component this provider runs.
    pub fn component_sha256(&self) -> &str {
        &self.sha256
    }

    /// The changes the provider made to its storage since the last call of this.
    pub(crate) fn take_kv_changes(&mut self) -> Vec<crate::fleet::KvChange> {
        self.store.data_mut().kv.take_changes()
    }

    /// Masks these values too in everything relayed from the guest.
    pub(crate) fn add_secrets(&mut self, secrets: impl IntoIterator<Item = Secret>) {
        self.secrets.extend(secrets);
    }

    /// Gives the next call its full time budget.
    fn arm(&mut self) {
        self.store.data_mut().deadline = Instant::now() + self.limits.call_timeout;
        self.store.set_epoch_deadline(1);
    }

    async fn describe_call(&mut self) -> Result<ProviderInfo, Error> {
        self.arm();
        let fut = self.exports.tokenhost_provider_provider().call_describe(&mut self.store);
        let r = tokio::time::timeout(self.limits.call_timeout, fut).await;
        self.finish("describe", r)
    }

    /// `refresh(current)`.
    pub async fn refresh(&mut self, current: Option<Token>) -> Result<Token, Error> {
        let token = guest_call!(self, "refresh", call_refresh, current.as_ref())?;
        self.check_token(token)
    }

    /// `validate(token)`.
    pub async fn validate(&mut self, token: Token) -> Result<(), Error> {
        guest_call!(self, "validate", call_validate, &token)
    }

    /// `revoke(token)`.
    pub async fn revoke(&mut self, token: Token) -> Result<(), Error> {
        guest_call!(self, "revoke", call_revoke, &token)
    }

    /// `login-url(redirect_uri, state)`.
    pub(crate) async fn login_url(&mut self, redirect_uri: &str, state: &str) -> Result<String, Error> {
        guest_call!(self, "login-url", call_login_url, redirect_uri, state)
    }

    /// `complete-login(params)`.
    pub(crate) async fn complete_login(&mut self, params: &[(String, String)]) -> Result<Token, Error> {
        let token = guest_call!(self, "complete-login", call_complete_login, params)?;
        self.check_token(token)
    }

    /// `accept-push(body)`.
    pub(crate) async fn accept_push(&mut self, body: &[u8]) -> Result<Token, Error> {
        let token = guest_call!(self, "accept-push", call_accept_push, body)?;
        self.check_token(token)
    }

    fn check_token(&mut self, token: Token) -> Result<Token, Error> {
        if token.access_token.trim().is_empty() {
            return Err(Error::transient(format!(
                "provider `{}` returned an empty token; the stored one is kept",
                self.info.name
            )));
        }
        self.secrets.push(Secret::new(token.access_token.clone()));
        self.secrets.extend(token.extras.iter().filter(|e| e.secret).map(|e| Secret::new(e.value.clone())));
        Ok(token)
    }

    /// Maps a call's outcome: deadline, trap, limit, breach, then the guest's own error.
    fn guest_result<T>(
        &mut self,
        what: &str,
        r: Result<wasmtime::Result<Result<T, ProviderError>>, tokio::time::error::Elapsed>,
    ) -> Result<T, Error> {
        let inner = self.finish(what, r)?;
        inner.map_err(|e| self.provider_error(what, e))
    }

    fn finish<T>(
        &mut self,
        what: &str,
        r: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, Error> {
        let mut secrets = self.secrets.clone();
        secrets.extend(self.store.data_mut().kv.secrets());
        let secrets = secrets;
        self.stdout.flush(&self.account, &secrets);
        self.stderr.flush(&self.account, &secrets);
        let value = match r {
            Err(_) => return Err(deadline(&self.limits, what)),
            Ok(Err(e)) => return Err(limit_or_trap(&self.store, &self.limits, what, e, &secrets)),
            Ok(Ok(v)) => v,
        };
        let breaches = self.violations.take();
        if !breaches.is_empty() {
            return Err(Error::fault(format!(
                "provider broke the sandbox policy during {what}: {}",
                breaches.join("; ")
            )));
        }
        Ok(value)
    }

    fn provider_error(&self, what: &str, e: ProviderError) -> Error {
        let r = |s: &str| crate::secret::redact(s, &self.secrets);
        let name = &self.info.name;
        match e {
            ProviderError::Config(p) => {
                Error::Config(format!("setting `{}` of account `{}`: {}", p.key, self.account, r(&p.message)))
            }
            ProviderError::Rejected(m) => Error::Rejected(r(&m)),
            ProviderError::Transient(m) => {
                Error::transient(format!("{what} failed, try again later: {}", r(&m)))
            }
            ProviderError::Protocol(m) => {
                Error::transient(format!("{what}: the broker's answer could not be understood: {}", r(&m)))
            }
            ProviderError::InteractionRequired(i) => {
                Error::Interaction { message: r(&i.message), url: i.url.map(|u| r(&u)) }
            }
            ProviderError::Unsupported(m) => Error::Config(format!("provider `{name}`: {}", r(&m))),
        }
    }
}

fn deadline(limits: &Limits, what: &str) -> Error {
    Error::fault(format!(
        "provider stopped: {what} exceeded the time limit of {} s (limits.timeout_secs)",
        limits.call_timeout.as_secs()
    ))
}

/// A failed call: the limit it hit, if it hit one, else a crash; the runtime's error is kept
/// whole (scrubbed of `secrets`) as the cause.
fn limit_or_trap(
    store: &Store<HostState>,
    limits: &Limits,
    what: &str,
    e: wasmtime::Error,
    secrets: &[Secret],
) -> Error {
    if store.data().memory.hit {
        return Error::fault(format!(
            "provider stopped: {what} exceeded the memory limit of {} MiB (limits.memory_mib)",
            limits.memory_bytes >> 20
        ));
    }
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return deadline(limits, what);
    }
    let redact = |t: &str| crate::secret::redact(t, secrets);
    // The root cause says what happened (`wasm trap: ...`); the levels above add where.
    let first = redact(&e.root_cause().to_string()).lines().next().unwrap_or("trap").to_string();
    Error::fault_from(format!("provider crashed during {what}: {first}"), &e, redact)
}

fn check_info(info: &ProviderInfo) -> Result<(), Error> {
    if info.api_version != API_VERSION {
        return Err(Error::fault(format!(
            "provider `{}` was built for tokenhost:provider {} but this host speaks {API_VERSION}",
            info.name, info.api_version
        )));
    }
    if crate::store::validate_account_name(&info.name).is_err() {
        return Err(Error::fault(format!("provider name {:?} is not usable as an account name", info.name)));
    }
    Ok(())
}

fn empty_info() -> ProviderInfo {
    ProviderInfo {
        name: String::new(),
        version: String::new(),
        api_version: String::new(),
        settings: Vec::new(),
        hosts: Vec::new(),
        daily_cutoff: None,
        refresh_ahead_secs: 0,
    }
}
