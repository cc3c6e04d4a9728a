//! The Groww provider against the strict Groww stand-in: the daily login with no person present
//! from the TOTP API key and seed under the `.env` names Groww users have, the expiry at the next
//! 06:00 IST (the answer's `expiry` in any form it may take, capped by the cut-off), the
//! `user/detail` check, the one retry of a refused TOTP code, both error envelopes, bad settings
//! and broker faults.

use crate::support::*;
use serde_json::json;
use tokenhost_sandbox::Server;
use tokenhost_sandbox::groww::{Expiry, GrowwMock, next_0600_ist};
use tokenhost_sandbox::totp::Fault;

pub const GROWW: &str = env!("TOKENHOST_COMPONENT_GROWW");
const UCC: &str = "GRW123456";

struct Groww {
    w: World,
    mock: GrowwMock,
    _server: Server,
    secrets: Vec<String>,
}

/// A key shaped like Groww's TOTP API keys (a JWT), unique to the test.
fn api_key() -> String {
    tokenhost_sandbox::fake_jwt(
        &json!({"iss": "groww-key", "role": "auth-totp", "n": tokenhost_sandbox::nonce()}),
    )
}

fn groww_world(name: &str) -> Groww {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let mock = GrowwMock::new();
    let key = api_key();
    let seed = mock.account(UCC, &key);
    let server = mock.serve();
    w.write(".env", &format!("# Groww\nGROWW_API_KEY={key}\nGROWW_TOTP_SECRET={seed}\n"));
    // Only tests point the provider at a stand-in; a user's .env never needs this.
    w.set_env("GROWW_API_ROOT", Some(&server.url()));
    std::fs::copy(GROWW, w.dir.join("groww.wasm")).unwrap();
    Groww { w, mock, _server: server, secrets: vec![key, seed] }
}

impl Groww {
    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("groww").join("token.json")
    }

    fn stored(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.token_file()).unwrap()).unwrap()
    }

    /// (login attempts, logins) so far.
    fn counts(&self) -> (usize, usize) {
        let s = self.mock.state();
        (s.attempts, s.logins)
    }

    fn assert_no_leak(&self) {
        let issued = self.mock.state().issued.clone();
        self.w.assert_not_leaked(&self.secrets, &issued);
    }
}

#[test]
fn the_daily_login_needs_no_person_and_lasts_until_0600_ist() {
    let g = groww_world("groww-login");
    g.w.run(&["inspect", "groww.wasm"]).assert_code(0).assert_stdout_has("cut-off      06:00 at UTC+5:30");
    let started = tokenhost::time::now();
    g.w.run(&["run", "groww.wasm"]).assert_code(0).assert_stdout_has("groww: refreshed (no token stored)");
    assert_eq!(g.counts(), (1, 1));
    let stored = g.stored();
    let token = stored["access_token"].as_str().unwrap().to_string();
    assert_eq!(g.mock.state().live.get(&token).map(String::as_str), Some(UCC));
    // `expiry` (IST, no offset) says the next 06:00 IST, as the cut-off does.
    let expires = stored["expires_at"].as_i64().unwrap();
    let cutoffs = [next_0600_ist(started), next_0600_ist(tokenhost::time::now())];
    assert!(cutoffs.contains(&expires), "{stored}");
    assert_eq!(stored["expiry_source"], "provider");
    // The login answer names no user and the token's `sub` is JSON, not an id: none is stored.
    assert!(stored["user_id"].is_null(), "{stored}");
    #[cfg(unix)]
    assert_eq!(mode(&g.token_file()), 0o600);

    g.w.run(&["check", "groww"]).assert_code(0).assert_stdout_has("groww: valid");
    g.w.run(&["run", "groww.wasm"]).assert_code(0).assert_stdout_has("groww: fresh");
    assert_eq!(g.counts(), (1, 1), "a fresh token needs no login");
    // 06:00 IST came at Groww: the check says the token is dead, in Groww's words.
    g.mock.expire_all();
    g.w.run(&["check", "groww"])
        .assert_code(3)
        .assert_stdout_has("User not authorised to perform this operation (GA005)");
    // No logout endpoint: said plainly, nothing forgotten.
    g.w.run(&["logout", "groww"]).assert_code(2).assert_stderr_has("has no logout endpoint");
    assert!(g.token_file().exists());
    assert!(
        g.mock.state().seen.iter().all(|r| r == "POST /v1/token/api/access" || r == "GET /v1/user/detail")
    );
    g.assert_no_leak();
}

