//! `wasi:config/store`: the account's settings, limited to the keys the provider declared.
//!
//! Before the provider has described itself nothing is declared and every read answers
//! "not set", so `describe` can run without settings. Afterwards a read of an undeclared key
//! is refused and recorded as a breach, except the settings a runtime rather than the user
//! gives ([`RUNTIME_SETTINGS`]): tokenhost keeps each account's storage itself, so it answers
//! those as not set.

use super::Violations;
use crate::secret::Secret;
use std::collections::{BTreeMap, BTreeSet};
use wasmtime::component::{HasData, Linker};

use crate::bindings::wasi::config::store::{self as generated, Error as ConfigError};

/// Settings the SDK reads from whatever runs the provider (which key-value bucket, which key
/// prefix); on tokenhost they are never set.
pub const RUNTIME_SETTINGS: [&str; 2] =
    [tokenhost_rules::keys::BUCKET_SETTING, tokenhost_rules::keys::PREFIX_SETTING];

/// The settings one account may read.
#[derive(Debug, Default)]
pub struct Settings {
    account: String,
    declared: Option<BTreeSet<String>>,
    values: BTreeMap<String, Secret>,
    violations: Violations,
}

impl Settings {
    /// No setting declared yet.
    pub fn new(account: &str, violations: Violations) -> Settings {
        Settings { account: account.into(), violations, ..Default::default() }
    }

    /// Declares the provider's keys and their resolved values (keys without a value read as
    /// not set).
    pub fn declare(&mut self, keys: impl IntoIterator<Item = String>, values: BTreeMap<String, Secret>) {
        let keys: BTreeSet<String> = keys.into_iter().collect();
        self.values = values.into_iter().filter(|(k, _)| keys.contains(k)).collect();
        self.declared = Some(keys);
    }
}

impl generated::Host for Settings {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, ConfigError>> {
        let Some(declared) = &self.declared else {
            return Ok(Ok(None));
        };
        if RUNTIME_SETTINGS.contains(&key.as_str()) && !declared.contains(&key) {
            return Ok(Ok(None));
        }
        if !declared.contains(&key) {
            let list: Vec<&str> = declared.iter().map(String::as_str).collect();
            let what = format!(
                "provider read setting `{key}`, which it did not declare (declared: {})",
                list.join(", ")
            );
            tracing::warn!(account = %self.account, "{what}");
            self.violations.record(what);
            return Ok(Err(ConfigError::Upstream(format!(
                "setting `{key}` is not declared by this provider"
            ))));
        }
        Ok(Ok(self.values.get(&key).map(|v| v.expose().to_string())))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, ConfigError>> {
        Ok(Ok(self.values.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect()))
    }
}

struct HasSettings;

impl HasData for HasSettings {
    type Data<'a> = &'a mut Settings;
}

/// Adds `wasi:config/store` to `linker`, reading from the [`Settings`] that `f` picks.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    f: fn(&mut T) -> &mut Settings,
) -> wasmtime::Result<()> {
    generated::add_to_linker::<T, HasSettings>(linker, f)
}
