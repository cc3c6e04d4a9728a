//! The configuration as the user wrote it: `tokenhost.toml` (accounts, limits, allowlists,
//! settings, sinks, retries, notifications) and the `.env` file of the working directory.
//! [`crate::plan`] turns it into one plan per account.

use crate::Error;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file name looked for in the working directory.
pub(crate) const CONFIG_FILE: &str = "tokenhost.toml";

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
    /// `[remind]`: when the daemon reminds people to log in where a broker needs one daily.
    pub remind: Option<crate::remind::RemindConfig>,
    /// `[store]`: a fleet store shared by several hosts (NATS JetStream key-value).
    #[serde(default)]
    pub store: crate::fleet::StoreConfig,
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
    /// `./.env`, read once.
    pub dotenv: Arc<BTreeMap<String, String>>,
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
        let text = match &path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| Error::Config(format!("cannot read config file {}: {e}", p.display())))?,
            None => String::new(),
        };
        let dotenv = std::fs::read(".env").map(|b| dotenv_vars(&b)).unwrap_or_default();
        Config::parse(&text, path, dotenv)
    }

    /// The configuration `text` says (as read from `path`, which names it in messages), with
    /// the variables of a `.env` file.
    pub fn parse(
        text: &str,
        path: Option<PathBuf>,
        dotenv: BTreeMap<String, String>,
    ) -> Result<Config, Error> {
        let file = toml::from_str::<ConfigFile>(text).map_err(|e| {
            let name = path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| CONFIG_FILE.into());
            Error::Config(format!("config file {name}: {}", e.to_string().trim()))
        })?;
        for name in file.accounts.keys() {
            crate::store::validate_account_name(name)?;
        }
        Ok(Config { path, file, dotenv: Arc::new(dotenv) })
    }

    /// A configuration made in code (the demo, tests), with no `.env`.
    pub fn from_file(file: ConfigFile) -> Config {
        Config { path: None, file, dotenv: Arc::default() }
    }

    /// Every configured account name.
    pub fn account_names(&self) -> Vec<String> {
        self.file.accounts.keys().cloned().collect()
    }

    /// `p` as seen from the working directory: a relative path is taken from the config
    /// file's folder.
    pub(crate) fn relative_to_file(&self, p: &Path) -> PathBuf {
        match self.path.as_ref().and_then(|c| c.parent()) {
            Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// A variable from the environment, else from `./.env`; empty counts as unset.
    pub fn lookup(&self, var: &str) -> Option<String> {
        let from_env = std::env::var(var).ok().filter(|v| !v.is_empty());
        from_env.or_else(|| self.dotenv.get(var).filter(|v| !v.is_empty()).cloned())
    }
}

/// The variables a `.env` file sets; lines that do not parse are skipped, as the old scripts'
/// python-dotenv did.
pub fn dotenv_vars(bytes: &[u8]) -> BTreeMap<String, String> {
    dotenvy::from_read_iter(bytes).flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_config_keys_are_refused() {
        let err = toml::from_str::<ConfigFile>("[accounts.a]\nprovidr = \"x.wasm\"\n").unwrap_err();
        assert!(err.to_string().contains("providr"), "{err}");
    }
}
