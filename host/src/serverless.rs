//! An account as a wasmCloud workload: the bundled scheduler (a service component) beside
//! the account's provider component, storing tokens in the fleet store, so that hosts read
//! them with `tokenhost --store ... get`.
//!
//! [`wasmcloud`] writes a folder that `wash dev` runs as it is (`.wash/config.yaml`), and the
//! `WorkloadDeployment` for the Kubernetes operator (`workload.yaml`). Settings go in as
//! `wasi:config` values; the secret ones only into `secrets.env` (mode 0600, git-ignored),
//! which `wash dev` reads as a secret source and from which the cluster's Secret is made; they
//! reach the provider component alone, never the scheduler. The provider may reach only the
//! hosts it declares (or the account's `allow_hosts`); the scheduler reaches none.

use crate::service::Deployment;
use crate::{Error, store};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tokenhost_rules::keys;

/// The scheduler component, built from `components/scheduler`.
const SCHEDULER: &[u8] = include_bytes!(env!("TOKENHOST_COMPONENT_SCHEDULER"));

/// What goes into the workload.
pub struct Workload<'a> {
    /// The account.
    pub account: &'a str,
    /// Its component file.
    pub provider: &'a Path,
    /// What the component is and needs.
    pub deployment: &'a Deployment,
    /// The fleet store's URL (wash dev's NATS key-value).
    pub store_url: &'a str,
    /// Its bucket.
    pub bucket: &'a str,
    /// Seconds between the scheduler's passes.
    pub tick_secs: u32,
    /// Where the cluster pulls the two components from (`REGISTRY/tokenhost-scheduler:V`).
    pub registry: &'a str,
}

/// What was written.
#[derive(Debug)]
pub struct Written {
    /// The folder.
    pub dir: PathBuf,
    /// Its files, in the order written.
    pub files: Vec<PathBuf>,
    /// The names of the secret settings (in `secrets.env`).
    pub secret_settings: Vec<String>,
    /// The name of the secret source (and of the cluster's Secret).
    pub secret_name: String,
}

/// Writes the workload for `w` into `dir` (made if missing; files there are replaced).
pub fn wasmcloud(dir: &Path, w: &Workload) -> Result<Written, Error> {
    let info = &w.deployment.info;
    let mut config: Vec<(String, String)> = Vec::new();
    let mut secrets: Vec<(String, String)> = Vec::new();
    for s in &info.settings {
        let Some(value) = w.deployment.settings.get(&s.name) else { continue };
        let value = value.expose().to_string();
        if s.secret {
            // secrets.env is one KEY=VALUE a line, trimmed: a value it cannot hold is refused.
            if value.contains(['\n', '\r']) || value.trim() != value {
                return Err(Error::Config(format!(
                    "setting `{}` of account `{}` has a line break or surrounding spaces, which a \
                     wasmCloud secret file cannot hold",
                    s.name, w.account
                )));
            }
            secrets.push((s.name.clone(), value));
        } else {
            config.push((s.name.clone(), value));
        }
    }
    config.push((keys::BUCKET_SETTING.into(), w.bucket.into()));
    config.push((keys::PREFIX_SETTING.into(), keys::storage_prefix(w.account)));
    let scheduler_config = [
        ("accounts".to_string(), w.account.to_string()),
        (keys::BUCKET_SETTING.to_string(), w.bucket.to_string()),
        ("tick-secs".to_string(), w.tick_secs.to_string()),
    ];
    let secret_name = format!("tokenhost-{}", w.account.to_ascii_lowercase().replace('_', "-"));
    let provider_file = format!("{}.wasm", info.name);

    let io = |what: &str, p: &Path, e: std::io::Error| Error::io(format!("{what} {}", p.display()), e);
    std::fs::create_dir_all(dir.join(".wash")).map_err(|e| io("making", dir, e))?;
    let component = std::fs::read(w.provider).map_err(|e| io("reading", w.provider, e))?;
    let files: Vec<(PathBuf, Vec<u8>)> = vec![
        (dir.join("scheduler.wasm"), SCHEDULER.to_vec()),
        (dir.join(&provider_file), component),
        (dir.join(".gitignore"), b"# Secret settings: never commit them.\nsecrets.env\n".to_vec()),
        (dir.join("secrets.env"), env_file(w, &secrets).into_bytes()),
        (
            dir.join(".wash/config.yaml"),
            dev_config(w, &provider_file, &config, &scheduler_config, &secret_name).into_bytes(),
        ),
        (
            dir.join("workload.yaml"),
            cluster_manifest(w, &config, &scheduler_config, &secret_name).into_bytes(),
        ),
    ];
    let mut written = Vec::new();
    for (path, bytes) in files {
        // Private (0600), as wash requires of a secret file; the rest need no more.
        store::write_atomic(&path, &bytes).map_err(|e| io("writing", &path, e))?;
        written.push(path);
    }
    Ok(Written {
        dir: dir.to_path_buf(),
        files: written,
        secret_settings: secrets.into_iter().map(|(k, _)| k).collect(),
        secret_name,
    })
}

