//! The wasmtime engine: loading a component file, checking it is a token provider that
//! imports nothing beyond the contract, and caching its compiled form by content hash.
//!
//! A file seen before is found by a path index (`cache/paths/`: its size, times and inode,
//! and its hash), so an unchanged file is neither read nor hashed again; its compiled form is
//! mapped from the cache. A new one is compiled, and written to the cache on a thread of its
//! own while the run goes on ([`Host::wait_for_cache`] joins it).

use crate::Error;
use crate::policy::Cutoff;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// The export every provider must have.
pub const PROVIDER_EXPORT: &str = "tokenhost:provider/provider@0.1.0";
/// The interface version this host speaks.
pub(crate) const API_VERSION: &str = "0.1.0";

/// How often the epoch ticks; wall-clock deadlines are counted in ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Interfaces a provider may import, by prefix. Everything else (files, sockets, ...) makes
/// the component invalid.
const ALLOWED_IMPORTS: &[&str] = &[
    "wasi:http/outgoing-handler@0.2",
    "wasi:http/types@0.2",
    "wasi:config/store@0.2.0-rc.1",
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:io/",
    "wasi:clocks/monotonic-clock@0.2",
    "wasi:clocks/wall-clock@0.2",
    "wasi:random/",
    "wasi:cli/environment@0.2",
    "wasi:cli/exit@0.2",
    "wasi:cli/stdin@0.2",
    "wasi:cli/stdout@0.2",
    "wasi:cli/stderr@0.2",
    "wasi:cli/terminal-",
];

/// A wasmtime engine plus the compile cache.
#[derive(Clone)]
pub struct Host {
    engine: Engine,
    cache_dir: PathBuf,
    /// Compiled components being written to the cache.
    writing: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

/// A component that passed the checks.
pub struct Loaded {
    /// The compiled component.
    pub component: Component,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Size of the file in bytes.
    pub size: u64,
    /// Whether it came from the compile cache.
    pub from_cache: bool,
}

/// What a provider said about itself, cached by content hash so that `run provider.wasm`
/// can find its account without loading the component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CachedInfo {
    /// Provider name.
    pub name: String,
    /// Provider version.
    pub version: String,
    /// Its daily cut-off.
    pub daily_cutoff: Option<Cutoff>,
    /// Its suggested refresh-ahead.
    pub refresh_ahead_secs: u32,
}

impl Host {
    /// An engine with epoch interruption and a compile cache in `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Result<Host, Error> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // A component compiles once per machine (then comes from the cache), and providers
        // spend their time waiting on brokers, not computing: the quickest compile wins.
        // Measured on 2 cores: a first run 100 -> 85 ms, a warm refresh unchanged.
        config.parallel_compilation(true);
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        let engine = Engine::new(&config)
            .map_err(|e| Error::fault_from("starting wasmtime failed", &e, str::to_string))?;
        start_ticker(&engine);
        Ok(Host { engine, cache_dir, writing: Arc::default() })
    }

    /// Waits until every compiled component is in the cache (before the process exits).
    pub fn wait_for_cache(&self) {
        let handles = self.writing.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default();
        for h in handles {
            let _ = h.join();
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Checks and compiles (or maps from the cache) the component at `path`; an unchanged file
    /// seen before is not even read.
    pub fn load(&self, path: &Path) -> Result<Loaded, Error> {
        let origin = path.display().to_string();
        let print = fingerprint(&self.cache_dir, path)?;
        if let Some(component) = self.cached(&print.sha256) {
            check_contract(&self.engine, &component, &origin)?;
            return Ok(Loaded { component, sha256: print.sha256, size: print.size, from_cache: true });
        }
        let bytes = match print.bytes {
            Some(b) => b,
            None => read_provider(path)?,
        };
        self.load_bytes(&bytes, &origin)
    }

    /// As [`Host::load`], from bytes; `origin` names them in messages.
    pub(crate) fn load_bytes(&self, bytes: &[u8], origin: &str) -> Result<Loaded, Error> {
        let sha256 = sha256_hex(bytes);
        let (component, from_cache) = match self.cached(&sha256) {
            Some(c) => (c, true),
            None => (self.compile(bytes, &sha256, origin)?, false),
        };
        check_contract(&self.engine, &component, origin)?;
        Ok(Loaded { component, sha256, size: bytes.len() as u64, from_cache })
    }

    fn cache_file(&self, sha256: &str) -> PathBuf {
        self.cache_dir.join(format!("{sha256}-{}.cwasm", self.engine_key()))
    }

    /// The compiled form of the component with this hash, mapped from the cache.
    fn cached(&self, sha256: &str) -> Option<Component> {
        // SAFETY: the cache lives in the private state directory and its files are written
        // only by `compile`, from `Component::serialize`, durably and atomically; the name
        // binds the content hash and the engine's compatibility hash. A file that fails to
        // load is compiled again.
        let c = unsafe { Component::deserialize_file(&self.engine, self.cache_file(sha256)) }.ok()?;
        tracing::debug!("{sha256}: loaded from the compile cache");
        Some(c)
    }

    fn compile(&self, bytes: &[u8], sha256: &str, origin: &str) -> Result<Component, Error> {
        if !wasmparser_is_component(bytes) {
            return Err(Error::fault(format!(
                "{origin} is not a WebAssembly component (a provider is built with \
                 `cargo build --target wasm32-wasip2`)"
            )));
        }
        let c = Component::new(&self.engine, bytes).map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or("").to_string();
            Error::fault_from(format!("{origin} is not a valid component: {first}"), &e, str::to_string)
        })?;
        tracing::debug!("{origin}: compiled (not in the compile cache)");
        let (component, file, dir) = (c.clone(), self.cache_file(sha256), self.cache_dir.clone());
        let writer = std::thread::spawn(move || {
            let written = component.serialize().map_err(|e| e.to_string()).and_then(|bytes| {
                let _ = crate::store::create_private_dir(&dir);
                crate::store::write_atomic(&file, &bytes).map_err(|e| e.to_string())
            });
            if let Err(e) = written {
                tracing::debug!("compile cache not written: {e}");
            }
        });
        if let Ok(mut w) = self.writing.lock() {
            w.push(writer);
        }
        Ok(c)
    }

    fn engine_key(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }
}

