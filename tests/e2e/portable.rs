//! The bundled providers outside tokenhost: under the upstream `wasmtime` CLI and under
//! Node.js (transpiled by jco, with the WASI shims), against the same loopback mocks and
//! settings, giving the same token fields as tokenhost. `tests/portable/install.sh` installs
//! both runtimes once into a cache; the first run of these tests waits for it.

use crate::support::*;
use crate::xts::XTS;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tokenhost_sandbox::http;
use tokenhost_sandbox::upstox::{UpstoxMock, next_0330_ist};
use tokenhost_sandbox::xts::{Api, XtsMock};

const UPSTOX: &str = env!("TOKENHOST_COMPONENT_UPSTOX");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn node_dir() -> PathBuf {
    repo().join("tests/portable/node")
}

/// The upstream wasmtime CLI, installed on first use.
fn wasmtime() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash").arg(repo().join("tests/portable/install.sh")).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "installing wasmtime-cli and jco failed:\n{stderr}");
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim());
        assert!(bin.is_file(), "install.sh named no wasmtime binary:\n{stderr}");
        bin
    })
}

/// `wasmtime run` of `call` in `component` with `settings` (and `kv` seeded), stdout as text.
fn under_wasmtime(component: &str, settings: &[(&str, &str)], kv: &[(&str, &str)], call: &str) -> String {
    let mut cmd = Command::new(wasmtime());
    cmd.args(["run", "-S", "http", "-S", "config", "-S", "keyvalue"]);
    for (k, v) in settings {
        cmd.args(["-S", &format!("config-var={k}={v}")]);
    }
    for (k, v) in kv {
        cmd.args(["-S", &format!("keyvalue-in-memory-data={k}={v}")]);
    }
    let out = cmd.args(["--invoke", call, component]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wasmtime run --invoke {call} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The component transpiled by jco (once per test run) into the Node harness's folder.
fn transpiled(component: &str) -> PathBuf {
    wasmtime(); // the same install brings jco
    let name = Path::new(component).file_stem().unwrap().to_string_lossy().into_owned();
    // Keyed by content, so a rebuilt component is transpiled again and an unchanged one is not.
    let sha = tokenhost::engine::sha256_hex(&std::fs::read(component).unwrap());
    let out = node_dir().join("out").join(format!("{name}-{}", &sha[..12]));
    let js = out.join(format!("{name}.js"));
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    if !js.is_file() {
        let shim = |m: &str| format!("{}#*", node_dir().join(m).display());
        let status = Command::new(node_dir().join("node_modules/.bin/jco"))
            .current_dir(node_dir())
            .args(["transpile", component, "-q", "-o"])
            .arg(&out)
            .args(["--map", &format!("wasi:config/*={}", shim("config.js"))])
            .args(["--map", &format!("wasi:keyvalue/*={}", shim("keyvalue.js"))])
            .status()
            .unwrap();
        assert!(status.success(), "jco transpile {component} failed");
    }
    js
}

/// `node run.mjs` of `call` in `component`: the result as JSON (`{"ok":..}` or `{"err":..}`).
fn under_node(
    component: &str,
    settings: &[(&str, &str)],
    kv: &[(&str, &str)],
    call: &[&str],
) -> serde_json::Value {
    let js = transpiled(component);
    let obj = |pairs: &[(&str, &str)]| {
        serde_json::Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect())
    };
    let out = Command::new("node")
        .current_dir(node_dir())
        .arg("run.mjs")
        .arg(&js)
        .args(call)
        .env("PROVIDER_SETTINGS", obj(settings).to_string())
        .env("PROVIDER_KV", obj(kv).to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "node {call:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The string value of `field: "..."` or `field: some("...")` in wasmtime's printed result.
fn wave_string(text: &str, field: &str) -> Option<String> {
    let at = text.find(&format!("{field}: "))? + field.len() + 2;
    let rest = text[at..].strip_prefix("some(").unwrap_or(&text[at..]);
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// The integer of `field: some(N)` in wasmtime's printed result.
fn wave_some_int(text: &str, field: &str) -> Option<i64> {
    let start = text.find(&format!("{field}: some("))? + field.len() + 7;
    let end = start + text[start..].find(')')?;
    text[start..end].parse().ok()
}

/// Checks a token printed by wasmtime and one returned under Node against the token
/// tokenhost stored: same user, same extras (names, secrecy, and values where not secret),
/// expiries within the seconds between the logins.
fn assert_same_fields(stored: &serde_json::Value, wave: &str, node: &serde_json::Value) {
    assert!(wave.starts_with("ok("), "wasmtime: {wave}");
    let node = &node["ok"];
    assert_eq!(wave_string(wave, "user-id").as_deref(), stored["user_id"].as_str(), "{wave}");
    assert_eq!(node["userId"], stored["user_id"], "{node}");
    let e = stored["expires_at"].as_i64().unwrap();
    for got in [wave_some_int(wave, "expires-at"), node["expiresAt"].as_i64()] {
        let got = got.unwrap_or_else(|| panic!("no expiry: {wave} {node}"));
        assert!((got - e).abs() <= 120, "expiry {got} vs tokenhost's {e}");
    }
    let extras = stored["extras"].as_array().unwrap();
    assert_eq!(node["extras"].as_array().unwrap().len(), extras.len(), "{node}");
    for x in extras {
        let (name, secret) = (x["name"].as_str().unwrap(), x["secret"].as_bool().unwrap());
        let n = node["extras"].as_array().unwrap().iter().find(|n| n["name"] == name).expect(name);
        assert_eq!(n["secret"], secret);
        let in_wave = format!("{{name: \"{name}\", value: \"");
        assert!(wave.contains(&in_wave), "{name} missing: {wave}");
        if !secret {
            assert_eq!(n["value"], x["value"]);
            assert!(wave.contains(&format!("{in_wave}{}\", secret: false}}", x["value"].as_str().unwrap())));
        }
    }
}

#[test]
fn xts_gives_the_same_token_under_wasmtime_node_and_tokenhost() {
    let w = World::new("portable-xts");
    let mock = XtsMock::new();
    mock.app("appkey1", "xts-secret-1", "AB1234", Api::Interactive);
    mock.app("mdkey1", "md-secret-1", "AB1234", Api::MarketData);
    let server = mock.serve();
    let root = server.url();
    let settings = [
        ("api-root", root.as_str()),
        ("api-key", "appkey1"),
        ("api-secret", "xts-secret-1"),
        ("user-id", "AB1234"),
        ("market-data-key", "mdkey1"),
        ("market-data-secret", "md-secret-1"),
    ];
    let mut cfg = String::from("[accounts.xts]\nprovider = ");
    cfg.push_str(&format!("{XTS:?}\n[accounts.xts.settings]\n"));
    for (k, v) in &settings {
        cfg.push_str(&format!("{k} = {v:?}\n"));
    }
    w.write("tokenhost.toml", &cfg);
    w.run(&["run", "xts"]).assert_code(0);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.account_dir("xts").join("token.json")).unwrap()).unwrap();

    let wave = under_wasmtime(XTS, &settings, &[], "refresh(none)");
    let node = under_node(XTS, &settings, &[], &["refresh"]);
    assert_same_fields(&stored, &wave, &node);
    // Each runtime's token is one the broker issued and still honours.
    let live = mock.state().sessions.keys().cloned().collect::<Vec<_>>();
    assert!(live.contains(&wave_string(&wave, "access-token").unwrap()));
    assert!(live.contains(&node["ok"]["accessToken"].as_str().unwrap().to_string()));

    let wrong = [settings[0], settings[1], ("api-secret", "wrong")];
    assert!(under_wasmtime(XTS, &wrong, &[], "refresh(none)").starts_with("err(rejected("));
    assert_eq!(under_node(XTS, &wrong, &[], &["refresh"])["err"]["tag"], "rejected");
    let about = under_wasmtime(XTS, &[], &[], "describe()");
    assert!(about.contains("name: \"xts\""), "{about}");
    assert_eq!(under_node(XTS, &[], &[], &["describe"])["ok"]["name"], "xts");
}

#[test]
fn upstox_logs_in_and_takes_pushes_under_wasmtime_and_node() {
    let redirect = "http://127.0.0.1:5055/callback";
    let mock = UpstoxMock::new("upkey", "up-secret", redirect);
    let server = mock.serve();
    let root = server.url();
    let settings = [
        ("api-root", root.as_str()),
        ("api-key", "upkey"),
        ("api-secret", "up-secret"),
        ("redirect-uri", redirect),
    ];
    // A code from the broker's dialog, as the browser would carry it back.
    let code = || {
        let url = format!(
            "{root}/v2/login/authorization/dialog?response_type=code&client_id=upkey&redirect_uri={}&state=s",
            redirect.replace(':', "%3A").replace('/', "%2F")
        );
        let (status, headers, _) = http("GET", &url, b"");
        assert_eq!(status, 302);
        let location = &headers["location"];
        location.split("code=").nth(1).unwrap().split('&').next().unwrap().to_string()
    };
    let expected = next_0330_ist(tokenhost::time::now());
    let wave =
        under_wasmtime(UPSTOX, &settings, &[], &format!("complete-login([(\"code\", \"{}\")])", code()));
    assert!(wave.starts_with("ok("), "{wave}");
    assert_eq!(wave_string(&wave, "user-id").as_deref(), Some("7XABCD"));
    let node =
        under_node(UPSTOX, &settings, &[], &["complete-login", &format!("[[\"code\",\"{}\"]]", code())]);
    assert_eq!(node["ok"]["userId"], "7XABCD", "{node}");
    // Both expire at the broker's next 03:30 IST (from the token's `exp`).
    let cutoffs = [expected, next_0330_ist(tokenhost::time::now())];
    assert!(cutoffs.contains(&wave_some_int(&wave, "expires-at").unwrap()), "{wave}");
    assert!(cutoffs.contains(&node["ok"]["expiresAt"].as_i64().unwrap()), "{node}");

    // The phone-approved request: both ask the broker, and say a person has to act.
    assert!(under_wasmtime(UPSTOX, &settings, &[], "refresh(none)").starts_with("err(interaction-required("));
    assert_eq!(under_node(UPSTOX, &settings, &[], &["refresh"])["err"]["tag"], "interaction-required");
    assert_eq!(mock.state().token_requests, 2);

    // A push answering a pending request (the key-value store seeded as a run would leave it).
    let pending = ((tokenhost::time::now() + 600) * 1000).to_string();
    let kv = [("pending-request-expiry-ms", pending.as_str())];
    let body =
        String::from_utf8(mock.push_body("upkey", "7XABCD", "pushed-token", tokenhost::time::now())).unwrap();
    let wave_body: Vec<String> = body.bytes().map(|b| b.to_string()).collect();
    let wave = under_wasmtime(UPSTOX, &settings, &kv, &format!("accept-push([{}])", wave_body.join(", ")));
    assert_eq!(wave_string(&wave, "access-token").as_deref(), Some("pushed-token"), "{wave}");
    let node = under_node(UPSTOX, &settings, &kv, &["accept-push", &body]);
    assert_eq!(node["ok"]["accessToken"], "pushed-token", "{node}");
    assert_eq!(node["ok"]["expiresAt"].as_i64(), wave_some_int(&wave, "expires-at"));
    // Without a pending request the same push is refused in both.
    assert!(
        under_wasmtime(UPSTOX, &settings, &[], &format!("accept-push([{}])", wave_body.join(", ")))
            .starts_with("err(rejected(")
    );
    assert_eq!(under_node(UPSTOX, &settings, &[], &["accept-push", &body])["err"]["tag"], "rejected");

    // The runtime's storage settings (wasmCloud's): `kv-prefix` goes before every key, in both.
    let mut prefixed = settings.to_vec();
    prefixed.push(("kv-prefix", "accounts.up.kv."));
    let kv = [("accounts.up.kv.pending-request-expiry-ms", pending.as_str())];
    let wave = under_wasmtime(UPSTOX, &prefixed, &kv, &format!("accept-push([{}])", wave_body.join(", ")));
    assert_eq!(wave_string(&wave, "access-token").as_deref(), Some("pushed-token"), "{wave}");
    assert_eq!(
        under_node(UPSTOX, &prefixed, &kv, &["accept-push", &body])["ok"]["accessToken"],
        "pushed-token"
    );
    // `kv-bucket` names a bucket this runtime does not have (wasmtime's is ""): said as that setting.
    let mut elsewhere = settings.to_vec();
    elsewhere.push(("kv-bucket", "tokenhost"));
    let wave = under_wasmtime(UPSTOX, &elsewhere, &[], &format!("accept-push([{}])", wave_body.join(", ")));
    assert!(wave.starts_with("err(config(") && wave.contains("\"kv-bucket\""), "{wave}");
    assert!(wave.contains("no key-value bucket `tokenhost`"), "{wave}");
}

#[test]
fn the_command_inspect_prints_runs_the_provider_under_wasmtime() {
    let w = World::new("portable-inspect");
    let out = w.run(&["inspect", "--json", FIXTURE]);
    let v: serde_json::Value = serde_json::from_str(&out.assert_code(0).stdout).unwrap();
    let cmd = v["wasmtime_command"].as_str().unwrap();
    let cmd = cmd
        .replacen("wasmtime", &wasmtime().display().to_string(), 1)
        .replace("<api-root>", &w.server.url())
        .replace("<api-key>", &w.broker.state().key.clone())
        .replace("<api-secret>", &w.secret);
    assert!(!cmd.contains('<'), "a placeholder is left: {cmd}");
    let out = Command::new("bash").arg("-c").arg(&cmd).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.starts_with("ok("), "{cmd}\n{stdout}");
    let token = wave_string(&stdout, "access-token").unwrap();
    assert!(w.broker.state().live.contains(&token), "{stdout}");
}

#[test]
fn every_bundled_provider_imports_only_the_contract() {
    let w = World::new("portable-imports");
    let dir = Path::new(FIXTURE).parent().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let out = w.run(&["inspect", path.to_str().unwrap()]);
        if path.file_stem().is_some_and(|s| s == "fixture_fs") {
            // The deliberate outsider proves the check can fail, and names the import.
            out.assert_code(6).assert_stderr_has("imports `wasi:filesystem/");
        } else if path.file_stem().is_some_and(|s| s == "scheduler") {
            // The wasmCloud service is no provider, and is told apart as one.
            out.assert_code(6).assert_stderr_has("is not a token provider").assert_stderr_has("wasi:cli/run");
        } else {
            assert_eq!(out.code, 0, "{} steps outside the contract:\n{}", path.display(), out.stderr);
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} components found in {}", dir.display());
}

/// Issue 13: the TOTP providers, each against its stand-in, under the upstream wasmtime CLI:
/// the same component logs in with no person there too.
#[test]
fn the_totp_providers_log_in_under_wasmtime() {
    use tokenhost_sandbox::{angelone, dhan, fivepaisa, groww, kotakneo};
    let wasm =
        |name: &str| Path::new(FIXTURE).parent().unwrap().join(format!("{name}.wasm")).display().to_string();

    let m = dhan::DhanMock::new();
    let seed = m.account("1100012345", "P1x9");
    let s = m.serve();
    let settings = [
        ("auth-root", s.url()),
        ("api-root", s.url()),
        ("client-id", "1100012345".into()),
        ("pin", "P1x9".into()),
        ("totp-secret", seed),
    ];
    let issued = || m.state().issued.clone();
    check_totp_login("dhan", &wasm("dhan"), &settings, issued);

    let m = angelone::AngelOneMock::new();
    let seed = m.account("A1", "P2x9", "key-2");
    let s = m.serve();
    let settings = [
        ("api-root", s.url()),
        ("api-key", "key-2".into()),
        ("client-code", "A1".into()),
        ("pin", "P2x9".into()),
        ("totp-secret", seed),
    ];
    check_totp_login("angelone", &wasm("angelone"), &settings, || m.state().issued.clone());

    let m = kotakneo::KotakNeoMock::new();
    let seed = m.account("tok-3", "+919876500001", "U3", "P3x9");
    let s = m.serve();
    let settings = [
        ("login-root", s.url()),
        ("access-token", "tok-3".into()),
        ("mobile-number", "+919876500001".into()),
        ("ucc", "U3".into()),
        ("mpin", "P3x9".into()),
        ("totp-secret", seed),
    ];
    check_totp_login("kotakneo", &wasm("kotakneo"), &settings, || m.state().issued.clone());

    let m = fivepaisa::FivePaisaMock::new();
    let seed = m.account("C4", "P4x9");
    let s = m.serve();
    let (key, user, enc) = {
        let st = m.state();
        (st.user_key.clone(), st.user_id.clone(), st.encryption_key.clone())
    };
    let settings = [
        ("api-root", s.url()),
        ("user-key", key),
        ("user-id", user),
        ("encryption-key", enc),
        ("client-code", "C4".into()),
        ("pin", "P4x9".into()),
        ("totp-secret", seed),
    ];
    check_totp_login("fivepaisa", &wasm("fivepaisa"), &settings, || m.state().issued.clone());

    let m = groww::GrowwMock::new();
    let seed = m.account("G5", "key-5");
    let s = m.serve();
    let settings = [("api-root", s.url()), ("api-key", "key-5".into()), ("totp-secret", seed)];
    check_totp_login("groww", &wasm("groww"), &settings, || m.state().issued.clone());
}

/// `refresh(none)` of `component` under wasmtime with `settings` gives a token the stand-in
/// issued; a wrong TOTP seed gives an error variant naming the setting, never a trap.
fn check_totp_login(
    name: &str,
    component: &str,
    settings: &[(&str, String)],
    issued: impl Fn() -> Vec<String>,
) {
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let wave = under_wasmtime(component, &pairs, &[], "refresh(none)");
    assert!(wave.starts_with("ok("), "{name}: {wave}");
    let token = wave_string(&wave, "access-token").unwrap_or_else(|| panic!("{name}: {wave}"));
    assert!(issued().contains(&token), "{name}: a token the broker did not issue");
    let bad: Vec<(&str, &str)> =
        pairs.iter().map(|(k, v)| if *k == "totp-secret" { (*k, "not base32!") } else { (*k, *v) }).collect();
    let wave = under_wasmtime(component, &bad, &[], "refresh(none)");
    assert!(wave.starts_with("err(config(") && wave.contains("totp-secret"), "{name}: {wave}");
}
