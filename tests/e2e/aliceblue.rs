//! The Alice Blue provider against the strict Alice Blue stand-in: the daily browser login from
//! the `.env` names Alice Blue users have (`ALICE_APP_CODE`, `ALICE_API_SECRET`), tokenhost's
//! cookie start page in place of the state Alice Blue does not send back, the checksum, the
//! 06:00 IST rule, forged, replayed, reused and expired callbacks, a wrong secret, the
//! TOTP-first rule, no check or logout endpoint, and broker faults.

use crate::support::*;
use std::time::Duration;
use tokenhost::time::now;
use tokenhost_sandbox::aliceblue::{AliceBlueMock, EXCHANGE_PATH, next_0600_ist};
use tokenhost_sandbox::browser::{Browser, Step};
use tokenhost_sandbox::totp::Fault;
use tokenhost_sandbox::{Server, nonce, request};

pub const ALICEBLUE: &str = env!("TOKENHOST_COMPONENT_ALICEBLUE");
const APP: &str = "AbApp7QxKm";
/// What tokenhost says when asked to check or log out.
const NO_CHECK: &str = "does not support checking a session at aliceblue";
const NO_LOGOUT: &str = "does not support logout at aliceblue";

struct Ab {
    w: World,
    mock: AliceBlueMock,
    server: Server,
    redirect: String,
    secret: String,
    /// What `tokenhost login` is pointed at: the component, or an account of tokenhost.toml.
    target: &'static str,
    /// Every secret a test used (wrong ones too), for the leak scan.
    secrets: Vec<String>,
}

/// A folder with an Alice Blue user's `.env` and `aliceblue.wasm` beside it.
fn ab_world(name: &str) -> Ab {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let redirect = loopback_redirect();
    let secret = format!("S{}", &nonce()[..12]);
    let mock = AliceBlueMock::new(APP, &secret, &redirect);
    let server = mock.serve();
    w.write(".env", &env_file(&secret, &redirect, "old-session-from-yesterday"));
    // Only tests point the provider at a stand-in; a user's .env never needs these.
    w.set_env("ALICEBLUE_API_ROOT", Some(&server.url()));
    w.set_env("ALICEBLUE_LOGIN_ROOT", Some(&server.url()));
    std::fs::copy(ALICEBLUE, w.dir.join("aliceblue.wasm")).unwrap();
    Ab { w, mock, server, redirect, secrets: vec![secret.clone()], secret, target: "aliceblue.wasm" }
}

fn env_file(secret: &str, redirect: &str, token: &str) -> String {
    format!(
        "# Alice Blue ANT API\nALICE_APP_CODE={APP}\nALICE_API_SECRET={secret}\nALICE_REDIRECT_URI={redirect}\n\
         ALICEBLUE_ACCESS_TOKEN={token}\n\nLOG_LEVEL=INFO\n"
    )
}

impl Ab {
    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("aliceblue").join("token.json")
    }

    fn stored(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.token_file()).unwrap()).unwrap()
    }

    /// The token file's bytes (empty when there is none).
    fn stored_bytes(&self) -> Vec<u8> {
        std::fs::read(self.token_file()).unwrap_or_default()
    }

    fn env_text(&self) -> String {
        std::fs::read_to_string(self.w.dir.join(".env")).unwrap()
    }

    fn exchanges(&self) -> usize {
        self.mock.state().exchanges
    }

    /// `tokenhost login TARGET --no-browser ARGS` with `browser` as the person's.
    fn login(
        &self,
        args: &[&str],
        browser: &Browser,
        at_callback: impl FnOnce(Step) -> Option<Step>,
    ) -> BrowserLogin {
        let mut argv = vec!["login", self.target, "--no-browser"];
        argv.extend_from_slice(args);
        self.w.browser_login(&argv, browser, &self.redirect, at_callback)
    }

    /// A login that must work; returns it and the session Alice Blue issued.
    fn good_login(&self, args: &[&str], browser: &Browser) -> (BrowserLogin, String) {
        let login = self.login(args, browser, Some);
        login.out.assert_code(0).assert_stdout_has("aliceblue: logged in, expires");
        let page = login.page.as_ref().unwrap();
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("You can close this tab"), "{}", page.body);
        let session = self.mock.state().issued.last().unwrap().clone();
        assert!(self.mock.state().live.contains(&session));
        (login, session)
    }

    fn assert_no_leak(&self) {
        let issued = self.mock.state().issued.clone();
        self.w.assert_not_leaked(&self.secrets, &issued);
    }
}