/// The provider info cached for a component with this hash.
pub(crate) fn cached_info(cache_dir: &Path, sha256: &str) -> Option<CachedInfo> {
    let bytes = std::fs::read(cache_dir.join(format!("{sha256}.info.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Remembers what the component with this hash said about itself.
pub(crate) fn save_info(cache_dir: &Path, sha256: &str, info: &CachedInfo) {
    let _ = crate::store::create_private_dir(cache_dir);
    if let Ok(bytes) = serde_json::to_vec(info) {
        let _ = crate::store::write_replace(&cache_dir.join(format!("{sha256}.info.json")), &bytes);
    }
}

/// A component file's identity: its content hash, its size, and its bytes if they had to be
/// read to know the hash.
pub(crate) struct Fingerprint {
    /// Hex SHA-256 of the contents.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The contents, when they were read.
    pub bytes: Option<Vec<u8>>,
}

/// The hash of the file at `path`: from the path index when the file's size, modification and
/// change times and inode are the ones recorded with it, else read and hashed (and recorded).
pub(crate) fn fingerprint(cache_dir: &Path, path: &Path) -> Result<Fingerprint, Error> {
    let meta = std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
    let stamp = stamp(&meta);
    let index = std::path::absolute(path)
        .ok()
        .map(|abs| cache_dir.join("paths").join(sha256_hex(abs.as_os_str().as_encoded_bytes())));
    if let (Some(stamp), Some(index)) = (&stamp, &index)
        && let Ok(text) = std::fs::read_to_string(index)
        && let Some((seen, sha256)) = text.split_once('\n')
        && seen == stamp
        && sha256.len() == 64
    {
        return Ok(Fingerprint { sha256: sha256.to_string(), size: meta.len(), bytes: None });
    }
    let bytes = read_provider(path)?;
    let sha256 = sha256_hex(&bytes);
    if let (Some(stamp), Some(index)) = (stamp, index)
        && let Some(dir) = index.parent()
    {
        let _ = crate::store::create_private_dir(dir);
        let _ = crate::store::write_replace(&index, format!("{stamp}\n{sha256}").as_bytes());
    }
    Ok(Fingerprint { sha256, size: bytes.len() as u64, bytes: Some(bytes) })
}

/// What changes when a file's contents can have changed; `None` where the platform cannot tell
/// (then the file is always hashed).
fn stamp(meta: &std::fs::Metadata) -> Option<String> {
    let nanos = |t: std::io::Result<std::time::SystemTime>| {
        t.ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos())
    };
    let modified = nanos(meta.modified())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(format!(
            "{}:{modified}:{}.{}:{}:{}",
            meta.len(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.ino(),
            meta.dev()
        ))
    }
    #[cfg(not(unix))]
    Some(format!("{}:{modified}:{}", meta.len(), nanos(meta.created()).unwrap_or(0)))
}

fn read_provider(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| unreadable(path, e))
}

fn unreadable(path: &Path, e: std::io::Error) -> Error {
    Error::Config(format!("cannot read provider {}: {e}", path.display()))
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A component starts with the magic and a version whose layer byte is 1.
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

/// Refuses a component that does not export the provider interface (naming what it has
/// instead) or that imports anything outside the contract (naming the import).
pub(crate) fn check_contract(engine: &Engine, component: &Component, origin: &str) -> Result<(), Error> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    if !exports.iter().any(|e| e == PROVIDER_EXPORT) {
        let other = exports.iter().find(|e| e.starts_with("tokenhost:provider/provider@"));
        return Err(Error::fault(match other {
            Some(found) => format!(
                "{origin} exports {found}, but this tokenhost speaks {PROVIDER_EXPORT}: \
                 rebuild the provider with a matching SDK or upgrade tokenhost"
            ),
            None => format!(
                "{origin} is not a token provider: it does not export {PROVIDER_EXPORT} (it exports: {})",
                if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
            ),
        }));
    }
    for (name, _) in ty.imports(engine) {
        if !ALLOWED_IMPORTS.iter().any(|p| name.starts_with(p)) {
            return Err(Error::fault(format!(
                "{origin} imports `{name}`, which providers may not use (allowed: wasi:http, \
                 wasi:config/store, wasi:keyvalue/store, and the stdio, clocks and random of wasi:cli)"
            )));
        }
    }
    Ok(())
}

/// Ticks the engine's epoch for as long as the process lives.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .ok();
}
