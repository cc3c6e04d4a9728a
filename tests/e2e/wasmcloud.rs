//! Issue 12: the XTS provider refreshing on wasmCloud. `tokenhost serverless wasmcloud`
//! writes the workload, `wash dev` (wasmCloud 2, offline, from tests/wasmcloud/install.sh)
//! runs the scheduler beside `xts.wasm` against the XTS mock, storing in a nats-server; hosts
//! then read the token from the fleet store.

use crate::daemon::wait_for;
use crate::fleet::{Nats, entry};
use crate::support::*;
use crate::xts::XTS;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokenhost_sandbox::xts::{Api, XtsMock};

/// `wash`: `TOKENHOST_WASH`, else installed by tests/wasmcloud/install.sh.
fn wash() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| installed_tool("TOKENHOST_WASH", "tests/wasmcloud/install.sh"))
}

/// `wash dev` of one generated workload, its output in `DIR.log`.
struct WashDev {
    child: Child,
    log: PathBuf,
}

impl WashDev {
    fn start(dir: &Path) -> WashDev {
        let log = dir.with_extension("log");
        let child = Command::new(wash())
            .arg("-C")
            .arg(dir)
            .args(["dev", "--non-interactive"])
            // wash keeps its caches under HOME; a test's own keeps runs apart.
            .env("HOME", dir.with_extension("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(dir.with_extension("out")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        WashDev { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The scheduler's own lines.
    fn said(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.starts_with("pass ") || l.starts_with("scheduler:"))
            .map(String::from)
            .collect()
    }

    /// Resident and peak memory of the wash process, KiB.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn stop(mut self) -> String {
        signal(&self.child, libc::SIGTERM);
        let until = Instant::now() + Duration::from_secs(10);
        while self.running() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

#[test]
fn the_scheduler_on_wasmcloud_stores_the_token_hosts_read_it_and_a_wrong_secret_stores_nothing() {
    let mut w = World::new("wasmcloud");
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let nats = Nats::start(&w.dir, "one");
    let url = nats.url();
    // Two brokers, so that each workload's attempts are counted apart.
    let (good, bad) = (XtsMock::new(), XtsMock::new());
    let secret = format!("WcSecret-{}", tokenhost_sandbox::nonce());
    let right = format!("WcRight-{}", tokenhost_sandbox::nonce());
    let wrong = format!("WcWrong-{}", tokenhost_sandbox::nonce());
    good.app("wc-key", &secret, "WC1", Api::Interactive);
    bad.app("wc-key2", &right, "WC2", Api::Interactive);
    let (good_server, bad_server) = (good.serve(), bad.serve());
    let account = |name: &str, root: &str, key: &str, secret: &str| {
        format!(
            "[accounts.{name}]\nprovider = {XTS:?}\n[accounts.{name}.settings]\napi-root = {root:?}\n\
             api-key = {key:?}\napi-secret = {secret:?}\n"
        )
    };
    let store = format!("[store]\nurl = {url:?}\n");
    let xts = account("xts", &good_server.url(), "wc-key", &secret);
    let xts_wrong = account("xts-wrong", &bad_server.url(), "wc-key2", &wrong);
    w.write("tokenhost.toml", &format!("{store}{xts}{xts_wrong}"));

    // The workloads, as a user writes them.
    let out = w.run(&["serverless", "wasmcloud", "xts", "--out", "wc-xts", "--tick-secs", "1"]);
    out.assert_code(0)
        .assert_stdout_has("xts: wasmCloud workload written to wc-xts")
        .assert_stdout_has("secret settings api-secret only in secrets.env")
        .assert_stdout_has(&format!("tokenhost --store {url} get xts"));
    w.run(&["serverless", "wasmcloud", "xts-wrong", "--out", "wc-wrong", "--tick-secs", "1"]).assert_code(0);
    let dir = w.dir.join("wc-xts");
    let secrets_file = dir.join("secrets.env");
    assert_eq!(mode(&secrets_file) & 0o777, 0o600);
    assert!(std::fs::read_to_string(&secrets_file).unwrap().contains(&format!("api-secret={secret}")));
    assert!(std::fs::read_to_string(dir.join(".gitignore")).unwrap().lines().any(|l| l == "secrets.env"));
    for committed in [".wash/config.yaml", "workload.yaml"] {
        let text = std::fs::read_to_string(dir.join(committed)).unwrap();
        assert!(!text.contains(&secret), "the secret is inline in {committed}");
        let host = good_server.url().trim_start_matches("http://").to_string();
        assert!(text.contains(&format!("allowedHosts: [\"{host}\"]")), "{committed}:\n{text}");
        assert!(text.contains("\"kv-bucket\": \"tokenhost\""), "{committed}:\n{text}");
    }
    let manifest = std::fs::read_to_string(dir.join("workload.yaml")).unwrap();
    assert!(manifest.contains("kind: WorkloadDeployment") && manifest.contains("secretFrom:"), "{manifest}");
    assert!(dir.join("scheduler.wasm").is_file() && dir.join("xts.wasm").is_file());

    // Both run at once, on the same store.
    let started = Instant::now();
    let mut ok = WashDev::start(&dir);
    let mut refused = WashDev::start(&w.dir.join("wc-wrong"));
    wait_for("wasmCloud to store the token", Duration::from_secs(90), || {
        entry(&url, "accounts.xts.token").is_some()
    });
    let first_token = started.elapsed();
    let (rss, peak) = ok.memory();
    eprintln!(
        "wash dev start to first stored token: {:.2} s; wash process: {} KiB resident, {} KiB peak",
        first_token.as_secs_f64(),
        rss,
        peak
    );

    // Any host reads it from the fleet store: one with nothing but the store's address.
    let elsewhere = w.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let args = ["--store", url.as_str(), "get", "xts", "--format", "raw"];
    let get =
        w.command(&args).current_dir(&elsewhere).env("TOKENHOST_STATE_DIR", elsewhere.join("state")).output();
    let get = get.unwrap();
    w.record(&args[2..], &get); // a `get`: its stdout is the token, on purpose
    assert!(get.status.success(), "{}", String::from_utf8_lossy(&get.stderr));
    let token = String::from_utf8(get.stdout).unwrap().trim().to_string();
    assert_eq!(w.run(&["get", "xts", "--format", "raw"]).stdout.trim(), token);
    assert!(good.state().sessions.contains_key(&token), "{token:?} is not a session the broker gave");
    assert_eq!(good.state().logins, 1);
    let stored = entry(&url, "accounts.xts.token").unwrap();
    assert_eq!(stored["provider"], "xts");
    assert_eq!(stored["account"], "xts");
    assert!(stored["expires_at"].as_i64().unwrap() > stored["refreshed_at"].as_i64().unwrap());
    let status = w.run(&["status"]);
    status.assert_code(0);
    assert!(status.stdout.lines().any(|l| l.starts_with("xts ") && l.contains("fresh")), "{}", status.stdout);

    // A daemon on another host writes it to its JSON file, without logging in itself.
    w.write(
        "host2.toml",
        &format!("{store}{xts}[[accounts.xts.sinks]]\ntype = \"json\"\npath = \"host2.json\"\n"),
    );
    let daemon_log = w.dir.join("daemon.out");
    let mut daemon = w
        .command(&["--config", "host2.toml", "daemon", "xts", "--tick-ms", "100"])
        .env("TOKENHOST_STATE_DIR", w.dir.join("host2"))
        .stdout(Stdio::from(std::fs::File::create(&daemon_log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(w.dir.join("daemon.err")).unwrap()))
        .spawn()
        .unwrap();
    let json_sink = w.dir.join("host2.json");
    wait_for("the daemon's JSON file", Duration::from_secs(30), || {
        std::fs::read_to_string(&json_sink).is_ok_and(|t| t.contains(&token))
    });
    signal(&daemon, libc::SIGTERM);
    assert!(daemon.wait().unwrap().success());
    let said = std::fs::read_to_string(&daemon_log).unwrap();
    assert!(said.contains("watching the fleet store at") && !said.contains("refreshed ("), "{said}");
    w.note_shown(&said);
    assert_eq!(good.state().logins, 1, "the daemon took wasmCloud's token and did not log in");

    // The wrong secret: `rejected`, nothing stored, one attempt, and the scheduler goes on,
    // trying again after the same wait a host's daemon would (30 s), not at every pass.
    wait_for("the rejection", Duration::from_secs(60), || {
        refused.said().iter().any(|l| l.contains("xts-wrong: rejected"))
    });
    let attempts =
        |m: &XtsMock| m.state().seen.iter().filter(|r| r.contains("/interactive/user/session")).count();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(attempts(&bad), 1, "one attempt, then the wait: {:?}", refused.said());
    assert!(refused.running(), "the scheduler stopped after a rejection:\n{}", refused.log());
    // Every host sees the failure: the scheduler notes the outcome where hosts note theirs.
    let status = w.run(&["status"]);
    let row = status.stdout.lines().find(|l| l.starts_with("xts-wrong ")).unwrap_or_default().to_string();
    assert!(row.contains("rejected"), "{}", status.stdout);
    assert!(entry(&url, "accounts.xts.status").unwrap()["last_outcome"] == "refreshed");
    wait_for("the second try, 30 s after the first", Duration::from_secs(45), || {
        refused.said().iter().filter(|l| l.contains("xts-wrong: rejected")).count() == 2
    });
    assert_eq!(attempts(&bad), 2);
    let lines = refused.said();
    let rejected: Vec<&String> = lines.iter().filter(|l| l.contains("rejected")).collect();
    assert!(rejected[0].starts_with("pass 1: xts-wrong: rejected: "), "{lines:?}");
    assert!(rejected[0].ends_with("nothing stored, next try in 30s"), "{lines:?}");
    assert!(rejected[1].ends_with("next try in 1m"), "the wait doubles: {lines:?}");
    assert!(entry(&url, "accounts.xts-wrong.token").is_none(), "a rejected login stored something");
    // Meanwhile the good workload kept its one token.
    assert_eq!(good.state().logins, 1);
    assert!(ok.running());

    let (rss, peak) = ok.memory();
    eprintln!(
        "wash process after {:.0} s: {rss} KiB resident, {peak} KiB peak",
        started.elapsed().as_secs_f64()
    );
    let logs = [ok.stop(), refused.stop()].join("\n");
    for s in [&secret, &wrong, &right, &token] {
        assert!(!logs.contains(s.as_str()), "a secret or token is in wash's output:\n{logs}");
    }
    assert!(logs.contains("pass 1: xts: refreshed (no token stored), expires in"), "{logs}");
    w.assert_not_leaked(&[secret, wrong, right], &[token]);
}

/// The generator refuses what would not run, naming what to fix, and writes nothing then.
#[test]
fn the_generator_needs_a_store_and_every_required_setting() {
    let mut w = World::new("wasmcloud-refused");
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET", "XTS_API_SECRET"] {
        w.set_env(var, None);
    }
    let secret = format!("GenSecret-{}", tokenhost_sandbox::nonce());
    let account = format!(
        "[accounts.xts]\nprovider = {XTS:?}\n[accounts.xts.settings]\napi-root = \"https://xts.broker.example\"\n\
         api-key = \"k\"\n"
    );
    w.write("tokenhost.toml", &format!("{account}api-secret = {secret:?}\n"));
    w.run(&["serverless", "wasmcloud", "xts"])
        .assert_code(2)
        .assert_stderr_has("a wasmCloud workload stores its tokens in the fleet store: set [store] url");

    let nats = Nats::start(&w.dir, "one");
    w.write("tokenhost.toml", &format!("[store]\nurl = {:?}\n{account}", nats.url()));
    w.run(&["serverless", "wasmcloud", "xts"])
        .assert_code(2)
        .assert_stderr_has("missing setting `api-secret` for account `xts`: set XTS_API_SECRET");
    assert!(!w.dir.join("wasmcloud-xts").exists(), "files were written for a workload that cannot run");

    // With it, the hosts come from the broker's root URL, and the secret stays out of the
    // files that may be committed.
    w.write(
        "tokenhost.toml",
        &format!("[store]\nurl = {:?}\n{account}api-secret = {secret:?}\n", nats.url()),
    );
    w.run(&["serverless", "wasmcloud", "xts", "--registry", "registry.desk.example/th"]).assert_code(0);
    let manifest = std::fs::read_to_string(w.dir.join("wasmcloud-xts/workload.yaml")).unwrap();
    assert!(manifest.contains("allowedHosts: [\"xts.broker.example\"]"), "{manifest}");
    assert!(manifest.contains("image: \"registry.desk.example/th/tokenhost-xts:"), "{manifest}");
    assert!(!manifest.contains(&secret));
    w.assert_not_leaked(&[secret], &[]);
}
