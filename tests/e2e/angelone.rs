//! The Angel One provider against the strict SmartAPI stand-in: the daily login with no person
//! present, from the `.env` names of Angel's SmartAPI examples, the 05:00 IST cut-off over the
//! JWT's expiry, renewals with the refresh token (and the TOTP login when one is refused), the
//! profile check and the logout, the one retry of a refused TOTP code, bad settings and broker
//! faults.

use crate::support::*;
use tokenhost_sandbox::Server;
use tokenhost_sandbox::angelone::AngelOneMock;
use tokenhost_sandbox::totp::Fault;

pub const ANGELONE: &str = env!("TOKENHOST_COMPONENT_ANGELONE");
const CLIENT: &str = "R52347193";

struct Angel {
    w: World,
    mock: AngelOneMock,
    _server: Server,
    secrets: Vec<String>,
}

/// A `.env` as SmartAPI's examples name the variables.
fn dotenv(key: &str, pin: Option<&str>, seed: &str) -> String {
    let pin = pin.map(|p| format!("ANGEL_PIN={p}\n")).unwrap_or_default();
    format!(
        "# Angel One SmartAPI\nANGEL_API_KEY={key}\nANGEL_CLIENT_CODE={CLIENT}\n{pin}ANGEL_TOTP_SECRET={seed}\n"
    )
}

fn angel_world(name: &str) -> Angel {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let mock = AngelOneMock::new();
    let pin = format!("P{}", &tokenhost_sandbox::nonce()[..9]);
    let key = format!("K{}", &tokenhost_sandbox::nonce()[..15]);
    let seed = mock.account(CLIENT, &pin, &key);
    let server = mock.serve();
    w.write(".env", &dotenv(&key, Some(&pin), &seed));
    // Only tests point the provider at a stand-in; a user's .env never needs this.
    w.set_env("ANGELONE_API_ROOT", Some(&server.url()));
    std::fs::copy(ANGELONE, w.dir.join("angelone.wasm")).unwrap();
    Angel { w, mock, _server: server, secrets: vec![pin, key, seed] }
}

/// The first 05:00 IST after `t`.
fn next_0500_ist(t: i64) -> i64 {
    let ist = 330 * 60;
    let at = (t + ist).div_euclid(86_400) * 86_400 + 5 * 3600 - ist;
    if at <= t { at + 86_400 } else { at }
}

impl Angel {
    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("angelone").join("token.json")
    }

    fn stored(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.token_file()).unwrap()).unwrap()
    }

    /// The stored extra `name`: (value, secret).
    fn extra(&self, name: &str) -> (String, bool) {
        let stored = self.stored();
        let e = stored["extras"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap().clone();
        (e["value"].as_str().unwrap().to_string(), e["secret"].as_bool().unwrap())
    }

    /// (login attempts, logins, renewal attempts, renewals) so far.
    fn counts(&self) -> (usize, usize, usize, usize) {
        let s = self.mock.state();
        (s.attempts, s.logins, s.renew_attempts, s.renewals)
    }

    fn assert_no_leak(&self) {
        let issued = self.mock.state().issued.clone();
        self.w.assert_not_leaked(&self.secrets, &issued);
    }
}

#[test]
fn the_daily_login_needs_no_person_and_lasts_until_0500_ist() {
    let a = angel_world("angelone-login");
    let started = tokenhost::time::now();
    a.w.run(&["run", "angelone.wasm"])
        .assert_code(0)
        .assert_stdout_has("angelone: refreshed (no token stored)");
    assert_eq!(a.counts(), (1, 1, 0, 0));
    let session = a.mock.state().live.get(CLIENT).cloned().unwrap();
    let stored = a.stored();
    assert_eq!(stored["access_token"], session.jwt.as_str());
    // The JWT claims 28 h; the declared 05:00 IST cut-off comes first, counted from `iat`.
    let issued = stored["issued_at"].as_i64().unwrap();
    assert!((started..=tokenhost::time::now()).contains(&issued), "{stored}");
    assert_eq!(stored["expires_at"].as_i64(), Some(next_0500_ist(issued)), "{stored}");
    assert_eq!(stored["expiry_source"], "cutoff");
    assert_eq!(stored["user_id"], CLIENT);
    assert_eq!(a.extra("refreshToken"), (session.refresh.clone(), true));
    assert_eq!(a.extra("feedToken"), (session.feed.clone(), true));
    assert_eq!(a.extra("clientcode"), (CLIENT.to_string(), false));
    assert_eq!(a.mock.state().public_ips, ["127.0.0.1"], "the default X-ClientPublicIP");
    #[cfg(unix)]
    assert_eq!(mode(&a.token_file()), 0o600);

    a.w.run(&["check", "angelone"]).assert_code(0).assert_stdout_has("angelone: valid");
    a.w.run(&["run", "angelone.wasm"]).assert_code(0).assert_stdout_has("angelone: fresh");
    assert_eq!(a.counts(), (1, 1, 0, 0));
    // Logout ends the session at Angel and forgets the token here.
    a.w.run(&["logout", "angelone"])
        .assert_code(0)
        .assert_stdout_has("angelone: logged out, token forgotten");
    assert_eq!(a.mock.state().logouts, 1);
    assert!(a.mock.state().live.is_empty());
    assert!(!a.token_file().exists());
    // The ended token, put back, is refused by getProfile in the gateway's envelope.
    std::fs::write(a.token_file(), serde_json::to_vec(&stored).unwrap()).unwrap();
    a.w.run(&["check", "angelone"]).assert_code(3).assert_stdout_has("getProfile: Invalid Token (AG8001)");
    a.assert_no_leak();
}

