//! The Zerodha (Kite Connect v3) provider against the strict Kite stand-in: the daily browser
//! login driven as a browser would, from the `.env` names Kite scripts use, the 06:00 IST rule,
//! forged, replayed and reused callbacks, Kite's own refusals, ended sessions and faults.

use crate::support::*;
use std::time::Duration;
use tokenhost_sandbox::browser::{Browser, Step};
use tokenhost_sandbox::totp::Fault;
use tokenhost_sandbox::zerodha::ZerodhaMock;
use tokenhost_sandbox::{Server, nonce};

pub const ZERODHA: &str = env!("TOKENHOST_COMPONENT_ZERODHA");

struct Kite {
    w: World,
    mock: ZerodhaMock,
    server: Server,
    key: String,
    redirect: String,
    /// What `login` names: the component file, or the account of a tokenhost.toml.
    target: &'static str,
    /// Every secret a test used (wrong ones too), for the leak scan.
    secrets: Vec<String>,
}

/// The next 06:00 IST strictly after `t`, stated here independently of the host and stand-in.
fn next_0600_ist(t: i64) -> i64 {
    const IST: i64 = 5 * 3600 + 1800;
    let six_today = (t + IST).div_euclid(86_400) * 86_400 + 6 * 3600 - IST;
    if t < six_today { six_today } else { six_today + 86_400 }
}

fn env_text(key: &str, secret: &str, redirect: &str) -> String {
    format!(
        "# Kite Connect app\nKITE_API_KEY={key}\nKITE_API_SECRET={secret}\nKITE_REDIRECT_URL={redirect}\n\
         ZERODHA_ACCESS_TOKEN=yesterdays-token\n\nLOG_LEVEL=INFO\n"
    )
}

/// A folder like a Kite script's: its `.env`, and `zerodha.wasm` beside it.
fn kite_world(name: &str) -> Kite {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let redirect = loopback_redirect();
    let key = format!("kite{}", &nonce()[..12]);
    let secret = format!("S{}", &nonce()[..24]);
    let mock = ZerodhaMock::new(&key, &secret, &redirect);
    let server = mock.serve();
    w.write(".env", &env_text(&key, &secret, &redirect));
    // Only tests point the provider at a stand-in; a user's .env never needs these.
    w.set_env("ZERODHA_API_ROOT", Some(&server.url()));
    w.set_env("ZERODHA_LOGIN_ROOT", Some(&server.url()));
    std::fs::copy(ZERODHA, w.dir.join("zerodha.wasm")).unwrap();
    Kite { w, mock, server, key, redirect, target: "zerodha.wasm", secrets: vec![secret] }
}

impl Kite {
    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("zerodha").join("token.json")
    }

    fn stored_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.token_file()).ok()
    }

    fn stored(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stored_bytes().unwrap()).unwrap()
    }

    fn env_file(&self) -> String {
        std::fs::read_to_string(self.w.dir.join(".env")).unwrap()
    }

    fn exchanges(&self) -> usize {
        self.mock.state().exchanges
    }

    /// `tokenhost login TARGET --no-browser ARGS` with a fresh browser; `at_callback` picks the
    /// step made instead of the one that reaches tokenhost.
    fn login(&self, args: &[&str], at_callback: impl FnOnce(Step) -> Option<Step>) -> BrowserLogin {
        let mut argv = vec!["login", self.target, "--no-browser"];
        argv.extend_from_slice(args);
        self.w.browser_login(&argv, &Browser::new(), &self.redirect, at_callback)
    }

    /// A login that must work; returns it and the access token Kite issued.
    fn good_login(&self, args: &[&str]) -> (BrowserLogin, String) {
        let login = self.login(args, Some);
        login.out.assert_code(0).assert_stdout_has("zerodha: logged in, expires");
        let page = login.page.as_ref().unwrap();
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("You can close this tab"), "{}", page.body);
        let live: Vec<String> = self.mock.state().live.iter().cloned().collect();
        assert_eq!(live.len(), 1);
        (login, live[0].clone())
    }

    /// A login that tokenhost must refuse at its listener: the browser gets "Login refused",
    /// no answer arrives in time, Kite sees no exchange and nothing stored changes.
    fn refused_login(&self, at_callback: impl FnOnce(Step) -> Option<Step>) {
        let (exchanges, stored, env) = (self.exchanges(), self.stored_bytes(), self.env_file());
        let login = self.login(&["--timeout", "2", "--sink", "dotenv=.env"], at_callback);
        login.out.assert_code(5).assert_stderr_has("no login arrived within 2s");
        let page = login.page.unwrap();
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.body.contains("Login refused"), "{}", page.body);
        assert_eq!(self.exchanges(), exchanges);
        assert_eq!(self.stored_bytes(), stored);
        assert_eq!(self.env_file(), env);
    }

    /// A login Kite refuses at the exchange: exit 3 with its message, nothing stored changed.
    fn rejected_login(&self, message: &str, at_callback: impl FnOnce(Step) -> Option<Step>) {
        let (stored, env) = (self.stored_bytes(), self.env_file());
        let login = self.login(&["--sink", "dotenv=.env"], at_callback);
        login.out.assert_code(3).assert_stderr_has(message);
        let page = login.page.unwrap();
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.body.contains("Login failed"), "{}", page.body);
        assert_eq!(self.stored_bytes(), stored);
        assert_eq!(self.env_file(), env);
    }

    fn assert_no_leak(&self) {
        let issued = self.mock.state().issued.clone();
        self.w.assert_not_leaked(&self.secrets, &issued);
    }
}

