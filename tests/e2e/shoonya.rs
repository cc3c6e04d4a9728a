//! The Shoonya provider against the strict Shoonya stand-in: the OAuth browser login (no `state`
//! is sent back, so tokenhost's one-time start page and its cookie tie the answer to the
//! browser), the GenAcsTok exchange with its checksum and `uid`, the expiry from `expires_in`,
//! the check and logout on the session, and what happens when codes, secrets, sessions or the
//! broker go wrong.

use crate::support::*;
use std::time::Duration;
use tokenhost::time::now;
use tokenhost_sandbox::browser::{Browser, Step};
use tokenhost_sandbox::shoonya::{ExpiresIn, SESSION_EXPIRED, ShoonyaMock};
use tokenhost_sandbox::totp::Fault;
use tokenhost_sandbox::{Server, nonce, request};

pub const SHOONYA: &str = env!("TOKENHOST_COMPONENT_SHOONYA");
const USER: &str = "FA12345";
const CLIENT: &str = "FA12345_U";

struct Sh {
    w: World,
    mock: ShoonyaMock,
    server: Server,
    redirect: String,
    secret: String,
    /// Every secret a test used (wrong ones too), for the leak scan.
    secrets: Vec<String>,
}

/// A trader's folder: the `.env` of their Shoonya script, and `shoonya.wasm` beside it.
fn shoonya_world(name: &str) -> Sh {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let redirect = loopback_redirect();
    let secret = format!("S{}", &nonce()[..12]);
    let mock = ShoonyaMock::new(CLIENT, &secret, USER, &redirect);
    let server = mock.serve();
    w.write(".env", &env_file(&secret, &redirect, "old-token-from-yesterday"));
    // Only tests point the provider at a stand-in; a user's .env never needs this.
    w.set_env("SHOONYA_API_ROOT", Some(&server.url()));
    std::fs::copy(SHOONYA, w.dir.join("shoonya.wasm")).unwrap();
    Sh { w, mock, server, redirect, secrets: vec![secret.clone()], secret }
}

/// The `.env` names Shoonya's OAuth scripts use (`SHOONYA_USERID` is read through an alias).
fn env_file(secret: &str, redirect: &str, token: &str) -> String {
    format!(
        "# Shoonya OAuth app\nSHOONYA_CLIENT_ID={CLIENT}\nSHOONYA_SECRET_KEY={secret}\nSHOONYA_USERID={USER}\n\
         SHOONYA_REDIRECT_URI={redirect}\nSHOONYA_ACCESS_TOKEN={token}\n\n# strategy\nLOT_SIZE=75\n"
    )
}

impl Sh {
    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("shoonya").join("token.json")
    }

    fn stored(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.token_file()).unwrap()).unwrap()
    }

    fn stored_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.token_file()).ok()
    }

    fn env(&self) -> String {
        std::fs::read_to_string(self.w.dir.join(".env")).unwrap()
    }

    fn exchanges(&self) -> usize {
        self.mock.state().exchanges
    }

    /// `tokenhost login TARGET --no-browser ARGS` through `browser`.
    fn login(
        &self,
        target: &str,
        args: &[&str],
        browser: &Browser,
        at_callback: impl FnOnce(Step) -> Option<Step>,
    ) -> BrowserLogin {
        let mut argv = vec!["login", target, "--no-browser"];
        argv.extend_from_slice(args);
        self.w.browser_login(&argv, browser, &self.redirect, at_callback)
    }

    /// A login that must work: the token Shoonya issued, and the callback that carried its code.
    fn good_login(&self, target: &str, args: &[&str]) -> (String, Step) {
        let login = self.login(target, args, &Browser::new(), Some);
        login.out.assert_code(0).assert_stdout_has("shoonya: logged in, expires");
        let page = login.page.unwrap();
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("You can close this tab"), "{}", page.body);
        // Shoonya sends no state back: the address shown is tokenhost's one-time start page.
        let start = self.redirect.replace("/callback", "/start/");
        assert!(login.shown.as_deref().unwrap().starts_with(&start), "{:?}", login.shown);
        let token = self.stored()["access_token"].as_str().unwrap().to_string();
        assert!(self.mock.state().live.contains_key(&token));
        (token, login.callback.unwrap())
    }

    fn assert_no_leak(&self) {
        let issued = self.mock.state().issued.clone();
        self.w.assert_not_leaked(&self.secrets, &issued);
    }
}

