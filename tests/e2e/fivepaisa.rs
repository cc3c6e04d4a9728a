//! The 5paisa provider against the strict 5paisa stand-in: the daily two-step login with no
//! person present, from the `.env` names 5paisa users have, the expiry at 23:59 IST (or the
//! JWT's `exp` when earlier), the margin check, the one retry of a refused TOTP code, bad
//! settings, a refused app key pair, the one-use RequestToken and broker faults.

use crate::support::*;
use tokenhost_sandbox::Server;
use tokenhost_sandbox::fivepaisa::FivePaisaMock;
use tokenhost_sandbox::totp::Fault;

pub const FIVEPAISA: &str = env!("TOKENHOST_COMPONENT_FIVEPAISA");
const CLIENT: &str = "58123456";
const TOTP_LOGIN: &str = "POST /VendorsAPI/Service1.svc/TOTPLogin";
const ACCESS_TOKEN: &str = "POST /VendorsAPI/Service1.svc/GetAccessToken";

struct FivePaisa {
    w: World,
    mock: FivePaisaMock,
    server: Server,
    secrets: Vec<String>,
    env: String,
}

fn fivepaisa_world(name: &str) -> FivePaisa {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let mock = FivePaisaMock::new();
    let pin = format!("P{}", &tokenhost_sandbox::nonce()[..9]);
    let seed = mock.account(CLIENT, &pin);
    let server = mock.serve();
    let (key, user, encryption) = {
        let s = mock.state();
        (s.user_key.clone(), s.user_id.clone(), s.encryption_key.clone())
    };
    let env = format!(
        "# 5paisa\nFIVEPAISA_USER_KEY={key}\nFIVEPAISA_USER_ID={user}\nFIVEPAISA_ENCRYPTION_KEY={encryption}\n\
         FIVEPAISA_CLIENT_CODE={CLIENT}\nFIVEPAISA_PIN={pin}\nFIVEPAISA_TOTP_SECRET={seed}\n"
    );
    w.write(".env", &env);
    // Only tests point the provider at a stand-in; a user's .env never needs this.
    w.set_env("FIVEPAISA_API_ROOT", Some(&server.url()));
    std::fs::copy(FIVEPAISA, w.dir.join("fivepaisa.wasm")).unwrap();
    FivePaisa { w, mock, server, secrets: vec![pin, seed, encryption], env }
}

/// The first 23:59 IST after `t`.
fn next_2359_ist(t: i64) -> i64 {
    let ist = 330 * 60;
    let at = (t + ist).div_euclid(86_400) * 86_400 + 23 * 3600 + 59 * 60 - ist;
    if at <= t { at + 86_400 } else { at }
}

impl FivePaisa {
    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("fivepaisa").join("token.json")
    }

    fn stored(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.token_file()).unwrap()).unwrap()
    }

    /// (login attempts, logins) so far.
    fn counts(&self) -> (usize, usize) {
        let s = self.mock.state();
        (s.attempts, s.logins)
    }

    /// The `.env` without the lines of `var`.
    fn env_without(&self, var: &str) -> String {
        self.env.lines().filter(|l| !l.starts_with(&format!("{var}="))).map(|l| format!("{l}\n")).collect()
    }

    fn assert_no_leak(&self) {
        let issued = self.mock.state().issued.clone();
        self.w.assert_not_leaked(&self.secrets, &issued);
    }
}

#[test]
fn the_daily_login_needs_no_person_and_lasts_until_23_59_ist() {
    let d = fivepaisa_world("fivepaisa-login");
    d.w.run(&["run", "fivepaisa.wasm"])
        .assert_code(0)
        .assert_stdout_has("fivepaisa: refreshed (no token stored)");
    assert_eq!(d.counts(), (1, 1));
    assert_eq!(d.mock.state().seen, [TOTP_LOGIN, ACCESS_TOKEN]);
    let stored = d.stored();
    let token = stored["access_token"].as_str().unwrap().to_string();
    assert_eq!(d.mock.state().live.get(&token).map(String::as_str), Some(CLIENT));
    // The JWT says a day; 5paisa kills every token at 23:59 IST, which comes first.
    let issued = stored["issued_at"].as_i64().unwrap();
    assert!((tokenhost::time::now() - issued).abs() < 60, "{stored}");
    assert_eq!(stored["expires_at"].as_i64(), Some(next_2359_ist(issued)), "{stored}");
    assert_eq!(stored["expiry_source"], "cutoff");
    assert_eq!(stored["user_id"], CLIENT);
    #[cfg(unix)]
    assert_eq!(mode(&d.token_file()), 0o600);

    d.w.run(&["check", "fivepaisa"]).assert_code(0).assert_stdout_has("fivepaisa: valid");
    assert_eq!(
        d.mock.state().seen.last().map(String::as_str),
        Some("POST /VendorsAPI/Service1.svc/V4/Margin")
    );
    d.w.run(&["run", "fivepaisa.wasm"]).assert_code(0).assert_stdout_has("fivepaisa: fresh");
    assert_eq!(d.counts(), (1, 1));
    // 23:59 IST at 5paisa: every token dies, and the check says so.
    d.mock.state().live.clear();
    d.w.run(&["check", "fivepaisa"]).assert_code(3).assert_stdout_has("margin: Invalid Session (Status 9)");
    // No logout endpoint: said plainly, nothing forgotten.
    d.w.run(&["logout", "fivepaisa"]).assert_code(2).assert_stderr_has("documents no logout endpoint");
    assert!(d.token_file().exists());
    d.assert_no_leak();
}

