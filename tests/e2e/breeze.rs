//! The ICICI Breeze provider against the strict Breeze stand-in: the daily browser login whose
//! session key comes back as a form POST (no `state`: tokenhost's start page and cookie tie it
//! to the login), the session token kept until midnight IST, the signed check that shows a
//! wrong secret, forged, replayed, reused and expired answers, and broker faults.
//!
//! The session keys travel in ICICI's own page (its self-posting form) by design; they are
//! scanned here, apart, in everything the CLI printed, every page tokenhost answered and every
//! file of the state directory.

use crate::support::*;
use std::cell::RefCell;
use std::time::Duration;
use tokenhost::time::{iso, now};
use tokenhost_sandbox::breeze::{BreezeMock, next_midnight_ist};
use tokenhost_sandbox::browser::{Browser, Page, Step};
use tokenhost_sandbox::totp::Fault;
use tokenhost_sandbox::{Server, nonce};

pub const BREEZE: &str = env!("TOKENHOST_COMPONENT_BREEZE");
/// An app key as ICICI issues them: characters that must be percent-encoded in the login URL.
const KEY: &str = "8g7^N0=29R#47I+83&1B/8f";
const USER: &str = "TRADER42";

struct Bz {
    w: World,
    mock: BreezeMock,
    server: Server,
    redirect: String,
    /// Every secret a test used (wrong ones too), for the leak scans.
    secrets: Vec<String>,
    /// What the CLI printed and the pages tokenhost answered, for the session-key scan.
    said: RefCell<Vec<String>>,
}

fn env_file(secret: &str, redirect: &str, token: &str) -> String {
    format!(
        "# ICICI Breeze, as the SDK examples name them\nBREEZE_API_KEY=\"{KEY}\"\nBREEZE_SECRET_KEY={secret}\n\
         BREEZE_REDIRECT_URI={redirect}\nBREEZE_ACCESS_TOKEN={token}\n\n# other\nLOG_LEVEL=INFO\n"
    )
}

/// A folder with the user's `.env` (their existing names) and `breeze.wasm` beside it; the
/// stand-in knows the app with `secret` (the `.env` holds `env_secret`).
fn breeze_world(name: &str, secret: &str, env_secret: &str) -> Bz {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let redirect = loopback_redirect();
    let mock = BreezeMock::new(KEY, secret, &redirect);
    let server = mock.serve();
    w.write(".env", &env_file(env_secret, &redirect, "yesterdays-session"));
    // Only tests point the provider at a stand-in; a user's .env never needs this.
    w.set_env("BREEZE_API_ROOT", Some(&server.url()));
    std::fs::copy(BREEZE, w.dir.join("breeze.wasm")).unwrap();
    let mut secrets = vec![secret.to_string()];
    if env_secret != secret {
        secrets.push(env_secret.to_string());
    }
    Bz { w, mock, server, redirect, secrets, said: RefCell::new(Vec::new()) }
}

fn random_secret() -> String {
    format!("S{}", &nonce()[..12])
}

impl Bz {
    /// `tokenhost login TARGET --no-browser ARGS` with `browser` as the person's; `at_callback`
    /// picks the step to make instead of ICICI's POST to the redirect URI.
    fn login(
        &self,
        target: &str,
        args: &[&str],
        browser: &Browser,
        at_callback: impl FnOnce(Step) -> Option<Step>,
    ) -> BrowserLogin {
        let mut argv = vec!["login", target, "--no-browser"];
        argv.extend_from_slice(args);
        let made = std::cell::Cell::new(false);
        let login = self.w.browser_login(&argv, browser, &self.redirect, |step| {
            let step = at_callback(step);
            made.set(step.is_some());
            step
        });
        let mut said = self.said.borrow_mut();
        said.extend([login.out.stdout.clone(), login.out.stderr.clone()]);
        // Without a callback the last page is ICICI's own, which carries the key on purpose.
        if made.get() {
            said.extend(login.page.iter().map(|p| p.body.clone()));
        }
        login
    }

