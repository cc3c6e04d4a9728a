//! The fleet store (NATS JetStream key-value): several hosts, each with its own state
//! directory, sharing one token per account. Every test starts its own `nats-server` (from
//! tests/fleet/install.sh, cached) on free loopback ports, and the hosts are separate
//! processes of the CLI, as on separate machines.

use crate::daemon::wait_for;
use crate::support::*;
use crate::xts::XTS;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokenhost_sandbox::xts::{Api, XtsMock};

/// The nats-server binary: `TOKENHOST_NATS_SERVER`, else installed by tests/fleet/install.sh.
fn nats_server() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| installed_tool("TOKENHOST_NATS_SERVER", "tests/fleet/install.sh"))
}

/// One nats-server with JetStream, its data under `dir`.
pub struct Nats {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
}

impl Nats {
    pub fn start(dir: &Path, name: &str) -> Nats {
        Nats::with(dir, name, free_port(), &[])
    }

    fn with(dir: &Path, name: &str, port: u16, extra: &[String]) -> Nats {
        let store = dir.join(format!("nats-{name}"));
        let mut args: Vec<String> = ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-n", name, "-sd"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(store.display().to_string());
        args.extend(extra.iter().cloned());
        let mut n = Nats { child: None, port, args };
        n.spawn(dir.join(format!("nats-{name}.log")));
        n
    }

    fn spawn(&mut self, log: PathBuf) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(nats_server())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < until, "nats-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `kill -9`.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A 3-node JetStream cluster on loopback.
fn cluster(dir: &Path) -> Vec<Nats> {
    let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let all_routes = routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    // Started together: JetStream waits for its peers to elect a meta leader.
    let nodes: Vec<Nats> = (0..3)
        .map(|i| {
            let extra = [
                "--cluster_name".to_string(),
                "tokenhost-test".to_string(),
                "--cluster".to_string(),
                format!("nats://127.0.0.1:{}", routes[i]),
                "--routes".to_string(),
                all_routes.clone(),
            ];
            Nats::with(dir, &format!("n{i}"), client[i], &extra)
        })
        .collect();
    nodes
}

/// The XTS apps of `n` accounts on one mock broker, and their `tokenhost.toml` accounts.
struct Desk {
    w: World,
    mock: XtsMock,
    server: tokenhost_sandbox::Server,
    secrets: Vec<String>,
}

fn desk(name: &str, accounts: usize) -> Desk {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let mock = XtsMock::new();
    let server = mock.serve();
    let mut secrets = Vec::new();
    for i in 0..accounts {
        let secret = format!("FleetSecret-{i}-{}", tokenhost_sandbox::nonce());
        mock.app(&format!("key{i}"), &secret, &format!("CL{i:03}"), Api::Interactive);
        secrets.push(secret);
    }
    Desk { w, mock, server, secrets }
}

impl Desk {
    /// `[store]` and the accounts `acct-000`...
    fn config(&self, store: &str, extra: &str) -> String {
        let mut toml = format!("[store]\nurl = {store:?}\n{extra}\n");
        for (i, secret) in self.secrets.iter().enumerate() {
            toml.push_str(&format!(
                "[accounts.acct-{i:03}]\nprovider = {XTS:?}\nenv_prefix = \"ACCT_{i:03}\"\n\
                 [accounts.acct-{i:03}.settings]\napi-root = {:?}\napi-key = \"key{i}\"\napi-secret = {secret:?}\n\n",
                self.server.url()
            ));
        }
        toml
    }

    /// The CLI on host `n` (its own state directory).
    fn host(&self, n: usize, args: &[&str]) -> Command {
        let mut c = self.w.command(args);
        c.env("TOKENHOST_STATE_DIR", self.w.dir.join(format!("host{n}")));
        c
    }

    fn run(&self, n: usize, args: &[&str]) -> Out {
        let out = self.host(n, args).output().unwrap();
        self.w.record(args, &out);
        Out::from(out)
    }