#[test]
fn the_browser_login_stores_the_session_until_0600_ist_and_rewrites_the_env_line() {
    let ab = ab_world("aliceblue-login");
    let w = &ab.w;
    let before = now();
    let (login, session) = ab.good_login(&["--sink", "dotenv=.env"], &Browser::new());
    // Alice Blue sends no state back: tokenhost showed its own start page, not Alice Blue's.
    let shown = login.shown.unwrap();
    let port = ab.redirect.trim_start_matches("http://127.0.0.1:").trim_end_matches("/callback");
    assert!(shown.starts_with(&format!("http://127.0.0.1:{port}/start/")), "{shown}");
    let callback = login.callback.unwrap();
    assert!(callback.param("state").is_none());
    assert_eq!(callback.param("userId").as_deref(), Some("AB1234"));
    assert_eq!(ab.exchanges(), 1);
    assert_eq!(ab.mock.state().seen, vec!["GET /".to_string(), format!("POST {EXCHANGE_PATH}")]);

    // Stored 0600 with the broker's user and the next 06:00 IST as expiry.
    let stored = ab.stored();
    assert_eq!(stored["access_token"], session.as_str());
    assert_eq!(stored["user_id"], "AB1234");
    assert_eq!(stored["expiry_source"], "cutoff");
    let expires = stored["expires_at"].as_i64().unwrap();
    assert!([next_0600_ist(before), next_0600_ist(now())].contains(&expires), "{stored}");
    #[cfg(unix)]
    assert_eq!(mode(&ab.token_file()), 0o600);
    // The .env: only the token line changed.
    assert_eq!(ab.env_text(), env_file(&ab.secret, &ab.redirect, &session));
    let got = w.run(&["get", "aliceblue"]);
    assert_eq!(got.assert_code(0).stdout.trim(), session);

    // Fresh until 06:00 IST: no broker call.
    w.run(&["run", "aliceblue.wasm", "--sink", "dotenv=.env"])
        .assert_code(0)
        .assert_stdout_has("aliceblue: fresh");
    // Alice Blue ends the session (its daily reset). There is no check and no logout for the
    // new API's session: said plainly, the token kept.
    ab.mock.expire_all();
    let kept = ab.stored_bytes();
    w.run(&["check", "aliceblue"]).assert_code(2).assert_stderr_has(NO_CHECK);
    w.run(&["logout", "aliceblue"]).assert_code(2).assert_stderr_has(NO_LOGOUT);
    // A new session needs the person again.
    w.run(&["run", "--force", "aliceblue.wasm"])
        .assert_code(5)
        .assert_stderr_has("aliceblue needs a person to log in once a day")
        .assert_stderr_has("tokenhost login");
    assert_eq!(ab.stored_bytes(), kept);
    assert_eq!(ab.mock.state().seen.len(), 2, "no call reached Alice Blue");
    ab.assert_no_leak();
}

#[test]
fn forged_and_replayed_callbacks_are_refused_before_any_exchange() {
    let ab = ab_world("aliceblue-forged");
    let first_browser = Browser::new();
    let (first, _) = ab.good_login(&["--sink", "dotenv=.env"], &first_browser);
    let first_callback = first.callback.unwrap();
    let (kept, env) = (ab.stored_bytes(), ab.env_text());

    // Another browser (cookies cleared) makes the callback: it did not open tokenhost's page.
    let browser = Browser::new();
    let forged = ab.login(&["--timeout", "2"], &browser, |step| {
        browser.clear_cookies();
        Some(step)
    });
    forged.assert_refused(None);
    // A state added to a callback of a broker that sends none is not this login's.
    let forged = ab.login(&["--timeout", "2"], &Browser::new(), |step| Some(step.with("state", "forged")));
    forged.assert_refused(None);

    // The first login's callback replayed, with the first browser's cookie, to a new login.
    let mut replayed = None;
    let replay = ab.login(&["--timeout", "2"], &Browser::new(), |_| {
        replayed = Some(first_browser.request(&first_callback));
        None
    });
    let replayed = replayed.unwrap();
    ab.w.note_shown(&replayed.body);
    replay.assert_refused(Some(&replayed));

    assert_eq!(ab.exchanges(), 1, "no refused callback reached Alice Blue");
    assert_eq!(ab.stored_bytes(), kept);
    assert_eq!(ab.env_text(), env);
    ab.assert_no_leak();
}