    /// A login that must work; returns the session token ICICI issued.
    fn good_login(&self, target: &str, args: &[&str]) -> String {
        let login = self.login(target, args, &Browser::new(), Some);
        login.out.assert_code(0).assert_stdout_has("breeze: logged in");
        let page = login.page.unwrap();
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("You can close this tab"), "{}", page.body);
        self.mock.tokens().last().unwrap().clone()
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = self.w.run(args);
        self.said.borrow_mut().extend([out.stdout.clone(), out.stderr.clone()]);
        out
    }

    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("breeze").join("token.json")
    }

    fn stored_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.token_file()).ok()
    }

    fn stored(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stored_bytes().unwrap()).unwrap()
    }

    fn exchanges(&self) -> usize {
        self.mock.state().exchanges
    }

    /// Secrets and session tokens through the shared scan; session keys here.
    fn assert_no_leak(&self) {
        self.w.assert_not_leaked(&self.secrets, &self.mock.tokens());
        let keys: Vec<String> = self.mock.state().sessions.keys().cloned().collect();
        assert!(!keys.is_empty());
        let said = self.said.borrow().join("\n");
        let files: Vec<(std::path::PathBuf, String)> = files_under(&self.w.state)
            .into_iter()
            .map(|f| {
                let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()).into_owned();
                (f, text)
            })
            .collect();
        for key in &keys {
            assert!(!said.contains(key.as_str()), "a session key was printed or shown:\n{said}");
            for (file, text) in &files {
                assert!(!text.contains(key.as_str()), "a session key is in {}", file.display());
            }
        }
    }
}

/// The login's expiry by ICICI's rule: 24 h after the issue, or the midnight IST before that.
fn breeze_expiry(issued: i64) -> i64 {
    (issued + 86_400).min(next_midnight_ist(issued))
}

#[test]
fn browser_login_keeps_the_session_token_until_midnight_ist_and_rewrites_the_env_line() {
    let secret = random_secret();
    let bz = breeze_world("breeze-login", &secret, &secret);
    let before = now();
    let login = bz.login("breeze.wasm", &["--sink", "dotenv=.env"], &Browser::new(), Some);
    let after = now();
    login.out.assert_code(0).assert_stdout_has("breeze: logged in, expires");
    let page = login.page.unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("You can close this tab"), "{}", page.body);
    // ICICI sends no state back: tokenhost showed its own start page, and the key came back
    // as the form field API_Session of a POST to the registered redirect URI.
    assert!(login.shown.as_deref().is_some_and(|s| s.contains("/start/")), "{:?}", login.shown);
    let callback = login.callback.unwrap();
    assert_eq!((callback.method.as_str(), callback.url.as_str()), ("POST", bz.redirect.as_str()));
    let key = callback.param("API_Session").unwrap();
    assert!(bz.mock.state().seen.contains(&"GET /apiuser/login".to_string()));
    assert_eq!(bz.exchanges(), 1);

    // Stored: the session token (base64 of user:key, what later calls send), the user, and
    // the earlier of issue + 24 h and the next midnight IST.
    let token = bz.mock.tokens()[0].clone();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD.decode(&token).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), format!("{USER}:{key}"));
    let stored = bz.stored();
    assert_eq!(stored["access_token"], token.as_str());
    assert_eq!(stored["user_id"], USER);
    let issued = stored["issued_at"].as_i64().unwrap();
    assert!((before..=after).contains(&issued), "{stored}");
    let expires = stored["expires_at"].as_i64().unwrap();
    assert_eq!(expires, breeze_expiry(issued), "issued {} stored {}", iso(issued), iso(expires));
    let source = if next_midnight_ist(issued) < issued + 86_400 { "cutoff" } else { "provider" };
    assert_eq!(stored["expiry_source"], source);
    #[cfg(unix)]
    assert_eq!(mode(&bz.token_file()), 0o600);
    // The .env: only the token line changed.
    let env = std::fs::read_to_string(bz.w.dir.join(".env")).unwrap();
    assert_eq!(env, env_file(&secret, &bz.redirect, &token));

    // The signed check passes; a run finds the token fresh without calling ICICI.
    bz.run(&["check", "breeze"]).assert_code(0).assert_stdout_has("breeze: valid");
    assert_eq!(bz.mock.state().checks, 1);
    let calls = bz.mock.state().seen.len();
    bz.run(&["run", "breeze.wasm"]).assert_code(0).assert_stdout_has("breeze: fresh");
    assert_eq!(bz.mock.state().seen.len(), calls);
    // No logout endpoint: said plainly, the token kept.
    bz.run(&["logout", "breeze"]).assert_code(2).assert_stderr_has("logout at breeze");
    assert_eq!(bz.stored()["access_token"], token.as_str());
    assert!(bz.mock.state().live.contains(&token));
    bz.assert_no_leak();
}

