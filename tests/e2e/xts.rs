//! The XTS provider against the strict XTS mock: unattended logins, the old script's
//! variables and JSON file, many accounts at once, faults.

use crate::support::*;
use tokenhost_sandbox::Fault;
use tokenhost_sandbox::xts::{Api, XtsMock};

pub const XTS: &str = env!("TOKENHOST_COMPONENT_XTS");

struct Xts {
    w: World,
    mock: XtsMock,
    server: tokenhost_sandbox::Server,
    secret: String,
    md_secret: String,
}

/// A world with one XTS app (and its market-data app) and the old script's `.env`.
fn xts_world(name: &str) -> Xts {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let mock = XtsMock::new();
    let secret = format!("XtsSecret-{}", tokenhost_sandbox::nonce());
    let md_secret = format!("MdSecret-{}", tokenhost_sandbox::nonce());
    mock.app("appkey1", &secret, "AB1234", Api::Interactive);
    mock.app("mdkey1", &md_secret, "AB1234", Api::MarketData);
    let server = mock.serve();
    w.write(
        ".env",
        &format!(
            "# the old cron script's settings\nXTS_API_ROOT={}\nXTS_INTERACTIVE_API_KEY=appkey1\n\
             XTS_INTERACTIVE_API_SECRET={secret}\nXTS_API_SOURCE=WEBAPI\nXTS_USER_ID=AB1234\n\
             XTS_MARKET_DATA_KEY=mdkey1\nXTS_MARKET_DATA_SECRET={md_secret}\n",
            server.url()
        ),
    );
    Xts { w, mock, server, secret, md_secret }
}

impl Xts {
    fn tokens(&self) -> Vec<String> {
        self.mock.state().sessions.keys().cloned().collect()
    }

    fn assert_no_leak(&self) {
        self.w.assert_not_leaked(&[self.secret.clone(), self.md_secret.clone()], &self.tokens());
    }

    fn token_file(&self) -> std::path::PathBuf {
        self.w.account_dir("xts").join("token.json")
    }
}

#[test]
fn unattended_login_from_the_old_env_writes_both_tokens_and_the_old_json_file() {
    let x = xts_world("xts-unattended");
    let w = &x.w;
    let out = w.run(&["run", XTS, "--sink", "json=xts_store_token.json"]);
    out.assert_code(0).assert_stdout_has("xts: refreshed (no token stored)");
    assert_eq!(x.mock.state().logins, 2, "interactive and market-data logins");

    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(x.token_file()).unwrap()).unwrap();
    let token = stored["access_token"].as_str().unwrap().to_string();
    assert_eq!(x.mock.state().sessions.get(&token).map(|s| s.1), Some(Api::Interactive));
    let extras: std::collections::BTreeMap<String, (String, bool)> = stored["extras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                (e["value"].as_str().unwrap().into(), e["secret"].as_bool().unwrap()),
            )
        })
        .collect();
    let (feed, feed_secret) = &extras["feed-token"];
    assert!(feed_secret, "the feed token is a secret extra");
    assert_eq!(x.mock.state().sessions.get(feed).map(|s| s.1), Some(Api::MarketData));
    assert_eq!(extras["userID"].0, "AB1234");
    assert_eq!(extras["isInvestorClient"].0, "false");
    assert_eq!(extras["clientCodes"].0, "AB1234");
    assert_eq!(stored["expires_at"], tokenhost::policy::jwt_exp(&token).unwrap());

    let old = w.dir.join("xts_store_token.json");
    #[cfg(unix)]
    assert_eq!(mode(&old), 0o600);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&old).unwrap()).unwrap();
    let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{json}");
    for key in ["token", "userID", "timestamp", "refreshed_at"] {
        assert!(keys.contains(&key), "{key} missing: {json}");
    }
    assert_eq!(json["token"], token.as_str());
    assert_eq!(json["userID"], "AB1234");

    w.run(&["check", XTS]).assert_code(0).assert_stdout_has("xts: valid");
    // The broker ends the session and, like some XTS servers, says so under HTTP 200.
    x.mock.state().invalid_token_as_200 = true;
    x.mock.state().sessions.remove(&token);
    w.run(&["check", XTS])
        .assert_code(3)
        .assert_stdout_has("xts: invalid (profile: Invalid Token (e-session-0002))");
    let logins = x.mock.state().logins;
    w.run(&["run", XTS, "--sink", "json=xts_store_token.json"])
        .assert_code(0)
        .assert_stdout_has("refreshed (the broker rejected the token at the last check)");
    assert_eq!(x.mock.state().logins, logins + 2);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&old).unwrap()).unwrap();
    assert_ne!(json["token"], token.as_str(), "the old-format file follows the new token");
    w.run(&["check", XTS]).assert_code(0);
    w.run(&["run", XTS]).assert_code(0).assert_stdout_has("xts: fresh");
    let current: serde_json::Value = serde_json::from_slice(&std::fs::read(x.token_file()).unwrap()).unwrap();
    let feed =
        current["extras"].as_array().unwrap().iter().find(|e| e["name"] == "feed-token").unwrap()["value"]
            .clone();
    w.run(&["logout", XTS]).assert_code(0);
    let sessions = x.mock.state().sessions.clone();
    assert!(
        !sessions.contains_key(current["access_token"].as_str().unwrap()),
        "interactive session logged out"
    );
    assert!(!sessions.contains_key(feed.as_str().unwrap()), "market-data session logged out");
    x.assert_no_leak();
}

