//! Each account resolved once into a [`Plan`]: which component runs, what it may reach (hosts,
//! limits), how its transient failures are retried, where its token is copied, the prefix of its
//! environment variables, and where each of its settings comes from. Plans are made from the
//! config file and the command line before anything runs; the service runs plans and never
//! reads the configuration itself.

use crate::Error;
use crate::policy::{Backoff, Retry};
use crate::provider::{Limits, ProviderInfo};
use crate::secret::Secret;
use crate::settings::{AccountConfig, CONFIG_FILE, Config};
use crate::sinks::Sink;
use crate::store::StateDir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Everything one account's run needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Account name (also its folder in the state directory).
    pub account: String,
    /// The provider component.
    pub provider: PathBuf,
    /// Whether the config file has a section for it.
    pub configured: bool,
    /// Refresh this long before expiry (`None`: the provider's suggestion).
    pub refresh_ahead: Option<u32>,
    /// Hosts the user allows (`None`: the ones the provider declares).
    pub allow_hosts: Option<Vec<String>>,
    /// Plain `http://` beyond loopback allowed.
    pub allow_plain_http: bool,
    /// Limits on every call into the component.
    pub limits: Limits,
    /// How transient failures are retried.
    pub retry: Retry,
    /// Where each new token is copied.
    pub sinks: Vec<Sink>,
    env_prefix: Option<String>,
    sources: Sources,
}

/// Where setting values come from: the account's section of the config file, then the
/// environment, then `./.env`.
#[derive(Clone)]
struct Sources {
    file: BTreeMap<String, Secret>,
    dotenv: Arc<BTreeMap<String, String>>,
    /// The config file, as named in messages.
    config_file: String,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").field("file", &self.file.keys()).finish_non_exhaustive()
    }
}

impl Plan {
    /// The prefix of the account's variables (`XTS` for provider `xts`, unless configured):
    /// the one rule for settings, the `.env` sink and `get --format env`.
    pub fn env_prefix(&self, provider: &str) -> String {
        env_prefix(self.env_prefix.as_deref(), provider)
    }

    /// The values of the settings `info` declares, and an error naming the first required one
    /// that is missing and where to put it.
    pub fn settings(&self, info: &ProviderInfo) -> Result<BTreeMap<String, Secret>, Error> {
        let declared: Vec<&str> = info.settings.iter().map(|s| s.name.as_str()).collect();
        // A key the provider does not declare is a typo (or another provider's): only the config
        // file is held to this; the environment and `.env` hold much else.
        if let Some(key) = self.sources.file.keys().find(|k| !declared.contains(&k.as_str())) {
            let hint = closest(key, &declared).map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default();
            return Err(Error::Config(format!(
                "unknown setting `{key}` for provider {}{hint}, under [accounts.{}.settings] in {}; it takes: {}",
                info.name,
                self.account,
                self.sources.config_file,
                declared.join(", ")
            )));
        }
        let prefix = self.env_prefix(&info.name);
        let lookup = |var: &str| lookup(&self.sources.dotenv, var);
        let mut values = BTreeMap::new();
        for s in &info.settings {
            if let Some(v) = self.sources.file.get(&s.name).filter(|v| !v.expose().is_empty()) {
                values.insert(s.name.clone(), v.clone());
                continue;
            }
            let mut names = std::iter::once(&s.name).chain(&s.aliases);
            if let Some(v) = names.find_map(|n| lookup(&variable(&prefix, n))) {
                values.insert(s.name.clone(), Secret::new(v));
            } else if s.required {
                return Err(Error::Config(format!(
                    "missing setting `{key}` for account `{account}`: set {var} in the environment or in \
                     ./.env, or add `{key} = \"...\"` under [accounts.{account}.settings] in {file}",
                    key = s.name,
                    account = self.account,
                    var = env_var_name(&prefix, &s.name),
                    file = self.sources.config_file,
                )));
            }
        }
        Ok(values)
    }
}