#[test]
fn browser_login_stores_the_token_until_0600_ist_and_logs_out_at_kite() {
    let k = kite_world("zerodha-login");
    let before = tokenhost::time::now();
    let (login, token) = k.good_login(&["--sink", "dotenv=.env"]);
    let after = tokenhost::time::now();

    // Kite's login page, with this login's state riding redirect_params.
    let shown = login.shown.unwrap();
    let page = format!("{}/connect/login?v=3&api_key={}&redirect_params=state%3D", k.server.url(), k.key);
    assert!(shown.starts_with(&page), "{shown}");
    let state = shown.rsplit("state%3D").next().unwrap().to_string();
    let back = login.callback.unwrap();
    assert!(back.url.starts_with(&format!("{}?action=login&type=login&status=success", k.redirect)));
    assert_eq!(back.param("state"), Some(state));
    let request_token = back.param("request_token").unwrap();
    assert!(request_token.len() == 32 && request_token.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(k.exchanges(), 1);

    // Stored 0600, with Kite's user, the public token as a secret extra, and the expiry the
    // 06:00 IST after Kite's login_time.
    let stored = k.stored();
    assert_eq!(stored["access_token"], token.as_str());
    assert_eq!(stored["user_id"], "ZX1234");
    assert_eq!(stored["extras"][0]["name"], "public-token");
    assert_eq!(stored["extras"][0]["secret"], true);
    let issued = stored["issued_at"].as_i64().unwrap();
    assert!((before..=after).contains(&issued), "{stored}");
    assert_eq!(stored["expires_at"].as_i64(), Some(next_0600_ist(issued)), "{stored}");
    assert_eq!(stored["expiry_source"], "cutoff");
    #[cfg(unix)]
    assert_eq!(mode(&k.token_file()), 0o600);
    // The .env: only the token line changed.
    let secret = &k.secrets[0];
    assert_eq!(k.env_file(), env_text(&k.key, secret, &k.redirect).replace("yesterdays-token", &token));

    k.w.run(&["check", "zerodha"]).assert_code(0).assert_stdout_has("zerodha: valid");
    k.w.run(&["run", "zerodha.wasm"]).assert_code(0).assert_stdout_has("zerodha: fresh");
    k.w.run(&["logout", "zerodha"]).assert_code(0).assert_stdout_has("zerodha: logged out");
    assert!(k.mock.state().live.is_empty());
    assert_eq!(k.mock.state().logouts, 1);
    assert!(k.stored_bytes().is_none());
    assert!(k.mock.state().seen.contains(&"DELETE /session/token".to_string()));
    k.assert_no_leak();
}

#[test]
fn forged_and_replayed_callbacks_are_refused_before_any_exchange() {
    let k = kite_world("zerodha-forged");
    let (first, _) = k.good_login(&[]);
    let first_callback = first.callback.unwrap();
    // The state changed on the way back.
    k.refused_login(|step| Some(step.with("state", "forged")));
    // No state at all.
    k.refused_login(|step| {
        let url = step.url.split("&state=").next().unwrap().to_string();
        Some(Step::get(&url))
    });
    // The first login's callback, made again to a new login.
    k.refused_login(|_| Some(first_callback));
    assert_eq!(k.exchanges(), 1);
    k.assert_no_leak();
}

#[test]
fn reused_and_expired_request_tokens_get_kites_refusal() {
    let k = kite_world("zerodha-reused");
    let (first, token) = k.good_login(&["--sink", "dotenv=.env"]);
    let used = first.callback.unwrap().param("request_token").unwrap();
    // This login's own state, the first login's request token.
    k.rejected_login("Token is invalid or has expired. (TokenException, HTTP 403)", |step| {
        Some(step.with("request_token", &used))
    });
    assert_eq!(k.exchanges(), 2);
    // A request token older than its life.
    k.mock.state().code_ttl_secs = 0;
    k.rejected_login("Token is invalid or has expired.", Some);
    assert_eq!(k.exchanges(), 3);
    assert_eq!(k.mock.state().live.iter().cloned().collect::<Vec<_>>(), vec![token]);
    k.assert_no_leak();
}

#[test]
fn a_wrong_api_secret_is_kites_invalid_checksum() {
    let mut k = kite_world("zerodha-checksum");
    k.good_login(&[]);
    let wrong = format!("W{}", &nonce()[..24]);
    let good_env = k.env_file();
    k.w.write(".env", &good_env.replace(&k.secrets[0].clone(), &wrong));
    k.secrets.push(wrong);
    k.rejected_login("Invalid `checksum`. (TokenException, HTTP 403)", Some);
    assert_eq!(k.exchanges(), 2);
    k.assert_no_leak();
}

#[test]
fn an_ended_session_needs_a_person_and_keeps_the_stored_file() {
    let k = kite_world("zerodha-expired");
    // Nothing stored yet: a run cannot log in by itself.
    k.w.run(&["run", "zerodha.wasm"]).assert_code(5).assert_stderr_has("run `tokenhost login`");
    k.good_login(&[]);
    let stored = k.stored_bytes();
    // 06:00 IST came (or a master logout from Kite Web).
    k.mock.expire_all();
    k.w.run(&["check", "zerodha"])
        .assert_code(3)
        .assert_stdout_has("zerodha: invalid")
        .assert_stdout_has("Incorrect `api_key` or `access_token`. (TokenException, HTTP 403)");
    k.w.run(&["run", "zerodha.wasm"])
        .assert_code(5)
        .assert_stderr_has("zerodha needs a person to log in once a day");
    assert_eq!(k.stored_bytes(), stored);
    assert_eq!(k.exchanges(), 1);
    k.assert_no_leak();
}

#[test]
fn exchange_faults_are_transient_and_keep_the_previous_token() {
    let mut k = kite_world("zerodha-faults");
    k.w.write(
        "tokenhost.toml",
        "[accounts.zerodha]\nprovider = \"zerodha.wasm\"\n[accounts.zerodha.limits]\nread_timeout_secs = 1\n",
    );
    k.target = "zerodha";
    let (_, token) = k.good_login(&["--sink", "dotenv=.env"]);
    let (stored, env) = (k.stored_bytes(), k.env_file());
    // The profile check: a 5xx says nothing about the token.
    k.mock.state().faults = vec![Fault::ServerError];
    k.w.run(&["check", "zerodha"]).assert_code(4);
    k.w.run(&["check", "zerodha"]).assert_code(0);
    let cases = [
        (Fault::ServerError, "Internal server error (GeneralException, HTTP 500)"),
        (Fault::RateLimited, "Too many requests (NetworkException, HTTP 429)"),
        (Fault::Garbage, "could not be understood"),
        (Fault::HangUp, "try again later"),
        (Fault::Slow(Duration::from_secs(3)), "try again later"),
    ];
    for (fault, message) in cases {
        let login = k.login(&["--sink", "dotenv=.env"], |step| {
            k.mock.state().faults = vec![fault];
            Some(step)
        });
        login.out.assert_code(4).assert_stderr_has(message);
        assert_eq!(login.page.unwrap().status, 400, "{fault:?}");
        assert_eq!(k.stored_bytes(), stored, "{fault:?}");
        assert_eq!(k.env_file(), env, "{fault:?}");
    }
    // Only the slow exchange went through at Kite, after tokenhost had given up: its token
    // (never seen) ended the stored one there, and the check says so.
    let live: Vec<String> = k.mock.state().live.iter().cloned().collect();
    assert!(live.len() == 1 && live[0] != token);
    k.w.run(&["check", "zerodha"]).assert_code(3).assert_stdout_has("Incorrect `api_key` or `access_token`.");
    k.assert_no_leak();
}

#[test]
fn a_second_login_ends_the_first_token_at_kite() {
    let k = kite_world("zerodha-second");
    let (_, first) = k.good_login(&[]);
    let first_file = k.stored_bytes().unwrap();
    let (_, second) = k.good_login(&[]);
    assert_ne!(first, second);
    assert_eq!(k.stored()["access_token"], second.as_str());
    // The first token, put back by hand, is dead at Kite; logging it out still forgets it.
    std::fs::write(k.token_file(), &first_file).unwrap();
    k.w.run(&["check", "zerodha"]).assert_code(3).assert_stdout_has("Incorrect `api_key` or `access_token`.");
    k.w.run(&["logout", "zerodha"]).assert_code(0);
    assert!(k.stored_bytes().is_none());
    assert_eq!(k.mock.state().live.iter().cloned().collect::<Vec<_>>(), vec![second]);
    k.assert_no_leak();
}

#[test]
fn a_cancelled_login_and_an_unknown_api_key_store_nothing() {
    let k = kite_world("zerodha-cancel");
    // The person cancels at Kite: refused without an exchange.
    k.mock.state().deny = true;
    k.rejected_login("the login was not completed at Kite (status cancelled)", Some);
    assert_eq!(k.exchanges(), 0);
    k.mock.state().deny = false;
    // Kite no longer knows the key by the exchange (the app was deleted meanwhile): the
    // setting is named, exit 2.
    let login = k.login(&[], |step| {
        k.mock.state().key = "kite-deleted-app".into();
        Some(step)
    });
    login.out.assert_code(2).assert_stderr_has("setting `api-key`").assert_stderr_has("Invalid `api_key`.");
    assert_eq!(k.exchanges(), 1);
    k.mock.state().key = k.key.clone();
    // An API key Kite does not know: its login page says so, and no login arrives.
    k.w.write(".env", &k.env_file().replace(&k.key, "kite-unknown-key"));
    let login = k.login(&["--timeout", "2"], Some);
    login.out.assert_code(5).assert_stderr_has("no login arrived within 2s");
    assert!(login.callback.is_none());
    let page = login.page.unwrap();
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Invalid `api_key`."), "{}", page.body);
    assert!(k.stored_bytes().is_none());
    assert_eq!(k.exchanges(), 1);
    k.assert_no_leak();
}

#[test]
fn the_stand_in_answers_malformed_requests_as_kite_does() {
    let k = kite_world("zerodha-mock");
    let root = k.server.url();
    let kind_of = |(status, _, body): (u16, Vec<(String, String)>, String)| {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "error", "{body}");
        (status, v["error_type"].as_str().unwrap().to_string())
    };
    let ask = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        kind_of(tokenhost_sandbox::request(method, &format!("{root}{path}"), headers, body.as_bytes()))
    };
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let kite = [("X-Kite-Version", "3"), ("Content-Type", "application/x-www-form-urlencoded")];
    let fields = format!("api_key={}&request_token=x&checksum=y", k.key);
    assert_eq!(ask("POST", "/session/token", &form, &fields), (400, "InputException".into()));
    assert_eq!(
        ask("POST", "/session/token", &[("X-Kite-Version", "3")], "{}"),
        (400, "InputException".into())
    );
    assert_eq!(ask("POST", "/session/token", &kite, "api_key=x"), (400, "InputException".into()));
    assert_eq!(ask("POST", "/session/token", &kite, &fields), (403, "TokenException".into()));
    assert_eq!(ask("PUT", "/session/token", &kite, ""), (405, "InputException".into()));
    assert_eq!(ask("GET", "/user/profile", &kite, ""), (403, "TokenException".into()));
    assert_eq!(ask("GET", "/connect/login?v=3&api_key=nobody", &[], ""), (400, "InputException".into()));
    assert_eq!(ask("GET", "/nowhere", &kite, ""), (404, "GeneralException".into()));
    // Every request was seen, and only the well-formed exchange reached the checks.
    assert_eq!(k.mock.state().seen.len(), 8);
    assert_eq!(k.exchanges(), 1);
}