#[test]
fn a_used_or_expired_auth_code_is_refused_by_alice_blue() {
    let ab = ab_world("aliceblue-reuse");
    let browser = Browser::new();
    let (first, _) = ab.good_login(&[], &browser);
    let first_callback = first.callback.unwrap();
    let kept = ab.stored_bytes();

    // This login's own cookie, the first login's authCode: Alice Blue refuses it.
    let reused = ab.login(&[], &browser, |_| Some(first_callback.clone()));
    reused.assert_failed(3, "Invalid authCode: already used");
    reused.out.assert_stderr_has("rejected by the broker");
    assert_eq!(ab.exchanges(), 2);

    // An authCode past its life (the broker's session ended before the exchange).
    ab.mock.state().code_ttl_secs = 0;
    let expired = ab.login(&[], &browser, Some);
    expired.assert_failed(3, "Invalid authCode: expired");
    assert_eq!(ab.exchanges(), 3);
    // Spent now: the same authCode again is a used one.
    let again = ab.login(&[], &browser, |_| expired.callback.clone());
    again.assert_failed(3, "already used");

    assert_eq!(ab.stored_bytes(), kept);
    assert_eq!(ab.mock.state().live.len(), 1);
    ab.assert_no_leak();
}

#[test]
fn a_wrong_api_secret_makes_a_checksum_alice_blue_refuses() {
    let mut ab = ab_world("aliceblue-secret");
    let browser = Browser::new();
    ab.good_login(&[], &browser);
    let kept = ab.stored_bytes();
    let wrong = format!("W{}", &nonce()[..12]);
    ab.secrets.push(wrong.clone());
    ab.w.write(".env", &env_file(&wrong, &ab.redirect, "old-session-from-yesterday"));
    let login = ab.login(&[], &browser, Some);
    login.assert_failed(3, "Alice Blue says \"Invalid Input\"");
    login.out.assert_stderr_has("api-secret");
    // The checksum matched no authCode, so Alice Blue still holds this one unspent.
    assert_eq!(ab.mock.state().codes.len(), 1);
    assert_eq!(ab.exchanges(), 2);
    assert_eq!(ab.stored_bytes(), kept);
    ab.assert_no_leak();
}

#[test]
fn an_account_without_todays_totp_login_is_sent_to_log_in_with_totp_first() {
    let ab = ab_world("aliceblue-totp");
    let browser = Browser::new();
    ab.good_login(&[], &browser);
    let kept = ab.stored_bytes();
    ab.mock.state().totp_required = true;
    let login = ab.login(&[], &browser, Some);
    login.assert_failed(5, "Enable/Login with TOTP, to create the session.");
    login.out.assert_stderr_has("with TOTP today");
    assert_eq!(ab.stored_bytes(), kept);
    // Once the person has logged in with TOTP, the next login works.
    ab.mock.state().totp_required = false;
    ab.good_login(&[], &browser);
    ab.assert_no_leak();
}

#[test]
fn broker_faults_on_the_exchange_keep_the_previous_session() {
    let mut ab = ab_world("aliceblue-faults");
    ab.w.write(
        "tokenhost.toml",
        "[accounts.aliceblue]\nprovider = \"aliceblue.wasm\"\n[accounts.aliceblue.limits]\nread_timeout_secs = 1\n",
    );
    ab.target = "aliceblue";
    let browser = Browser::new();
    let (_, first) = ab.good_login(&[], &browser);
    let kept = ab.stored_bytes();
    let cases = [
        (Fault::ServerError, "Internal Server Error"),
        (Fault::RateLimited, "Too many requests"),
        (Fault::Garbage, "not Alice Blue's answer"),
        (Fault::HangUp, "try again later"),
        (Fault::Slow(Duration::from_secs(3)), "try again later"),
    ];
    for (fault, said) in cases {
        let login = ab.login(&[], &browser, |step| {
            ab.mock.fault(fault);
            Some(step)
        });
        login.assert_failed(4, said);
        assert_eq!(ab.stored_bytes(), kept, "{fault:?}");
    }
    assert_eq!(ab.stored()["access_token"], first.as_str());
    ab.assert_no_leak();
}