#[test]
fn a_code_from_the_previous_window_is_retried_once_with_the_next() {
    let g = groww_world("groww-window");
    // Groww's clock is a window ahead: the provider's first code is Groww's previous one.
    g.mock.state().clock_offset = 30;
    g.w.run(&["run", "groww.wasm"]).assert_code(0);
    assert_eq!(g.counts(), (2, 1), "one refusal, then the next window's code");
    let good = std::fs::read(g.token_file()).unwrap();
    // Three windows ahead: both codes are wrong, and there is no third attempt.
    g.mock.state().clock_offset = 90;
    g.w.run(&["run", "--force", "groww.wasm"])
        .assert_code(3)
        .assert_stderr_has("refused the TOTP code twice (Invalid TOTP (GA001); then Invalid TOTP (GA001))")
        .assert_stderr_has("`totp-secret`");
    assert_eq!(g.mock.state().attempts, 4);
    assert_eq!(std::fs::read(g.token_file()).unwrap(), good);
    g.assert_no_leak();
}

#[test]
fn a_bad_seed_a_missing_key_and_a_wrong_key_each_name_what_to_fix() {
    let mut g = groww_world("groww-settings");
    g.w.run(&["run", "groww.wasm"]).assert_code(0);
    let good = std::fs::read(g.token_file()).unwrap();
    let env = std::fs::read_to_string(g.w.dir.join(".env")).unwrap();

    g.w.set_env("GROWW_TOTP_SECRET", Some("not a base32 seed!"));
    g.w.run(&["run", "--force", "groww.wasm"])
        .assert_code(2)
        .assert_stderr_has("setting `totp-secret` of account `groww`: is not a TOTP secret");
    g.w.set_env("GROWW_TOTP_SECRET", None);

    let no_key: String =
        env.lines().filter(|l| !l.starts_with("GROWW_API_KEY=")).map(|l| format!("{l}\n")).collect();
    g.w.write(".env", &no_key);
    g.w.run(&["run", "--force", "groww.wasm"])
        .assert_code(2)
        .assert_stderr_has("missing setting `api-key` for account `groww`: set GROWW_API_KEY");
    assert_eq!(g.mock.state().attempts, 1, "no login was tried without a seed or a key");

    // Another key (say, one of the approval flow): Groww's refusal, no retry.
    let wrong = api_key();
    g.w.write(".env", &format!("{no_key}GROWW_API_KEY={wrong}\n"));
    g.w.run(&["run", "--force", "groww.wasm"])
        .assert_code(3)
        .assert_stderr_has("User not authorised to perform this operation (GA005)")
        .assert_stderr_has("check the setting `api-key`");
    assert_eq!(g.mock.state().attempts, 2, "a wrong key is never retried");
    assert_eq!(std::fs::read(g.token_file()).unwrap(), good);
    g.secrets.push(wrong);
    g.assert_no_leak();
}

#[test]
fn broker_faults_are_transient_and_keep_the_token() {
    let g = groww_world("groww-faults");
    g.w.write(
        "tokenhost.toml",
        "[accounts.groww]\nprovider = \"groww.wasm\"\n[accounts.groww.limits]\nread_timeout_secs = 1\n",
    );
    g.w.run(&["run", "groww"]).assert_code(0);
    let good = std::fs::read(g.token_file()).unwrap();
    let cases = [
        (Fault::ServerError, "Groww answered HTTP 500: Internal error occurred (GA000)"),
        (Fault::RateLimited, "Groww's rate limit"),
        (Fault::Garbage, "could not be understood"),
        (Fault::HangUp, "try again later"),
        (Fault::Slow(std::time::Duration::from_secs(3)), "try again later"),
    ];
    for (fault, message) in cases {
        g.mock.state().faults = vec![fault];
        g.w.run(&["run", "--force", "--attempts", "1", "groww"]).assert_code(4).assert_stderr_has(message);
        assert_eq!(std::fs::read(g.token_file()).unwrap(), good, "{fault:?}");
    }
    // The check meets the same faults the same way, and the token stays.
    g.mock.state().faults = vec![Fault::ServerError];
    g.w.run(&["check", "groww"]).assert_code(4);
    assert_eq!(std::fs::read(g.token_file()).unwrap(), good);
    g.assert_no_leak();
}

