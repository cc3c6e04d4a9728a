//! The host, driven through the CLI against the example broker on 127.0.0.1.

use crate::support::*;
use tokenhost_sandbox::Fault;

#[test]
fn run_stores_a_private_token_and_a_fresh_one_is_not_reloaded() {
    let w = World::new("run");
    let out = w.run(&["run", FIXTURE]);
    out.assert_code(0).assert_stdout_has("example: refreshed (no token stored)");
    assert_eq!(w.broker.state().logins, 1);

    #[cfg(unix)]
    {
        assert_eq!(mode(&w.state), 0o700, "state dir");
        assert_eq!(mode(&w.account_dir("example")), 0o700, "account dir");
        assert_eq!(mode(&w.token_file()), 0o600, "token file");
    }
    let stored = w.stored();
    let token = stored["access_token"].as_str().unwrap().to_string();
    assert_eq!(w.broker.state().live, vec![token.clone()]);
    let exp = tokenhost::policy::jwt_exp(&token).unwrap();
    assert_eq!(stored["expires_at"], exp);
    // The SDK read `exp` from the JWT for the provider.
    assert_eq!(stored["expiry_source"], "provider");
    assert_eq!(stored["user_id"], "DEMO01");

    let status = w.run(&["status", "--json"]);
    status.assert_code(0);
    let rows: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(rows[0]["account"], "example");
    assert_eq!(rows[0]["state"], "fresh");
    assert_eq!(rows[0]["expires_at"], exp);
    assert_eq!(rows[0]["last_outcome"], "refreshed");

    let get = w.run(&["get", "example", "--format", "raw"]);
    get.assert_code(0);
    assert_eq!(get.stdout, token, "get --format raw prints exactly the token");

    // Fresh: exit 0 at once, no request, no component.
    let again = w.run(&["-vv", "run", FIXTURE]);
    again.assert_code(0).assert_stdout_has("example: fresh");
    assert!(!again.stderr.contains("instantiating"), "the component was loaded:\n{}", again.stderr);
    assert!(!again.stderr.contains("compile cache"), "the component was read:\n{}", again.stderr);
    assert_eq!(w.broker.state().logins, 1);

    // By account name the component file is not even opened: a broken one does not matter.
    let broken = w.write("broken.wasm", "not wasm at all");
    w.write(
        "tokenhost.toml",
        &format!("[accounts.example]\nprovider = {:?}\n", broken.display().to_string()),
    );
    w.run(&["run", "example"]).assert_code(0).assert_stdout_has("example: fresh");
    assert_eq!(w.stored()["access_token"], token.as_str());
    w.assert_no_secret_leaked();
}