#[test]
fn browser_login_stores_the_token_until_shoonyas_expiry_and_logout_ends_it() {
    let sh = shoonya_world("shoonya-login");
    let w = &sh.w;
    let (token, _) = sh.good_login("shoonya.wasm", &["--sink", "dotenv=.env"]);
    let session = sh.mock.state().live[&token].clone();
    // The exchange was one GenAcsTok after the login page.
    assert_eq!(sh.exchanges(), 1);
    let seen = sh.mock.state().seen.clone();
    assert_eq!(seen, ["GET /OAuthlogin/authorize/oauth", "POST /NorenWClientAPI/GenAcsTok"]);

    // Stored 0600 with Shoonya's own expiry (`expires_in`, the epoch second), its user, the
    // account id and the refresh token as a secret extra.
    let stored = sh.stored();
    assert_eq!(stored["expires_at"].as_i64(), Some(session.expires_at), "{stored}");
    assert_eq!(stored["expiry_source"], "provider");
    assert_eq!(stored["user_id"], USER);
    let extras = stored["extras"].as_array().unwrap();
    let extra = |name: &str| extras.iter().find(|e| e["name"] == name).unwrap().clone();
    assert_eq!(extra("actid")["value"], USER);
    assert_eq!(extra("actid")["secret"], false);
    assert_eq!(extra("refresh-token")["value"], session.refresh_token.as_str());
    assert_eq!(extra("refresh-token")["secret"], true);
    #[cfg(unix)]
    assert_eq!(mode(&sh.token_file()), 0o600);
    // The .env: only the token line changed.
    assert_eq!(sh.env(), env_file(&sh.secret, &sh.redirect, &token));

    w.run(&["check", "shoonya"]).assert_code(0).assert_stdout_has("shoonya: valid");
    w.run(&["run", "shoonya.wasm"]).assert_code(0).assert_stdout_has("shoonya: fresh");
    let got = w.run(&["get", "shoonya"]);
    assert_eq!(got.assert_code(0).stdout.trim(), token);

    // Logout ends the session at Shoonya and forgets the token.
    w.run(&["logout", "shoonya"]).assert_code(0).assert_stdout_has("shoonya: logged out");
    assert_eq!(sh.mock.state().logouts, 1);
    assert!(!sh.mock.state().live.contains_key(&token));
    assert!(sh.stored_bytes().is_none());
    sh.assert_no_leak();
}

#[test]
fn forged_and_replayed_callbacks_are_refused_before_any_exchange() {
    let sh = shoonya_world("shoonya-forged");
    let first = Browser::new();
    let login = sh.login("shoonya.wasm", &["--sink", "dotenv=.env"], &first, Some);
    login.out.assert_code(0);
    let first_callback = login.callback.unwrap();
    let (stored, env, exchanges) = (sh.stored_bytes(), sh.env(), sh.exchanges());

    // The callback made from a browser without the cookie of tokenhost's start page.
    let b = Browser::new();
    let login = sh.login("shoonya.wasm", &["--timeout", "2"], &b, |step| {
        b.clear_cookies();
        Some(step)
    });
    login.assert_refused(None);

    // The right browser, with a `state` that is not this login's (Shoonya sends none).
    let login = sh.login("shoonya.wasm", &["--timeout", "2"], &Browser::new(), |step| {
        Some(step.with("state", "forged"))
    });
    login.assert_refused(None);

    // The first login's browser makes its callback again, to a second login.
    let mut replayed = None;
    let login = sh.login("shoonya.wasm", &["--timeout", "2"], &Browser::new(), |_| {
        replayed = Some(first.request(&first_callback));
        None
    });
    login.assert_refused(replayed.as_ref());

    assert_eq!(sh.exchanges(), exchanges, "no refused callback reached Shoonya");
    assert_eq!(sh.stored_bytes(), stored);
    assert_eq!(sh.env(), env);
    sh.assert_no_leak();
}