#[test]
fn the_expiry_is_read_in_every_form_and_the_earlier_of_it_and_0600_ist_wins() {
    let g = groww_world("groww-expiry");
    let login = |expiry: Expiry, lifetime: Option<i64>| {
        {
            let mut s = g.mock.state();
            s.expiry = expiry;
            s.lifetime = lifetime;
        }
        let t0 = tokenhost::time::now();
        g.w.run(&["run", "--force", "groww.wasm"]).assert_code(0);
        let stored = g.stored();
        (t0, tokenhost::time::now(), stored["expires_at"].as_i64().unwrap(), stored)
    };
    // Epoch milliseconds, earlier than the cut-off: Groww's word wins.
    let now = tokenhost::time::now();
    let life = ((next_0600_ist(now) - now) / 2).max(120);
    let (t0, t1, e, stored) = login(Expiry::EpochMillis, Some(life));
    if t1 + life < next_0600_ist(t0) {
        assert!((t0 + life..=t1 + life).contains(&e), "{stored}");
        assert_eq!(stored["expiry_source"], "provider");
    }
    // Epoch seconds, two days on: the 06:00 IST cut-off caps it.
    let (t0, t1, e, stored) = login(Expiry::EpochSecs, Some(2 * 86_400));
    assert!([next_0600_ist(t0), next_0600_ist(t1)].contains(&e), "{stored}");
    assert_eq!(stored["expiry_source"], "cutoff");
    // Unreadable, absent or already past: the JWT's `exp` (a day), capped the same way.
    for (expiry, lifetime) in
        [(Expiry::Unreadable, None), (Expiry::Absent, None), (Expiry::IstLocal, Some(-600))]
    {
        let (t0, t1, e, stored) = login(expiry, lifetime);
        assert!([next_0600_ist(t0), next_0600_ist(t1)].contains(&e), "{expiry:?} {stored}");
        assert_eq!(stored["expiry_source"], "cutoff", "{expiry:?}");
    }
    assert_eq!(g.counts(), (5, 5));
    g.assert_no_leak();
}

#[test]
fn the_header_response_error_envelope_is_read_as_well() {
    let mut g = groww_world("groww-envelope");
    // The seed under the other name users give it.
    let env = std::fs::read_to_string(g.w.dir.join(".env")).unwrap();
    g.w.write(".env", &env.replace("GROWW_TOTP_SECRET=", "GROWW_TOTP_KEY="));
    g.mock.state().header_envelope = true;
    g.w.run(&["run", "groww.wasm"]).assert_code(0).assert_stdout_has("groww: refreshed");
    assert_eq!(g.counts(), (1, 1));
    let good = std::fs::read(g.token_file()).unwrap();
    g.w.run(&["check", "groww"]).assert_code(0);

    // A wrong code, then the next window's: read from `error` with no `status`.
    g.mock.state().clock_offset = 30;
    g.w.run(&["run", "--force", "groww.wasm"]).assert_code(0);
    assert_eq!(g.counts(), (3, 2));
    let good_after = std::fs::read(g.token_file()).unwrap();
    assert_ne!(good_after, good);
    g.mock.state().clock_offset = 0;

    let wrong = api_key();
    g.w.set_env("GROWW_API_KEY", Some(&wrong));
    g.w.run(&["run", "--force", "groww.wasm"])
        .assert_code(3)
        .assert_stderr_has("User not authorised to perform this operation (GA005)");
    assert_eq!(g.counts(), (4, 2));
    g.w.set_env("GROWW_API_KEY", None);
    g.mock.state().faults = vec![Fault::ServerError];
    g.w.run(&["run", "--force", "--attempts", "1", "groww.wasm"]).assert_code(4);
    assert_eq!(std::fs::read(g.token_file()).unwrap(), good_after);
    g.secrets.push(wrong);
    g.assert_no_leak();
}