/// The declared name closest to `key` by edit distance, when it is close enough to be the one
/// meant (or contains it, as `api-key` contains `key`).
fn closest<'a>(key: &str, names: &[&'a str]) -> Option<&'a str> {
    let (best, distance) = names.iter().map(|n| (*n, edit_distance(key, n))).min_by_key(|(_, d)| *d)?;
    let near = distance <= 2.max(key.len() / 3);
    (near || best.contains(key) || key.contains(best)).then_some(best)
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `XTS` for provider `xts`, unless the account configures its own prefix.
pub fn env_prefix(configured: Option<&str>, provider: &str) -> String {
    configured.map(str::to_string).unwrap_or_else(|| provider.to_ascii_uppercase().replace(['-', '.'], "_"))
}

/// `XTS_API_KEY` for prefix `XTS` and key `api-key`.
pub fn env_var_name(prefix: &str, key: &str) -> String {
    format!("{prefix}_{}", key.to_ascii_uppercase().replace(['-', '.'], "_"))
}

/// The variable a setting name or alias is read from: a name in capitals (`ANGEL_PIN`, from a
/// broker's own examples) as it is, any other with the prefix.
fn variable(prefix: &str, name: &str) -> String {
    let whole =
        name.contains('_') && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if whole { name.to_string() } else { env_var_name(prefix, name) }
}

/// A variable from the environment, else from `dotenv`; empty counts as unset.
fn lookup(dotenv: &BTreeMap<String, String>, var: &str) -> Option<String> {
    let from_env = std::env::var(var).ok().filter(|v| !v.is_empty());
    from_env.or_else(|| dotenv.get(var).filter(|v| !v.is_empty()).cloned())
}

/// What a command was pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A component file.
    File(PathBuf),
    /// An account name.
    Account(String),
}

impl Target {
    /// A path ending in `.wasm`, or naming an existing file, is a component; anything else an
    /// account name.
    pub fn parse(s: &str) -> Target {
        let p = Path::new(s);
        if s.ends_with(".wasm") || p.is_file() {
            Target::File(p.to_path_buf())
        } else {
            Target::Account(s.to_string())
        }
    }
}

/// Makes plans from the configuration, plus what the command line adds to every account.
#[derive(Debug, Clone)]
pub struct Planner {
    config: Config,
    state: StateDir,
    extra_sinks: Vec<Sink>,
    attempts: Option<u32>,
}

impl Planner {
    /// Plans from `config`; zero-config accounts are found through `state`.
    pub fn new(config: Config, state: StateDir) -> Planner {
        Planner { config, state, extra_sinks: Vec::new(), attempts: None }
    }

    /// Every plan also copies tokens to `sinks` (`--sink`).
    pub fn with_sinks(mut self, sinks: Vec<Sink>) -> Planner {
        self.extra_sinks = sinks;
        self
    }

    /// Every plan makes at most `attempts` attempts (`--attempts`).
    pub fn with_attempts(mut self, attempts: Option<u32>) -> Planner {
        self.attempts = attempts;
        self
    }

    /// The same command-line additions over a reloaded `config` (the daemon's SIGHUP).
    pub fn reconfigured(&self, config: Config) -> Planner {
        Planner { config, ..self.clone() }
    }

    /// The configuration the plans come from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The account called `name`: its section of the config file, else (zero-config)
    /// `./NAME.wasm`, else the component it last ran from.
    pub fn plan(&self, name: &str) -> Result<Plan, Error> {
        crate::store::validate_account_name(name)?;
        if let Some(section) = self.config.file.accounts.get(name) {
            let provider = section.provider.as_ref().ok_or_else(|| {
                Error::Config(format!(
                    "account `{name}` has no provider: add `provider = \"path/to/provider.wasm\"` under [accounts.{name}]"
                ))
            })?;
            return Ok(self.make(name, self.config.relative_to_file(provider), Some(section)));
        }
        let local = PathBuf::from(format!("{name}.wasm"));
        let remembered = self.state.remembered_provider(name);
        match [Some(local), remembered].into_iter().flatten().find(|p| p.is_file()) {
            Some(path) => Ok(self.make(name, path, None)),
            None => Err(Error::Config(match &self.config.path {
                None => format!(
                    "no account `{name}`: there is no tokenhost.toml here (pass --config, or run a provider \
                     file: `tokenhost run path/to/provider.wasm`); no ./{name}.wasm either"
                ),
                Some(p) => {
                    let known = self.config.account_names();
                    format!(
                        "no account `{name}` in {} (accounts: {}); no ./{name}.wasm either",
                        p.display(),
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    )
                }
            })),
        }
    }