#[test]
fn a_forged_or_replayed_callback_is_refused_and_changes_nothing() {
    let secret = random_secret();
    let bz = breeze_world("breeze-forged", &secret, &secret);
    let first_browser = Browser::new();
    let first = bz.login("breeze.wasm", &[], &first_browser, Some);
    first.out.assert_code(0);
    let first_step = first.callback.unwrap();
    let good = bz.stored_bytes().unwrap();

    // Another browser (no cookie of tokenhost's start page) posts a key: refused.
    let browser = Browser::new();
    let forged = bz.login("breeze.wasm", &["--timeout", "2"], &browser, |step| {
        browser.clear_cookies();
        Some(step)
    });
    forged.out.assert_code(5).assert_stderr_has("no login arrived within 2s");
    let page = forged.page.unwrap();
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("Login refused"), "{}", page.body);
    assert_eq!(bz.exchanges(), 1);
    assert_eq!(bz.stored_bytes().unwrap(), good);

    // The first login's POST made again, cookie and all, during a second login: taken once.
    let replayed: RefCell<Option<Page>> = RefCell::new(None);
    let login = bz.login("breeze.wasm", &["--timeout", "2"], &Browser::new(), |_| {
        *replayed.borrow_mut() = Some(first_browser.request(&first_step));
        None
    });
    login.out.assert_code(5).assert_stderr_has("no login arrived within 2s");
    let page = replayed.into_inner().unwrap();
    bz.said.borrow_mut().push(page.body.clone());
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("Login refused"), "{}", page.body);
    assert_eq!(bz.exchanges(), 1);
    assert_eq!(bz.stored_bytes().unwrap(), good);
    bz.assert_no_leak();
}

#[test]
fn a_used_or_expired_session_key_gets_icicis_refusal() {
    let secret = random_secret();
    let bz = breeze_world("breeze-reuse", &secret, &secret);
    let browser = Browser::new();
    let first = bz.login("breeze.wasm", &[], &browser, Some);
    first.out.assert_code(0);
    let used = first.callback.unwrap();
    let good = bz.stored_bytes().unwrap();

    // The second login's own browser and cookie, carrying the first login's key.
    let login = bz.login("breeze.wasm", &[], &browser, |step| {
        assert_ne!(step.param("API_Session"), used.param("API_Session"));
        Some(used.clone())
    });
    login.out.assert_code(3).assert_stderr_has("Resource not available.");
    let page = login.page.unwrap();
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("Login failed"), "{}", page.body);
    assert_eq!(bz.exchanges(), 2);
    assert_eq!(bz.stored_bytes().unwrap(), good);

    // A key presented after its life.
    bz.mock.state().code_ttl_secs = 0;
    let login = bz.login("breeze.wasm", &[], &browser, Some);
    login.out.assert_code(3).assert_stderr_has("Resource not available.").assert_stderr_has("log in again");
    assert_eq!(bz.exchanges(), 3);
    assert_eq!(bz.stored_bytes().unwrap(), good);
    assert_eq!(bz.mock.tokens().len(), 1);
    bz.assert_no_leak();
}

#[test]
fn a_wrong_api_secret_shows_at_the_signed_check() {
    let (secret, wrong) = (random_secret(), random_secret());
    let bz = breeze_world("breeze-checksum", &secret, &wrong);
    // The exchange does not use the secret: the login works.
    bz.good_login("breeze.wasm", &[]);
    let good = bz.stored_bytes().unwrap();
    bz.run(&["check", "breeze"])
        .assert_code(3)
        .assert_stdout_has("Invalid Checksum")
        .assert_stdout_has("api-secret");
    assert_eq!(bz.mock.state().checks, 1);
    assert_eq!(bz.stored_bytes().unwrap(), good);
    bz.assert_no_leak();
}

