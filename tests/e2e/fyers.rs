//! The Fyers provider against the strict Fyers stand-in: the daily browser login driven as a
//! browser would (from the `.env` names Fyers users have), the expiry from the token's `exp`,
//! forged, replayed and reused callbacks, a wrong secret key, an ended session, the person
//! cancelling, and broker faults on the exchange.

use crate::support::*;
use std::time::Duration;
use tokenhost_sandbox::browser::{Browser, Step};
use tokenhost_sandbox::fyers::{FyersMock, app_id_hash, claims, next_0600_ist};
use tokenhost_sandbox::totp::Fault;
use tokenhost_sandbox::{Server, nonce, request};

pub const FYERS: &str = env!("TOKENHOST_COMPONENT_FYERS");
const APP_ID: &str = "XC4D7K2Q9M-100";
const USER: &str = "XA12345";

struct Fy {
    w: World,
    mock: FyersMock,
    server: Server,
    redirect: String,
    /// What `tokenhost login` is pointed at: the component, or an account of tokenhost.toml.
    target: &'static str,
    /// Every secret a test used (wrong ones too) and the appIdHash made from it.
    secrets: Vec<String>,
}

/// The `.env` of a fyers-apiv3 script, with the names it uses for the app and secret.
fn env_text(names: (&str, &str), app_id: &str, secret: &str, redirect: &str, token: &str) -> String {
    format!(
        "# fyers-apiv3 script\n{}={app_id}\n{}={secret}\nFYERS_REDIRECT_URI={redirect}\n\
         FYERS_ACCESS_TOKEN={token}\n\nLOG_LEVEL=INFO\n",
        names.0, names.1
    )
}

const CLIENT_NAMES: (&str, &str) = ("FYERS_CLIENT_ID", "FYERS_SECRET_ID");

fn fyers_world(name: &str) -> Fy {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let redirect = loopback_redirect();
    let secret = format!("S{}", &nonce()[..12]);
    let mock = FyersMock::new(APP_ID, &secret, &redirect);
    let server = mock.serve();
    w.write(".env", &env_text(CLIENT_NAMES, APP_ID, &secret, &redirect, "old-token-from-yesterday"));
    // Only tests point the provider at a stand-in; a user's .env never needs this.
    w.set_env("FYERS_API_ROOT", Some(&server.url()));
    std::fs::copy(FYERS, w.dir.join("fyers.wasm")).unwrap();
    let secrets = vec![app_id_hash(APP_ID, &secret), secret];
    Fy { w, mock, server, redirect, target: "fyers.wasm", secrets }
}

impl Fy {
    fn secret(&self) -> String {
        self.mock.state().secret.clone()
    }

    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("fyers").join("token.json")
    }

    fn stored(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.token_file()).unwrap()).unwrap()
    }

    fn stored_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.token_file()).ok()
    }

    fn env_file(&self) -> String {
        std::fs::read_to_string(self.w.dir.join(".env")).unwrap()
    }

    fn exchanges(&self) -> usize {
        self.mock.state().exchanges
    }

    /// The access token issued last.
    fn last_access_token(&self) -> String {
        let issued = self.mock.state().issued.clone();
        issued.into_iter().rev().find(|t| claims(t)["sub"] == "access_token").unwrap()
    }

    /// `tokenhost login TARGET --no-browser ARGS` with a new browser.
    fn login(&self, args: &[&str], at_callback: impl FnOnce(Step) -> Option<Step>) -> BrowserLogin {
        let mut argv = vec!["login", self.target, "--no-browser"];
        argv.extend_from_slice(args);
        self.w.browser_login(&argv, &Browser::new(), &self.redirect, at_callback)
    }

    /// A login that must work: the token Fyers issued, and how the login went.
    fn good_login(&self, args: &[&str]) -> (String, BrowserLogin) {
        let login = self.login(args, Some);
        login.out.assert_code(0).assert_stdout_has("fyers: logged in, expires");
        let page = login.page.as_ref().unwrap();
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("You can close this tab"), "{}", page.body);
        (self.last_access_token(), login)
    }

    fn assert_no_leak(&self) {
        let issued = self.mock.state().issued.clone();
        self.w.assert_not_leaked(&self.secrets, &issued);
    }
}