/// A YAML double-quoted scalar (a JSON string is one).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `{"a": "1", ...}` on one line.
fn map(entries: &[(String, String)]) -> String {
    let inner: Vec<String> = entries.iter().map(|(k, v)| format!("{}: {}", q(k), q(v))).collect();
    format!("{{{}}}", inner.join(", "))
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| q(i)).collect::<Vec<_>>().join(", "))
}

fn env_file(w: &Workload, secrets: &[(String, String)]) -> String {
    let mut out = format!(
        "# The secret settings of tokenhost account `{}`, for its wasmCloud workload. Never commit\n\
         # this file; make the cluster's Secret from it (see workload.yaml).\n",
        w.account
    );
    for (k, v) in secrets {
        let _ = writeln!(out, "{k}={v}");
    }
    out
}

fn dev_config(
    w: &Workload,
    provider_file: &str,
    config: &[(String, String)],
    scheduler: &[(String, String)],
    secret_name: &str,
) -> String {
    let info = &w.deployment.info;
    format!(
        "# tokenhost account `{account}` (provider {name} {version}) as a wasmCloud workload, written by\n\
         # `tokenhost serverless wasmcloud {account}`. Run it here: wash dev --non-interactive\n\
         # The scheduler refreshes the account when due and stores the token in the bucket `{bucket}`\n\
         # at {url}; any host reads it: tokenhost --store {url} get {account}\n\
         build:\n  command: \"true\"\n  component_path: \"scheduler.wasm\"\n\
         wit:\n  skip_fetch: true\n\
         dev:\n  service: true\n  # The service serves no HTTP; wash dev listens anyway, on a free loopback port.\n  \
         address: \"127.0.0.1:0\"\n  wasi_keyvalue_nats_url: {url_q}\n  components:\n    \
         - name: \"provider\"\n      file: {file}\n      config: {config}\n      \
         environment:\n        secretFrom: [{secret}]\n      allowedHosts: {hosts}\n\
         workload:\n  config: {scheduler}\n  # The scheduler itself reaches no host.\n  allowedHosts: []\n\
         secrets:\n  {secret}:\n    file: \"secrets.env\"\n",
        account = w.account,
        name = info.name,
        version = info.version,
        bucket = w.bucket,
        url = w.store_url,
        url_q = q(w.store_url),
        file = q(provider_file),
        config = map(config),
        secret = q(secret_name),
        hosts = list(&w.deployment.hosts),
        scheduler = map(scheduler),
    )
}

fn cluster_manifest(
    w: &Workload,
    config: &[(String, String)],
    scheduler: &[(String, String)],
    secret_name: &str,
) -> String {
    let info = &w.deployment.info;
    let image = |name: &str, version: &str| q(&format!("{}/{name}:{version}", w.registry));
    format!(
        "# tokenhost account `{account}` for the wasmCloud operator. Before applying it:\n\
         #   wash oci push {registry}/tokenhost-scheduler:{own} scheduler.wasm\n\
         #   wash oci push {registry}/tokenhost-{name}:{version} {name}.wasm\n\
         #   kubectl create secret generic {secret} --from-env-file=secrets.env\n\
         # The hosts' wasi:keyvalue must be NATS JetStream at the fleet store ({url}), whose\n\
         # bucket `{bucket}` tokenhost made (it holds the leases of the hosts too).\n\
         apiVersion: runtime.wasmcloud.dev/v1alpha1\n\
         kind: WorkloadDeployment\n\
         metadata:\n  name: {deployment}\n\
         spec:\n  # One refresher per account: a second replica would log in a second time.\n  replicas: 1\n  \
         template:\n    spec:\n      hostInterfaces:\n        \
         - {{namespace: wasi, package: keyvalue, version: 0.2.0-draft, interfaces: [store]}}\n        \
         - {{namespace: wasi, package: config, version: 0.2.0-rc.1, interfaces: [store]}}\n      \
         service:\n        image: {scheduler_image}\n        maxRestarts: 100\n        localResources:\n          \
         config: {scheduler}\n          allowedHosts: []\n      \
         components:\n        - name: \"provider\"\n          image: {provider_image}\n          \
         localResources:\n            config: {config}\n            environment:\n              \
         secretFrom:\n                - name: {secret_q}\n            allowedHosts: {hosts}\n",
        account = w.account,
        registry = w.registry,
        own = env!("CARGO_PKG_VERSION"),
        name = info.name,
        version = info.version,
        secret = secret_name,
        secret_q = q(secret_name),
        url = w.store_url,
        bucket = w.bucket,
        deployment = q(secret_name),
        scheduler_image = image("tokenhost-scheduler", env!("CARGO_PKG_VERSION")),
        provider_image = image(&format!("tokenhost-{}", info.name), &info.version),
        scheduler = map(scheduler),
        config = map(config),
        hosts = list(&w.deployment.hosts),
    )
}
