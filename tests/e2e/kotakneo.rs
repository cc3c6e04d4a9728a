//! The Kotak Neo provider against the strict Kotak Neo stand-in: the two-step daily login (TOTP,
//! then MPIN) with no person present, from the `.env` names Kotak users have, the session's
//! `baseUrl` kept with the token and checked there, the 00:00 IST cut-off, the one retry of a
//! refused TOTP code, bad settings, a reset access token and broker faults.

use crate::support::*;
use serde_json::{Value, json};
use tokenhost_sandbox::kotakneo::KotakNeoMock;
use tokenhost_sandbox::totp::Fault;
use tokenhost_sandbox::{Request, Server, nonce};

pub const KOTAKNEO: &str = env!("TOKENHOST_COMPONENT_KOTAKNEO");
const UCC: &str = "XYZ12";
const MOBILE: &str = "+919876543210";

struct Kotak {
    w: World,
    mock: KotakNeoMock,
    server: Server,
    access: String,
    secrets: Vec<String>,
}

/// An access token as the Neo app shows one (UUID-shaped).
fn access_token() -> String {
    let n = nonce();
    format!("{}-{}-{}-{}-{}", &n[..8], &n[8..12], &n[12..16], &n[16..20], &n[20..32])
}

fn kotak_world(name: &str) -> Kotak {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let mock = KotakNeoMock::new();
    let access = access_token();
    let mpin = format!("M{}", &nonce()[..9]);
    let seed = mock.account(&access, MOBILE, UCC, &mpin);
    let server = mock.serve();
    w.write(".env", &env_file(&access, &mpin, &seed));
    // Only tests point the provider at a stand-in; a user's .env never needs this.
    w.set_env("KOTAKNEO_LOGIN_ROOT", Some(&server.url()));
    std::fs::copy(KOTAKNEO, w.dir.join("kotakneo.wasm")).unwrap();
    Kotak { w, mock, server, secrets: vec![access.clone(), mpin, seed], access }
}

/// The `.env` of a Kotak Neo user, with the names of Kotak's and OpenAlgo's examples.
fn env_file(access: &str, mpin: &str, seed: &str) -> String {
    format!(
        "# Kotak Neo\nKOTAK_ACCESS_TOKEN={access}\nKOTAK_MOBILE_NUMBER={MOBILE}\nKOTAK_UCC={UCC}\n\
         KOTAK_MPIN={mpin}\nKOTAK_TOTP_SECRET={seed}\n"
    )
}

/// The first 00:00 IST after `t`.
fn next_midnight_ist(t: i64) -> i64 {
    const IST: i64 = 19_800;
    ((t + IST).div_euclid(86_400) + 1) * 86_400 - IST
}

impl Kotak {
    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("kotakneo").join("token.json")
    }

    fn stored(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.token_file()).unwrap()).unwrap()
    }

    /// (login attempts, MPIN checks, logins) so far.
    fn counts(&self) -> (usize, usize, usize) {
        let s = self.mock.state();
        (s.attempts, s.validations, s.logins)
    }

    fn assert_no_leak(&self) {
        let issued = self.mock.state().issued.clone();
        self.w.assert_not_leaked(&self.secrets, &issued);
    }
}

