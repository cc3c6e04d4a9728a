//! The provider's own settings, through `wasi:config/store`. The host hands over only the
//! settings the provider declared in `describe`.

use crate::bindings::wasi::config::store;
use crate::{ProviderError, Result, config_error, transient};

/// The setting `key`; a missing or empty one is a `config` error naming it.
pub fn get(key: &str) -> Result<String> {
    optional(key)?.ok_or_else(|| config_error(key, "not set"))
}

/// The setting `key`, or `None` when it is not set or empty.
pub fn optional(key: &str) -> Result<Option<String>> {
    match store::get(key) {
        Ok(value) => Ok(value.filter(|v| !v.trim().is_empty())),
        Err(store::Error::Upstream(m)) => Err(config_error(key, m)),
        Err(store::Error::Io(m)) => Err(transient(format!("reading setting `{key}`: {m}"))),
    }
}

/// The setting `key`, or `default` when it is not set.
pub fn or(key: &str, default: &str) -> Result<String> {
    Ok(optional(key)?.unwrap_or_else(|| default.to_string()))
}

impl From<store::Error> for ProviderError {
    fn from(err: store::Error) -> Self {
        match err {
            store::Error::Upstream(m) => config_error("?", m),
            store::Error::Io(m) => transient(m),
        }
    }
}