#[test]
fn a_spent_or_expired_code_is_refused_by_shoonya_and_changes_nothing() {
    let sh = shoonya_world("shoonya-code");
    let (_, first_callback) = sh.good_login("shoonya.wasm", &["--sink", "dotenv=.env"]);
    let first_code = first_callback.param("code").unwrap();
    let (stored, env) = (sh.stored_bytes(), sh.env());

    // This login's own browser and cookie, carrying the first login's (spent) code.
    let login = sh.login("shoonya.wasm", &["--sink", "dotenv=.env"], &Browser::new(), |step| {
        Some(step.with("code", &first_code))
    });
    login.assert_failed(3, "Invalid Input : Invalid code");
    login.out.assert_stderr_has("single use");
    assert_eq!(sh.exchanges(), 2);

    // A code older than its life.
    sh.mock.state().code_ttl_secs = 0;
    let login = sh.login("shoonya.wasm", &["--sink", "dotenv=.env"], &Browser::new(), Some);
    login.assert_failed(3, "Invalid Input : code expired");
    assert_eq!(sh.exchanges(), 3);

    assert_eq!(sh.stored_bytes(), stored);
    assert_eq!(sh.env(), env);
    sh.assert_no_leak();
}

#[test]
fn a_wrong_secret_key_or_user_id_fails_shoonyas_verifier() {
    let mut sh = shoonya_world("shoonya-checksum");
    sh.good_login("shoonya.wasm", &[]);
    let stored = sh.stored_bytes();
    let good_env = sh.env();

    // The .env holds a wrong secret key: the checksum is wrong.
    let wrong = format!("W{}", &nonce()[..12]);
    sh.secrets.push(wrong.clone());
    sh.w.write(".env", &good_env.replace(&sh.secret, &wrong));
    let login = sh.login("shoonya.wasm", &[], &Browser::new(), Some);
    login.assert_failed(3, "INVALID_VERIFIER");
    login.out.assert_stderr_has("check secret-key, client-id and user-id");
    sh.w.write(".env", &good_env);

    // Another user id (the environment's SHOONYA_USER_ID wins over the .env's SHOONYA_USERID).
    sh.w.set_env("SHOONYA_USER_ID", Some("FA99999"));
    let login = sh.login("shoonya.wasm", &[], &Browser::new(), Some);
    login.assert_failed(3, "INVALID_VERIFIER");
    sh.w.set_env("SHOONYA_USER_ID", None);
    assert_eq!(sh.exchanges(), 3);

    // A missing setting is named, with the variable to set, before any browser.
    sh.w.write(".env", &good_env.replace("SHOONYA_USERID=", "#SHOONYA_USERID="));
    let login = sh.login("shoonya.wasm", &[], &Browser::new(), Some);
    login.out.assert_code(2).assert_stderr_has("user-id").assert_stderr_has("SHOONYA_USER_ID");
    assert!(login.page.is_none());
    sh.w.write(".env", &good_env);

    assert_eq!(sh.stored_bytes(), stored);
    sh.assert_no_leak();
}

#[test]
fn an_ended_session_fails_the_check_and_the_next_run_asks_for_a_person() {
    let sh = shoonya_world("shoonya-expired");
    let w = &sh.w;
    let (token, _) = sh.good_login("shoonya.wasm", &[]);
    let stored = sh.stored_bytes();
    sh.mock.expire_all();
    w.run(&["check", "shoonya"])
        .assert_code(3)
        .assert_stdout_has("shoonya: invalid")
        .assert_stdout_has(SESSION_EXPIRED);
    w.run(&["run", "shoonya.wasm"])
        .assert_code(5)
        .assert_stderr_has("shoonya needs a person to log in once a day")
        .assert_stderr_has("tokenhost login");
    assert_eq!(sh.stored_bytes(), stored);
    assert_eq!(sh.exchanges(), 1, "no exchange without a person");
    // A logout of an ended session has nothing to end: the token is forgotten all the same.
    w.run(&["logout", "shoonya"]).assert_code(0).assert_stdout_has("logged out");
    assert!(sh.stored_bytes().is_none());
    assert_eq!(sh.mock.state().logouts, 0);
    assert!(!sh.mock.state().live.contains_key(&token));
    sh.assert_no_leak();
}

