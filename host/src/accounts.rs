//! One account's storage, wherever it is: the state directory's files ([`crate::store`]), or
//! the fleet store ([`crate::fleet`]) with a copy of the last token this host saw in the state
//! directory (for `get` when the store cannot be reached, and for the sinks).
//!
//! The service runs the same steps on either: read the token, take the account's lock (a file
//! lock, or the fleet's lease), read it again, refresh, write it. On the fleet, the write is a
//! compare-and-set on the revision read under the lease, so a host that lost its lease cannot
//! overwrite a newer token.

use crate::caps::keyvalue::KvBacking;
use crate::fleet::{Fleet, Lease, Written};
use crate::store::{AccountDir, AccountLock, AccountStatus, StoredToken};
use crate::{Error, time};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// An account's storage.
pub(crate) enum Account {
    /// The state directory's files.
    Local(AccountDir),
    /// The fleet store.
    Fleet {
        /// The copy of the last token this host saw.
        local: AccountDir,
        fleet: Arc<Fleet>,
        name: String,
        /// The revision of the token last read, for the compare-and-set of the next write.
        revision: AtomicU64,
    },
}

/// Held while an account refreshes.
pub(crate) enum Lock {
    File(#[allow(dead_code)] AccountLock),
    Lease(Lease),
}

impl Lock {
    /// Gives the lock up now (a lease is deleted, so another host need not wait for it to
    /// lapse). Dropping it does the same in the background.
    pub async fn release(self) {
        match self {
            Lock::File(_) => {}
            Lock::Lease(lease) => lease.release().await,
        }
    }
}

impl Account {
    /// The account's storage: `local` alone, or the fleet store with `local` as the copy.
    pub fn new(local: AccountDir, fleet: Option<&Arc<Fleet>>, name: &str) -> Account {
        match fleet {
            None => Account::Local(local),
            Some(f) => Account::Fleet {
                local,
                fleet: f.clone(),
                name: name.to_string(),
                revision: AtomicU64::new(0),
            },
        }
    }

    /// The state directory's folder of the account.
    pub fn local(&self) -> &AccountDir {
        match self {
            Account::Local(d) | Account::Fleet { local: d, .. } => d,
        }
    }

    /// The stored token, if any. From the fleet, it is remembered (with its revision) and
    /// copied to the state directory when it is new to this host.
    pub async fn load_token(&self) -> Result<Option<StoredToken>, Error> {
        match self {
            Account::Local(d) => d.load_token(),
            Account::Fleet { local, fleet, name, revision } => {
                let (token, rev) = fleet.token(name).await?;
                revision.store(rev, Ordering::SeqCst);
                if let Some(t) = &token {
                    mirror(local, t)?;
                }
                Ok(token)
            }
        }
    }

    /// Stores `token`. On the fleet, only if no other host stored one since this host last
    /// read it: otherwise nothing is written and [`Written::Superseded`] says so.
    pub async fn save_token(&self, token: &StoredToken) -> Result<Written, Error> {
        match self {
            Account::Local(d) => {
                crate::off_thread(|| d.save_token(token))?;
                Ok(Written::Stored(0))
            }
            Account::Fleet { local, fleet, name, revision } => {
                let written = fleet.put_token(name, token, revision.load(Ordering::SeqCst)).await?;
                if let Written::Stored(r) = written {
                    revision.store(r, Ordering::SeqCst);
                    mirror(local, token)?;
                }
                Ok(written)
            }
        }
    }

    /// Forgets the token (after a logout).
    pub async fn remove_token(&self) -> Result<(), Error> {
        if let Account::Fleet { fleet, name, .. } = self {
            fleet.delete_token(name).await?;
        }
        crate::off_thread(|| self.local().remove_token())
    }

    /// The last outcome (empty when never attempted).
    pub async fn load_status(&self) -> Result<AccountStatus, Error> {
        match self {
            Account::Local(d) => Ok(d.load_status()),
            Account::Fleet { fleet, name, .. } => fleet.status(name).await,
        }
    }

    /// Records the last outcome (`durable`: a logout, which replayed pushes are judged by).
    pub async fn save_status(&self, status: &AccountStatus, durable: bool) -> Result<(), Error> {
        match self {
            Account::Local(d) if durable => crate::off_thread(|| d.save_logout(status)),
            Account::Local(d) => crate::off_thread(|| d.save_status(status)),
            Account::Fleet { fleet, name, .. } => fleet.put_status(name, status).await,
        }
    }

    /// Takes the account's lock: a file lock, or the fleet's lease, waiting while another
    /// process or host holds it.
    pub async fn lock(&self) -> Result<Lock, Error> {
        match self {
            Account::Local(d) => Ok(Lock::File(d.lock().await?)),
            Account::Fleet { fleet, name, .. } => Ok(Lock::Lease(fleet.lease(name).await?)),
        }
    }

    /// Where the provider's own storage is, read now from the fleet.
    pub async fn kv(&self) -> Result<KvBacking, Error> {
        match self {
            Account::Local(d) => Ok(KvBacking::File(d.kv_path())),
            Account::Fleet { fleet, name, .. } => Ok(KvBacking::Loaded(fleet.kv_load(name).await?)),
        }
    }

    /// Writes the provider's storage changes back to the fleet (files are written as they change).
    pub async fn save_kv(&self, changes: Vec<crate::fleet::KvChange>) -> Result<(), Error> {
        match self {
            Account::Fleet { fleet, name, .. } if !changes.is_empty() => fleet.kv_apply(name, changes).await,
            _ => Ok(()),
        }
    }
}

/// Copies a token from the fleet to the state directory, unless it is there already; whether
/// it was new here.
pub(crate) fn mirror(local: &AccountDir, token: &StoredToken) -> Result<bool, Error> {
    let same = local.load_token().ok().flatten().is_some_and(|t| {
        t.refreshed_at == token.refreshed_at
            && t.refreshed_at_micros == token.refreshed_at_micros
            && t.access_token == token.access_token
    });
    if same {
        return Ok(false);
    }
    tracing::debug!("a token from the fleet store, stored {}, copied here", time::iso(token.refreshed_at));
    crate::off_thread(|| local.save_token(token))?;
    Ok(true)
}
