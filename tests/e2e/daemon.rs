//! `tokenhost daemon`: refreshing ahead of expiry with no cron, swapping changed components
//! without a restart (and refusing corrupt ones and ones declaring new hosts), reloading the
//! config on SIGHUP, and stopping cleanly on SIGTERM.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const EXTRA_HOST: &str = env!("TOKENHOST_COMPONENT_FIXTURE_EXTRA_HOST");

/// The component with a custom section appended: another file, the same behaviour (what a
/// rebuilt provider with a trivial change looks like).
fn new_version(bytes: &[u8]) -> Vec<u8> {
    let name = b"tokenhost-test-build";
    let payload = b"2";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8);
    out.extend(section);
    out
}

/// Replaces `path` atomically, as a deploy would.
fn swap(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn token(w: &World, account: &str) -> Option<serde_json::Value> {
    let text = std::fs::read(w.account_dir(account).join("token.json")).ok()?;
    Some(serde_json::from_slice(&text).expect("a token file is never torn"))
}

#[track_caller]
pub(crate) fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) struct Daemon {
    child: Child,
    out: PathBuf,
}

impl Daemon {
    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub(crate) fn signal(&self, sig: i32) {
        crate::support::signal(&self.child, sig);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(accounts: &[&str]) -> String {
    let mut toml = String::from("[retry]\nfirst_delay_ms = 50\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    for a in accounts {
        toml.push_str(&format!(
            "[accounts.{a}]\nprovider = \"{a}.wasm\"\nenv_prefix = \"EXAMPLE\"\nrefresh_ahead_secs = 3\n"
        ));
    }
    toml
}

#[cfg(unix)]
#[test]
fn daemon_refreshes_ahead_swaps_components_and_stops_cleanly() {
    let w = World::new("daemon");
    w.broker.state().ttl = 6;
    let original = std::fs::read(FIXTURE).unwrap();
    for a in ["alpha", "beta", "gamma"] {
        std::fs::write(w.dir.join(format!("{a}.wasm")), &original).unwrap();
    }
    w.write("tokenhost.toml", &config(&["alpha", "beta"]));
    let out = w.dir.join("daemon.out");
    let child = w
        .command(&["daemon", "--tick-ms", "100", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(w.dir.join("daemon.err")).unwrap()))
        .spawn()
        .unwrap();
    let d = Daemon { child, out };

    // Both get tokens, then new ones before the old ones expire.
    wait_for("first tokens", Duration::from_secs(20), || {
        token(&w, "alpha").is_some() && token(&w, "beta").is_some()
    });
    for account in ["alpha", "beta"] {
        let first = token(&w, account).unwrap();
        let first_exp = first["expires_at"].as_i64().unwrap();
        wait_for("a refresh ahead of expiry", Duration::from_secs(20), || {
            token(&w, account).unwrap()["access_token"] != first["access_token"]
        });
        let second = token(&w, account).unwrap();
        assert!(
            second["refreshed_at"].as_i64().unwrap() < first_exp,
            "{account} refreshed only after expiry"
        );
    }

    // Its first line says where pushes and metrics are served.
    let first = d.output().lines().next().unwrap_or_default().to_string();
    let url_after = |key: &str| {
        let at = first.find(key).unwrap_or_else(|| panic!("{key} missing: {first}")) + key.len();
        first[at..].split([';', ' ']).next().unwrap().to_string()
    };
    let metrics = url_after("metrics on ");
    let (status, _, text) = tokenhost_sandbox::http("GET", &metrics, b"");
    assert_eq!(status, 200);
    assert!(text.contains("tokenhost_token_expiry_timestamp_seconds{account=\"beta\"}"), "{text}");
    let pushes = url_after("pushes on ").replace("ACCOUNT", "nobody");
    assert_eq!(tokenhost_sandbox::http("POST", &pushes, b"{}").0, 404);

    // A new version of alpha's component: the next refresh uses it, no restart.
    let v2 = new_version(&original);
    let v2_sha = tokenhost::engine::sha256_hex(&v2);
    swap(&w.dir.join("alpha.wasm"), &v2);
    wait_for("alpha on the new component", Duration::from_secs(20), || {
        token(&w, "alpha").unwrap()["component_sha256"] == v2_sha.as_str()
    });
    assert!(d.output().contains("alpha: component swapped to example"), "{}", d.output());

    // A corrupt file and one declaring an extra host: both refused, beta goes on with the old.
    let old_sha = tokenhost::engine::sha256_hex(&original);
    swap(&w.dir.join("beta.wasm"), b"\0asm this is not a component");
    wait_for("the corrupt file refused", Duration::from_secs(10), || {
        d.output().contains("beta: the new") && d.output().contains("refused")
    });
    swap(&w.dir.join("beta.wasm"), &std::fs::read(EXTRA_HOST).unwrap());
    wait_for("the extra host refused", Duration::from_secs(10), || {
        d.output().contains("declares hosts the running one did not: telemetry.fixture.invalid")
    });
    let before = token(&w, "beta").unwrap()["access_token"].clone();
    wait_for("beta refreshed on the old component", Duration::from_secs(20), || {
        token(&w, "beta").unwrap()["access_token"] != before
    });
    assert_eq!(token(&w, "beta").unwrap()["component_sha256"], old_sha.as_str());

    // SIGHUP: the config gains gamma.
    w.write("tokenhost.toml", &config(&["alpha", "beta", "gamma"]));
    d.signal(libc::SIGHUP);
    wait_for("gamma after the reload", Duration::from_secs(20), || token(&w, "gamma").is_some());
    assert!(d.output().contains("daemon: config reloaded, 3 account(s)"), "{}", d.output());

    // SIGTERM: a clean exit, every file whole, no temp file left behind.
    d.signal(libc::SIGTERM);
    let mut d = d;
    let started = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(d.output().ends_with("daemon: stopped\n"), "{}", d.output());
    for file in files_under(&w.state) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "a temp file was left: {}", file.display());
        if name.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&file).unwrap())
                .unwrap_or_else(|e| panic!("{} is torn: {e}", file.display()));
        }
    }
    let err = std::fs::read_to_string(w.dir.join("daemon.err")).unwrap();
    w.record(
        &["daemon"],
        &std::process::Output { status, stdout: d.output().into_bytes(), stderr: err.into_bytes() },
    );
    w.assert_no_secret_leaked();
}