#[test]
fn a_wrong_app_code_stops_at_alice_blues_page() {
    let mut ab = ab_world("aliceblue-app-code");
    // The environment wins over the .env's ALICE_APP_CODE.
    ab.w.set_env("ALICEBLUE_APP_CODE", Some("NotOurApp"));
    let login = ab.login(&["--timeout", "2"], &Browser::new(), Some);
    login.out.assert_code(5).assert_stderr_has("no login arrived within 2s");
    let page = login.page.unwrap();
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Invalid App Code"), "{}", page.body);
    assert!(login.callback.is_none());
    assert_eq!(ab.exchanges(), 0);
    assert!(ab.stored_bytes().is_empty());
    ab.w.set_env("ALICEBLUE_APP_CODE", None);
    ab.assert_no_leak();
}

#[test]
fn the_stand_in_answers_as_alice_blue_does() {
    let ab = ab_world("aliceblue-stand-in");
    let root = ab.server.url();
    let exchange = format!("{root}{EXCHANGE_PATH}");
    let json = [("Content-Type", "application/json")];
    let emsg = |body: &str| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["stat"], "Not_ok", "{body}");
        v["emsg"].as_str().unwrap().to_string()
    };
    let post = |body: &str| request("POST", &exchange, &json, body.as_bytes());

    // The login page: a known app code redirects with a fresh authCode and the user id.
    let (s, _, b) = request("GET", &format!("{root}/?appcode=nope"), &[], b"");
    assert_eq!((s, emsg(&b).as_str()), (400, "Invalid App Code"));
    let (s, headers, _) = request("GET", &format!("{root}/?appcode={APP}"), &[], b"");
    assert_eq!(s, 302);
    let location = headers.iter().find(|(k, _)| k == "location").unwrap().1.clone();
    let step = Step::get(&location);
    assert!(location.starts_with(&format!("{}?authCode=", ab.redirect)), "{location}");
    let (code, user) = (step.param("authCode").unwrap(), step.param("userId").unwrap());

    // Wrong method, path, content type, body shape.
    assert_eq!(request("GET", &exchange, &[], b"").0, 405);
    assert_eq!(request("POST", &format!("{root}/open-api/od/v1/vendor/getUser"), &json, b"{}").0, 404);
    let good = tokenhost_sandbox::sha256_hex(format!("{user}{code}{}", ab.secret).as_bytes());
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (s, _, b) = request("POST", &exchange, &form, format!("checkSum={good}").as_bytes());
    assert_eq!((s, emsg(&b).as_str()), (415, "Content type not supported"));
    for bad in [
        String::new(),
        "{}".into(),
        format!(r#"{{"checkSum":"{}"}}"#, good.to_uppercase()),
        format!(r#"{{"checkSum":"{good}","userId":"{user}"}}"#),
        format!(r#"{{"checksum":"{good}"}}"#),
    ] {
        let (s, _, b) = post(&bad);
        assert_eq!((s, emsg(&b).as_str()), (400, "Invalid Input"), "{bad}");
    }
    assert_eq!(ab.exchanges(), 0, "none of those reached the checksum check");

    // A checksum with another secret, then the right one, then the right one again.
    let other = tokenhost_sandbox::sha256_hex(format!("{user}{code}other-secret").as_bytes());
    let (s, _, b) = post(&format!(r#"{{"checkSum":"{other}"}}"#));
    assert_eq!((s, emsg(&b).as_str()), (200, "Invalid Input"));
    let (s, _, b) = post(&format!(r#"{{"checkSum":"{good}"}}"#));
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(s, 200, "{b}");
    assert_eq!((v["stat"].as_str(), v["clientId"].as_str()), (Some("Ok"), Some("AB1234")), "{b}");
    assert!(ab.mock.state().live.contains(v["userSession"].as_str().unwrap()));
    let (s, _, b) = post(&format!(r#"{{"checkSum":"{good}"}}"#));
    assert_eq!((s, emsg(&b).as_str()), (200, "Invalid authCode: already used"));
    ab.mock.expire_all();
    assert!(ab.mock.state().live.is_empty());

    // Faults in Alice Blue's envelope.
    ab.mock.fault(Fault::RateLimited);
    let (s, _, b) = post("{}");
    assert_eq!((s, emsg(&b).as_str()), (429, "Too many requests"));
    ab.mock.fault(Fault::ServerError);
    let (s, _, b) = post("{}");
    assert_eq!((s, emsg(&b).as_str()), (500, "Internal Server Error"));
    assert_eq!(ab.exchanges(), 3, "the faults answered before any check");
}