#[test]
fn browser_login_stores_the_token_until_its_exp_and_logout_ends_it() {
    let fy = fyers_world("fyers-login");
    let w = &fy.w;
    let (token, login) = fy.good_login(&["--sink", "dotenv=.env"]);

    // Fyers' page with the app, the redirect and this login's state; the state came back.
    let shown = login.shown.unwrap();
    let page = format!("{}/api/v3/generate-authcode?client_id={APP_ID}&redirect_uri=", fy.server.url());
    assert!(shown.starts_with(&page), "{shown}");
    assert!(shown.contains("&response_type=code&state="), "{shown}");
    let state = shown.rsplit("state=").next().unwrap().to_string();
    let callback = login.callback.unwrap();
    assert_eq!(callback.param("state"), Some(state));
    assert_eq!(
        (callback.param("s").as_deref(), callback.param("code").as_deref()),
        (Some("ok"), Some("200"))
    );
    assert_eq!(fy.exchanges(), 1);

    // Stored 0600 with Fyers' user and the token's own `exp` (the stand-in's next 06:00 IST).
    let stored = fy.stored();
    assert_eq!(stored["access_token"], token.as_str());
    let jwt = claims(&token);
    assert_eq!(stored["expires_at"], jwt["exp"]);
    assert_eq!(stored["expires_at"].as_i64(), Some(next_0600_ist(jwt["iat"].as_i64().unwrap())));
    assert_eq!(stored["issued_at"], jwt["iat"]);
    assert_eq!(stored["user_id"], USER);
    // The refresh token Fyers still sends is not kept: it was discontinued on 1 April 2026.
    assert_eq!(stored["extras"], serde_json::json!([]));
    let refresh = fy.mock.state().issued.iter().find(|t| claims(t)["sub"] == "refresh_token").cloned();
    let text = std::fs::read_to_string(fy.token_file()).unwrap();
    assert!(!text.contains(&refresh.unwrap()));
    #[cfg(unix)]
    assert_eq!(mode(&fy.token_file()), 0o600);
    // The script's .env: only the token line changed.
    assert_eq!(fy.env_file(), env_text(CLIENT_NAMES, APP_ID, &fy.secret(), &fy.redirect, &token));

    w.run(&["check", "fyers"]).assert_code(0).assert_stdout_has("fyers: valid");
    w.run(&["run", "fyers.wasm"]).assert_code(0).assert_stdout_has("fyers: fresh");
    assert_eq!(fy.exchanges(), 1);

    // Logout ends the token at Fyers and forgets it here.
    w.run(&["logout", "fyers"]).assert_code(0).assert_stdout_has("fyers: logged out");
    assert!(!fy.mock.state().live.contains(&token));
    assert!(fy.mock.state().seen.contains(&"POST /api/v3/logout".to_string()));
    assert!(fy.stored_bytes().is_none());
    fy.assert_no_leak();
}

#[test]
fn forged_and_replayed_callbacks_are_refused_before_any_exchange() {
    let fy = fyers_world("fyers-forged");
    let (_, first) = fy.good_login(&[]);
    let first_callback = first.callback.unwrap();
    let kept = fy.stored_bytes().unwrap();

    // The state changed on the way back.
    fy.login(&["--timeout", "2"], |step| Some(step.with("state", "forged"))).assert_refused(None);
    // No state at all.
    let no_state = fy.login(&["--timeout", "2"], |step| {
        let params: Vec<_> = step.params().into_iter().filter(|(k, _)| k != "state").collect();
        let query = params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        Some(Step::get(&format!("{}?{query}", step.url.split('?').next().unwrap())))
    });
    no_state.assert_refused(None);
    // The first login's answer, made again to a new login.
    fy.login(&["--timeout", "2"], |_| Some(first_callback)).assert_refused(None);

    assert_eq!(fy.exchanges(), 1, "no refused answer reached Fyers");
    assert_eq!(fy.stored_bytes().unwrap(), kept);
    fy.assert_no_leak();
}

#[test]
fn a_reused_or_expired_auth_code_is_refused_by_fyers() {
    let fy = fyers_world("fyers-code");
    let (_, first) = fy.good_login(&[]);
    let first_code = first.callback.unwrap().param("auth_code").unwrap();
    let kept = fy.stored_bytes().unwrap();

    // This login's own state, the first login's code.
    let reused = fy.login(&[], |step| Some(step.with("auth_code", &first_code)));
    reused.assert_failed(3, "Invalid auth code (Fyers code -413");
    assert_eq!(fy.exchanges(), 2);
    assert_eq!(fy.stored_bytes().unwrap(), kept);

    fy.mock.state().code_ttl_secs = 0;
    fy.login(&[], Some).assert_failed(3, "Auth code has expired (Fyers code -413");
    assert_eq!(fy.exchanges(), 3);
    assert_eq!(fy.stored_bytes().unwrap(), kept);
    fy.assert_no_leak();
}