#[test]
fn a_jwt_that_ends_before_0500_ist_sets_the_expiry() {
    let a = angel_world("angelone-jwt");
    a.mock.state().jwt_life = 600;
    a.w.run(&["run", "angelone.wasm"]).assert_code(0);
    let stored = a.stored();
    let issued = stored["issued_at"].as_i64().unwrap();
    // Ten minutes (the provider reads the JWT's claims), unless the test runs in the ten
    // minutes before 05:00 IST.
    let (expected, source) = if issued + 600 < next_0500_ist(issued) {
        (issued + 600, "provider")
    } else {
        (next_0500_ist(issued), "cutoff")
    };
    assert_eq!(stored["expires_at"].as_i64(), Some(expected), "{stored}");
    assert_eq!(stored["expiry_source"], source);
    a.assert_no_leak();
}

#[test]
fn the_refresh_token_renews_without_a_totp_login_and_a_refused_one_falls_back_to_it() {
    let mut a = angel_world("angelone-renew");
    a.w.run(&["run", "angelone.wasm"]).assert_code(0);
    let first = a.stored();
    a.w.run(&["run", "--force", "angelone.wasm"]).assert_code(0).assert_stdout_has("angelone: refreshed");
    assert_eq!(a.counts(), (1, 1, 1, 1), "generateTokens, no TOTP login");
    let session = a.mock.state().live.get(CLIENT).cloned().unwrap();
    let renewed = a.stored();
    assert_ne!(renewed["access_token"], first["access_token"]);
    assert_eq!(renewed["access_token"], session.jwt.as_str());
    assert_eq!(a.extra("refreshToken"), (session.refresh.clone(), true), "the new refresh token is kept");
    assert_eq!(a.extra("feedToken"), (session.feed.clone(), true));
    let issued = renewed["issued_at"].as_i64().unwrap();
    assert_eq!(renewed["expires_at"].as_i64(), Some(next_0500_ist(issued)));
    a.w.run(&["check", "angelone"]).assert_code(0).assert_stdout_has("angelone: valid");

    // Angel refuses the refresh token: the TOTP login follows in the same run, with the
    // configured X-ClientPublicIP.
    a.mock.state().refresh_refused = true;
    a.w.set_env("ANGELONE_CLIENT_PUBLIC_IP", Some("203.0.113.7"));
    a.w.run(&["run", "--force", "angelone.wasm"]).assert_code(0).assert_stdout_has("angelone: refreshed");
    assert_eq!(a.counts(), (2, 2, 2, 1), "a refused renewal, then one login");
    assert_eq!(a.mock.state().public_ips, ["127.0.0.1", "203.0.113.7"]);
    assert_eq!(a.stored()["access_token"], a.mock.state().live[CLIENT].jwt.as_str());
    a.w.run(&["check", "angelone"]).assert_code(0);
    a.assert_no_leak();
}

#[test]
fn a_code_from_the_previous_window_is_retried_once_with_the_next() {
    let a = angel_world("angelone-window");
    {
        // Angel's clock is a window ahead: the provider's first code is Angel's previous one.
        let mut s = a.mock.state();
        s.clock_offset = 30;
        s.refresh_refused = true;
    }
    a.w.run(&["run", "angelone.wasm"]).assert_code(0);
    assert_eq!(a.counts(), (2, 1, 0, 0), "one refusal, then the next window's code");
    let good = std::fs::read(a.token_file()).unwrap();
    // Three windows ahead: both codes are wrong, and there is no third attempt.
    a.mock.state().clock_offset = 90;
    a.w.run(&["run", "--force", "angelone.wasm"])
        .assert_code(3)
        .assert_stderr_has("refused the TOTP code twice")
        .assert_stderr_has("Invalid totp (AB1050)")
        .assert_stderr_has("`totp-secret`");
    assert_eq!(a.counts(), (4, 1, 1, 0));
    assert_eq!(std::fs::read(a.token_file()).unwrap(), good);
    a.assert_no_leak();
}