#[test]
fn access_token_brokers_and_other_market_data_paths() {
    let mut x = xts_world("xts-variants");
    x.mock.state().access_token = Some("req-token-1".into());
    x.mock.state().market_data_path = "/marketdata/auth/login".into();
    // Without the request token the broker refuses `source`.
    x.w.run(&["run", XTS]).assert_code(3).assert_stderr_has("Invalid accessToken");
    x.w.set_env("XTS_ACCESS_TOKEN", Some("req-token-1"));
    x.w.run(&["run", XTS]).assert_code(2).assert_stderr_has(
        "setting `market-data-path` of account `xts`: the broker has no /apimarketdata/auth/login (HTTP 404)",
    );
    x.w.set_env("XTS_MARKET_DATA_PATH", Some("/marketdata/auth/login"));
    x.w.run(&["run", XTS]).assert_code(0);
    // A user id that does not match the login is a configuration error.
    x.w.set_env("XTS_USER_ID", Some("ZZ9999"));
    x.w.run(&["run", "--force", XTS]).assert_code(2).assert_stderr_has(
        "setting `user-id` of account `xts`: the broker logged in user AB1234, not ZZ9999",
    );
    x.assert_no_leak();
}

#[test]
fn broker_faults_keep_the_previous_token() {
    let x = xts_world("xts-faults");
    x.w.write("tokenhost.toml", "[limits]\nread_timeout_secs = 1\n");
    x.w.run(&["run", XTS]).assert_code(0);
    let good = std::fs::read(x.token_file()).unwrap();
    let cases = [
        (Fault::Unavailable, 4, "interactive login: broker answered HTTP 503"),
        (Fault::Garbage, 4, "HTTP 200 with a body that is not an XTS answer"),
        (Fault::Slow(3), 4, "did not answer in time"),
        (Fault::HangUp, 4, "try again later"),
    ];
    for (fault, code, message) in cases {
        x.mock.state().faults = vec![fault];
        x.w.run(&["run", "--force", "--attempts", "1", XTS]).assert_code(code).assert_stderr_has(message);
        assert_eq!(std::fs::read(x.token_file()).unwrap(), good, "{fault:?}");
    }
    // A wrong secret: rejected with the broker's description, token kept, secret never shown.
    let mut x = x;
    let wrong = format!("WrongSecret-{}", tokenhost_sandbox::nonce());
    x.w.set_env("XTS_API_SECRET", Some(&wrong));
    x.w.run(&["run", "--force", XTS])
        .assert_code(3)
        .assert_stderr_has("Invalid appKey or secretKey (e-user-0004)");
    assert_eq!(std::fs::read(x.token_file()).unwrap(), good);
    x.w.assert_not_leaked(&[wrong], &[]);
    x.assert_no_leak();
}