/// A pushed body the fixture accepts for the app `key`: a JWT issued now, valid for an hour.
fn push_body(key: &str) -> (String, Vec<u8>) {
    let now = tokenhost::time::now();
    let token = tokenhost_sandbox::fake_jwt(
        &serde_json::json!({"sub": "PUSHED", "iat": now, "exp": now + 3600, "jti": tokenhost_sandbox::nonce()}),
    );
    (token.clone(), serde_json::json!({"key": key, "token": token}).to_string().into_bytes())
}

/// Starts `tokenhost ARGS` in the background, its stdout in a file; returns it once it has
/// printed its first line.
pub(crate) fn spawn(w: &World, args: &[&str]) -> (Daemon, String) {
    let out = w.dir.join(format!("{}.out", args[0]));
    let child = w
        .command(args)
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(w.dir.join(format!("{}.err", args[0]))).unwrap()))
        .spawn()
        .unwrap();
    let d = Daemon { child, out };
    wait_for("the first line", Duration::from_secs(30), || d.output().contains('\n'));
    let first = d.output().lines().next().unwrap().to_string();
    (d, first)
}

/// The `http://ip:port` that follows `key` in `line`.
fn url_after(line: &str, key: &str) -> String {
    let at = line.find(key).unwrap_or_else(|| panic!("{key} missing: {line}")) + key.len();
    line[at..].split([';', ' ']).next().unwrap().trim_end_matches("/push/ACCOUNT").to_string()
}