    /// `get ACCOUNT --format raw` on host `n`.
    fn get(&self, n: usize, account: &str) -> String {
        let out = self.run(n, &["get", account, "--format", "raw"]);
        out.assert_code(0);
        out.stdout.trim().to_string()
    }

    fn sessions(&self) -> Vec<String> {
        self.mock.state().sessions.keys().cloned().collect()
    }

    fn assert_no_leak(&self) {
        self.w.assert_not_leaked(&self.secrets, &self.sessions());
    }
}

/// Runs `cmds` at the same moment and returns what each printed.
fn all_at_once(d: &Desk, cmds: Vec<(usize, Vec<&str>)>) -> Vec<Output> {
    let children: Vec<(Vec<&str>, Child)> = cmds
        .into_iter()
        .map(|(n, args)| {
            let child = d.host(n, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            (args, child)
        })
        .collect();
    children
        .into_iter()
        .map(|(args, c)| {
            let out = c.wait_with_output().unwrap();
            d.w.record(&args, &out);
            out
        })
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The bucket's raw entry, read with a plain NATS client as any program would.
pub fn entry(url: &str, key: &str) -> Option<serde_json::Value> {
    latest(url, key)
        .filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put)
        .map(|e| serde_json::from_slice(&e.value).unwrap())
}

/// The latest record of `key` (a value or a deletion), read with a plain NATS client.
fn latest(url: &str, key: &str) -> Option<async_nats::jetstream::kv::Entry> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        // Leases have their own bucket (with per-key TTLs); the data bucket has NATS's defaults.
        let bucket = if key.starts_with("leases.") { "tokenhost-leases" } else { "tokenhost" };
        let kv = async_nats::jetstream::new(client).get_key_value(bucket).await.unwrap();
        kv.entry(key).await.unwrap()
    })
}

#[test]
fn three_hosts_run_all_over_a_hundred_accounts_and_the_broker_sees_one_login_each() {
    let d = desk("fleet-three", 100);
    let nats = Nats::start(&d.w.dir, "one");
    d.w.write("tokenhost.toml", &d.config(&nats.url(), ""));

    let outs = all_at_once(&d, (1..=3).map(|n| (n, vec!["run", "--all"])).collect());
    let mut refreshed = 0;
    for out in &outs {
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        let count =
            |what: &str| stdout.lines().filter(|l| l.starts_with("acct-") && l.contains(what)).count();
        let (here, elsewhere, fresh) =
            (count(": refreshed (no token stored)"), count(": refreshed by another host"), count(": fresh"));
        assert_eq!(here + elsewhere + fresh, 100, "every account is accounted for on every host: {stdout}");
        refreshed += here;
    }
    assert_eq!(refreshed, 100, "exactly one host refreshed each account");
    assert_eq!(d.mock.state().logins, 100, "the broker saw exactly one login per account");

    // Every host reads the same token for every account, the one the broker issued.
    let sessions = d.sessions();
    for i in 0..100 {
        let account = format!("acct-{i:03}");
        let first = d.get(1, &account);
        assert!(sessions.contains(&first), "{account}: not a session the broker issued");
        for n in 2..=3 {
            assert_eq!(d.get(n, &account), first, "{account} on host {n}");
        }
    }
    // The layout the README documents, readable by any NATS client: the file store's JSON.
    let stored = entry(&nats.url(), "accounts.acct-007.token").expect("accounts.<name>.token");
    assert_eq!(stored["access_token"].as_str().unwrap(), d.get(2, "acct-007"));
    let status = entry(&nats.url(), "accounts.acct-007.status").expect("accounts.<name>.status");
    assert_eq!(status["last_outcome"], "refreshed", "{status}");
    assert!(entry(&nats.url(), "leases.acct-007").is_none(), "a finished refresh leaves no lease");

    // A second pass anywhere: every account is fresh, nobody logs in.
    d.run(2, &["run", "--all"]).assert_code(0).assert_stdout_has("100 accounts: 100 fresh");
    assert_eq!(d.mock.state().logins, 100);
    d.assert_no_leak();
}