#[test]
fn exchange_faults_are_transient_and_keep_the_previous_token() {
    let sh = shoonya_world("shoonya-faults");
    sh.w.write(
        "tokenhost.toml",
        "[accounts.shoonya]\nprovider = \"shoonya.wasm\"\n[accounts.shoonya.limits]\nread_timeout_secs = 1\n",
    );
    sh.good_login("shoonya", &["--sink", "dotenv=.env"]);
    let (stored, env) = (sh.stored_bytes(), sh.env());
    let cases = [
        (Fault::ServerError, "Shoonya answered HTTP 500"),
        (Fault::RateLimited, "Shoonya answered HTTP 429"),
        (Fault::Garbage, "could not be understood"),
        (Fault::HangUp, "try again later"),
        (Fault::Slow(Duration::from_secs(3)), "try again later"),
    ];
    for (fault, said) in cases {
        let login = sh.login("shoonya", &["--sink", "dotenv=.env"], &Browser::new(), |step| {
            sh.mock.state().faults = vec![fault];
            Some(step)
        });
        login.assert_failed(4, said);
        assert_eq!(sh.stored_bytes(), stored, "{fault:?}");
        assert_eq!(sh.env(), env, "{fault:?}");
    }
    // The check and the logout pass the same way, and keep the token.
    sh.mock.state().faults = vec![Fault::ServerError];
    sh.w.run(&["check", "shoonya"]).assert_code(4);
    sh.mock.state().faults = vec![Fault::HangUp];
    sh.w.run(&["logout", "shoonya"]).assert_code(4);
    assert_eq!(sh.stored_bytes(), stored);
    sh.assert_no_leak();
}

#[test]
fn expires_in_as_a_lifetime_an_expired_password_and_a_cancelled_login() {
    let sh = shoonya_world("shoonya-expires-in");
    // `expires_in` written as a lifetime in seconds: read from the time of the login.
    sh.mock.state().expires_in = ExpiresIn::Seconds;
    sh.mock.state().lifetime_secs = 6 * 3600;
    let before = now();
    sh.good_login("shoonya.wasm", &[]);
    let expires = sh.stored()["expires_at"].as_i64().unwrap();
    assert!((before + 6 * 3600..=now() + 6 * 3600).contains(&expires), "{}", sh.stored());
    let stored = sh.stored_bytes();

    // Shoonya wants a new password: a person must act at Shoonya's site.
    sh.mock.state().password_expired = true;
    let login = sh.login("shoonya.wasm", &[], &Browser::new(), Some);
    login.assert_failed(5, "Invalid Input : Password Expired");
    login.out.assert_stderr_has("set a new password at Shoonya's site");
    sh.mock.state().password_expired = false;
    assert_eq!(sh.exchanges(), 2);

    // An `error` in the redirect (a cancelled login) ends it with no exchange.
    let login =
        sh.login("shoonya.wasm", &[], &Browser::new(), |step| Some(step.with("error", "access_denied")));
    login.assert_failed(3, "the login was not completed at Shoonya: access_denied");
    assert_eq!(sh.exchanges(), 2);
    assert_eq!(sh.stored_bytes(), stored);
    sh.assert_no_leak();
}

#[test]
fn a_check_answered_otherwise_than_documented_never_marks_the_token_dead() {
    let sh = shoonya_world("shoonya-check-route");
    let w = &sh.w;
    sh.good_login("shoonya.wasm", &[]);
    let stored = sh.stored_bytes();
    // UserDetails is a guess for Shoonya: a 404 is not understood, not a dead token.
    sh.mock.state().user_details = false;
    w.run(&["check", "shoonya"]).assert_code(4).assert_stderr_has("Not Found (HTTP 404)");
    w.run(&["run", "shoonya.wasm"]).assert_code(0).assert_stdout_has("shoonya: fresh");
    sh.mock.state().user_details = true;
    w.run(&["check", "shoonya"]).assert_code(0);
    assert_eq!(sh.stored_bytes(), stored);
    sh.assert_no_leak();
}