    /// The plan for a component file run directly: the account named after its provider,
    /// with that section of the config file if there is one.
    pub(crate) fn plan_provider(&self, provider_name: &str, path: &Path) -> Plan {
        let section = self.config.file.accounts.get(provider_name);
        self.make(provider_name, path.to_path_buf(), section)
    }

    /// The accounts a long-running command looks after: those `named`, else every configured
    /// one, else every account that has run from a provider file.
    pub fn select(&self, named: &[String]) -> Vec<String> {
        if !named.is_empty() {
            named.to_vec()
        } else if !self.config.account_names().is_empty() {
            self.config.account_names()
        } else {
            self.state
                .accounts()
                .into_iter()
                .filter(|n| self.state.remembered_provider(n).is_some())
                .collect()
        }
    }

    /// The configured refresh-ahead of `account`, if any.
    pub(crate) fn refresh_ahead(&self, account: &str) -> Option<u32> {
        self.config.file.accounts.get(account).and_then(|a| a.refresh_ahead_secs)
    }

    /// The variable prefix of `account`, whose provider is called `provider`.
    pub fn env_prefix(&self, account: &str, provider: &str) -> String {
        let configured = self.config.file.accounts.get(account).and_then(|a| a.env_prefix.as_deref());
        env_prefix(configured, provider)
    }