/// The stored extra called `name`: (value, secret).
fn extra(stored: &Value, name: &str) -> (String, bool) {
    let e = stored["extras"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap();
    (e["value"].as_str().unwrap().to_string(), e["secret"].as_bool().unwrap())
}

#[test]
fn the_daily_login_needs_no_person_and_lasts_until_midnight_ist() {
    let k = kotak_world("kotakneo-login");
    let started = tokenhost::time::now();
    k.w.run(&["run", "kotakneo.wasm"])
        .assert_code(0)
        .assert_stdout_has("kotakneo: refreshed (no token stored)");
    assert_eq!(k.counts(), (1, 1, 1));
    let stored = k.stored();
    let token = stored["access_token"].as_str().unwrap().to_string();
    let (sid, secret) = extra(&stored, "sid");
    assert!(secret, "the trade sid is a secret extra");
    let session = k.mock.state().live.get(&sid).cloned().expect("a live trade session");
    assert_eq!(session.token, token, "the token is the trade token");
    assert_eq!(extra(&stored, "baseUrl"), (k.server.url(), false));
    assert_eq!(extra(&stored, "dataCenter"), ("E43".to_string(), false));
    // Kotak says no time: the declared cut-off, 00:00 IST after the login, ends the session
    // before the JWT's own 24 h.
    let issued = stored["issued_at"].as_i64().unwrap();
    assert!((started..=tokenhost::time::now()).contains(&issued), "{stored}");
    assert_eq!(stored["expires_at"].as_i64(), Some(next_midnight_ist(issued)), "{stored}");
    assert_eq!(stored["expiry_source"], "cutoff");
    assert_eq!(stored["user_id"], UCC);
    #[cfg(unix)]
    assert_eq!(mode(&k.token_file()), 0o600);

    k.w.run(&["check", "kotakneo"]).assert_code(0).assert_stdout_has("kotakneo: valid");
    assert_eq!(k.mock.state().limits_hosts, vec![k.server.addr().to_string()]);
    k.w.run(&["run", "kotakneo.wasm"]).assert_code(0).assert_stdout_has("kotakneo: fresh");
    // No confirmed logout route: said plainly, nothing forgotten.
    k.w.run(&["logout", "kotakneo"]).assert_code(2).assert_stderr_has("logout at Kotak Neo");
    assert!(k.token_file().exists());
    assert_eq!(k.counts(), (1, 1, 1));
    k.assert_no_leak();
}

#[test]
fn the_session_is_checked_at_its_base_url() {
    let k = kotak_world("kotakneo-baseurl");
    // The account's data centre is another server than the login host.
    let centre = k.mock.serve();
    k.mock.state().base_url = Some(centre.url());
    k.w.run(&["run", "kotakneo.wasm"]).assert_code(0);
    let stored = k.stored();
    assert_eq!(extra(&stored, "baseUrl"), (centre.url(), false));
    // The provider declares only Kotak's known data centres besides the login host: another
    // one is denied, with the line that allows it.
    k.w.run(&["check", "kotakneo"])
        .assert_code(6)
        .assert_stderr_has(&format!("allow_hosts = [\"{}\"", k.server.addr()))
        .assert_stderr_has(&format!("\"{}\"]", centre.addr()));
    assert!(k.mock.state().limits_hosts.is_empty());
    let hosts = format!("[\"{}\", \"{}\"]", k.server.addr(), centre.addr());
    k.w.write(
        "tokenhost.toml",
        &format!("[accounts.kotakneo]\nprovider = \"kotakneo.wasm\"\nallow_hosts = {hosts}\n"),
    );
    k.w.run(&["check", "kotakneo"]).assert_code(0).assert_stdout_has("kotakneo: valid");
    // It went to the baseUrl (the stand-in refuses a session's call anywhere else).
    assert_eq!(k.mock.state().limits_hosts, vec![centre.addr().to_string()]);
    let seen = k.mock.state().seen.clone();
    assert_eq!(seen.iter().filter(|r| r.as_str() == "POST /quick/user/limits").count(), 1, "{seen:?}");
    k.assert_no_leak();
}

#[test]
fn a_code_from_the_previous_window_is_retried_once_with_the_next() {
    let k = kotak_world("kotakneo-window");
    // Kotak's clock is a window ahead: the provider's first code is Kotak's previous one.
    k.mock.state().clock_offset = 30;
    k.w.run(&["run", "kotakneo.wasm"]).assert_code(0);
    assert_eq!(k.counts(), (2, 1, 1), "one refusal, then the next window's code, then the MPIN");
    let good = std::fs::read(k.token_file()).unwrap();
    // Three windows ahead: both codes are wrong, and there is no third attempt nor an MPIN.
    k.mock.state().clock_offset = 90;
    k.w.run(&["run", "--force", "kotakneo.wasm"])
        .assert_code(3)
        .assert_stderr_has("refused the TOTP code twice (Invalid TOTP; then Invalid TOTP)")
        .assert_stderr_has("`totp-secret`");
    assert_eq!(k.counts(), (4, 1, 1));
    assert_eq!(std::fs::read(k.token_file()).unwrap(), good);
    k.assert_no_leak();
}

#[test]
fn a_bad_seed_a_missing_mpin_a_wrong_mpin_and_a_wrong_ucc_each_name_what_to_fix() {
    let mut k = kotak_world("kotakneo-settings");
    k.w.run(&["run", "kotakneo.wasm"]).assert_code(0);
    let good = std::fs::read(k.token_file()).unwrap();
    let env = std::fs::read_to_string(k.w.dir.join(".env")).unwrap();
    let without = |prefix: &str| -> String {
        env.lines().filter(|l| !l.starts_with(prefix)).map(|l| format!("{l}\n")).collect()
    };

    k.w.set_env("KOTAK_TOTP_SECRET", Some("not a base32 seed!"));
    k.w.run(&["run", "--force", "kotakneo.wasm"])
        .assert_code(2)
        .assert_stderr_has("setting `totp-secret` of account `kotakneo`: is not a TOTP secret");
    k.w.set_env("KOTAK_TOTP_SECRET", None);

    let no_mpin = without("KOTAK_MPIN=");
    k.w.write(".env", &no_mpin);
    k.w.run(&["run", "--force", "kotakneo.wasm"])
        .assert_code(2)
        .assert_stderr_has("missing setting `mpin` for account `kotakneo`: set KOTAKNEO_MPIN");
    assert_eq!(k.counts(), (1, 1, 1), "no login was tried without a seed or an MPIN");

    // A wrong MPIN: step 1 passes, the MPIN is refused once and never retried.
    let wrong = format!("W{}", &nonce()[..9]);
    k.w.write(".env", &format!("{no_mpin}KOTAK_MPIN={wrong}\n"));
    k.w.run(&["run", "--force", "kotakneo.wasm"]).assert_code(3).assert_stderr_has("Invalid MPIN (400)");
    assert_eq!(k.counts(), (2, 2, 1), "a wrong MPIN is never retried");
    k.secrets.push(wrong);

    // A UCC Kotak does not know: refused under HTTP 200, judged from the body, not retried.
    k.w.write(".env", &format!("{}KOTAK_UCC=ABC99\n", without("KOTAK_UCC=")));
    k.w.run(&["run", "--force", "kotakneo.wasm"]).assert_code(3).assert_stderr_has("Invalid UCC (400)");
    assert_eq!(k.counts(), (3, 2, 1));
    assert_eq!(std::fs::read(k.token_file()).unwrap(), good);
    k.assert_no_leak();
}

#[test]
fn a_reset_access_token_ends_the_session_and_the_new_one_logs_in() {
    let mut k = kotak_world("kotakneo-reset");
    k.w.run(&["run", "kotakneo.wasm"]).assert_code(0);
    let good = std::fs::read(k.token_file()).unwrap();
    k.w.run(&["check", "kotakneo"]).assert_code(0);
    // Reset in the Neo app: every session ends at once, and the old access token is refused.
    let new = k.mock.reset_access_token(UCC);
    k.w.run(&["check", "kotakneo"])
        .assert_code(3)
        .assert_stdout_has("Invalid session, please re-login to continue (403)");
    k.w.run(&["run", "--force", "kotakneo.wasm"])
        .assert_code(3)
        .assert_stderr_has("Invalid access token (mock's message) (401)");
    assert_eq!(std::fs::read(k.token_file()).unwrap(), good);
    assert_eq!(k.counts(), (1, 1, 1), "a refused access token reaches no credential check");
    // The user copies the new token from the Neo app.
    let env = std::fs::read_to_string(k.w.dir.join(".env")).unwrap();
    k.w.write(".env", &env.replace(&k.access, &new));
    k.w.run(&["run", "--force", "kotakneo.wasm"]).assert_code(0);
    k.w.run(&["check", "kotakneo"]).assert_code(0).assert_stdout_has("kotakneo: valid");
    k.secrets.push(new);
    k.assert_no_leak();
}

fn post(path: &str, headers: &[(&str, &str)], body: &Value) -> Request {
    Request {
        method: "POST".into(),
        path: path.into(),
        query: Vec::new(),
        headers: headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect(),
        body: body.to_string().into_bytes(),
    }
}

fn answer(mock: &KotakNeoMock, req: &Request) -> (u16, Value) {
    let r = mock.handle(req);
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

/// What no provider would send, the stand-in refuses as Kotak does: the second step without
/// the first step's sid and view token, or with wrong ones, and a `Bearer` access token.
#[test]
fn the_mpin_step_needs_the_first_steps_sid_and_token() {
    let mock = KotakNeoMock::new();
    let (access, other) = (access_token(), access_token());
    let mpin = format!("M{}", &nonce()[..9]);
    let seed = mock.account(&access, MOBILE, UCC, &mpin);
    mock.account(&other, "+919999999999", "OTH01", &format!("M{}", &nonce()[..9]));
    let base = [
        ("Authorization", access.as_str()),
        ("neo-fin-key", "neotradeapi"),
        ("Content-Type", "application/json"),
    ];
    let code = tokenhost_sandbox::totp::code(&seed, tokenhost_sandbox::now());

    let bearer = format!("Bearer {access}");
    let mut with_bearer = base;
    with_bearer[0].1 = &bearer;
    let step1 = json!({"mobileNumber": MOBILE, "ucc": UCC, "totp": code});
    assert_eq!(answer(&mock, &post("/login/1.0/tradeApiLogin", &with_bearer, &step1)).0, 401);
    let (status, missing) =
        answer(&mock, &post("/login/1.0/tradeApiLogin", &base, &json!({"mobileNumber": MOBILE, "ucc": UCC})));
    assert_eq!(
        (status, missing["error"][0]["message"].as_str()),
        (400, Some("Missing required field 'Totp'"))
    );
    let (status, view) = answer(&mock, &post("/login/1.0/tradeApiLogin", &base, &step1));
    assert_eq!(status, 200, "{view}");
    let (sid, token) = (view["data"]["sid"].as_str().unwrap(), view["data"]["token"].as_str().unwrap());
    assert_eq!(view["data"]["kType"], "View");

    let step2 = json!({"mpin": mpin});
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&str, String)> {
        base.iter().chain(extra).map(|(k, v)| (*k, v.to_string())).collect()
    };
    let refused = |headers: Vec<(&str, String)>| {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        answer(&mock, &post("/login/1.0/tradeApiValidate", &h, &step2))
    };
    assert_eq!(refused(with(&[])).0, 400, "no sid and no Auth");
    assert_eq!(refused(with(&[("sid", sid)])).0, 400, "no Auth");
    assert_eq!(refused(with(&[("sid", "not-the-sid"), ("Auth", token)])).0, 403);
    assert_eq!(refused(with(&[("sid", sid), ("Auth", "not-the-token")])).0, 403);
    let mut others = with(&[("sid", sid), ("Auth", token)]);
    others[0].1 = other.clone();
    assert_eq!(refused(others).0, 403, "another client's access token");
    assert_eq!(mock.state().validations, 0, "no MPIN was checked");

    let (status, trade) = refused(with(&[("sid", sid), ("Auth", token)]));
    assert_eq!(status, 200, "{trade}");
    assert_eq!(trade["data"]["kType"], "Trade");
    // A view session is used once.
    assert_eq!(refused(with(&[("sid", sid), ("Auth", token)])).0, 403);
    assert_eq!(mock.state().logins, 1);
}

#[test]
fn broker_faults_are_transient_and_keep_the_token() {
    let k = kotak_world("kotakneo-faults");
    k.w.write(
        "tokenhost.toml",
        "[accounts.kotakneo]\nprovider = \"kotakneo.wasm\"\n[accounts.kotakneo.limits]\nread_timeout_secs = 1\n",
    );
    k.w.run(&["run", "kotakneo"]).assert_code(0);
    let good = std::fs::read(k.token_file()).unwrap();
    let cases = [
        (Fault::ServerError, "Kotak answered HTTP 500 (Unexpected error)"),
        (Fault::RateLimited, "Kotak answered HTTP 429 (Too many requests to the API)"),
        (Fault::Garbage, "could not be understood"),
        (Fault::HangUp, "try again later"),
        (Fault::Slow(std::time::Duration::from_secs(3)), "try again later"),
    ];
    for (fault, message) in cases {
        k.mock.state().faults = vec![fault];
        k.w.run(&["run", "--force", "--attempts", "1", "kotakneo"]).assert_code(4).assert_stderr_has(message);
        assert_eq!(std::fs::read(k.token_file()).unwrap(), good, "{fault:?}");
    }
    k.assert_no_leak();
}
