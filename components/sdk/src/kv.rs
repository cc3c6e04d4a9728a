//! Durable storage private to the account, through `wasi:keyvalue/store`.
//!
//! Two settings the runtime gives, never the user (tokenhost answers both as unset): `kv-bucket`
//! names the bucket to open (default `""`, the one bucket wasmtime's CLI and tokenhost have;
//! NATS-backed wasmCloud needs a real name), and `kv-prefix` goes before every key (on wasmCloud
//! `accounts.<name>.kv.`, so the provider's storage is the fleet store's). Keys are written in
//! NATS's key characters (bytes outside `[-/_A-Za-z0-9]` as `=XX`), which every backend takes.

use crate::bindings::wasi::keyvalue::store;
use crate::{ProviderError, Result};

pub use tokenhost_rules::keys::{BUCKET_SETTING, PREFIX_SETTING};

fn bucket() -> Result<store::Bucket> {
    let name = crate::config::or(BUCKET_SETTING, "")?;
    store::open(&name).map_err(|e| match e {
        store::Error::NoSuchStore if !name.is_empty() => {
            crate::config_error(BUCKET_SETTING, format!("the runtime has no key-value bucket `{name}`"))
        }
        e => storage_error(e),
    })
}

fn full_key(key: &str) -> Result<String> {
    Ok(format!("{}{}", crate::config::or(PREFIX_SETTING, "")?, tokenhost_rules::keys::encode(key)))
}

fn storage_error(err: store::Error) -> ProviderError {
    let message = match err {
        store::Error::NoSuchStore => "no such store".to_string(),
        store::Error::AccessDenied => "access denied".to_string(),
        store::Error::Other(m) => m,
    };
    crate::transient(format!("key-value storage: {message}"))
}

/// The value stored under `key`.
pub fn get(key: &str) -> Result<Option<String>> {
    let bytes = bucket()?.get(&full_key(key)?).map_err(storage_error)?;
    Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: &str) -> Result<()> {
    bucket()?.set(&full_key(key)?, value.as_bytes()).map_err(storage_error)
}

/// Removes `key`.
pub fn delete(key: &str) -> Result<()> {
    bucket()?.delete(&full_key(key)?).map_err(storage_error)
}