/// The revision of `key` (0: never written), read with a plain NATS client.
fn revision(url: &str, key: &str) -> u64 {
    latest(url, key).map(|e| e.revision).unwrap_or(0)
}

/// A host killed while it holds an account's lease: the lease lapses after its TTL and
/// another host refreshes. A host paused while its broker call is answered comes back after
/// another host stored a newer token: its write is refused by revision and changes nothing.
#[test]
fn a_dead_lease_holder_is_replaced_after_the_ttl_and_a_paused_one_cannot_overwrite() {
    let d = desk("fleet-lease", 1);
    let nats = Nats::start(&d.w.dir, "one");
    let url = nats.url();
    d.w.write("tokenhost.toml", &d.config(&url, "lease_secs = 2"));
    let account = "acct-000";
    let lease = format!("leases.{account}");

    // Host 1 takes the lease and waits on a slow broker; it is killed.
    d.mock.state().slow_logins = Some((1, Duration::from_secs(5)));
    let mut one = d.host(1, &["run", account]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("host 1 at the broker", Duration::from_secs(20), || d.mock.state().logins == 1);
    assert!(entry(&url, &lease).is_some(), "host 1 holds the lease");
    one.kill().unwrap();
    one.wait().unwrap();
    let killed = Instant::now();
    // Host 2 waits for the lease to lapse, then refreshes.
    let out = d.run(2, &["run", account]);
    let waited = killed.elapsed();
    out.assert_code(0).assert_stdout_has(&format!("{account}: refreshed (no token stored)"));
    assert_eq!(d.mock.state().logins, 2);
    assert!(waited < Duration::from_secs(15), "host 2 waited {waited:?} for a 2 s lease");
    eprintln!("host 2 refreshed {waited:?} after the lease holder was killed (lease: 2 s)");
    let second = d.get(2, account);
    let rev = revision(&url, &format!("accounts.{account}.token"));

    // Host 1 again, forced, paused (SIGSTOP) while the broker answers slowly; its lease lapses.
    d.mock.state().slow_logins = Some((1, Duration::from_secs(2)));
    let paused = d
        .host(1, &["run", account, "--force"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("host 1 at the broker", Duration::from_secs(20), || d.mock.state().logins == 3);
    signal(&paused, libc::SIGSTOP);
    wait_for("host 1's lease to lapse", Duration::from_secs(20), || entry(&url, &lease).is_none());
    // Host 3 refreshes meanwhile.
    d.run(3, &["run", account, "--force"])
        .assert_code(0)
        .assert_stdout_has(&format!("{account}: refreshed (forced)"));
    let third = d.get(3, account);
    assert_ne!(third, second);
    let rev_third = revision(&url, &format!("accounts.{account}.token"));
    assert!(rev_third > rev);
    // Host 1 resumes with the broker's answer in hand: refused, it takes host 3's token.
    std::thread::sleep(Duration::from_secs(2));
    signal(&paused, libc::SIGCONT);
    let out = paused.wait_with_output().unwrap();
    d.w.record(&["run"], &out);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(&format!("{account}: refreshed by another host")), "{stdout}");
    assert_eq!(d.mock.state().logins, 4);
    assert_eq!(
        revision(&url, &format!("accounts.{account}.token")),
        rev_third,
        "the late write changed nothing"
    );
    for n in 1..=3 {
        assert_eq!(d.get(n, account), third, "host {n}");
    }
    d.assert_no_leak();
}

/// Daemons on two hosts write a token a third host stored into their `.env` files, within a
/// second, leaving every other line as it was; `watch` prints it as a JSON line.
#[test]
fn daemons_on_two_hosts_write_a_third_hosts_token_to_their_env_files() {
    let d = desk("fleet-fanout", 1);
    let nats = Nats::start(&d.w.dir, "one");
    let account = "acct-000";
    let plain = d.config(&nats.url(), "");
    d.w.write("tokenhost.toml", &plain);
    let env_before = "# the strategy's settings\nBROKER=xts\nACCT_000_ACCESS_TOKEN=old\nRISK=0.5\n";
    for n in 1..=2 {
        let sink = format!("[[accounts.{account}.sinks]]\ntype = \"dotenv\"\npath = \"host{n}.env\"\n");
        d.w.write(&format!("host{n}.toml"), &format!("{plain}{sink}"));
        d.w.write(&format!("host{n}.env"), env_before);
    }
    d.run(3, &["run", account]).assert_code(0);
    let first = d.get(3, account);

    let mut daemons = Vec::new();
    for n in 1..=2 {
        let log = d.w.dir.join(format!("daemon{n}.out"));
        let child = d
            .host(n, &["--config", &format!("host{n}.toml"), "daemon", "--tick-ms", "100"])
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(d.w.dir.join(format!("daemon{n}.err"))).unwrap()))
            .spawn()
            .unwrap();
        daemons.push((child, log));
    }
    let watch_log = d.w.dir.join("watch.out");
    let mut watch = d
        .host(2, &["watch", account])
        .stdout(Stdio::from(std::fs::File::create(&watch_log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let env = |n: usize| std::fs::read_to_string(d.w.dir.join(format!("host{n}.env"))).unwrap();
    let expect = |token: &str| {
        env_before.replace("ACCT_000_ACCESS_TOKEN=old", &format!("ACCT_000_ACCESS_TOKEN={token}"))
    };
    for (n, (_, log)) in daemons.iter().enumerate() {
        wait_for("the daemon to watch the store", Duration::from_secs(20), || {
            std::fs::read_to_string(log).unwrap().contains("watching the fleet store at")
        });
        // The token stored before it started is written at its first tick.
        wait_for("the daemon's first tick", Duration::from_secs(20), || env(n + 1) == expect(&first));
    }
    // Let `watch` subscribe (it prints nothing until a token is stored).
    std::thread::sleep(Duration::from_millis(500));

    d.run(3, &["run", account, "--force"]).assert_code(0);
    let stored = Instant::now();
    let second = d.get(3, account);
    assert_ne!(second, first);
    wait_for("both .env files", Duration::from_secs(1), || {
        env(1) == expect(&second) && env(2) == expect(&second)
    });
    eprintln!("both .env files had the new token {:?} after the storing host exited", stored.elapsed());
    for (_, log) in &daemons {
        let said = std::fs::read_to_string(log).unwrap();
        assert!(said.contains(&format!("{account}: token from the fleet store, expires")), "{said}");
        assert!(!said.contains("refreshed ("), "the daemons did not log in themselves: {said}");
    }
    wait_for("a watch event", Duration::from_secs(5), || {
        std::fs::read_to_string(&watch_log).unwrap().contains(&second)
    });
    let events = std::fs::read_to_string(&watch_log).unwrap();
    let event: serde_json::Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
    assert_eq!(event["account"], account);
    assert_eq!(event["access_token"], second.as_str());
    assert!(event["revision"].as_u64().unwrap() > 0, "{event}");
    assert_eq!(d.mock.state().logins, 2, "only host 3 logged in");

    watch.kill().unwrap();
    watch.wait().unwrap();
    for (mut child, log) in daemons {
        signal(&child, libc::SIGTERM);
        assert!(child.wait().unwrap().success());
        d.w.note_shown(&std::fs::read_to_string(log).unwrap());
    }
    d.assert_no_leak();
}

/// The provider's own storage (`wasi:keyvalue`) is the fleet's: a provider that counts its
/// refreshes counts across hosts.
#[test]
fn provider_storage_is_shared_by_the_hosts() {
    let w = World::new("fleet-kv");
    let nats = Nats::start(&w.dir, "one");
    w.write(
        "tokenhost.toml",
        &format!(
            "[store]\nurl = {:?}\n[accounts.example]\nprovider = {FIXTURE:?}\nenv_prefix = \"EXAMPLE\"\n",
            nats.url()
        ),
    );
    let on = |n: usize, args: &[&str]| {
        let out =
            w.command(args).env("TOKENHOST_STATE_DIR", w.dir.join(format!("host{n}"))).output().unwrap();
        w.record(args, &out);
        Out::from(out)
    };
    on(1, &["run", "example"]).assert_code(0);
    on(2, &["run", "example", "--force"]).assert_code(0);
    let json = on(3, &["get", "example", "--format", "json"]);
    json.assert_code(0);
    let token: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(token["extras"]["refreshes"], "2", "host 2's provider saw host 1's count: {token}");
    assert_eq!(entry(&nats.url(), "accounts.example.kv.refreshes"), Some(serde_json::json!(2)));
    // Nothing of the provider's storage is written on the hosts.
    for n in 1..=2 {
        let files = files_under(&w.dir.join(format!("host{n}")));
        assert!(!files.iter().any(|f| f.file_name().unwrap().to_string_lossy().contains("kv")), "{files:?}");
    }
    w.assert_no_secret_leaked();
}

/// The store unreachable: a refresh fails as transient (exit 4) naming the URL; `get` answers
/// with this host's last token while it is fresh, and says so; a host that never saw one fails.
#[test]
fn a_store_that_is_down_is_named_and_get_falls_back_only_to_a_fresh_token() {
    let d = desk("fleet-down", 1);
    let mut nats = Nats::start(&d.w.dir, "one");
    let url = nats.url();
    d.w.write("tokenhost.toml", &d.config(&url, ""));
    let account = "acct-000";
    d.mock.state().ttl = 4;
    d.run(1, &["run", account]).assert_code(0);
    let token = d.get(1, account);
    nats.kill();

    let out = d.run(1, &["run", account, "--force"]);
    out.assert_code(4).assert_stderr_has(&format!("the store at {url}"));
    let out = d.run(1, &["get", account, "--format", "raw"]);
    out.assert_code(0)
        .assert_stderr_has(&format!("the store at {url}"))
        .assert_stderr_has("the last token this host saw");
    assert_eq!(out.stdout.trim(), token);
    d.run(2, &["get", account]).assert_code(4).assert_stderr_has(&format!("the store at {url}"));
    d.run(2, &["status"]).assert_code(4).assert_stderr_has(&format!("the store at {url}"));
    // Once it has expired, the last token seen is no answer.
    std::thread::sleep(Duration::from_secs(5));
    let out = d.run(1, &["get", account]);
    out.assert_code(4).assert_stderr_has(&format!("the store at {url}"));
    assert!(out.stdout.is_empty());
    assert_eq!(d.mock.state().logins, 1);
    d.assert_no_leak();
}

/// A 3-node cluster with an R3 bucket: the stream's leader is killed in the middle of
/// `run --all` over 100 accounts; every token is stored and readable from the other nodes.
#[test]
fn a_node_of_a_three_node_cluster_dies_mid_run_and_no_token_is_lost() {
    let d = desk("fleet-cluster", 100);
    let nodes = cluster(&d.w.dir);
    let urls: Vec<String> = nodes.iter().map(Nats::url).collect();
    d.w.write("tokenhost.toml", &d.config(&urls.join(","), "replicas = 3"));
    // The first run creates the bucket (once the cluster has a leader).
    let out = d.run(1, &["run", "acct-000"]);
    out.assert_code(0);
    let leader = stream_leader(&urls[0]);
    let mut nodes = nodes;
    // Slow logins, so that the run is still going when the leader dies.
    d.mock.state().slow_logins = Some((99, Duration::from_secs(1)));
    let child = d
        .host(1, &["run", "--all", "--jobs", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("30 logins", Duration::from_secs(60), || d.mock.state().logins >= 31);
    let i = nodes.iter().position(|n| n.args.contains(&leader)).expect("the leader is one of ours");
    nodes[i].kill();
    eprintln!("killed {leader}, the bucket's leader, after {} logins", d.mock.state().logins - 1);
    let out = child.wait_with_output().unwrap();
    d.w.record(&["run"], &out);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("100 accounts: 1 fresh, 99 refreshed"), "{stdout}");

    let sessions = d.sessions();
    let alive: Vec<&String> = urls.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, u)| u).collect();
    for (k, url) in alive.iter().enumerate() {
        // A host that never saw these tokens, talking to one remaining node only.
        let host = 10 + k;
        for a in 0..100 {
            let account = format!("acct-{a:03}");
            let out = d.run(host, &["get", &account, "--format", "raw", "--store", url]);
            out.assert_code(0);
            assert!(sessions.contains(&out.stdout.trim().to_string()), "{account} from {url}");
        }
    }
    d.assert_no_leak();
}

/// The name of the node leading the bucket's stream.
fn stream_leader(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream("KV_tokenhost").await.unwrap();
        let info = stream.info().await.unwrap();
        info.cluster.as_ref().and_then(|c| c.leader.clone()).expect("a leader")
    })
}