#[test]
fn the_compile_cache_spares_the_second_process_a_compile() {
    let w = World::new("cache");
    w.run(&["-vv", "run", FIXTURE]).assert_code(0).assert_stderr_has("compiled (not in the compile cache)");
    let cached: Vec<_> = files_under(&w.state.join("cache"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "one compiled artifact");
    w.run(&["-vv", "run", "--force", FIXTURE])
        .assert_code(0)
        .assert_stderr_has("loaded from the compile cache");
}

#[test]
fn hostile_components_are_stopped_with_the_limit_named_and_the_token_kept() {
    let mut w = World::new("hostile");
    w.write("tokenhost.toml", "[limits]\nmemory_mib = 16\ntimeout_secs = 2\n");
    w.run(&["run", FIXTURE]).assert_code(0);
    let good = std::fs::read(w.token_file()).unwrap();

    let cases = [
        ("spin", "exceeded the time limit of 2 s (limits.timeout_secs)"),
        ("membomb", "exceeded the memory limit of 16 MiB (limits.memory_mib)"),
        ("deny", "https://exfil.invalid is not in the allowlist"),
        ("undeclared", "provider read setting `not-declared`, which it did not declare"),
        ("panic", "provider crashed during refresh"),
    ];
    for (mode, message) in cases {
        w.set_env("EXAMPLE_MODE", Some(mode));
        let out = w.run(&["run", "--force", FIXTURE]);
        out.assert_code(6).assert_stderr_has(message);
        assert_eq!(std::fs::read(w.token_file()).unwrap(), good, "{mode}: the last good token was touched");
        let status: serde_json::Value =
            serde_json::from_slice(&std::fs::read(w.account_dir("example").join("status.json")).unwrap())
                .unwrap();
        assert_eq!(status["last_outcome"], "fault", "{mode}");
    }
    // The denial says which config line would allow the host.
    w.set_env("EXAMPLE_MODE", Some("deny"));
    w.run(&["run", "--force", FIXTURE]).assert_code(6).assert_stderr_has(&format!(
        "to allow it: [accounts.example] allow_hosts = [\"{}\", \"exfil.invalid\"]",
        w.server.addr()
    ));
    // The host survives and the good token still refreshes.
    w.set_env("EXAMPLE_MODE", None);
    w.run(&["run", "--force", FIXTURE]).assert_code(0).assert_stdout_has("refreshed (forced)");
    w.assert_no_secret_leaked();
}

#[test]
fn each_provider_error_has_its_exit_code_and_keeps_the_token() {
    let mut w = World::new("errors");
    w.run(&["run", FIXTURE]).assert_code(0);
    let good = std::fs::read(w.token_file()).unwrap();
    let cases = [
        ("error-config", 2, "setting `api-key` of account `example`: the broker does not know this key"),
        ("error-rejected", 3, "rejected by the broker: invalid credentials"),
        ("error-transient", 4, "try again later: broker busy"),
        ("error-protocol", 4, "could not be understood: answer was not JSON"),
        ("error-interaction", 5, "approve the login on your phone: https://example.invalid/approve"),
        ("error-unsupported", 2, "this provider does not support refresh"),
    ];
    for (mode, code, message) in cases {
        w.set_env("EXAMPLE_MODE", Some(mode));
        w.run(&["run", "--force", FIXTURE]).assert_code(code).assert_stderr_has(message);
        assert_eq!(std::fs::read(w.token_file()).unwrap(), good, "{mode}");
    }
    w.assert_no_secret_leaked();
}

#[test]
fn broker_faults_are_transient_and_keep_the_token() {
    let w = World::new("faults");
    w.write("tokenhost.toml", "[limits]\nread_timeout_secs = 1\n");
    w.run(&["run", FIXTURE]).assert_code(0);
    let good = std::fs::read(w.token_file()).unwrap();
    let cases = [
        (Fault::Unavailable, "broker answered HTTP 503"),
        (Fault::Garbage, "not the expected JSON"),
        (Fault::HangUp, "try again later"),
        (Fault::Slow(3), "did not answer in time"),
        (Fault::Huge, "HTTP response body size exceeds limit: 1048576 bytes"),
    ];
    for (fault, message) in cases {
        w.broker.state().faults = vec![fault];
        w.run(&["run", "--force", "--attempts", "1", FIXTURE]).assert_code(4).assert_stderr_has(message);
        assert_eq!(std::fs::read(w.token_file()).unwrap(), good, "{fault:?}");
    }
    w.assert_no_secret_leaked();
}

#[test]
fn a_wrong_secret_is_rejected_and_never_printed() {
    let mut w = World::new("badsecret");
    let wrong = format!("WrOnG-{}", tokenhost_sandbox::nonce());
    w.set_env("EXAMPLE_API_SECRET", Some(&wrong));
    let out = w.run(&["-vv", "run", FIXTURE]);
    out.assert_code(3).assert_stderr_has("invalid credentials");
    assert!(!out.stderr.contains(&wrong) && !out.stdout.contains(&wrong));
    let log = std::fs::read_to_string(w.state.join("tokenhost.log")).unwrap();
    assert!(!log.contains(&wrong));
    assert!(!w.token_file().exists());
    w.assert_no_secret_leaked();
}

#[test]
fn a_missing_setting_names_the_setting_and_where_to_put_it() {
    let mut w = World::new("missing");
    w.set_env("EXAMPLE_API_SECRET", None);
    w.run(&["run", FIXTURE]).assert_code(2).assert_stderr_has(
        "missing setting `api-secret` for account `example`: set EXAMPLE_API_SECRET in the environment or in ./.env, \
         or add `api-secret = \"...\"` under [accounts.example.settings] in tokenhost.toml",
    );
    assert_eq!(w.broker.state().logins, 0);
    // The same value from ./.env works, as the old scripts read it.
    w.write(".env", &format!("# old script settings\nEXAMPLE_API_SECRET={}\n", w.secret));
    w.run(&["run", FIXTURE]).assert_code(0);
    w.assert_no_secret_leaked();
}

#[test]
fn settings_come_from_the_config_file_before_the_environment() {
    let mut w = World::new("toml");
    w.set_env("EXAMPLE_API_SECRET", Some("not-this-one"));
    w.write(
        "tokenhost.toml",
        &format!(
            "[accounts.example]\nprovider = {FIXTURE:?}\n[accounts.example.settings]\napi-secret = {:?}\n",
            w.secret
        ),
    );
    w.run(&["run", "example"]).assert_code(0).assert_stdout_has("example: refreshed");
    w.assert_no_secret_leaked();
}

#[test]
fn invalid_components_are_refused_with_what_is_wrong() {
    let w = World::new("invalid");
    let garbage = w.write("garbage.wasm", "this is not wasm");
    w.run(&["run", garbage.to_str().unwrap()])
        .assert_code(6)
        .assert_stderr_has("is not a WebAssembly component");
    let core = w.dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    w.run(&["run", core.to_str().unwrap()])
        .assert_code(6)
        .assert_stderr_has("is not a WebAssembly component");
    // An empty component exports nothing.
    let empty = w.dir.join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").unwrap();
    w.run(&["inspect", empty.to_str().unwrap()]).assert_code(6).assert_stderr_has(
        "is not a token provider: it does not export tokenhost:provider/provider@0.1.0 (it exports: nothing)",
    );
    // A component that imports files is outside the contract.
    w.run(&["run", FIXTURE_FS]).assert_code(6).assert_stderr_has("imports `wasi:filesystem/");
    // Missing file: a usage error.
    w.run(&["run", "nowhere.wasm"]).assert_code(2).assert_stderr_has("cannot read provider nowhere.wasm");
}

#[test]
fn key_value_data_persists_across_runs_and_guest_output_is_logged_with_the_account() {
    let mut w = World::new("kv");
    w.run(&["run", FIXTURE]).assert_code(0);
    w.set_env("EXAMPLE_MODE", Some("noisy"));
    w.run(&["run", "--force", FIXTURE]).assert_code(0);
    let get = w.run(&["get", "example", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&get.stdout).unwrap();
    assert_eq!(v["extras"]["refreshes"], "2", "the count kept in wasi:keyvalue survived between processes");
    assert!(v["extras"]["feed-token"].is_string());
    let log = std::fs::read_to_string(w.state.join("tokenhost.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("account=example") && l.contains("provider stderr: fixture: refreshing now")),
        "{log}"
    );
    // The secret extra is not in `status`.
    let status = w.run(&["status", "--json"]);
    assert!(!status.stdout.contains(v["extras"]["feed-token"].as_str().unwrap()));
    let env = w.run(&["get", "example", "--format", "env"]);
    assert!(
        env.stdout.starts_with(&format!("EXAMPLE_ACCESS_TOKEN={}\n", v["access_token"].as_str().unwrap())),
        "{}",
        env.stdout
    );
    w.assert_no_secret_leaked();
}

#[test]
fn twenty_concurrent_forced_runs_refresh_one_at_a_time() {
    let w = World::new("concurrent");
    w.run(&["run", FIXTURE]).assert_code(0);
    w.broker.state().login_delay = std::time::Duration::from_millis(30);
    w.broker.state().max_in_flight = 0;
    let before = w.broker.state().logins;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, file) = (stop.clone(), w.token_file());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let bytes = std::fs::read(&file).expect("the token file never disappears");
                assert!(!bytes.is_empty(), "the token file was empty");
                let v: serde_json::Value =
                    serde_json::from_slice(&bytes).expect("the token file is always valid JSON");
                assert!(v["access_token"].is_string());
                reads += 1;
            }
            reads
        })
    };
    let children: Vec<_> = (0..20)
        .map(|_| {
            w.command(&["run", "--force", FIXTURE])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads = watcher.join().unwrap();
    assert!(reads > 0);

    let mut refreshed = 0;
    for o in &outs {
        w.record(&["run"], o);
        let out = Out::from(o.clone());
        out.assert_code(0);
        if out.stdout.contains("refreshed (forced)") {
            refreshed += 1;
        } else {
            out.assert_stdout_has("refreshed by a concurrent run");
        }
    }
    let s = w.broker.state();
    assert_eq!(s.max_in_flight, 1, "two refreshes overlapped");
    assert_eq!(s.logins - before, refreshed, "every login the broker saw is a refresh a run reported");
    assert!(refreshed >= 1);
    let stored = w.stored();
    assert_eq!(
        s.live.last().map(String::as_str),
        stored["access_token"].as_str(),
        "the last login's token is stored"
    );
    drop(s);
    w.assert_no_secret_leaked();
}

#[test]
fn inspect_describes_the_provider() {
    let w = World::new("inspect");
    let out = w.run(&["inspect", FIXTURE]);
    out.assert_code(0)
        .assert_stdout_has("provider     example 0.1.0")
        .assert_stdout_has("api-secret")
        .assert_stdout_has("EXAMPLE_API_SECRET")
        .assert_stdout_has("required, secret")
        .assert_stdout_has("wasmtime run -S http -S config -S keyvalue -S config-var=api-root=<api-root>");
    let sha = tokenhost::engine::sha256_hex(&std::fs::read(FIXTURE).unwrap());
    out.assert_stdout_has(&sha);
    let json: serde_json::Value =
        serde_json::from_str(&w.run(&["inspect", "--json", FIXTURE]).stdout).unwrap();
    assert_eq!(json["name"], "example");
    assert_eq!(json["api_version"], "0.1.0");
}

#[test]
fn check_and_logout_talk_to_the_broker() {
    let w = World::new("check");
    w.run(&["check", FIXTURE]).assert_code(2).assert_stderr_has("no token stored for account `example`");
    w.run(&["run", FIXTURE]).assert_code(0);
    w.run(&["check", "example-not-here"]).assert_code(2);
    w.run(&["check", FIXTURE]).assert_code(0).assert_stdout_has("example: valid");
    // The broker forgets the session: check says invalid (exit 3).
    w.broker.state().live.clear();
    w.run(&["check", FIXTURE]).assert_code(3).assert_stdout_has("example: invalid");
    w.run(&["run", "--force", FIXTURE]).assert_code(0);
    w.run(&["logout", FIXTURE]).assert_code(0).assert_stdout_has("logged out");
    assert!(w.broker.state().live.is_empty());
    assert!(!w.token_file().exists());
    w.run(&["get", "example"]).assert_code(2).assert_stderr_has("no token stored");
    w.assert_no_secret_leaked();
}

#[test]
fn help_documents_the_exit_codes() {
    let w = World::new("help");
    let out = w.run(&["run", "--help"]);
    out.assert_code(0)
        .assert_stdout_has("4  transient failure")
        .assert_stdout_has("6  provider component fault");
}

#[test]
fn demo_runs_from_a_fresh_state_and_names_each_step() {
    let w = World::new("demo");
    let out = w.run(&["demo"]);
    out.assert_code(0)
        .assert_stdout_has("sandbox brokers listening: example http://127.0.0.1:")
        .assert_stdout_has("XTS provider, unattended login: xts-desk: refreshed (no token stored)")
        .assert_stdout_has("Upstox provider, browser login")
        .assert_stdout_has("a run asks the phone (exit 5)")
        .assert_stdout_has("pushes the token to the webhook, stored")
        .assert_stdout_has("the same push again is refused")
        .assert_stdout_has("demo: refreshed (no token stored)")
        .assert_stdout_has("component not loaded: demo: fresh")
        .assert_stdout_has("old token kept")
        .assert_stdout_has("ACCOUNT");
    // Every secret the demo makes up is `...secret-<random>`; none may show, and nothing warns.
    assert!(!out.stdout.contains("secret-") && !out.stderr.contains("secret-"), "{}", out.stdout);
    assert!(out.stderr.trim().is_empty(), "{}", out.stderr);
}

#[test]
fn transient_failures_are_retried_with_backoff_and_rejections_are_not() {
    let mut w = World::new("retries");
    w.write("tokenhost.toml", "[retry]\nattempts = 3\nfirst_delay_ms = 50\n");
    let logins = |w: &World| w.broker.state().seen.iter().filter(|s| *s == "POST /v1/session").count();
    // Healed on the third attempt: exit 0, exactly three requests.
    w.broker.state().faults = vec![Fault::Unavailable, Fault::Unavailable];
    w.run(&["run", FIXTURE]).assert_code(0).assert_stderr_has("attempt 2 of 3 failed, retrying in");
    assert_eq!(logins(&w), 3);
    // Still failing after the third: exit 4, three more requests, the token kept.
    let good = std::fs::read(w.token_file()).unwrap();
    w.broker.state().faults = vec![Fault::Unavailable; 3];
    w.run(&["run", "--force", FIXTURE]).assert_code(4).assert_stderr_has("gave up after 3 attempts");
    assert_eq!(logins(&w), 6);
    assert_eq!(std::fs::read(w.token_file()).unwrap(), good);
    // `--attempts 1` turns retries off for one run.
    w.broker.state().faults = vec![Fault::Unavailable];
    w.run(&["run", "--force", "--attempts", "1", FIXTURE]).assert_code(4);
    assert_eq!(logins(&w), 7);
    // Rejected credentials: one request, exit 3.
    let wrong = format!("WrOnG-{}", tokenhost_sandbox::nonce());
    w.set_env("EXAMPLE_API_SECRET", Some(&wrong));
    w.run(&["run", "--force", FIXTURE]).assert_code(3);
    assert_eq!(logins(&w), 8);
    w.assert_not_leaked(&[wrong], &[]);
    w.assert_no_secret_leaked();
}

/// A stand-in for the Telegram API (and any webhook): records what it is sent.
fn recorder() -> (tokenhost_sandbox::Server, std::sync::Arc<std::sync::Mutex<Vec<tokenhost_sandbox::Request>>>)
{
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = tokenhost_sandbox::Server::start(move |req| {
        log.lock().unwrap().push(req.clone());
        tokenhost_sandbox::Response::json(200, &serde_json::json!({"ok": true}))
    })
    .unwrap();
    (server, seen)
}

#[test]
fn failure_and_recovery_each_send_one_notification_without_secrets() {
    let mut w = World::new("notify");
    let (telegram, sent) = recorder();
    let (hook, posted) = recorder();
    w.write(
        "tokenhost.toml",
        &format!(
            "[retry]\nfirst_delay_ms = 20\n[notify]\ntelegram_api_root = {:?}\nwebhook_url = \"{}/hook\"\n",
            telegram.url(),
            hook.url()
        ),
    );
    // The old scripts' variable names.
    let bot = format!("123456:Bot-{}", tokenhost_sandbox::nonce());
    w.set_env("TELEGRAM_TOKEN", Some(&bot));
    w.set_env("TELEGRAM_CHAT_ID", Some("-100777"));
    w.run(&["run", FIXTURE]).assert_code(0);
    assert!(sent.lock().unwrap().is_empty(), "a plain success sends nothing");

    w.broker.state().faults = vec![Fault::Unavailable; 3];
    w.run(&["run", "--force", FIXTURE]).assert_code(4);
    w.broker.state().faults = vec![Fault::Unavailable; 3];
    w.run(&["run", "--force", FIXTURE]).assert_code(4);
    w.run(&["run", "--force", FIXTURE]).assert_code(0);

    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "one failure (the repeat is not re-sent) and one recovery");
    for req in &sent {
        assert_eq!((req.method.as_str(), req.path.clone()), ("POST", format!("/bot{bot}/sendMessage")));
        assert_eq!(req.json().unwrap()["chat_id"], "-100777");
    }
    let text = |r: &tokenhost_sandbox::Request| r.json().unwrap()["text"].as_str().unwrap().to_string();
    assert!(text(&sent[0]).contains("example FAILED (transient)"), "{}", text(&sent[0]));
    assert!(text(&sent[0]).contains("Last good token kept: expires"), "{}", text(&sent[0]));
    assert!(text(&sent[1]).contains("example recovered: new token, expires"), "{}", text(&sent[1]));
    let posted = posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 2);
    assert_eq!(posted[0].json().unwrap()["outcome"], "transient");
    assert_eq!(posted[1].json().unwrap()["outcome"], "refreshed");
    let tokens = w.broker.state().live.clone();
    for req in sent.iter().chain(&posted) {
        let body = String::from_utf8_lossy(&req.body);
        assert!(!body.contains(&w.secret) && !body.contains(&bot), "{body}");
        assert!(tokens.iter().all(|t| !body.contains(t.as_str())), "a token was sent: {body}");
    }

    // A notifier that cannot be reached is logged and changes no exit code.
    drop(telegram);
    w.broker.state().faults = vec![Fault::Unavailable; 3];
    w.run(&["run", "--force", FIXTURE]).assert_code(4).assert_stderr_has("notification was not delivered");
    w.run(&["run", "--force", FIXTURE]).assert_code(0);
    w.assert_not_leaked(&[w.secret.clone(), bot], &tokens);
}