#[test]
fn a_code_from_the_previous_window_is_retried_once_with_the_next() {
    let d = fivepaisa_world("fivepaisa-window");
    // 5paisa's clock is a window ahead: the provider's first code is 5paisa's previous one.
    d.mock.state().clock_offset = 30;
    d.w.run(&["run", "fivepaisa.wasm"]).assert_code(0);
    assert_eq!(d.counts(), (2, 1), "one refusal, then the next window's code");
    let good = std::fs::read(d.token_file()).unwrap();
    // Three windows ahead: both codes are wrong, and there is no third attempt.
    d.mock.state().clock_offset = 90;
    d.w.run(&["run", "--force", "fivepaisa.wasm"])
        .assert_code(3)
        .assert_stderr_has("refused the TOTP code twice (Invalid TOTP (Status 2)")
        .assert_stderr_has("`totp-secret`");
    assert_eq!(d.counts(), (4, 1));
    assert_eq!(std::fs::read(d.token_file()).unwrap(), good);
    d.assert_no_leak();
}

#[test]
fn a_bad_seed_a_missing_pin_and_a_wrong_pin_each_name_what_to_fix() {
    let mut d = fivepaisa_world("fivepaisa-settings");
    d.w.run(&["run", "fivepaisa.wasm"]).assert_code(0);
    let good = std::fs::read(d.token_file()).unwrap();

    d.w.set_env("FIVEPAISA_TOTP_SECRET", Some("not a base32 seed!"));
    d.w.run(&["run", "--force", "fivepaisa.wasm"])
        .assert_code(2)
        .assert_stderr_has("setting `totp-secret` of account `fivepaisa`: is not a TOTP secret");
    d.w.set_env("FIVEPAISA_TOTP_SECRET", None);

    let no_pin = d.env_without("FIVEPAISA_PIN");
    d.w.write(".env", &no_pin);
    d.w.run(&["run", "--force", "fivepaisa.wasm"])
        .assert_code(2)
        .assert_stderr_has("missing setting `pin` for account `fivepaisa`: set FIVEPAISA_PIN");
    assert_eq!(d.mock.state().attempts, 1, "no login was tried without a seed or a PIN");

    let wrong = format!("W{}", &tokenhost_sandbox::nonce()[..9]);
    d.w.write(".env", &format!("{no_pin}FIVEPAISA_PIN={wrong}\n"));
    d.w.run(&["run", "--force", "fivepaisa.wasm"])
        .assert_code(3)
        .assert_stderr_has("TOTP login: Invalid login/password (Status 1)");
    assert_eq!(d.counts(), (2, 1), "a wrong PIN is never retried");
    assert_eq!(std::fs::read(d.token_file()).unwrap(), good);
    d.secrets.push(wrong);
    d.assert_no_leak();
}

