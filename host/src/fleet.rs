//! The fleet store: NATS JetStream key-value, shared by every host that names it, so that one
//! host refreshes each account and every host reads the same token.
//!
//! Two buckets: `tokenhost` (unless configured) holds the data, in one key layout and the same
//! JSON as the files of the state directory; `tokenhost-leases` holds the leases. The data
//! bucket has NATS's default key-value settings, so that other runtimes open it as it is
//! (wasmCloud's `wasi:keyvalue` creates the bucket it opens, which succeeds only for one of
//! the same settings); leases need per-key TTLs, which only their own bucket has.
//!
//! ```text
//! accounts.<name>.token      the stored token (store::StoredToken)
//! accounts.<name>.status     the last outcome
//! accounts.<name>.kv.<key>   the provider's own storage (key bytes outside [-/_A-Za-z0-9]
//!                            written as =XX)
//! leases.<name>              {"host","pid","since"}: who refreshes the account now (in the
//!                            leases bucket)
//! ```
//!
//! A lease is a key created only if absent, with a per-key TTL (the server removes it when its
//! holder stops renewing: died, paused, partitioned), renewed while the refresh runs. Every
//! token is written with compare-and-set on the revision read under the lease: a host that lost
//! its lease meanwhile cannot overwrite a newer token; its write fails and it takes the stored
//! one. Nothing here trusts the hosts' clocks.

use crate::secret::Secret;
use crate::store::{AccountStatus, StoredToken};
use crate::{Error, time};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `nats://host:4222` (`tls://` for TLS; several servers separated by commas). Without it,
    /// the state directory's files are the store.
    pub url: Option<String>,
    /// The key-value bucket (default `tokenhost`; created if missing).
    pub bucket: Option<String>,
    /// A NATS credentials file (else `TOKENHOST_STORE_CREDS`).
    pub creds: Option<PathBuf>,
    /// A PEM file of the CA that signed the servers' certificates, for `tls://`.
    pub ca: Option<PathBuf>,
    /// How long a lease outlives its holder's last renewal, seconds (default 30).
    pub lease_secs: Option<u64>,
    /// Replicas of a bucket this host creates (default 1; 3 on a 3-node cluster).
    pub replicas: Option<usize>,
}

/// Longest wait for one answer of the store.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a host waiting for another's lease looks at it.
const LEASE_POLL: Duration = Duration::from_millis(500);
/// How long the marker of an expired lease stays.
const MARKER_TTL: Duration = Duration::from_secs(1);
/// Longest wait for a connection to the store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time an operation is tried again while the store does not answer.
const PATIENCE: Duration = Duration::from_secs(30);
/// Longest wait for another host's lease to end before giving up.
const MAX_LEASE_WAIT: Duration = Duration::from_secs(600);

/// A connection (made on first use) to the fleet's bucket.
pub struct Fleet {
    url: String,
    bucket: String,
    creds: Option<PathBuf>,
    ca: Option<PathBuf>,
    user: Option<(String, Secret)>,
    token: Option<Secret>,
    lease: Duration,
    replicas: usize,
    conn: tokio::sync::OnceCell<Conn>,
}

struct Conn {
    js: jetstream::Context,
    kv: kv::Store,
    leases: kv::Store,
}

impl Conn {
    /// The bucket that holds `key`.
    fn bucket(&self, key: &str) -> &kv::Store {
        if key.starts_with(tokenhost_rules::keys::LEASES) { &self.leases } else { &self.kv }
    }
}

/// What writing a token did.
#[derive(Debug)]
pub enum Written {
    /// Stored; the new revision.
    Stored(u64),
    /// Another host stored a newer token first: this one was not written.
    Superseded,
}

/// A provider storage change: a value, or `None` for a deleted key.
pub type KvChange = (String, Option<Vec<u8>>);

