//! Configuration: `tokenhost.toml` (accounts, limits, allowlists, settings) and, for each
//! setting a provider declares, where its value comes from: the config file, then the
//! environment (`<PREFIX>_<KEY>`), then a `.env` file in the working directory.

use crate::Error;
use crate::provider::{Grants, Limits, ProviderInfo};
use crate::secret::Secret;
use crate::store::StateDir;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name looked for in the working directory.
pub const CONFIG_FILE: &str = "tokenhost.toml";

/// `tokenhost.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Limits for every account.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Accounts by name.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountConfig>,
    /// Retries of transient failures for every account.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `[log]`: when the log file rotates and how many old ones are kept.
    #[serde(default)]
    pub log: crate::logfile::LogConfig,
    /// `[notify]`: who hears about failures and recoveries.
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
    /// `[metrics]`: where the daemon serves `GET /metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[webhook]`: where `serve-webhook` listens for brokers' pushes.
    #[serde(default)]
    pub webhook: WebhookConfig,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `ip:port` where the daemon serves `GET /metrics` (default: nowhere).
    pub listen: Option<String>,
}

/// `[webhook]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `ip:port` to listen on (default 127.0.0.1:8977; put a TLS proxy in front of it).
    pub listen: Option<String>,
}

/// `[limits]` and `[accounts.NAME.limits]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Memory cap of the component, MiB (default 64).
    pub memory_mib: Option<u64>,
    /// Deadline of one call into the component, seconds (default 30).
    pub timeout_secs: Option<u64>,
    /// Connect timeout of the component's HTTP requests, seconds (default 10).
    pub connect_timeout_secs: Option<u64>,
    /// Read timeout of the component's HTTP requests, seconds (default 20).
    pub read_timeout_secs: Option<u64>,
    /// Largest HTTP response accepted, KiB (default 1024).
    pub max_response_kib: Option<u64>,
}

/// `[retry]` and `[accounts.NAME.retry]`: how a transient failure (network, 5xx, timeout,
/// garbled answer) is retried. Rejected credentials and "a person has to act" never are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included (default 3; 1 turns retries off).
    pub attempts: Option<u32>,
    /// Wait before the second attempt, milliseconds (default 2000); doubled each time after.
    pub first_delay_ms: Option<u64>,
    /// Longest wait between two attempts, milliseconds (default 60000).
    pub max_delay_ms: Option<u64>,
    /// No attempt starts later than this after the first, seconds (default 300).
    pub max_total_secs: Option<u64>,
}

/// The retry policy of one account, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all.
    pub attempts: u32,
    /// Wait before the second attempt.
    pub first_delay: Duration,
    /// Longest wait.
    pub max_delay: Duration,
    /// Budget from the first attempt's start.
    pub max_total: Duration,
}

impl Retry {
    /// The wait before attempt `n + 1` after `n` failed ones (`n` >= 1): exponential, capped,
    /// with jitter of up to a quarter either way so that many accounts do not retry in step.
    pub fn delay(&self, n: u32, jitter: f64) -> Duration {
        let base = self.first_delay.as_secs_f64() * 2f64.powi(n.saturating_sub(1).min(30) as i32);
        let capped = base.min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(capped * (1.0 + 0.25 * jitter.clamp(-1.0, 1.0)))
    }
}

/// `[accounts.NAME]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The provider component (relative paths are relative to the config file).
    pub provider: Option<PathBuf>,
    /// Prefix of the account's environment variables (default: the provider's name).
    pub env_prefix: Option<String>,
    /// Refresh this many seconds before expiry (default: the provider's suggestion).
    pub refresh_ahead_secs: Option<u32>,
    /// Hosts the provider may call; replaces the hosts it declares.
    pub allow_hosts: Option<Vec<String>>,
    /// Allow plain `http://` to hosts other than loopback.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// Setting values, by the provider's key names.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Limits for this account.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Where else to copy each new token.
    #[serde(default)]
    pub sinks: Vec<crate::sinks::Sink>,
    /// Retries for this account.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// The loaded configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where it came from (`None`: no file, zero-config).
    pub path: Option<PathBuf>,
    /// Its contents.
    pub file: ConfigFile,
    dotenv: BTreeMap<String, String>,
}