#[test]
fn a_wrong_encryption_key_or_user_id_is_refused_at_the_second_step() {
    let mut d = fivepaisa_world("fivepaisa-app");
    d.w.run(&["run", "fivepaisa.wasm"]).assert_code(0);
    let good = std::fs::read(d.token_file()).unwrap();

    let wrong_key = format!("E{}", tokenhost_sandbox::nonce());
    d.w.set_env("FIVEPAISA_ENCRYPTION_KEY", Some(&wrong_key));
    d.w.run(&["run", "--force", "fivepaisa.wasm"])
        .assert_code(3)
        .assert_stderr_has("access token: Invalid EncryKey (Status 1): check `encryption-key` and `user-id`");
    d.w.set_env("FIVEPAISA_ENCRYPTION_KEY", None);
    d.w.set_env("FIVEPAISA_USER_ID", Some("U0000000000"));
    d.w.run(&["run", "--force", "fivepaisa.wasm"])
        .assert_code(3)
        .assert_stderr_has("Invalid UserId (Status 1)");
    d.w.set_env("FIVEPAISA_USER_ID", None);
    {
        let s = d.mock.state();
        assert_eq!((s.attempts, s.exchanges, s.logins), (3, 3, 1), "each step 1 passed, no step retried");
    }
    assert_eq!(std::fs::read(d.token_file()).unwrap(), good);

    // A RequestToken works once, and only one 5paisa issued: the stand-in refuses the one the
    // first login used, and a made-up one, however right the rest.
    let (used, key, user, encryption) = {
        let s = d.mock.state();
        (s.issued[0].clone(), s.user_key.clone(), s.user_id.clone(), s.encryption_key.clone())
    };
    let post = |endpoint: &str, request: serde_json::Value| {
        let url = format!("{}/VendorsAPI/Service1.svc/{endpoint}", d.server.url());
        let (status, _, body) = tokenhost_sandbox::http("POST", &url, request.to_string().as_bytes());
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        (
            status,
            body["body"]["Status"].as_i64().unwrap(),
            body["body"]["Message"].as_str().unwrap().to_string(),
        )
    };
    for request_token in [used, format!("R{}", tokenhost_sandbox::nonce())] {
        let body = serde_json::json!({"RequestToken": request_token, "EncryKey": encryption, "UserId": user});
        let refused = post("GetAccessToken", serde_json::json!({"head": {"Key": key}, "body": body}));
        assert_eq!(refused, (200, 1, "Invalid RequestToken".to_string()));
    }
    // A TOTP sent as a number is not 5paisa's request.
    let body = serde_json::json!({"Email_ID": CLIENT, "TOTP": 123456, "PIN": d.secrets[0]});
    let (status, code, _) = post("TOTPLogin", serde_json::json!({"head": {"Key": key}, "body": body}));
    assert_eq!((status, code), (400, 2));
    assert_eq!(d.mock.state().logins, 1);
    d.secrets.push(wrong_key);
    d.assert_no_leak();
}

#[test]
fn an_email_logs_in_to_the_client_code_and_an_earlier_jwt_exp_counts() {
    let d = fivepaisa_world("fivepaisa-email");
    let email = format!("trader.{}@example.com", &tokenhost_sandbox::nonce()[..8]);
    d.mock.login_id(&email, CLIENT);
    // A token that dies in ten minutes, before 23:59 IST (unless that comes first).
    d.mock.state().token_life = 600;
    let env = d.env_without("FIVEPAISA_CLIENT_CODE");
    d.w.write(".env", &format!("{env}FIVEPAISA_EMAIL={email}\n"));
    d.w.run(&["run", "fivepaisa.wasm"]).assert_code(0);
    let stored = d.stored();
    assert_eq!(stored["user_id"], CLIENT, "5paisa's ClientCode, not the email");
    let issued = stored["issued_at"].as_i64().unwrap();
    // The provider reads `exp` from the JWT; the host's cut-off caps it.
    let (expires, source) = if issued + 600 < next_2359_ist(issued) {
        (issued + 600, "provider")
    } else {
        (next_2359_ist(issued), "cutoff")
    };
    assert_eq!(stored["expires_at"].as_i64(), Some(expires), "{stored}");
    assert_eq!(stored["expiry_source"], source);
    // The check asks for the margin of the client code the login gave.
    d.w.run(&["check", "fivepaisa"]).assert_code(0).assert_stdout_has("fivepaisa: valid");
    d.assert_no_leak();
}

#[test]
fn broker_faults_are_transient_and_keep_the_token() {
    let d = fivepaisa_world("fivepaisa-faults");
    d.w.write(
        "tokenhost.toml",
        "[accounts.fivepaisa]\nprovider = \"fivepaisa.wasm\"\n[accounts.fivepaisa.limits]\nread_timeout_secs = 1\n",
    );
    d.w.run(&["run", "fivepaisa"]).assert_code(0);
    let good = std::fs::read(d.token_file()).unwrap();
    let cases = [
        (Fault::ServerError, "5paisa answered HTTP 500"),
        (Fault::RateLimited, "5paisa's rate limit"),
        (Fault::Garbage, "could not be understood"),
        (Fault::HangUp, "try again later"),
        (Fault::Slow(std::time::Duration::from_secs(3)), "try again later"),
    ];
    for (fault, message) in cases {
        d.mock.state().faults = vec![fault];
        d.w.run(&["run", "--force", "--attempts", "1", "fivepaisa"])
            .assert_code(4)
            .assert_stderr_has(message);
        assert_eq!(std::fs::read(d.token_file()).unwrap(), good, "{fault:?}");
    }
    // Status -1 under HTTP 200 is 5paisa's own "try later".
    d.mock.state().unable = 1;
    d.w.run(&["run", "--force", "--attempts", "1", "fivepaisa"])
        .assert_code(4)
        .assert_stderr_has("TOTP login: Server unable to process request (Status -1)");
    assert_eq!(std::fs::read(d.token_file()).unwrap(), good);
    d.assert_no_leak();
}