#[test]
fn run_all_over_fifty_accounts_on_two_roots_with_five_bad_secrets() {
    let x = xts_world("xts-all");
    let second = XtsMock::new();
    let second_server = second.serve();
    let mut toml = String::new();
    let mut secrets = Vec::new();
    for i in 0..50 {
        let (mock, server) = if i % 2 == 0 { (&x.mock, &x.server) } else { (&second, &second_server) };
        let secret = format!("sec-{i}-{}", tokenhost_sandbox::nonce());
        mock.app(&format!("key{i}"), &secret, &format!("CL{i:03}"), Api::Interactive);
        let given =
            if i % 10 == 3 { format!("bad-{i}-{}", tokenhost_sandbox::nonce()) } else { secret.clone() };
        toml.push_str(&format!(
            "[accounts.client-{i:02}]\nprovider = {XTS:?}\nenv_prefix = \"CLIENT_{i:02}\"\n\
             [accounts.client-{i:02}.settings]\napi-root = {:?}\napi-key = \"key{i}\"\napi-secret = {given:?}\n\n",
            server.url()
        ));
        secrets.push(secret);
        secrets.push(given);
    }
    x.w.write("tokenhost.toml", &toml);
    let out = x.w.run(&["run", "--all"]);
    out.assert_code(3).assert_stdout_has("50 accounts: 45 refreshed, 5 rejected");
    for i in 0..50 {
        let line = out.stdout.lines().find(|l| l.starts_with(&format!("client-{i:02}: "))).unwrap();
        let stored = x.w.account_dir(&format!("client-{i:02}")).join("token.json").exists();
        if i % 10 == 3 {
            assert!(line.contains("failed (rejected)"), "{line}");
            assert!(!stored);
        } else {
            assert!(line.contains("refreshed (no token stored)"), "{line}");
            assert!(stored);
        }
    }
    // A second pass touches nobody good and retries only the bad five.
    let logins = x.mock.state().logins + second.state().logins;
    x.w.run(&["run", "--all"]).assert_code(3).assert_stdout_has("50 accounts: 45 fresh, 5 rejected");
    assert_eq!(x.mock.state().logins + second.state().logins, logins);

    let status = x.w.run(&["status", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(rows.len(), 50);
    assert_eq!(rows.iter().filter(|r| r["state"] == "fresh").count(), 45);
    assert_eq!(rows.iter().filter(|r| r["last_outcome"] == "rejected").count(), 5);
    let table = x.w.run(&["status"]);
    table.assert_code(0).assert_stdout_has("ACCOUNT").assert_stdout_has("client-49");
    let mut tokens = x.tokens();
    tokens.extend(second.state().sessions.keys().cloned());
    x.w.assert_not_leaked(&secrets, &tokens);
}

/// Issue 15: the JSON file carried `timestamp` as an integer and `refreshed_at` in UTC with a
/// `Z`, so readers of the old script's file (`datetime.fromisoformat(d["timestamp"])`) broke.
/// Now it is the old script's file to the letter: its key order, local times as strings.
#[test]
fn the_old_xts_file_is_written_as_the_old_script_wrote_it() {
    let mut x = xts_world("xts-oldfile");
    // A machine in India, as the old script's users' are.
    x.w.set_env("TZ", Some("Asia/Kolkata"));
    x.w.run(&["run", XTS, "--sink", "json=xts_store_token.json"]).assert_code(0);
    let text = std::fs::read_to_string(x.w.dir.join("xts_store_token.json")).unwrap();
    let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key}: {text}"));
    assert!(
        at("token") < at("userID") && at("userID") < at("timestamp") && at("timestamp") < at("refreshed_at"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(x.token_file()).unwrap()).unwrap();
    assert_eq!(json["token"], stored["access_token"]);
    assert_eq!(json["userID"], "AB1234");
    // The stored instant, in IST, as Python's isoformat() and strftime wrote it.
    let ist = stored["refreshed_at"].as_i64().unwrap() + 19_800;
    let (days, secs) = (ist.div_euclid(86_400), ist.rem_euclid(86_400));
    let clock = format!("{:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60);
    let timestamp = json["timestamp"].as_str().unwrap();
    let refreshed = json["refreshed_at"].as_str().unwrap();
    assert!(timestamp.contains(&format!("T{clock}")), "{timestamp} is not {clock} IST");
    assert!(refreshed.ends_with(&format!(" {clock}")), "{refreshed}");
    assert_eq!(timestamp[..10], refreshed[..10]);
    assert_eq!(days, python_days(&refreshed[..10]));
    // Read the way the old script's readers read it.
    let reader = "import json, sys, datetime\n\
        d = json.load(open(sys.argv[1]))\n\
        t = datetime.datetime.fromisoformat(d['timestamp'])\n\
        r = datetime.datetime.strptime(d['refreshed_at'], '%Y-%m-%d %H:%M:%S')\n\
        assert t.tzinfo is None and 0 <= (t - r).total_seconds() < 1, (t, r)\n\
        print(t.isoformat(), r.isoformat(), d['userID'])\n";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(reader)
        .arg(x.w.dir.join("xts_store_token.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).trim_end().ends_with(" AB1234"));
    x.assert_no_leak();
}

/// Days since 1970-01-01 of `YYYY-MM-DD`, computed independently of the host's calendar code.
fn python_days(date: &str) -> i64 {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import datetime; print((datetime.date.fromisoformat('{date}') - datetime.date(1970, 1, 1)).days)"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