impl Fleet {
    /// The fleet store `config` names (`url`, when given, overrides it: `--store`), with the
    /// credentials from `lookup` (the environment, then `.env`); `None` when none is named.
    pub fn new(
        config: &StoreConfig,
        url: Option<&str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Fleet>, Error> {
        let Some(url) = url.map(str::to_string).or_else(|| config.url.clone()) else { return Ok(None) };
        for server in url.split(',') {
            let rest = ["nats://", "tls://"].iter().find_map(|s| server.trim().strip_prefix(s));
            let Some(rest) = rest.filter(|r| !r.is_empty()) else {
                return Err(Error::Config(format!(
                    "[store] url: `{server}` is not a nats:// or tls:// URL, such as nats://127.0.0.1:4222"
                )));
            };
            if rest.contains('@') {
                return Err(Error::Config(
                    "[store] url: credentials do not belong in the URL (it shows in process lists and \
                     logs): set TOKENHOST_STORE_USER and TOKENHOST_STORE_PASSWORD, TOKENHOST_STORE_TOKEN, \
                     or a creds file"
                        .into(),
                ));
            }
        }
        let bucket = config.bucket.clone().unwrap_or_else(|| tokenhost_rules::keys::DEFAULT_BUCKET.into());
        if bucket.is_empty() || !bucket.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Error::Config(format!(
                "[store] bucket `{bucket}`: use letters, digits, `-` and `_`"
            )));
        }
        let lease = Duration::from_secs(config.lease_secs.unwrap_or(30).clamp(2, 3600));
        let user = lookup("TOKENHOST_STORE_USER").zip(lookup("TOKENHOST_STORE_PASSWORD").map(Secret::new));
        Ok(Some(Fleet {
            url,
            bucket,
            creds: config.creds.clone().or_else(|| lookup("TOKENHOST_STORE_CREDS").map(PathBuf::from)),
            ca: config.ca.clone(),
            user,
            token: lookup("TOKENHOST_STORE_TOKEN").map(Secret::new),
            lease,
            replicas: config.replicas.unwrap_or(1).clamp(1, 5),
            conn: tokio::sync::OnceCell::new(),
        }))
    }

    /// The store's URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The data bucket's name (the leases' is this and `-leases`).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Connects, creating the data bucket and the leases bucket if they are missing (and
    /// refusing a leases bucket that cannot lapse leases).
    pub async fn ensure_bucket(&self) -> Result<(), Error> {
        self.conn().await.map(|_| ())
    }

    /// A failure talking to the store: transient (exit 4), naming the store.
    fn failed(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Transient { message: format!("the store at {} ({what}): {e}", self.url), attempts: 1 }
    }

    async fn conn(&self) -> Result<&Conn, Error> {
        self.conn.get_or_try_init(|| self.connect()).await
    }

    async fn connect(&self) -> Result<Conn, Error> {
        let mut options = async_nats::ConnectOptions::new()
            .name("tokenhost")
            .connection_timeout(Duration::from_secs(5))
            .require_tls(self.url.starts_with("tls://"));
        if let Some(path) = &self.creds {
            options = options.credentials_file(path).await.map_err(|e| {
                Error::Config(format!(
                    "[store] creds: cannot read the credentials file {}: {e}",
                    path.display()
                ))
            })?;
        }
        if let Some((user, password)) = &self.user {
            options = options.user_and_password(user.clone(), password.expose().to_string());
        }
        if let Some(token) = &self.token {
            options = options.token(token.expose().to_string());
        }
        if let Some(ca) = &self.ca {
            options = options.add_root_certificates(ca.clone());
        }
        let servers: Vec<async_nats::ServerAddr> = self
            .url
            .split(',')
            .map(|s| s.trim().replacen("tls://", "nats://", 1).parse())
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Config(format!("[store] url `{}`: {e}", self.url)))?;
        let client = tokio::time::timeout(CONNECT_TIMEOUT, options.connect(servers))
            .await
            .map_err(|_| {
                self.failed("connecting", format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))
            })?
            .map_err(|e| self.failed("connecting", e))?;
        let js = jetstream::new(client);
        // The data: NATS's default settings (any runtime's key-value opens the bucket as is).
        let data =
            kv::Config { bucket: self.bucket.clone(), num_replicas: self.replicas, ..Default::default() };
        let kv = self.open_or_create(&js, data).await?;
        let leases = kv::Config {
            bucket: format!("{}-leases", self.bucket),
            description: "tokenhost: which host refreshes which account now".into(),
            num_replicas: self.replicas,
            storage: jetstream::stream::StorageType::File,
            // Per-key TTLs. The server keeps a message at least as long as the marker it
            // leaves when it expires, so the markers live the shortest time allowed.
            limit_markers: Some(MARKER_TTL),
            ..Default::default()
        };
        let leases = self.open_or_create(&js, leases).await?;
        // A bucket made by hand must lapse leases as this one does.
        let made = &leases.stream.cached_info().config;
        if !made.allow_message_ttl || made.subject_delete_marker_ttl.is_some_and(|t| t > MARKER_TTL) {
            return Err(Error::Config(format!(
                "the bucket `{}-leases` at {} cannot hold leases: it needs per-key TTLs (allow_msg_ttl) and \
                 delete markers kept at most {} s (subject_delete_marker_ttl); let tokenhost create it, or use \
                 another [store] bucket",
                self.bucket,
                self.url,
                MARKER_TTL.as_secs()
            )));
        }
        Ok(Conn { js, kv, leases })
    }

    /// Opens the bucket `config` names, else creates it (the first host); a cluster that has
    /// just started answers only once it has elected its leaders, so this is tried again for a
    /// while.
    async fn open_or_create(&self, js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, Error> {
        let started = std::time::Instant::now();
        loop {
            let error = match js.get_key_value(&config.bucket).await {
                Ok(kv) => return Ok(kv),
                Err(_) => match js.create_key_value(config.clone()).await {
                    Ok(kv) => return Ok(kv),
                    Err(e) => e.to_string(),
                },
            };
            if started.elapsed() > PATIENCE {
                return Err(self.failed(&format!("opening the bucket `{}`", config.bucket), error));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Runs `op` until it answers, for up to [`PATIENCE`]: a cluster electing a new leader
    /// (a node lost) answers "no stream" or nothing for a few seconds, and the client moves to
    /// another server meanwhile. Every error but the ones `op` turns into answers is of that
    /// kind here (the keys are always valid), so each is tried again.
    async fn patiently<'c, T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
        &'c self,
        what: &str,
        mut op: impl FnMut(&'c Conn) -> F,
    ) -> Result<T, Error> {
        let c = self.conn().await?;
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let error = match tokio::time::timeout(OP_TIMEOUT, op(c)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {} s", OP_TIMEOUT.as_secs()),
            };
            if started.elapsed() + pause > PATIENCE {
                return Err(self.failed(what, error));
            }
            tracing::debug!("the store at {} ({what}): {error}; trying again", self.url);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// `key`'s latest value and revision; a deleted key is `(None, revision)`, a missing one
    /// `(None, 0)`.
    async fn entry(&self, key: &str) -> Result<(Option<Bytes>, u64), Error> {
        let entry = self.patiently(&format!("reading {key}"), |c| c.bucket(key).entry(key)).await?;
        Ok(match entry {
            Some(e) if e.operation == kv::Operation::Put => (Some(e.value), e.revision),
            Some(e) => (None, e.revision),
            None => (None, 0),
        })
    }

    /// Writes `value` to `key` if its revision is still `expected` (0: absent), with a TTL
    /// if given; `Ok(None)` when it is not. Tried again after a lost answer, the write is not
    /// made twice: the server drops a message id it has seen.
    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        expected: u64,
        ttl: Option<Duration>,
    ) -> Result<Option<u64>, Error> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Expected-Last-Subject-Sequence", expected.to_string().as_str());
        headers.insert("Nats-Msg-Id", message_id().as_str());
        if let Some(ttl) = ttl {
            headers.insert("Nats-TTL", ttl.as_secs().max(1).to_string().as_str());
        }
        self.patiently(&format!("writing {key}"), |c| {
            let (subject, headers, value) =
                (format!("{}{key}", c.bucket(key).prefix), headers.clone(), value.clone());
            async move {
                match c.js.publish_with_headers(subject, headers, value).await?.await {
                    Ok(ack) => Ok(Some(ack.sequence)),
                    Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<(), Error> {
        self.patiently(&format!("writing {key}"), |c| c.kv.put(key, value.clone())).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.patiently(&format!("deleting {key}"), |c| c.kv.delete(key)).await
    }

    /// The account's stored token and its revision (0: none ever).
    pub async fn token(&self, account: &str) -> Result<(Option<StoredToken>, u64), Error> {
        let key = tokenhost_rules::keys::token(account);
        let (value, revision) = self.entry(&key).await?;
        let token = match value {
            Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                Error::Config(format!("{key} in the store at {} is not a token ({e})", self.url))
            })?),
            None => None,
        };
        Ok((token, revision))
    }

    /// Writes the account's token if the stored one is still at `revision`.
    pub async fn put_token(
        &self,
        account: &str,
        token: &StoredToken,
        revision: u64,
    ) -> Result<Written, Error> {
        let bytes = crate::store::json_bytes(token)?;
        Ok(match self.cas(&tokenhost_rules::keys::token(account), bytes.into(), revision, None).await? {
            Some(r) => Written::Stored(r),
            None => Written::Superseded,
        })
    }

    /// Forgets the account's token.
    pub async fn delete_token(&self, account: &str) -> Result<(), Error> {
        self.delete(&tokenhost_rules::keys::token(account)).await
    }

    /// The account's last outcome (empty when there is none or it cannot be read).
    pub(crate) async fn status(&self, account: &str) -> Result<AccountStatus, Error> {
        let (value, _) = self.entry(&tokenhost_rules::keys::status(account)).await?;
        Ok(value.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default())
    }

    /// Records the account's last outcome.
    pub(crate) async fn put_status(&self, account: &str, status: &AccountStatus) -> Result<(), Error> {
        self.put(&tokenhost_rules::keys::status(account), crate::store::json_bytes(status)?.into()).await
    }

    /// The accounts that have a token in the store, sorted.
    pub async fn accounts(&self) -> Result<Vec<String>, Error> {
        self.patiently("listing the accounts", |c| async move {
            let mut keys = c.kv.keys().await.map_err(|e| e.to_string())?;
            let mut names = Vec::new();
            while let Some(key) = keys.next().await {
                let key = key.map_err(|e| e.to_string())?;
                if let Some(name) = key.strip_prefix("accounts.").and_then(|k| k.strip_suffix(".token")) {
                    names.push(name.to_string());
                }
            }
            names.sort();
            names.dedup();
            Ok::<_, String>(names)
        })
        .await
    }

    /// The provider's storage of `account`.
    pub async fn kv_load(&self, account: &str) -> Result<BTreeMap<String, Vec<u8>>, Error> {
        self.patiently(&format!("reading the storage of `{account}`"), |c| read_storage(c, account)).await
    }

    /// Applies the provider's storage changes of `account`.
    pub async fn kv_apply(&self, account: &str, changes: Vec<KvChange>) -> Result<(), Error> {
        for (key, value) in changes {
            let key = format!("{}{}", tokenhost_rules::keys::storage_prefix(account), encode_key(&key));
            match value {
                Some(v) => self.put(&key, v.into()).await?,
                None => self.delete(&key).await?,
            }
        }
        Ok(())
    }

    /// Takes the account's lease, waiting while another host holds it. The lease is renewed
    /// until the returned guard is released (or dropped).
    pub async fn lease(self: &Arc<Self>, account: &str) -> Result<Lease, Error> {
        let key = tokenhost_rules::keys::lease(account);
        let holder = serde_json::json!({
            "host": host_name(),
            "pid": std::process::id(),
            "since": time::now(),
        })
        .to_string();
        // Every change of the key (a renewal, a release) is also a plain message on its subject:
        // listening there costs the server nothing, unlike a watch (a consumer) per wait.
        let c = self.conn().await?;
        let mut changes =
            c.js.client()
                .subscribe(format!("{}{key}", c.leases.prefix))
                .await
                .map_err(|e| self.failed(&format!("watching {key}"), e))?;
        let started = std::time::Instant::now();
        loop {
            let (value, revision) = self.entry(&key).await?;
            if value.is_none() {
                if let Some(rev) = self.cas(&key, holder.clone().into(), revision, Some(self.lease)).await? {
                    return Ok(Lease::start(self.clone(), key, holder, rev));
                }
                continue;
            }
            if started.elapsed() > MAX_LEASE_WAIT {
                return Err(self.failed(
                    &format!("taking the lease of `{account}`"),
                    format!(
                        "another host has held it for over {}",
                        time::span(MAX_LEASE_WAIT.as_secs() as i64)
                    ),
                ));
            }
            // Looked at again when the key changes, and every half second anyway: the server
            // removing a lapsed lease sends nothing, and a release sent just before this host
            // listened may not have been stored when it read the key.
            let _ = tokio::time::timeout(LEASE_POLL, changes.next()).await;
        }
    }

    /// Every token stored from now on, as `(account, token, revision)`; the stream ends when
    /// the connection does.
    pub async fn watch_tokens(
        &self,
    ) -> Result<impl futures_util::Stream<Item = (String, StoredToken, u64)> + use<>, Error> {
        let c = self.conn().await?;
        let watch =
            c.kv.watch("accounts.*.token").await.map_err(|e| self.failed("watching the tokens", e))?;
        Ok(watch.filter_map(|entry| async move {
            let entry = entry.ok().filter(|e| e.operation == kv::Operation::Put)?;
            let account = entry.key.strip_prefix("accounts.")?.strip_suffix(".token")?.to_string();
            let token = serde_json::from_slice(&entry.value).ok()?;
            Some((account, token, entry.revision))
        }))
    }
}

/// An account's lease, renewed in the background until released.
pub struct Lease {
    lost: Arc<AtomicBool>,
    revision: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    renewing: Option<tokio::task::JoinHandle<()>>,
    fleet: Arc<Fleet>,
    key: String,
}

impl Lease {
    fn start(fleet: Arc<Fleet>, key: String, holder: String, revision: u64) -> Lease {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let lost = Arc::new(AtomicBool::new(false));
        let rev = Arc::new(AtomicU64::new(revision));
        let renewing = {
            let (fleet, key, lost, rev) = (fleet.clone(), key.clone(), lost.clone(), rev.clone());
            tokio::spawn(async move {
                let every = fleet.lease / 3;
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                    let current = rev.load(Ordering::SeqCst);
                    match fleet.cas(&key, holder.clone().into(), current, Some(fleet.lease)).await {
                        Ok(Some(new)) => rev.store(new, Ordering::SeqCst),
                        Ok(None) => {
                            tracing::warn!(
                                "{key}: the lease was lost (taken by another host after it lapsed)"
                            );
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => tracing::warn!("{key}: renewing the lease failed: {e}"),
                    }
                }
            })
        };
        Lease { lost, revision: rev, stop: Some(stop), renewing: Some(renewing), fleet, key }
    }

    /// Whether another host took the lease after it lapsed.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops renewing and gives the lease up, so another host need not wait for it to lapse.
    pub async fn release(mut self) {
        self.stop_renewing().await;
        if !self.lost() {
            let c = self.fleet.conn().await;
            if let Ok(c) = c {
                let rev = self.revision.load(Ordering::SeqCst);
                let _ =
                    tokio::time::timeout(OP_TIMEOUT, c.leases.delete_expect_revision(&self.key, Some(rev)))
                        .await;
            }
        }
    }

    async fn stop_renewing(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.renewing.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Not released (an early return): stop renewing; the lease lapses after its TTL.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The provider's storage of `account`: the last value of each of its keys. The keys come
/// from the stream's subject list (no consumer is made: a fleet refreshing thousands of
/// accounts at once would run into the server's limit of consumers), each read directly.
async fn read_storage(c: &Conn, account: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let prefix = format!("{}{}", c.kv.prefix, tokenhost_rules::keys::storage_prefix(account));
    let mut subjects =
        c.kv.stream.info_with_subjects(format!("{prefix}>")).await.map_err(|e| e.to_string())?;
    let mut data = BTreeMap::new();
    while let Some(found) = subjects.next().await {
        let (subject, _) = found.map_err(|e| e.to_string())?;
        let Some(key) = subject.strip_prefix(&prefix).and_then(decode_key) else { continue };
        let stored = subject.strip_prefix(&c.kv.prefix).unwrap_or(&subject);
        if let Some(entry) = c.kv.entry(stored).await.map_err(|e| e.to_string())?
            && entry.operation == kv::Operation::Put
        {
            data.insert(key, entry.value.to_vec());
        }
    }
    Ok(data)
}

/// An id no other write carries, so that the server can drop a repeated one.
fn message_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{}-{}-{nanos}-{}", host_name(), std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub use tokenhost_rules::keys::{decode as decode_key, encode as encode_key};

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_keys_use_only_nats_key_characters() {
        for key in ["pending-request-expiry-ms", "a.b", "x:y z", ".", "=", "日本", ""] {
            let encoded = encode_key(key);
            assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_=".contains(&b)), "{encoded}");
            assert_eq!(decode_key(&encoded).as_deref(), Some(key));
        }
        assert_eq!(encode_key("a.b"), "a=2Eb");
        assert_eq!(decode_key("=4"), None);
    }

    #[test]
    fn urls_are_checked_and_never_carry_credentials() {
        let none = |_: &str| None;
        let config = StoreConfig::default();
        assert!(Fleet::new(&config, None, none).unwrap().is_none());
        assert!(
            Fleet::new(&config, Some("nats://127.0.0.1:4222,nats://127.0.0.1:4223"), none).unwrap().is_some()
        );
        for bad in ["http://x", "nats://", "nats://user:pw@host:4222", "127.0.0.1:4222"] {
            assert!(Fleet::new(&config, Some(bad), none).is_err(), "{bad}");
        }
        let secret = Fleet::new(&config, Some("nats://u:hunter22@h:1"), none).err().unwrap().to_string();
        assert!(!secret.contains("hunter22"), "{secret}");
        let bad_bucket = StoreConfig { bucket: Some("a.b".into()), ..Default::default() };
        assert!(Fleet::new(&bad_bucket, Some("nats://h:1"), none).is_err());
    }
}