#[test]
fn a_bad_seed_a_missing_pin_a_wrong_pin_and_a_wrong_key_each_name_what_to_fix() {
    let mut a = angel_world("angelone-settings");
    a.w.run(&["run", "angelone.wasm"]).assert_code(0);
    let good = std::fs::read(a.token_file()).unwrap();
    let (pin, key, seed) = (a.secrets[0].clone(), a.secrets[1].clone(), a.secrets[2].clone());

    // Checked before a renewal, which would not need the seed.
    a.w.set_env("ANGEL_TOTP_SECRET", Some("not a base32 seed!"));
    a.w.run(&["run", "--force", "angelone.wasm"])
        .assert_code(2)
        .assert_stderr_has("setting `totp-secret` of account `angelone`: is not a TOTP secret");
    a.w.set_env("ANGEL_TOTP_SECRET", None);

    a.w.write(".env", &dotenv(&key, None, &seed));
    a.w.run(&["run", "--force", "angelone.wasm"])
        .assert_code(2)
        .assert_stderr_has("missing setting `pin` for account `angelone`: set ANGELONE_PIN");
    assert_eq!(a.counts(), (1, 1, 0, 0), "nothing was tried without a seed or a PIN");

    // With the refresh token refused, the login with a wrong PIN is tried once.
    a.mock.state().refresh_refused = true;
    let wrong_pin = format!("W{}", &tokenhost_sandbox::nonce()[..9]);
    a.w.write(".env", &dotenv(&key, Some(&wrong_pin), &seed));
    a.w.run(&["run", "--force", "angelone.wasm"])
        .assert_code(3)
        .assert_stderr_has("login: Login Id or password is invalid (AB1007)");
    assert_eq!(a.counts(), (2, 1, 1, 0), "a wrong PIN is never retried");

    let wrong_key = format!("X{}", &tokenhost_sandbox::nonce()[..15]);
    a.w.write(".env", &dotenv(&wrong_key, Some(&pin), &seed));
    a.w.run(&["run", "--force", "angelone.wasm"]).assert_code(3).assert_stderr_has("Invalid apiKey (AB1053)");
    assert_eq!(a.counts().0, 3);
    assert_eq!(std::fs::read(a.token_file()).unwrap(), good);
    a.secrets.extend([wrong_pin, wrong_key]);
    a.assert_no_leak();
}

#[test]
fn broker_faults_are_transient_and_keep_the_token() {
    let a = angel_world("angelone-faults");
    a.w.write(
        "tokenhost.toml",
        "[accounts.angelone]\nprovider = \"angelone.wasm\"\n[accounts.angelone.limits]\nread_timeout_secs = 1\n",
    );
    a.w.run(&["run", "angelone"]).assert_code(0);
    let good = std::fs::read(a.token_file()).unwrap();
    let slow = Fault::Slow(std::time::Duration::from_secs(3));
    // Each run renews first: a rate limit or no answer ends it; any other failed renewal is
    // followed by the TOTP login, which meets the second fault.
    let cases: [(&[Fault], usize, &str); 9] = [
        (
            &[Fault::RateLimited],
            0,
            "generateTokens: Angel One's rate limit (Access denied because of exceeding access rate)",
        ),
        (&[Fault::HangUp], 0, "try again later"),
        (
            &[Fault::ServerError, Fault::ServerError],
            0,
            "login: Something Went Wrong, Please Try After Sometime (AB1004, HTTP 500)",
        ),
        (&[Fault::Garbage, Fault::Garbage], 0, "could not be understood"),
        (&[Fault::ServerError, Fault::RateLimited], 0, "login: Angel One's rate limit"),
        (&[Fault::ServerError, Fault::HangUp], 0, "try again later"),
        // AB1004 under HTTP 200, as Angel answers it.
        (
            &[Fault::ServerError],
            1,
            "login: Something Went Wrong, Please Try After Sometime (AB1004, HTTP 200)",
        ),
        (&[slow], 0, "try again later"),
        (&[Fault::ServerError, slow], 0, "try again later"),
    ];
    for (faults, try_later, message) in cases {
        {
            let mut s = a.mock.state();
            s.faults = faults.to_vec();
            s.try_later = try_later;
        }
        a.w.run(&["run", "--force", "--attempts", "1", "angelone"]).assert_code(4).assert_stderr_has(message);
        assert_eq!(std::fs::read(a.token_file()).unwrap(), good, "{faults:?}");
        let s = a.mock.state();
        assert!(s.faults.is_empty() && s.try_later == 0, "{faults:?}: every fault was met");
    }
    a.assert_no_leak();
}
