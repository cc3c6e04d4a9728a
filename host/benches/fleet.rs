//! `cargo bench --bench fleet`: the fleet store (NATS JetStream key-value, a real nats-server
//! on loopback from tests/fleet/install.sh) against the file store. Prints:
//! - `run --all` over 1,000 XTS accounts: one host on the file store, one host on the fleet
//!   store, and three hosts at the same moment on the fleet store (wall time until all three
//!   are done, and the broker's logins: one per account);
//! - the store's round trip for one account's refresh (read, lease, read again, write by
//!   revision, release), in process;
//! - `get` from the fleet store vs from the file store (whole processes).
//!
//! Figures, not pass/fail: nothing here asserts a time.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokenhost_sandbox::xts::{Api, XtsMock};

const BIN: &str = env!("CARGO_BIN_EXE_tokenhost");
const XTS: &str = env!("TOKENHOST_COMPONENT_XTS");
const ACCOUNTS: usize = 1000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let median = ms(samples[samples.len() / 2]);
    let p95 = ms(samples[(samples.len() * 95 / 100).min(samples.len() - 1)]);
    println!("{name:<58} n={:<5} median {median:>8.2} ms   p95 {p95:>8.2} ms", samples.len());
}

/// Runs the hosts' commands at the same moment; the wall time until the last one is done.
fn at_once(cmds: Vec<Command>) -> Duration {
    let start = Instant::now();
    let children: Vec<_> = cmds
        .into_iter()
        .map(|mut c| c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap())
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a host failed");
    }
    start.elapsed()
}

fn host(dir: &Path, n: usize, config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config").arg(config).args(args).env("TOKENHOST_STATE_DIR", dir.join(format!("host{n}")));
    c
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tokenhost-bench-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_nats, url) = support::nats(&dir);

    let mock = XtsMock::new();
    let server = mock.serve();
    let mut accounts = String::new();
    for i in 0..ACCOUNTS {
        let secret = format!("secret-{i}");
        mock.app(&format!("key-{i}"), &secret, &format!("CL{i:04}"), Api::Interactive);
        accounts.push_str(&format!(
            "[accounts.a{i:04}]\nprovider = {XTS:?}\nenv_prefix = \"A{i:04}\"\n[accounts.a{i:04}.settings]\n\
             api-root = {:?}\napi-key = \"key-{i}\"\napi-secret = {secret:?}\n\n",
            server.url()
        ));
    }
    let files = dir.join("files.toml");
    std::fs::write(&files, &accounts).unwrap();
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, format!("[store]\nurl = {url:?}\n\n{accounts}")).unwrap();
    let logins = || mock.state().logins;

    // Warm the compile cache of each host first, so that the figures are the refreshes.
    for n in 0..=4 {
        let cfg = if n == 0 { &files } else { &fleet };
        let mut c = host(&dir, n, cfg, &["inspect", XTS]);
        assert!(c.stdout(Stdio::null()).status().unwrap().success());
    }
    let before = logins();
    let t = at_once(vec![host(&dir, 0, &files, &["run", "--all"])]);
    println!(
        "run --all, {ACCOUNTS} accounts, 1 host, file store {:>27.0} ms   ({} logins)",
        ms(t),
        logins() - before
    );
    let before = logins();
    let t = at_once(vec![host(&dir, 4, &fleet, &["run", "--all"])]);
    println!(
        "run --all, {ACCOUNTS} accounts, 1 host, fleet store {:>26.0} ms   ({} logins)",
        ms(t),
        logins() - before
    );
    // Every token expired: all three hosts find every account due at the same moment.
    mock.state().ttl = 2;
    at_once(vec![host(&dir, 4, &fleet, &["run", "--all", "--force"])]);
    std::thread::sleep(Duration::from_secs(3));
    mock.state().ttl = 24 * 3600;
    let before = logins();
    let t3 = at_once((1..=3).map(|n| host(&dir, n, &fleet, &["run", "--all"])).collect());
    println!(
        "run --all, {ACCOUNTS} accounts due, 3 hosts at once, fleet store {:>12.0} ms   ({} logins)",
        ms(t3),
        logins() - before
    );
    let t = at_once((1..=3).map(|n| host(&dir, n, &fleet, &["run", "--all"])).collect());
    println!("run --all, {ACCOUNTS} accounts all fresh, 3 hosts at once, fleet {:>13.0} ms", ms(t));

    // One account's refresh as the store sees it, in process.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut trips = rt.block_on(async {
        let config = tokenhost::fleet::StoreConfig::default();
        let store = Arc::new(tokenhost::fleet::Fleet::new(&config, Some(&url), |_| None).unwrap().unwrap());
        let mut trips = Vec::new();
        for i in 0..ACCOUNTS {
            let account = format!("a{i:04}");
            let start = Instant::now();
            let (token, _) = store.token(&account).await.unwrap();
            let lease = store.lease(&account).await.unwrap();
            let (again, revision) = store.token(&account).await.unwrap();
            assert_eq!(token.as_ref().map(|t| &t.access_token), again.as_ref().map(|t| &t.access_token));
            let written = store.put_token(&account, &again.unwrap(), revision).await.unwrap();
            assert!(matches!(written, tokenhost::fleet::Written::Stored(_)));
            lease.release().await;
            trips.push(start.elapsed());
        }
        trips
    });
    report("store round trip per refresh (read, lease, read, write, release)", &mut trips);

    let get = |n: usize, cfg: &Path, account: &str| {
        let start = Instant::now();
        let out = host(&dir, n, cfg, &["get", account, "--format", "raw"]).output().unwrap();
        assert!(out.status.success());
        start.elapsed()
    };
    let mut from_files: Vec<Duration> =
        (0..200).map(|i| get(0, &files, &format!("a{:04}", i * 5 % ACCOUNTS))).collect();
    report("get, file store (whole process)", &mut from_files);
    // A host that never ran: every answer comes from the store.
    let mut from_store: Vec<Duration> =
        (0..200).map(|i| get(9, &fleet, &format!("a{:04}", i * 5 % ACCOUNTS))).collect();
    report("get, fleet store (whole process)", &mut from_store);

    let _ = std::fs::remove_dir_all(&dir);
}