#[test]
fn the_person_cancelling_is_a_refused_login_with_fyers_message() {
    let fy = fyers_world("fyers-deny");
    let (_, _) = fy.good_login(&[]);
    let kept = fy.stored_bytes().unwrap();
    fy.mock.state().deny = true;
    let denied = fy.login(&[], Some);
    denied.assert_failed(3, "the login was not completed: User cancelled the login (Fyers code -1)");
    assert_eq!(fy.exchanges(), 1, "nothing to exchange");
    assert_eq!(fy.stored_bytes().unwrap(), kept);
    fy.assert_no_leak();
}

#[test]
fn a_wrong_secret_key_gets_fyers_371_and_a_bad_app_id_is_named() {
    let mut fy = fyers_world("fyers-settings");
    let (token, _) = fy.good_login(&["--sink", "dotenv=.env"]);
    let kept = fy.stored_bytes().unwrap();

    // A wrong secret: the appIdHash is wrong, which Fyers says with -371.
    let wrong = format!("W{}", &nonce()[..12]);
    fy.secrets.extend([wrong.clone(), app_id_hash(APP_ID, &wrong)]);
    fy.w.write(".env", &env_text(CLIENT_NAMES, APP_ID, &wrong, &fy.redirect, &token));
    let login = fy.login(&[], Some);
    login.assert_failed(3, "Please provide sha256 hash of appId and app secret (Fyers code -371");
    login.out.assert_stderr_has("secret-key");
    assert_eq!(fy.exchanges(), 2);
    assert_eq!(fy.stored_bytes().unwrap(), kept);

    // An app id without its `-100` suffix is refused before any browser.
    fy.w.write(".env", &env_text(CLIENT_NAMES, "XC4D7K2Q9M", &fy.secret(), &fy.redirect, &token));
    let login = fy.login(&[], Some);
    login.out.assert_code(2).assert_stderr_has("app-id").assert_stderr_has("XC12345678-100");
    assert!(login.shown.is_none());

    // An app Fyers does not know: its login page says so, and no answer comes back.
    fy.w.write(".env", &env_text(CLIENT_NAMES, "XZ0000000-100", &fy.secret(), &fy.redirect, &token));
    let login = fy.login(&["--timeout", "2"], Some);
    login.out.assert_code(5).assert_stderr_has("no login arrived within 2s");
    let page = login.page.unwrap();
    assert!(page.body.contains("Invalid App ID") && page.body.contains("-352"), "{}", page.body);
    assert_eq!(fy.exchanges(), 2);
    assert_eq!(fy.stored_bytes().unwrap(), kept);
    fy.assert_no_leak();
}

#[test]
fn an_ended_session_is_invalid_and_the_next_run_asks_for_a_person() {
    let fy = fyers_world("fyers-expired");
    // The other names fyers scripts use for the app and its secret.
    let names = ("FYERS_APP_ID", "FYERS_SECRET_KEY");
    fy.w.write(".env", &env_text(names, APP_ID, &fy.secret(), &fy.redirect, "old"));
    fy.good_login(&[]);
    let kept = fy.stored_bytes().unwrap();

    fy.mock.expire_all();
    fy.w.run(&["check", "fyers"])
        .assert_code(3)
        .assert_stdout_has("fyers: invalid")
        .assert_stdout_has("Token is Invalid or Expired (Fyers code -16");
    fy.w.run(&["run", "fyers.wasm"])
        .assert_code(5)
        .assert_stderr_has("fyers needs a person to log in once a day")
        .assert_stderr_has("tokenhost login");
    assert_eq!(fy.stored_bytes().unwrap(), kept);
    assert_eq!(fy.exchanges(), 1);

    // Logging out a token Fyers already ended (-16 under HTTP 200) just forgets it.
    fy.w.run(&["logout", "fyers"]).assert_code(0).assert_stdout_has("fyers: logged out");
    assert!(fy.stored_bytes().is_none());
    fy.assert_no_leak();
}