#[test]
fn an_ended_session_is_invalid_and_the_next_run_asks_for_a_person() {
    let secret = random_secret();
    let bz = breeze_world("breeze-expired", &secret, &secret);
    bz.good_login("breeze.wasm", &[]);
    let good = bz.stored_bytes().unwrap();
    bz.run(&["check", "breeze"]).assert_code(0);
    // Midnight IST came.
    bz.mock.expire_all();
    bz.run(&["check", "breeze"])
        .assert_code(3)
        .assert_stdout_has("breeze: invalid")
        .assert_stdout_has("Resource not available.");
    bz.run(&["run", "breeze.wasm"])
        .assert_code(5)
        .assert_stderr_has("breeze needs a person to log in once a day")
        .assert_stderr_has("tokenhost login");
    assert_eq!(bz.stored_bytes().unwrap(), good);
    assert_eq!(bz.exchanges(), 1);
    bz.assert_no_leak();
}

#[test]
fn broker_faults_on_the_exchange_keep_the_previous_token() {
    let secret = random_secret();
    let bz = breeze_world("breeze-faults", &secret, &secret);
    bz.w.write(
        "tokenhost.toml",
        "[accounts.breeze]\nprovider = \"breeze.wasm\"\n[accounts.breeze.limits]\nread_timeout_secs = 1\n",
    );
    bz.good_login("breeze", &[]);
    let good = bz.stored_bytes().unwrap();
    let cases = [
        (Fault::ServerError, "Breeze answered HTTP 500 (Internal Server Error)"),
        (Fault::RateLimited, "Breeze answered HTTP 429 (Too many requests)"),
        (Fault::Garbage, "not Breeze's JSON"),
        (Fault::HangUp, "try again later"),
        (Fault::Slow(Duration::from_secs(3)), "try again later"),
    ];
    for (fault, message) in cases {
        let login = bz.login("breeze", &[], &Browser::new(), |step| {
            bz.mock.state().faults = vec![fault];
            Some(step)
        });
        login.out.assert_code(4).assert_stderr_has(message);
        assert_eq!(login.page.unwrap().status, 400, "{fault:?}");
        assert_eq!(bz.stored_bytes().unwrap(), good, "{fault:?}");
    }
    // A check that meets a 5xx is not a verdict on the token.
    bz.mock.state().faults = vec![Fault::ServerError];
    bz.run(&["check", "breeze"]).assert_code(4);
    bz.run(&["check", "breeze"]).assert_code(0);
    bz.assert_no_leak();
}

#[test]
fn an_app_key_icici_does_not_know_is_named() {
    let secret = random_secret();
    let mut bz = breeze_world("breeze-key", &secret, &secret);
    // ICICI's login page refuses the key: no answer ever comes back.
    bz.w.set_env("BREEZE_API_KEY", Some("not-the-apps-key"));
    let login = bz.login("breeze.wasm", &["--timeout", "2"], &Browser::new(), Some);
    login.out.assert_code(5).assert_stderr_has("no login arrived within 2s");
    assert!(login.callback.is_none());
    let page = login.page.unwrap();
    assert!(page.body.contains("Public Key does not exist."), "{}", page.body);
    bz.w.set_env("BREEZE_API_KEY", None);
    // The app's key replaced at ICICI while the person logged in: the exchange names it.
    let login = bz.login("breeze.wasm", &[], &Browser::new(), |step| {
        bz.mock.state().key = format!("K{}", nonce());
        Some(step)
    });
    login
        .out
        .assert_code(2)
        .assert_stderr_has("setting `api-key`")
        .assert_stderr_has("Public Key does not exist.");
    assert!(bz.stored_bytes().is_none());
    // ICICI's other names for the settings: ICICI_API_KEY, BREEZE_API_SECRET.
    bz.mock.state().key = KEY.into();
    let env = env_file(&secret, &bz.redirect, "x").replace("BREEZE_API_KEY=", "ICICI_API_KEY=");
    bz.w.write(".env", &env.replace("BREEZE_SECRET_KEY=", "BREEZE_API_SECRET="));
    bz.good_login("breeze.wasm", &[]);
    bz.run(&["check", "breeze"]).assert_code(0);
    bz.assert_no_leak();
}

