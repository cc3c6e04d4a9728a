//! Hot swap: the daemon's look at an account's component file, and the checks a changed file
//! passes before the account runs it (a valid component of the contract that starts with the
//! account's settings, the same provider, no new host).

use super::{Service, poisoned};
use crate::caps::keyvalue::KvBacking;
use crate::plan::Plan;
use crate::policy::{self, Identity};
use crate::provider::ProviderInfo;
use crate::{Error, off_thread};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// What the daemon knows of a running account's component file.
pub struct Watched {
    stamp: Option<(u64, SystemTime)>,
    sha256: String,
    identity: Identity,
}

/// What a look at a component file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The same file, or the same contents.
    Unchanged,
    /// The account now runs the new contents.
    Swapped {
        /// Provider name.
        name: String,
        /// Its version.
        version: String,
        /// Hex SHA-256 of the new file.
        sha256: String,
    },
    /// The new contents were refused; the running component stays.
    Refused(String),
}

impl Service {
    /// Loads and starts the plan's component once, and remembers what it is, for
    /// [`Service::swap_if_changed`].
    pub async fn watch(&self, plan: &Plan) -> Result<Watched, Error> {
        let loaded = self.load(&plan.provider).await?;
        let provider = self.start_loaded(plan, &loaded, KvBacking::Loaded(Default::default())).await?;
        Ok(Watched {
            stamp: stamp(&plan.provider),
            sha256: loaded.sha256.clone(),
            identity: identity(provider.info()),
        })
    }

    /// Switches the plan's component file to its new contents if they pass the checks (a
    /// valid component of the contract, that starts with the account's settings, the same
    /// provider, no new host); the running component stays otherwise.
    pub async fn swap_if_changed(&self, plan: &Plan, w: &mut Watched) -> Swap {
        let path = &plan.provider;
        let now = stamp(path);
        if now == w.stamp {
            return Swap::Unchanged;
        }
        w.stamp = now;
        let Ok(bytes) = std::fs::read(path) else {
            return Swap::Refused(format!("{} cannot be read", path.display()));
        };
        if crate::engine::sha256_hex(&bytes) == w.sha256 {
            return Swap::Unchanged;
        }
        let checked = async {
            let (host, _) = self.runtime()?;
            let origin = path.display().to_string();
            let loaded = Arc::new(off_thread(|| host.load_bytes(&bytes, &origin))?);
            let provider = self.start_loaded(plan, &loaded, KvBacking::Loaded(Default::default())).await?;
            Ok::<_, Error>((loaded, identity(provider.info()), provider.info().version.clone()))
        };
        let (loaded, id, version) = match checked.await {
            Ok(c) => c,
            Err(e) => return Swap::Refused(e.to_string()),
        };
        if let Some(why) = policy::refuse_swap(&w.identity, &id) {
            return Swap::Refused(why);
        }
        let sha256 = loaded.sha256.clone();
        let pinned = Arc::new(tokio::sync::OnceCell::new_with(Some(loaded)));
        match self.loaded.lock() {
            Ok(mut l) => l.insert(path.clone(), pinned),
            Err(_) => return Swap::Refused(poisoned().to_string()),
        };
        w.sha256 = sha256.clone();
        w.identity = id;
        Swap::Swapped { name: w.identity.name.clone(), version, sha256 }
    }
}

fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

fn identity(info: &ProviderInfo) -> Identity {
    Identity { name: info.name.clone(), hosts: info.hosts.clone() }
}