#[test]
fn broker_faults_on_the_exchange_keep_the_previous_token() {
    let mut fy = fyers_world("fyers-faults");
    fy.w.write(
        "tokenhost.toml",
        "[accounts.fyers]\nprovider = \"fyers.wasm\"\n[accounts.fyers.limits]\nread_timeout_secs = 1\n",
    );
    fy.target = "fyers";
    fy.good_login(&[]);
    let kept = fy.stored_bytes().unwrap();
    let cases = [
        (Fault::ServerError, "Internal Server Error (Fyers code -500, HTTP 500)"),
        (Fault::RateLimited, "request limit reached (Fyers code -429, HTTP 429)"),
        (Fault::Garbage, "could not be understood"),
        (Fault::HangUp, "try again later"),
        (Fault::Slow(Duration::from_secs(3)), "try again later"),
    ];
    for (fault, message) in cases {
        // After the login page: the next call Fyers gets is the exchange.
        let login = fy.login(&[], |step| {
            fy.mock.state().faults.push(fault);
            Some(step)
        });
        login.out.assert_code(4).assert_stderr_has(message);
        assert_eq!(fy.stored_bytes().unwrap(), kept, "{fault:?}");
    }
    // The profile check: a 5xx is transient too.
    fy.mock.state().faults.push(Fault::ServerError);
    fy.w.run(&["check", "fyers"]).assert_code(4);
    fy.w.run(&["check", "fyers"]).assert_code(0);
    fy.assert_no_leak();
}

#[test]
fn the_stand_in_answers_malformed_requests_as_fyers_does() {
    let fy = fyers_world("fyers-mock");
    let root = fy.server.url();
    let call = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        let (status, _, text) = request(method, &format!("{root}{path}"), headers, body.as_bytes());
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["s"], "error", "{text}");
        (status, v["code"].as_i64().unwrap())
    };
    let json = [("Content-Type", "application/json")];
    let exchange = "/api/v3/validate-authcode";
    let hash = app_id_hash(APP_ID, &fy.secret());
    assert_eq!(call("GET", exchange, &[], ""), (405, -99));
    assert_eq!(call("GET", "/api/v3/profiles", &[], ""), (404, -99));
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(call("POST", exchange, &form, "grant_type=authorization_code"), (400, -50));
    let body = |grant: &str, hash: &str, code: &str| {
        serde_json::json!({"grant_type": grant, "appIdHash": hash, "code": code}).to_string()
    };
    assert_eq!(call("POST", exchange, &json, &body("refresh_token", &hash, "c")), (400, -442));
    assert_eq!(call("POST", exchange, &json, &body("authorization_code", &hash, "")), (400, -441));
    assert_eq!(call("POST", exchange, &json, &body("authorization_code", "ab12", "c")), (200, -371));
    assert_eq!(call("POST", exchange, &json, &body("authorization_code", &hash, "c")), (200, -413));
    assert_eq!(call("GET", "/api/v3/profile", &[], ""), (401, -16));
    let nobody = [("Authorization", "XC4D7K2Q9M-100:nope")];
    assert_eq!(call("POST", "/api/v3/logout", &nobody, ""), (200, -16));
    let page = |client: &str, redirect: &str, kind: &str| {
        let q = format!("client_id={client}&redirect_uri={redirect}&response_type={kind}&state=s");
        call("GET", &format!("/api/v3/generate-authcode?{q}"), &[], "")
    };
    let redirect = fy.redirect.replace(':', "%3A").replace('/', "%2F");
    assert_eq!(page("XZ0000000-100", &redirect, "code"), (200, -352));
    assert_eq!(page(APP_ID, "http%3A%2F%2F127.0.0.1%3A9%2Fother", "code"), (200, -390));
    assert_eq!(page(APP_ID, &redirect, "token"), (200, -391));
    // The right page redirects at once, with this app's code and the state echoed.
    let q = format!("client_id={APP_ID}&redirect_uri={redirect}&response_type=code&state=s%201");
    let (status, headers, _) = request("GET", &format!("{root}/api/v3/generate-authcode?{q}"), &[], b"");
    let location = headers.iter().find(|(k, _)| k == "location").map(|(_, v)| v.clone()).unwrap();
    assert_eq!(status, 302);
    assert!(location.starts_with(&format!("{}?s=ok&code=200&auth_code=", fy.redirect)), "{location}");
    assert!(location.ends_with("&state=s+1"), "{location}");
    fy.mock.state().faults.push(Fault::RateLimited);
    assert_eq!(call("GET", "/api/v3/profile", &[], ""), (429, -429));
    assert_eq!(fy.mock.state().exchanges, 5, "every POST to the exchange reached the checks");
    fy.assert_no_leak();
}
