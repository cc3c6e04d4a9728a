//! `wasi:keyvalue/store`, durable: one JSON file per account in the state directory, written
//! atomically on every change; or, with a fleet store, the account's keys there, read before
//! the call and written back after it by the service. A provider sees only its own account's
//! bucket.

use crate::secret::Secret;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::path::PathBuf;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::bindings::Bucket;
use crate::bindings::wasi::keyvalue::store::{self as generated, Error as KvError, KeyResponse};

/// At most this many keys per account.
pub const MAX_KEYS: usize = 256;
/// At most this many bytes per value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Where an account's data lives.
#[derive(Debug, Clone)]
pub enum KvBacking {
    /// A JSON file (read on first use, written on every change).
    File(PathBuf),
    /// Read from the fleet store already; the changes go back through [`KvStore::take_changes`].
    Loaded(BTreeMap<String, Vec<u8>>),
}

/// One account's stored data.
#[derive(Debug)]
pub struct KvStore {
    path: Option<PathBuf>,
    data: Option<BTreeMap<String, Vec<u8>>>,
    /// Changes since the last [`KvStore::take_changes`] (`None`: deleted).
    changes: BTreeMap<String, Option<Vec<u8>>>,
}

impl KvStore {
    /// The store `backing` holds.
    pub fn new(backing: KvBacking) -> KvStore {
        match backing {
            KvBacking::File(path) => KvStore { path: Some(path), data: None, changes: BTreeMap::new() },
            KvBacking::Loaded(data) => KvStore { path: None, data: Some(data), changes: BTreeMap::new() },
        }
    }

    /// The changes made since the last call, in key order (`None`: deleted).
    pub fn take_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        std::mem::take(&mut self.changes).into_iter().collect()
    }

    fn data(&mut self) -> Result<&mut BTreeMap<String, Vec<u8>>, KvError> {
        if self.data.is_none()
            && let Some(path) = &self.path
        {
            let loaded = match std::fs::read(path) {
                Ok(bytes) => {
                    let raw: BTreeMap<String, String> = serde_json::from_slice(&bytes)
                        .map_err(|e| KvError::Other(format!("storage file is damaged: {e}")))?;
                    let engine = base64::engine::general_purpose::STANDARD;
                    raw.into_iter().filter_map(|(k, v)| engine.decode(v).ok().map(|v| (k, v))).collect()
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                Err(e) => return Err(KvError::Other(format!("reading storage: {}", e.kind()))),
            };
            self.data = Some(loaded);
        }
        Ok(self.data.get_or_insert_with(BTreeMap::new))
    }

    fn persist(&mut self, key: &str) -> Result<(), KvError> {
        let value = self.data()?.get(key).cloned();
        self.changes.insert(key.to_string(), value);
        let Some(path) = self.path.clone() else { return Ok(()) };
        let engine = base64::engine::general_purpose::STANDARD;
        let raw: BTreeMap<&String, String> =
            self.data()?.iter().map(|(k, v)| (k, engine.encode(v))).collect();
        let bytes = serde_json::to_vec_pretty(&raw).map_err(|e| KvError::Other(e.to_string()))?;
        crate::store::write_atomic(&path, &bytes)
            .map_err(|e| KvError::Other(format!("writing storage: {}", e.kind())))
    }

    /// Every stored value, for redacting output (a provider may keep tokens here).
    pub fn secrets(&mut self) -> Vec<Secret> {
        self.data()
            .map(|d| d.values().map(|v| Secret::new(String::from_utf8_lossy(v))).collect())
            .unwrap_or_default()
    }
}

/// What the generated traits are implemented on.
pub struct KvView<'a> {
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
    /// The account's data.
    pub store: &'a mut KvStore,
}

impl generated::Host for KvView<'_> {
    fn open(&mut self, identifier: String) -> wasmtime::Result<Result<Resource<Bucket>, KvError>> {
        if !identifier.is_empty() && identifier != "default" {
            return Ok(Err(KvError::NoSuchStore));
        }
        Ok(Ok(self.table.push(Bucket)?))
    }
}

impl generated::HostBucket for KvView<'_> {
    fn get(
        &mut self,
        _: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, KvError>> {
        Ok(self.store.data().map(|d| d.get(&key).cloned()))
    }

    fn set(
        &mut self,
        _: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), KvError>> {
        if value.len() > MAX_VALUE_BYTES {
            return Ok(Err(KvError::Other(format!("value over the {MAX_VALUE_BYTES}-byte limit"))));
        }
        let data = match self.store.data() {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if !data.contains_key(&key) && data.len() >= MAX_KEYS {
            return Ok(Err(KvError::Other(format!("more than {MAX_KEYS} keys"))));
        }
        if data.get(&key) == Some(&value) {
            return Ok(Ok(()));
        }
        data.insert(key.clone(), value);
        Ok(self.store.persist(&key))
    }

    fn delete(&mut self, _: Resource<Bucket>, key: String) -> wasmtime::Result<Result<(), KvError>> {
        match self.store.data().map(|d| d.remove(&key).is_some()) {
            Ok(true) => Ok(self.store.persist(&key)),
            Ok(false) => Ok(Ok(())),
            Err(e) => Ok(Err(e)),
        }
    }

    fn exists(&mut self, _: Resource<Bucket>, key: String) -> wasmtime::Result<Result<bool, KvError>> {
        Ok(self.store.data().map(|d| d.contains_key(&key)))
    }

    fn list_keys(
        &mut self,
        _: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<KeyResponse, KvError>> {
        let skip = cursor.unwrap_or(0) as usize;
        Ok(self
            .store
            .data()
            .map(|d| KeyResponse { keys: d.keys().skip(skip).cloned().collect(), cursor: None }))
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

struct HasKv;

impl HasData for HasKv {
    type Data<'a> = KvView<'a>;
}

/// Adds `wasi:keyvalue/store` to `linker`, backed by the [`KvStore`] that `f` picks.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    f: fn(&mut T) -> KvView<'_>,
) -> wasmtime::Result<()> {
    generated::add_to_linker::<T, HasKv>(linker, f)
}
