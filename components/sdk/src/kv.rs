//! Durable storage private to the account, through `wasi:keyvalue/store`.

use crate::bindings::wasi::keyvalue::store;
use crate::{ProviderError, Result};

fn bucket() -> Result<store::Bucket> {
    store::open("").map_err(storage_error)
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
    let bytes = bucket()?.get(key).map_err(storage_error)?;
    Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: &str) -> Result<()> {
    bucket()?.set(key, value.as_bytes()).map_err(storage_error)
}

/// Removes `key`.
pub fn delete(key: &str) -> Result<()> {
    bucket()?.delete(key).map_err(storage_error)
}