#[test]
fn the_stand_in_answers_malformed_requests_as_breeze_does() {
    let secret = random_secret();
    let bz = breeze_world("breeze-mock", &secret, &secret);
    let root = bz.server.url();
    let error_of = |status: u16, body: &str| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["Success"].is_null(), "{body}");
        (status, v["Error"].as_str().unwrap().to_string())
    };
    let details = format!("{root}/breezeapi/api/v1/customerdetails");
    let json = [("Content-Type", "application/json")];
    let call = |method: &str, url: &str, headers: &[(&str, &str)], body: &str| {
        let (s, _, b) = tokenhost_sandbox::request(method, url, headers, body.as_bytes());
        error_of(s, &b)
    };
    let body = format!(r#"{{"SessionToken":"12345678","AppKey":"{KEY}"}}"#);
    assert_eq!(call("POST", &details, &json, &body), (405, "Method not allowed".into()));
    assert_eq!(call("GET", &details, &json, ""), (200, "Request Object is Null".into()));
    assert_eq!(call("GET", &details, &[], &body), (200, "Request Object is Null".into()));
    assert_eq!(call("GET", &details, &json, &body), (200, "Invalid session.".into()));
    let other = body.replace(KEY, "other");
    assert_eq!(call("GET", &details, &json, &other), (200, "Public Key does not exist.".into()));
    let empty = body.replace("12345678", "");
    assert_eq!(call("GET", &details, &json, &empty), (200, "API Session cannot be empty".into()));
    assert_eq!(call("GET", &format!("{root}/breezeapi/api/v1/fund"), &json, "{}").0, 404);
    let page = call("GET", &format!("{root}/apiuser/login?api_key=8g7%5EN0%3D29R"), &[], "");
    assert_eq!(page, (200, "Public Key does not exist.".into()));
    // The signed call: unknown session, then a stale timestamp and a bad checksum.
    bz.good_login("breeze.wasm", &[]);
    let token = bz.mock.tokens()[0].clone();
    let funds = format!("{root}/breezeapi/api/v1/funds");
    let sign = |stamp: &str, secret: &str| {
        format!("token {}", tokenhost_sandbox::sha256_hex(format!("{stamp}{{}}{secret}").as_bytes()))
    };
    let stamp = |t: i64| format!("{}Z", tokenhost_sandbox::local_datetime(t, 0));
    let signed = |stamp: &str, checksum: &str, token: &str| {
        let headers = [
            ("Content-Type", "application/json"),
            ("X-Checksum", checksum),
            ("X-Timestamp", stamp),
            ("X-AppKey", KEY),
            ("X-SessionToken", token),
        ];
        let (s, _, b) = tokenhost_sandbox::request("GET", &funds, &headers, b"{}");
        (s, serde_json::from_str::<serde_json::Value>(&b).unwrap())
    };
    let (now_stamp, old_stamp) = (stamp(now()), stamp(now() - 300));
    let (s, ok) = signed(&now_stamp, &sign(&now_stamp, &secret), &token);
    assert_eq!((s, ok["Status"].as_i64()), (200, Some(200)), "{ok}");
    let (_, v) = signed(&now_stamp, &sign(&now_stamp, &secret), "dW5rbm93bjox");
    assert_eq!(v["Error"], "Invalid session.");
    let (_, v) = signed(&old_stamp, &sign(&old_stamp, &secret), &token);
    assert_eq!(v["Error"], "Request timestamp is out of range");
    let (_, v) = signed(&now_stamp, &sign(&now_stamp, "wrong"), &token);
    assert_eq!(v["Error"], "Invalid Checksum");
    bz.mock.state().faults = vec![Fault::RateLimited];
    assert_eq!(call("GET", &details, &json, &body), (429, "Too many requests".into()));
    bz.assert_no_leak();
}