/// Credentials come from the environment (or `.env`), never from the URL, and never show.
#[test]
fn store_credentials_come_from_the_environment_and_never_show() {
    let mut d = desk("fleet-creds", 1);
    let password = format!("NatsPass-{}", tokenhost_sandbox::nonce());
    let port = free_port();
    let _nats = Nats::with(
        &d.w.dir,
        "auth",
        port,
        &["--user".into(), "desk".into(), "--pass".into(), password.clone()],
    );
    let url = format!("nats://127.0.0.1:{port}");
    d.w.write("tokenhost.toml", &d.config(&url, ""));
    let account = "acct-000";
    // Without them the server refuses: a transient failure naming the store.
    d.run(1, &["run", account]).assert_code(4).assert_stderr_has(&format!("the store at {url}"));
    // A URL carrying them is refused before anything is sent.
    let out = d.run(1, &["run", account, "--store", &format!("nats://desk:{password}@127.0.0.1:{port}")]);
    out.assert_code(2).assert_stderr_has("credentials do not belong in the URL");
    d.w.set_env("TOKENHOST_STORE_USER", Some("desk"));
    d.w.set_env("TOKENHOST_STORE_PASSWORD", Some(&password));
    d.run(1, &["run", account]).assert_code(0);
    d.w.set_env("TOKENHOST_STORE_PASSWORD", Some("wrong"));
    d.run(2, &["get", account]).assert_code(4).assert_stderr_has(&format!("the store at {url}"));
    d.w.set_env("TOKENHOST_STORE_PASSWORD", None);
    d.w.set_env("TOKENHOST_STORE_USER", None);
    // From .env, as the other settings.
    let env = std::fs::read_to_string(d.w.dir.join(".env")).unwrap_or_default();
    d.w.write(".env", &format!("{env}TOKENHOST_STORE_USER=desk\nTOKENHOST_STORE_PASSWORD={password}\n"));
    assert_eq!(d.get(2, account), d.get(1, account));
    let mut secrets = d.secrets.clone();
    secrets.push(password);
    d.w.assert_not_leaked(&secrets, &d.sessions());
}

/// `tls://`: the server's certificate is checked against the configured CA.
#[test]
fn a_tls_store_is_reached_with_its_ca_and_refused_without() {
    let d = desk("fleet-tls", 1);
    let dir = &d.w.dir;
    let ssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out.stderr));
    };
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    ssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    let port = free_port();
    let p = |f: &str| dir.join(f).display().to_string();
    let _nats = Nats::with(
        dir,
        "tls",
        port,
        &["--tls".into(), "--tlscert".into(), p("server.pem"), "--tlskey".into(), p("server.key")],
    );
    let url = format!("tls://127.0.0.1:{port}");
    let account = "acct-000";
    d.w.write("tokenhost.toml", &d.config(&url, ""));
    let out = d.run(1, &["run", account]);
    out.assert_code(4)
        .assert_stderr_has(&format!("the store at {url}"))
        .assert_stderr_has("invalid peer certificate");
    d.w.write("tokenhost.toml", &d.config(&url, &format!("ca = {:?}", p("ca.pem"))));
    d.run(1, &["run", account]).assert_code(0);
    assert_eq!(d.get(2, account), d.get(1, account));
    d.assert_no_leak();
}