/// One account, ready to run.
#[derive(Debug, Clone)]
pub struct Account {
    /// Name (also the state folder's).
    pub name: String,
    /// The component file.
    pub provider_path: PathBuf,
    /// Its section in the config file (default when it has none).
    pub config: AccountConfig,
    /// Whether the config file has a section for it.
    pub configured: bool,
}

impl Config {
    /// Reads `explicit`, else `$TOKENHOST_CONFIG`, else `./tokenhost.toml` if present; and
    /// `./.env` if present.
    pub fn load(explicit: Option<&Path>) -> Result<Config, Error> {
        let env_path = std::env::var_os("TOKENHOST_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from);
        let path = match explicit.map(Path::to_path_buf).or(env_path) {
            Some(p) => Some(p),
            None => Some(PathBuf::from(CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let file = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::Config(format!("cannot read config file {}: {e}", p.display())))?;
                toml::from_str::<ConfigFile>(&text).map_err(|e| {
                    Error::Config(format!("config file {}: {}", p.display(), e.to_string().trim()))
                })?
            }
            None => ConfigFile::default(),
        };
        for name in file.accounts.keys() {
            crate::store::validate_account_name(name)?;
        }
        Ok(Config { path, file, dotenv: read_dotenv(Path::new(".env")) })
    }

    /// A configuration made in code (the demo, tests), with no `.env`.
    pub fn from_file(file: ConfigFile) -> Config {
        Config { path: None, file, dotenv: BTreeMap::new() }
    }

    /// The configured account `name`.
    pub fn account(&self, name: &str) -> Result<Account, Error> {
        let Some(config) = self.file.accounts.get(name) else {
            let known: Vec<&str> = self.file.accounts.keys().map(String::as_str).collect();
            return Err(Error::Config(match &self.path {
                None => format!(
                    "no account `{name}`: there is no tokenhost.toml here (pass --config, or run a provider file: `tokenhost run path/to/provider.wasm`)"
                ),
                Some(p) => format!(
                    "no account `{name}` in {} (accounts: {})",
                    p.display(),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            }));
        };
        let provider = config.provider.as_ref().ok_or_else(|| {
            Error::Config(format!("account `{name}` has no provider: add `provider = \"path/to/provider.wasm\"` under [accounts.{name}]"))
        })?;
        let mut config = config.clone();
        config.sinks = self.sinks_relative_to_file(config.sinks);
        Ok(Account {
            name: name.to_string(),
            provider_path: self.relative_to_file(provider),
            config,
            configured: true,
        })
    }

    /// The account for a provider file run directly: the account named after the provider,
    /// with that section of the config file if there is one.
    pub fn account_for_provider(&self, provider_name: &str, path: &Path) -> Account {
        let config = self.file.accounts.get(provider_name).cloned().map(|mut c| {
            c.sinks = self.sinks_relative_to_file(c.sinks);
            c
        });
        Account {
            name: provider_name.to_string(),
            provider_path: path.to_path_buf(),
            configured: config.is_some(),
            config: config.unwrap_or_default(),
        }
    }

    /// Every configured account name.
    pub fn account_names(&self) -> Vec<String> {
        self.file.accounts.keys().cloned().collect()
    }

    fn sinks_relative_to_file(&self, sinks: Vec<crate::sinks::Sink>) -> Vec<crate::sinks::Sink> {
        let base = self.path.as_ref().and_then(|c| c.parent()).map(Path::to_path_buf).unwrap_or_default();
        sinks.into_iter().map(|s| s.relative_to(&base)).collect()
    }

    fn relative_to_file(&self, p: &Path) -> PathBuf {
        match self.path.as_ref().and_then(|c| c.parent()) {
            Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// The account's limits: its own section, then `[limits]`, then the defaults.
    pub fn limits(&self, account: &Account) -> Limits {
        let (a, g) = (&account.config.limits, &self.file.limits);
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
    pub fn retry(&self, account: &Account) -> Retry {
        let (a, g) = (&account.config.retry, &self.file.retry);
        let ms = |a: Option<u64>, g: Option<u64>, d: u64| Duration::from_millis(a.or(g).unwrap_or(d));
        Retry {
            attempts: a.attempts.or(g.attempts).unwrap_or(3).max(1),
            first_delay: ms(a.first_delay_ms, g.first_delay_ms, 2000),
            max_delay: ms(a.max_delay_ms, g.max_delay_ms, 60_000),
            max_total: Duration::from_secs(a.max_total_secs.or(g.max_total_secs).unwrap_or(300)),
        }
    }

    /// What the account grants its provider.
    pub fn grants(&self, account: &Account, state: &StateDir) -> Result<Grants, Error> {
        Ok(Grants {
            account: account.name.clone(),
            allow_hosts: account.config.allow_hosts.clone(),
            allow_plain_http: account.config.allow_plain_http,
            kv_path: state.account(&account.name)?.kv_path(),
            limits: self.limits(account),
        })
    }

    /// The values of the settings `info` declares, and an error naming the first required
    /// one that is missing and where to put it.
    pub fn resolve(&self, account: &Account, info: &ProviderInfo) -> Result<BTreeMap<String, Secret>, Error> {
        let prefix = env_prefix(account, &info.name);
        let mut values = BTreeMap::new();
        for s in &info.settings {
            if let Some(v) = account.config.settings.get(&s.name).filter(|v| !v.is_empty()) {
                values.insert(s.name.clone(), Secret::new(v.clone()));
                continue;
            }
            let var = env_var_name(&prefix, &s.name);
            let mut names = std::iter::once(&s.name).chain(&s.aliases);
            if let Some(v) = names.find_map(|n| self.lookup(&env_var_name(&prefix, n))) {
                values.insert(s.name.clone(), Secret::new(v));
            } else if s.required {
                return Err(Error::Config(self.missing_message(account, &s.name, &var)));
            }
        }
        Ok(values)
    }

    /// A variable from the environment, else from `./.env`; empty counts as unset.
    pub fn lookup(&self, var: &str) -> Option<String> {
        let from_env = std::env::var(var).ok().filter(|v| !v.is_empty());
        from_env.or_else(|| self.dotenv.get(var).filter(|v| !v.is_empty()).cloned())
    }

    fn missing_message(&self, account: &Account, key: &str, var: &str) -> String {
        let file = self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| CONFIG_FILE.into());
        format!(
            "missing setting `{key}` for account `{}`: set {var} in the environment or in ./.env, \
             or add `{key} = \"...\"` under [accounts.{}.settings] in {file}",
            account.name, account.name
        )
    }
}

/// `XTS` for provider `xts`, unless the account sets `env_prefix`.
pub fn env_prefix(account: &Account, provider_name: &str) -> String {
    account
        .config
        .env_prefix
        .clone()
        .unwrap_or_else(|| provider_name.to_ascii_uppercase().replace(['-', '.'], "_"))
}

/// `XTS_API_KEY` for prefix `XTS` and key `api-key`.
pub fn env_var_name(prefix: &str, key: &str) -> String {
    format!("{prefix}_{}", key.to_ascii_uppercase().replace(['-', '.'], "_"))
}

fn read_dotenv(path: &Path) -> BTreeMap<String, String> {
    match dotenvy::from_path_iter(path) {
        Ok(iter) => iter.flatten().collect(),
        Err(_) => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_the_old_scripts() {
        assert_eq!(env_var_name("UPSTOX", "api-key"), "UPSTOX_API_KEY");
        assert_eq!(env_var_name("XTS", "api-root"), "XTS_API_ROOT");
    }

    #[test]
    fn retry_delays_double_up_to_the_cap_with_bounded_jitter() {
        let r = Retry {
            attempts: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3),
            max_total: Duration::from_secs(60),
        };
        assert_eq!(r.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(r.delay(2, 0.0), Duration::from_secs(2));
        assert_eq!(r.delay(3, 0.0), Duration::from_secs(3));
        assert_eq!(r.delay(30, 0.0), Duration::from_secs(3));
        assert_eq!(r.delay(1, 1.0), Duration::from_millis(1250));
        assert_eq!(r.delay(1, -7.0), Duration::from_millis(750));
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let err = toml::from_str::<ConfigFile>("[accounts.a]\nprovidr = \"x.wasm\"\n").unwrap_err();
        assert!(err.to_string().contains("providr"), "{err}");
    }
}