/// Issue 10: the daemon refreshed one account at a time on one task, so a broker that hangs
/// held up every other account's refresh and every push for up to the call's deadline.
#[cfg(unix)]
#[test]
fn a_hanging_broker_delays_no_other_account_and_no_push_in_the_daemon() {
    let w = World::new("daemon-hang");
    w.broker.state().ttl = 4;
    let stuck = tokenhost_sandbox::ExampleBroker::new("stuck-key", "stuck-secret", 3600);
    stuck.state().login_delay = Duration::from_secs(60);
    let stuck_server = stuck.serve().unwrap();
    std::fs::copy(FIXTURE, w.dir.join("example.wasm")).unwrap();
    w.write(
        "tokenhost.toml",
        &format!(
            "[retry]\nattempts = 1\n\
             [accounts.quick]\nprovider = \"example.wasm\"\nenv_prefix = \"EXAMPLE\"\nrefresh_ahead_secs = 2\n\
             [accounts.stuck]\nprovider = \"example.wasm\"\nrefresh_ahead_secs = 2\n\
             [accounts.stuck.settings]\napi-root = {:?}\napi-key = \"stuck-key\"\napi-secret = \"stuck-secret\"\n",
            stuck_server.url()
        ),
    );
    let (d, first_line) = spawn(&w, &["daemon", "--tick-ms", "100", "--listen", "127.0.0.1:0"]);
    wait_for("stuck's login to hang at its broker", Duration::from_secs(20), || {
        stuck.state().seen.iter().any(|s| s == "POST /v1/session")
    });
    wait_for("quick's first token", Duration::from_secs(20), || token(&w, "quick").is_some());
    let first = token(&w, "quick").unwrap();
    let due = first["expires_at"].as_i64().unwrap() - 2;
    wait_for("quick's refresh", Duration::from_secs(20), || {
        token(&w, "quick").unwrap()["access_token"] != first["access_token"]
    });
    let refreshed = token(&w, "quick").unwrap()["refreshed_at"].as_i64().unwrap();
    assert!(refreshed <= due + 1, "quick was due at {due} and refreshed at {refreshed}");
    assert_eq!(stuck.state().logins, 0, "stuck's broker was meant to hang all along");

    let url = format!("{}/push/quick", url_after(&first_line, "pushes on "));
    let (pushed, body) = push_body(&w.broker.state().key.clone());
    let started = Instant::now();
    let (status, _, answer) = tokenhost_sandbox::http("POST", &url, &body);
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert!(took < Duration::from_secs(1), "the push took {took:?}");
    assert_eq!(token(&w, "quick").unwrap()["access_token"], pushed.as_str());
    assert_eq!(stuck.state().logins, 0);
    eprintln!(
        "quick refreshed {} s after it was due; a push answered in {} ms",
        refreshed - due,
        took.as_millis()
    );
    drop(d);
    w.assert_not_leaked(&[w.secret.clone(), "stuck-secret".into()], &[pushed]);
}

/// Issue 10: the listener takes pushes past idle and oversized clients: 1,000 connections
/// that never send a byte do not keep a real push out, and a body over 64 KiB is refused with
/// 413 before it is read (the client here never sends it).
#[cfg(unix)]
#[test]
fn a_push_gets_through_a_thousand_idle_connections_and_a_big_body_is_refused_unread() {
    use std::io::{Read, Write};
    let w = World::new("listener");
    std::fs::copy(FIXTURE, w.dir.join("example.wasm")).unwrap();
    w.write("tokenhost.toml", "[accounts.example]\nprovider = \"example.wasm\"\n");
    let (d, first_line) = spawn(&w, &["serve-webhook", "--listen", "127.0.0.1:0"]);
    let root = url_after(&first_line, "receiving pushes on ");
    let addr = root.trim_start_matches("http://").to_string();
    // SAFETY: raises this test process's own descriptor limit to its hard limit.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < 4096 {
            limit.rlim_cur = limit.rlim_max.min(4096);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    let idle: Vec<std::net::TcpStream> =
        (0..1000).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();

    let (pushed, body) = push_body(&w.broker.state().key.clone());
    let started = Instant::now();
    let (status, _, answer) = tokenhost_sandbox::http("POST", &format!("{root}/push/example"), &body);
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert!(took < Duration::from_secs(1), "the push behind 1,000 idle connections took {took:?}");
    assert_eq!(token(&w, "example").unwrap()["access_token"], pushed.as_str());

    // 10 MiB announced, 100 bytes sent: an answer can only come from a server that did not wait
    // for the rest.
    let mut big = std::net::TcpStream::connect(&addr).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        big,
        "POST /push/example HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        10 << 20
    )
    .unwrap();
    big.write_all(&[b' '; 100]).unwrap();
    let mut head = [0u8; 12];
    big.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    assert_eq!(token(&w, "example").unwrap()["access_token"], pushed.as_str());
    eprintln!("a push behind 1,000 idle connections answered in {} ms", took.as_millis());
    drop(idle);
    drop(d);
    w.assert_not_leaked(std::slice::from_ref(&w.secret), &[pushed]);
}