#[test]
fn the_metrics_file_describes_each_account_after_every_run() {
    let w = World::new("metrics");
    let prom = w.dir.join("textfile/tokenhost.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let metrics = || std::fs::read_to_string(&prom).unwrap();
    let value = |text: &str, series: &str| -> f64 {
        let line =
            text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("{series}:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    w.run(&["--metrics-file", prom.to_str().unwrap(), "run", FIXTURE]).assert_code(0);
    let m = metrics();
    let expires = w.stored()["expires_at"].as_i64().unwrap() as f64;
    assert_eq!(value(&m, "tokenhost_token_expiry_timestamp_seconds{account=\"example\"}"), expires);
    assert_eq!(value(&m, "tokenhost_refreshes_total{account=\"example\"}"), 1.0);
    assert_eq!(value(&m, "tokenhost_last_outcome{account=\"example\",outcome=\"refreshed\"}"), 1.0);
    assert!(m.contains("# TYPE tokenhost_refreshes_total counter"), "{m}");
    #[cfg(unix)]
    assert_eq!(mode(&prom), 0o644);

    w.broker.state().faults = vec![Fault::Unavailable];
    w.run(&["--metrics-file", prom.to_str().unwrap(), "run", "--force", "--attempts", "1", FIXTURE])
        .assert_code(4);
    let m = metrics();
    assert_eq!(value(&m, "tokenhost_last_outcome{account=\"example\",outcome=\"transient\"}"), 1.0);
    assert_eq!(value(&m, "tokenhost_last_outcome{account=\"example\",outcome=\"refreshed\"}"), 0.0);
    assert_eq!(value(&m, "tokenhost_consecutive_failures{account=\"example\"}"), 1.0);
    assert_eq!(value(&m, "tokenhost_token_expiry_timestamp_seconds{account=\"example\"}"), expires);
    assert!(!m.contains(&w.secret));
}

#[test]
fn the_log_rotates_by_size_keeps_a_bounded_number_and_speaks_json() {
    let w = World::new("logs");
    w.write("tokenhost.toml", "[log]\nmax_kib = 1\nkeep = 2\n");
    for _ in 0..12 {
        w.run(&["--log-format", "json", "run", "--force", FIXTURE]).assert_code(0);
    }
    let log = w.state.join("tokenhost.log");
    let rotated: Vec<String> = std::fs::read_dir(&w.state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tokenhost.log"))
        .collect();
    let mut rotated = rotated;
    rotated.sort();
    assert_eq!(rotated, ["tokenhost.log", "tokenhost.log.1", "tokenhost.log.2"]);
    for name in &rotated {
        let path = w.state.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        // Each file stops at the first record past 1 KiB.
        assert!(text.len() < 2048, "{name} is {} bytes", text.len());
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
        }
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
    }
    assert!(std::fs::read_to_string(&log).unwrap().contains("stored a new token"));
    w.assert_no_secret_leaked();
}

/// Issue 10: with account `a00`'s lock held by another process, `run --all` used to finish
/// none of the 19 others until the lock was released (a blocking lock on the async runtime).
#[test]
fn one_locked_account_does_not_stall_the_others_in_run_all() {
    let w = World::new("lock-isolation");
    let mut toml = String::new();
    for i in 0..20 {
        toml.push_str(&format!("[accounts.a{i:02}]\nprovider = {FIXTURE:?}\nenv_prefix = \"EXAMPLE\"\n"));
    }
    w.write("tokenhost.toml", &toml);
    let held = w.account_dir("a00");
    std::fs::create_dir_all(&held).unwrap();
    let lock = std::fs::File::create(held.join("lock")).unwrap();
    lock.lock().unwrap();

    let started = std::time::Instant::now();
    let child = w
        .command(&["run", "--all"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let others: Vec<_> = (1..20).map(|i| w.account_dir(&format!("a{i:02}")).join("token.json")).collect();
    while !others.iter().all(|t| t.exists()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "after 2 s only {} of the 19 unlocked accounts have a token",
            others.iter().filter(|t| t.exists()).count()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    assert!(!held.join("token.json").exists(), "a00 refreshed while another process held its lock");
    drop(lock);
    let out = child.wait_with_output().unwrap();
    w.record(&["run"], &out);
    let out = Out::from(out);
    out.assert_code(0).assert_stdout_has("a00: refreshed").assert_stdout_has("20 accounts: 20 refreshed");
    assert_eq!(w.broker.state().logins, 20);
    eprintln!("19 unlocked accounts refreshed in {} ms", elapsed.as_millis());
    w.assert_no_secret_leaked();
}

/// Issue 10: a writer killed between writing its temp file and renaming it left the temp file,
/// holding a token, for good. The next write to that folder sweeps it.
#[cfg(unix)]
#[test]
fn a_writer_killed_mid_write_leaves_no_temp_file_after_the_next_run() {
    let w = World::new("kill9");
    let args = ["run", "--force", FIXTURE, "--sink", "json=xts_store_token.json", "--sink", "raw=token.txt"];
    w.run(&args).assert_code(0);
    let temps = || -> Vec<std::path::PathBuf> {
        files_under(&w.dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "tmp")).collect()
    };
    // Kill forced refreshes at spread-out moments until one dies between temp file and rename.
    let mut kills = 0;
    let left = loop {
        let mut child = w
            .command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(500 * (kills % 30) as u64));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        let left = temps();
        if !left.is_empty() {
            break left;
        }
        assert!(kills < 600, "no kill landed between a temp file and its rename in {kills} tries");
    };
    eprintln!("a kill -9 left {} temp file(s) after {kills} kills", left.len());
    for file in &files_under(&w.state) {
        if file.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".json")) {
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(file).unwrap())
                .unwrap_or_else(|e| panic!("{} is torn: {e}", file.display()));
        }
    }
    w.run(&args).assert_code(0);
    assert_eq!(temps(), Vec::<std::path::PathBuf>::new(), "the next run left the killed writer's temp files");
    w.assert_no_secret_leaked();
}

/// Issue 10: a crash's cause was cut to its first line. The message now names the trap, and
/// `-v` prints the runtime's whole chain (where in the guest it happened).
#[test]
fn a_crash_names_its_trap_and_minus_v_prints_the_whole_cause() {
    let mut w = World::new("cause");
    w.set_env("EXAMPLE_MODE", Some("panic"));
    let plain = w.run(&["run", FIXTURE]);
    plain.assert_code(6).assert_stderr_has(
        "provider crashed during refresh: wasm trap: wasm `unreachable` instruction executed",
    );
    assert!(!plain.stderr.contains("caused by"), "{}", plain.stderr);
    let verbose = w.run(&["-v", "run", FIXTURE]);
    verbose
        .assert_code(6)
        .assert_stderr_has("caused by: error while executing at wasm backtrace:")
        .assert_stderr_has("caused by: wasm trap: wasm `unreachable` instruction executed");
    assert!(w.broker.state().seen.is_empty(), "the broker was called");
    w.assert_no_secret_leaked();
}

/// Issue 15: `key = ...` under `[accounts.X.settings]` for a provider that declares `api-key`
/// only said "missing setting `api-key`", never naming the typo.
#[test]
fn an_unknown_setting_in_the_config_file_is_named_with_the_one_meant() {
    let mut w = World::new("unknown-setting");
    w.set_env("EXAMPLE_API_KEY", None);
    w.write(
        "tokenhost.toml",
        &format!(
            "[accounts.example]\nprovider = {FIXTURE:?}\n[accounts.example.settings]\nkey = \"some-key\"\n"
        ),
    );
    w.run(&["run", "example"]).assert_code(2).assert_stderr_has(
        "unknown setting `key` for provider example (did you mean `api-key`?), under [accounts.example.settings] in tokenhost.toml",
    );
    assert_eq!(w.broker.state().logins, 0);
    // Unknown names in the environment or .env are simply not settings.
    w.write("tokenhost.toml", &format!("[accounts.example]\nprovider = {FIXTURE:?}\n"));
    let key = w.broker.state().key.clone();
    w.set_env("EXAMPLE_API_KEY", Some(&key));
    w.set_env("EXAMPLE_KEY", Some("ignored"));
    w.write(".env", "EXAMPLE_COLOUR=blue\n");
    w.run(&["run", "example"]).assert_code(0);
    w.assert_no_secret_leaked();
}