#[test]
fn the_stand_in_answers_malformed_requests_as_shoonya_does() {
    let sh = shoonya_world("shoonya-mock");
    let root = sh.server.url();
    let emsg = |body: &str| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["stat"], "Not_Ok", "{body}");
        v["emsg"].as_str().unwrap().to_string()
    };
    let text = [("Content-Type", "text/plain")];
    let post = |path: &str, headers: &[(&str, &str)], body: &str| {
        let (status, _, body) = request("POST", &format!("{root}{path}"), headers, body.as_bytes());
        (status, emsg(&body))
    };

    // The login page: an unknown client id is refused; the app's gets a code and no state.
    let (s, _, b) = request("GET", &format!("{root}/OAuthlogin/authorize/oauth?client_id=FA0_U"), &[], b"");
    assert_eq!((s, emsg(&b).as_str()), (200, "Invalid Input : Invalid client_id"));
    let url = format!("{root}/OAuthlogin/authorize/oauth?client_id={CLIENT}&state=s1");
    let (s, headers, _) = request("GET", &url, &[], b"");
    assert_eq!(s, 302);
    let location = headers.iter().find(|(k, _)| k == "location").unwrap().1.clone();
    let code = Step::get(&location).param("code").unwrap();
    assert!(location.starts_with(&format!("{}?code=", sh.redirect)) && !location.contains("state"));

    // GenAcsTok: text/plain `jData=<JSON>`, with `uid`.
    let exchange = "/NorenWClientAPI/GenAcsTok";
    let json = [("Content-Type", "application/json")];
    assert_eq!(
        post(exchange, &json, &format!(r#"{{"code":"{code}"}}"#)).1,
        "Invalid Input : Content-Type must be text/plain"
    );
    assert_eq!(
        post(exchange, &text, &format!(r#"{{"code":"{code}"}}"#)).1,
        "Invalid Input : jData is Missing"
    );
    let encoded = format!("jData=%7B%22code%22%3A%22{code}%22%7D");
    assert_eq!(post(exchange, &text, &encoded).1, "Invalid Input : jData is not valid JSON");
    assert_eq!(sh.exchanges(), 0, "malformed bodies never reach the checks");
    let checksum = tokenhost_sandbox::sha256_hex(format!("{CLIENT}{}{code}", sh.secret).as_bytes());
    let no_uid = format!(r#"jData={{"code":"{code}","checksum":"{checksum}"}}"#);
    assert_eq!(post(exchange, &text, &no_uid), (200, "Invalid Input : INVALID_VERIFIER".into()));
    // That spent the code.
    let with_uid = format!(r#"jData={{"code":"{code}","checksum":"{checksum}","uid":"{USER}"}}"#);
    assert_eq!(post(exchange, &text, &with_uid).1, "Invalid Input : Invalid code");

    // Sessions: a Bearer token that is not live, none at all, wrong paths and methods.
    let details = "/NorenWClientAPI/UserDetails";
    let bearer = [("Content-Type", "text/plain"), ("Authorization", "Bearer nope")];
    let uid = format!(r#"jData={{"uid":"{USER}"}}"#);
    assert_eq!(post(details, &bearer, &uid), (200, SESSION_EXPIRED.into()));
    assert_eq!(post(details, &text, &uid).1, "Invalid Input : Authorization is Missing");
    assert_eq!(post("/NorenWClientAPI/Logout", &bearer, &uid), (200, SESSION_EXPIRED.into()));
    assert_eq!(post("/NorenWClientAPI/UserDetail", &bearer, &uid).0, 404);
    let (s, _, b) = request("GET", &format!("{root}{exchange}"), &[], b"");
    assert_eq!((s, emsg(&b).as_str()), (405, "Method Not Allowed"));

    // Faults come in Noren's envelope.
    sh.mock.state().faults = vec![Fault::RateLimited, Fault::ServerError];
    assert_eq!(post(exchange, &text, &with_uid).0, 429);
    assert_eq!(post(exchange, &text, &with_uid).0, 500);
    sh.assert_no_leak();
}
