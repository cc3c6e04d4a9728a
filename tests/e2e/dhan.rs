//! The Dhan provider against the strict Dhan stand-in: the daily login with no person present,
//! from the `.env` names Dhan users have, the expiry from `expiryTime` (IST, no offset), the
//! profile check, the one retry of a refused TOTP code, bad settings and broker faults.

use crate::support::*;
use tokenhost_sandbox::Server;
use tokenhost_sandbox::dhan::DhanMock;
use tokenhost_sandbox::totp::Fault;

pub const DHAN: &str = env!("TOKENHOST_COMPONENT_DHAN");
const CLIENT: &str = "1100012345";

struct Dhan {
    w: World,
    mock: DhanMock,
    _server: Server,
    secrets: Vec<String>,
}

fn dhan_world(name: &str) -> Dhan {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let mock = DhanMock::new();
    let pin = format!("P{}", &tokenhost_sandbox::nonce()[..9]);
    let seed = mock.account(CLIENT, &pin);
    let server = mock.serve();
    w.write(".env", &format!("# Dhan\nDHAN_CLIENT_ID={CLIENT}\nDHAN_PIN={pin}\nDHAN_TOTP_SECRET={seed}\n"));
    // Only tests point the provider at a stand-in; a user's .env never needs these.
    w.set_env("DHAN_AUTH_ROOT", Some(&server.url()));
    w.set_env("DHAN_API_ROOT", Some(&server.url()));
    std::fs::copy(DHAN, w.dir.join("dhan.wasm")).unwrap();
    Dhan { w, mock, _server: server, secrets: vec![pin, seed] }
}

impl Dhan {
    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("dhan").join("token.json")
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
fn the_daily_login_needs_no_person_and_lasts_until_the_expiry_time() {
    let d = dhan_world("dhan-login");
    let started = tokenhost::time::now();
    d.w.run(&["run", "dhan.wasm"]).assert_code(0).assert_stdout_has("dhan: refreshed (no token stored)");
    assert_eq!(d.counts(), (1, 1));
    let stored = d.stored();
    let token = stored["access_token"].as_str().unwrap().to_string();
    assert_eq!(d.mock.state().live.get(CLIENT), Some(&token));
    // expiryTime is IST without an offset: 24 h after the login, read as IST.
    let expires = stored["expires_at"].as_i64().unwrap();
    assert!((started + 86_400..=tokenhost::time::now() + 86_400).contains(&expires), "{stored}");
    assert_eq!(stored["expiry_source"], "provider");
    assert_eq!(stored["user_id"], CLIENT);
    #[cfg(unix)]
    assert_eq!(mode(&d.token_file()), 0o600);

    d.w.run(&["check", "dhan"]).assert_code(0).assert_stdout_has("dhan: valid");
    d.w.run(&["run", "dhan.wasm"]).assert_code(0).assert_stdout_has("dhan: fresh");
    // A new login ends the old token at Dhan: check then says so.
    d.w.run(&["run", "--force", "dhan.wasm"]).assert_code(0);
    assert_ne!(d.stored()["access_token"].as_str(), Some(token.as_str()));
    std::fs::write(d.token_file(), serde_json::to_vec(&stored).unwrap()).unwrap();
    d.w.run(&["check", "dhan"])
        .assert_code(3)
        .assert_stdout_has("Client ID or user generated access token is invalid or expired. (DH-901)");
    // No logout endpoint: said plainly, nothing forgotten.
    d.w.run(&["logout", "dhan"]).assert_code(2).assert_stderr_has("documents no logout endpoint");
    assert!(d.token_file().exists());
    d.assert_no_leak();
}

#[test]
fn a_code_from_the_previous_window_is_retried_once_with_the_next() {
    let d = dhan_world("dhan-window");
    // Dhan's clock is a window ahead: the provider's first code is Dhan's previous one.
    d.mock.state().clock_offset = 30;
    d.w.run(&["run", "dhan.wasm"]).assert_code(0);
    assert_eq!(d.counts(), (2, 1), "one refusal, then the next window's code");
    let good = std::fs::read(d.token_file()).unwrap();
    // Three windows ahead: both codes are wrong, and there is no third attempt.
    d.mock.state().clock_offset = 90;
    d.w.run(&["run", "--force", "dhan.wasm"])
        .assert_code(3)
        .assert_stderr_has("refused the TOTP code twice")
        .assert_stderr_has("`totp-secret`");
    assert_eq!(d.mock.state().attempts, 4);
    assert_eq!(std::fs::read(d.token_file()).unwrap(), good);
    d.assert_no_leak();
}

#[test]
fn a_bad_seed_a_missing_pin_and_a_wrong_pin_each_name_what_to_fix() {
    let mut d = dhan_world("dhan-settings");
    d.w.run(&["run", "dhan.wasm"]).assert_code(0);
    let good = std::fs::read(d.token_file()).unwrap();
    let env = std::fs::read_to_string(d.w.dir.join(".env")).unwrap();

    d.w.set_env("DHAN_TOTP_SECRET", Some("not a base32 seed!"));
    d.w.run(&["run", "--force", "dhan.wasm"])
        .assert_code(2)
        .assert_stderr_has("setting `totp-secret` of account `dhan`: is not a TOTP secret");
    d.w.set_env("DHAN_TOTP_SECRET", None);

    let no_pin: String =
        env.lines().filter(|l| !l.starts_with("DHAN_PIN=")).map(|l| format!("{l}\n")).collect();
    d.w.write(".env", &no_pin);
    d.w.run(&["run", "--force", "dhan.wasm"])
        .assert_code(2)
        .assert_stderr_has("missing setting `pin` for account `dhan`: set DHAN_PIN");
    assert_eq!(d.mock.state().attempts, 1, "no login was tried without a seed or a PIN");

    let wrong = format!("W{}", &tokenhost_sandbox::nonce()[..9]);
    d.w.write(".env", &format!("{no_pin}DHAN_PIN={wrong}\n"));
    d.w.run(&["run", "--force", "dhan.wasm"]).assert_code(3).assert_stderr_has("Invalid PIN (DH-901)");
    assert_eq!(d.mock.state().attempts, 2, "a wrong PIN is never retried");
    assert_eq!(std::fs::read(d.token_file()).unwrap(), good);
    d.secrets.push(wrong);
    d.assert_no_leak();
}

#[test]
fn broker_faults_are_transient_and_keep_the_token() {
    let d = dhan_world("dhan-faults");
    d.w.write(
        "tokenhost.toml",
        "[accounts.dhan]\nprovider = \"dhan.wasm\"\n[accounts.dhan.limits]\nread_timeout_secs = 1\n",
    );
    d.w.run(&["run", "dhan"]).assert_code(0);
    let good = std::fs::read(d.token_file()).unwrap();
    let cases = [
        (Fault::ServerError, "Dhan answered HTTP 500"),
        (Fault::RateLimited, "Dhan's rate limit"),
        (Fault::Garbage, "could not be understood"),
        (Fault::HangUp, "try again later"),
        (Fault::Slow(std::time::Duration::from_secs(3)), "try again later"),
    ];
    for (fault, message) in cases {
        d.mock.state().faults = vec![fault];
        d.w.run(&["run", "--force", "--attempts", "1", "dhan"]).assert_code(4).assert_stderr_has(message);
        assert_eq!(std::fs::read(d.token_file()).unwrap(), good, "{fault:?}");
    }
    d.assert_no_leak();
}