    fn make(&self, name: &str, provider: PathBuf, section: Option<&AccountConfig>) -> Plan {
        let default = AccountConfig::default();
        let a = section.unwrap_or(&default);
        let base =
            self.config.path.as_ref().and_then(|c| c.parent()).map(Path::to_path_buf).unwrap_or_default();
        let sinks =
            a.sinks.iter().cloned().map(|s| s.relative_to(&base)).chain(self.extra_sinks.iter().cloned());
        let mut retry = self.retry(a);
        if let Some(n) = self.attempts {
            retry.attempts = n.max(1);
        }
        Plan {
            account: name.to_string(),
            provider,
            configured: section.is_some(),
            refresh_ahead: a.refresh_ahead_secs,
            allow_hosts: a.allow_hosts.clone(),
            allow_plain_http: a.allow_plain_http,
            limits: self.limits(a),
            retry,
            sinks: sinks.collect(),
            env_prefix: a.env_prefix.clone(),
            sources: Sources {
                file: a.settings.iter().map(|(k, v)| (k.clone(), Secret::new(v.clone()))).collect(),
                dotenv: self.config.dotenv.clone(),
                config_file: self
                    .config
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| CONFIG_FILE.into()),
            },
        }
    }

    /// The account's limits: its own section, then `[limits]`, then the defaults.
    fn limits(&self, a: &AccountConfig) -> Limits {
        let (a, g) = (&a.limits, &self.config.file.limits);
        let d = Limits::default();
        let secs =
            |a: Option<u64>, g: Option<u64>, d: Duration| a.or(g).map(Duration::from_secs).unwrap_or(d);
        Limits {
            memory_bytes: a.memory_mib.or(g.memory_mib).map(|m| (m as usize) << 20).unwrap_or(d.memory_bytes),
            call_timeout: secs(a.timeout_secs, g.timeout_secs, d.call_timeout),
            connect_timeout: secs(a.connect_timeout_secs, g.connect_timeout_secs, d.connect_timeout),
            read_timeout: secs(a.read_timeout_secs, g.read_timeout_secs, d.read_timeout),
            max_response_bytes: a
                .max_response_kib
                .or(g.max_response_kib)
                .map(|k| (k as usize) << 10)
                .unwrap_or(d.max_response_bytes),
        }
    }

    /// The account's retry policy: its own section, then `[retry]`, then the defaults.
    fn retry(&self, a: &AccountConfig) -> Retry {
        let (a, g) = (&a.retry, &self.config.file.retry);
        let ms = |a: Option<u64>, g: Option<u64>, d: u64| Duration::from_millis(a.or(g).unwrap_or(d));
        Retry {
            attempts: a.attempts.or(g.attempts).unwrap_or(3).max(1),
            backoff: Backoff {
                first: ms(a.first_delay_ms, g.first_delay_ms, 2000),
                max: ms(a.max_delay_ms, g.max_delay_ms, 60_000),
            },
            max_total: Duration::from_secs(a.max_total_secs.or(g.max_total_secs).unwrap_or(300)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_the_old_scripts() {
        assert_eq!(env_var_name("UPSTOX", "api-key"), "UPSTOX_API_KEY");
        assert_eq!(env_var_name("XTS", "api-root"), "XTS_API_ROOT");
        assert_eq!(env_prefix(None, "my-broker.v2"), "MY_BROKER_V2");
        assert_eq!(env_prefix(Some("DESK_A"), "xts"), "DESK_A");
        // Aliases in capitals are whole variable names (a broker SDK's own), others get the prefix.
        assert_eq!(variable("ANGELONE", "ANGEL_PIN"), "ANGEL_PIN");
        assert_eq!(variable("XTS", "interactive-api-key"), "XTS_INTERACTIVE_API_KEY");
        assert_eq!(variable("XTS", "PIN"), "XTS_PIN");
    }

    #[test]
    fn a_typo_finds_the_setting_meant() {
        let names = ["api-root", "api-key", "api-secret", "totp-secret"];
        assert_eq!(closest("key", &names), Some("api-key"));
        assert_eq!(closest("api-secert", &names), Some("api-secret"));
        assert_eq!(closest("totp_secret", &names), Some("totp-secret"));
        assert_eq!(closest("colour", &names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn account_sections_and_defaults_resolve_into_one_plan() {
        let file: crate::settings::ConfigFile = toml::from_str(
            "[limits]\nmemory_mib = 32\n[retry]\nattempts = 5\nfirst_delay_ms = 100\n\
             [accounts.desk]\nprovider = \"p/xts.wasm\"\nenv_prefix = \"DESK\"\n\
             [accounts.desk.limits]\ntimeout_secs = 7\n[accounts.desk.retry]\nmax_delay_ms = 900\n\
             [[accounts.desk.sinks]]\ntype = \"raw\"\npath = \"t.txt\"\n",
        )
        .unwrap();
        let mut config = Config::from_file(file);
        config.path = Some(PathBuf::from("/etc/th/tokenhost.toml"));
        let state =
            StateDir::open(std::env::temp_dir().join(format!("th-plan-{}", std::process::id()))).unwrap();
        let planner = Planner::new(config, state.clone())
            .with_sinks(vec![Sink::Raw { path: "x".into() }])
            .with_attempts(Some(1));
        let p = planner.plan("desk").unwrap();
        assert_eq!(p.provider, PathBuf::from("/etc/th/p/xts.wasm"));
        assert_eq!(p.limits.memory_bytes, 32 << 20);
        assert_eq!(p.limits.call_timeout, Duration::from_secs(7));
        assert_eq!(p.retry.attempts, 1, "--attempts wins");
        assert_eq!(
            p.retry.backoff,
            Backoff { first: Duration::from_millis(100), max: Duration::from_millis(900) }
        );
        assert_eq!(p.sinks, vec![Sink::Raw { path: "/etc/th/t.txt".into() }, Sink::Raw { path: "x".into() }]);
        assert_eq!(p.env_prefix("xts"), "DESK");
        assert_eq!(planner.env_prefix("desk", "xts"), "DESK");
        assert_eq!(planner.env_prefix("other", "xts"), "XTS");
        let err = planner.plan("nobody").unwrap_err().to_string();
        assert!(err.contains("no account `nobody` in /etc/th/tokenhost.toml (accounts: desk)"), "{err}");
        assert!(planner.plan("../x").is_err());
        let _ = std::fs::remove_dir_all(state.path());
    }
}
