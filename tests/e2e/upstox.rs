//! The Upstox provider against the strict Upstox mock: the browser login driven as a browser
//! would, the old SWING_BOT `.env`, the 03:30 IST rule, phone-approved requests delivered to
//! the webhook, and faults.

use crate::support::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokenhost::time::{iso, now};
use tokenhost_sandbox::http;
use tokenhost_sandbox::upstox::{Exp, Fault, UpstoxMock, next_0330_ist};
use tokenhost_sandbox::{Server, nonce};

pub const UPSTOX: &str = env!("TOKENHOST_COMPONENT_UPSTOX");
const KEY: &str = "upkey-4f1c";
/// Broker trouble that must end in exit 4 with the stored token kept.
const TRANSIENT: [Fault; 5] =
    [Fault::ServerError, Fault::RateLimited, Fault::BadGateway, Fault::Garbage, Fault::HangUp];

struct Up {
    w: World,
    mock: UpstoxMock,
    server: Server,
    secret: String,
    /// Every secret a test used (wrong ones too), for the leak scan.
    secrets: Vec<String>,
}

const OLD_ENV_TAIL: &str = "\n# telegram\nTELEGRAM_CHAT_ID=12345\n\nLOG_LEVEL=INFO\n";

/// A folder like the old SWING_BOT's: its `.env`, and `upstox.wasm` beside it.
fn upstox_world(name: &str) -> Up {
    let mut w = World::new(name);
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let redirect = loopback_redirect();
    let secret = format!("UpSecret-{}", nonce());
    let mock = UpstoxMock::new(KEY, &secret, &redirect);
    let server = mock.serve();
    w.write(".env", &old_env(&secret, &redirect, "old-token-from-yesterday"));
    // Only tests point the provider at a mock; a user's .env never needs this.
    w.set_env("UPSTOX_API_ROOT", Some(&server.url()));
    std::fs::copy(UPSTOX, w.dir.join("upstox.wasm")).unwrap();
    Up { w, mock, server, secrets: vec![secret.clone()], secret }
}

fn old_env(secret: &str, redirect: &str, token: &str) -> String {
    format!(
        "# SWING_BOT settings\nUPSTOX_API_KEY={KEY}\nUPSTOX_API_SECRET={secret}\nUPSTOX_REDIRECT_URI={redirect}\n\
         UPSTOX_ACCESS_TOKEN={token}\n{OLD_ENV_TAIL}"
    )
}

/// What the browser saw at the end of a login.
struct Browser {
    status: u16,
    page: String,
}

impl Up {
    fn tokens(&self) -> Vec<String> {
        self.mock.state().issued.clone()
    }

    fn assert_no_leak(&self) {
        self.w.assert_not_leaked(&self.secrets, &self.tokens());
    }

    fn stored_token(&self) -> Option<String> {
        let text = std::fs::read(self.w.account_dir("upstox").join("token.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        Some(v["access_token"].as_str().unwrap().to_string())
    }

    fn stored(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.w.account_dir("upstox").join("token.json")).unwrap())
            .unwrap()
    }

    fn env_file(&self) -> String {
        std::fs::read_to_string(self.w.dir.join(".env")).unwrap()
    }

    /// `tokenhost login upstox --no-browser ARGS`, with the test as the browser: it follows
    /// the printed address to the broker's dialog, which redirects at once (as if the person
    /// had logged in); `between` runs before the browser follows that redirect to the
    /// loopback listener.
    fn login(&self, args: &[&str], between: impl FnOnce(&str) -> String) -> (Out, Option<Browser>) {
        let mut argv = vec!["login", "upstox", "--no-browser"];
        argv.extend_from_slice(args);
        let mut child = self.w.command(&argv).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut err_text = String::new();
        let mut url = None;
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                break;
            }
            err_text.push_str(&line);
            if line.trim_start().starts_with("http") {
                url = Some(line.trim().to_string());
                break;
            }
        }
        let browser = url.map(|url| {
            let (status, headers, body) = http("GET", &url, b"");
            if status != 302 {
                return Browser { status, page: body };
            }
            let back = between(&headers["location"]);
            let (status, _, page) = http("GET", &back, b"");
            Browser { status, page }
        });
        stderr.read_to_string(&mut err_text).unwrap();
        let out = child.wait_with_output().unwrap();
        let out = Output { status: out.status, stdout: out.stdout, stderr: err_text.into_bytes() };
        self.w.record(&argv, &out);
        (Out::from(out), browser)
    }

    /// A login that must work; returns the token the broker issued.
    fn good_login(&self, args: &[&str]) -> String {
        let (out, browser) = self.login(args, str::to_string);
        out.assert_code(0).assert_stdout_has("upstox: logged in, expires");
        let browser = browser.unwrap();
        assert_eq!(browser.status, 200, "{}", browser.page);
        assert!(browser.page.contains("You can close this tab"), "{}", browser.page);
        let issued = self.tokens();
        issued.iter().rev().find(|t| !t.starts_with("ext")).unwrap().clone()
    }
}

#[test]
fn browser_login_with_the_old_env_stores_the_token_and_rewrites_its_line() {
    let up = upstox_world("upstox-login");
    let w = &up.w;
    let before = now();
    up.mock.state().extended = true;
    let token = up.good_login(&["--sink", "dotenv=.env"]);
    let extended = up.tokens()[1].clone();
    // In the store, 0600, with the broker's user and the 03:30 IST expiry.
    assert_eq!(up.stored_token().as_deref(), Some(token.as_str()));
    let stored = up.stored();
    assert_eq!(stored["user_id"], "7XABCD");
    // The year-long read-only token is kept as a secret extra: never shown by `status`.
    assert_eq!(stored["extras"][0]["name"], "extended-token");
    assert_eq!(stored["extras"][0]["value"], extended.as_str());
    assert_eq!(stored["extras"][0]["secret"], true);
    let expires = stored["expires_at"].as_i64().unwrap();
    assert!([next_0330_ist(before), next_0330_ist(now())].contains(&expires), "{stored}");
    #[cfg(unix)]
    assert_eq!(mode(&w.account_dir("upstox").join("token.json")), 0o600);
    // The old .env: only the token line changed, every other line, comment and order kept.
    assert_eq!(up.env_file(), old_env(&up.secret, &up.mock.state().redirect.clone(), &token));
    #[cfg(unix)]
    assert_eq!(mode(&w.dir.join(".env")), 0o600);

    // The old script's --auto, --check and --info.
    w.run(&["run", "upstox.wasm", "--sink", "dotenv=.env"]).assert_code(0).assert_stdout_has("upstox: fresh");
    w.run(&["check", "upstox"]).assert_code(0).assert_stdout_has("upstox: valid");
    let status = w.run(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&status.assert_code(0).stdout).unwrap();
    assert_eq!(rows[0]["account"], "upstox");
    assert_eq!(rows[0]["expires_at"], expires);
    assert_eq!(rows[0]["user_id"], "7XABCD");
    let got = w.run(&["get", "upstox"]);
    assert_eq!(got.assert_code(0).stdout.trim(), token);

    // A .env edited by hand gets the token back at the next run, with no broker call.
    std::fs::write(w.dir.join(".env"), old_env(&up.secret, &up.mock.state().redirect.clone(), "stale"))
        .unwrap();
    let calls = up.mock.state().seen.len();
    w.run(&["run", "upstox.wasm", "--sink", "dotenv=.env"]).assert_code(0);
    assert_eq!(up.env_file(), old_env(&up.secret, &up.mock.state().redirect.clone(), &token));
    assert_eq!(up.mock.state().seen.len(), calls);

    // 03:30 IST came: the broker says the token is dead; the next run asks the phone.
    up.mock.expire_all();
    w.run(&["check", "upstox"]).assert_code(3).assert_stdout_has("upstox: invalid");
    w.run(&["run", "upstox.wasm"]).assert_code(5).assert_stderr_has("approve");
    assert_eq!(up.mock.state().token_requests, 1);
    // The old token stays until a new one arrives.
    assert_eq!(up.stored_token().as_deref(), Some(token.as_str()));
    up.assert_no_leak();
}

#[test]
fn expiry_follows_the_0330_ist_rule_for_tokens_issued_before_and_after_midnight() {
    let up = upstox_world("upstox-expiry");
    // A broker claiming two days: the host still stops at the next 03:30 IST.
    up.mock.state().exp = Exp::TwoDays;
    let t0 = now();
    up.good_login(&[]);
    let e = up.stored()["expires_at"].as_i64().unwrap();
    assert!([next_0330_ist(t0), next_0330_ist(now())].contains(&e), "{} {}", iso(e), iso(t0));
    assert_eq!(up.stored()["expiry_source"], "cutoff");

    // Issued just before and just after the last midnight IST, with no `exp`: both die at
    // 03:30 IST after it. Whether that is still ahead depends on when the test runs; a dead
    // one must be refused with that time named, and the stored token kept.
    up.mock.state().exp = Exp::Absent;
    let t = now();
    let midnight = (t + 19_800).div_euclid(86_400) * 86_400 - 19_800;
    let after = if midnight + 900 <= t { midnight + 900 } else { midnight - 86_400 + 900 };
    for iat in [midnight - 900, after] {
        let kept = up.stored_token().unwrap();
        up.mock.state().iat = Some(iat);
        let expected = next_0330_ist(iat);
        let (out, _) = up.login(&[], str::to_string);
        if expected > now() {
            out.assert_code(0);
            assert_eq!(up.stored()["expires_at"].as_i64(), Some(expected), "issued {}", iso(iat));
        } else {
            out.assert_code(4).assert_stderr_has(&format!("expired at {}", iso(expected)));
            assert_eq!(up.stored_token(), Some(kept));
        }
    }
    up.assert_no_leak();
}

#[test]
fn login_faults_keep_the_previous_token_and_name_the_problem() {
    let mut up = upstox_world("upstox-login-faults");
    let first = up.good_login(&["--sink", "dotenv=.env"]);
    let env_after_first = up.env_file();

    // The code was already used (the broker remembers it even when an exchange fails).
    let (out, page) = up.login(&[], |back| {
        up.mock.state().codes.clear();
        back.to_string()
    });
    out.assert_code(3).assert_stderr_has("UDAPI100057");
    let page = page.unwrap();
    assert_eq!(page.status, 400);
    assert!(page.page.contains("Login failed"), "{}", page.page);

    // Broker trouble during the exchange.
    for (fault, code) in TRANSIENT.map(|f| (f, 4)).into_iter().chain([(Fault::ErrorUnder200, 3)]) {
        let (out, _) = up.login(&[], |back| {
            up.mock.fault(fault);
            back.to_string()
        });
        out.assert_code(code);
        assert_eq!(up.stored_token().as_deref(), Some(first.as_str()), "{fault:?}");
    }

    // A redirect that does not carry this login's state is refused, and the login times out.
    let (out, page) = up.login(&["--timeout", "2"], |back| back.replace("state=", "state=forged"));
    out.assert_code(5).assert_stderr_has("no login arrived within 2s");
    let page = page.unwrap();
    assert_eq!(page.status, 400);
    assert!(page.page.contains("state does not match"), "{}", page.page);

    // A wrong secret (the environment wins over .env).
    let wrong = format!("WrongSecret-{}", nonce());
    up.secrets.push(wrong.clone());
    up.w.set_env("UPSTOX_API_SECRET", Some(&wrong));
    let (out, _) = up.login(&[], str::to_string);
    out.assert_code(3).assert_stderr_has("UDAPI100069");
    up.w.set_env("UPSTOX_API_SECRET", None);

    // A missing setting names itself and where to put it, before any browser.
    up.w.set_env("UPSTOX_REDIRECT_URI", Some(""));
    std::fs::write(up.w.dir.join(".env"), env_after_first.replace("UPSTOX_REDIRECT_URI=", "#")).unwrap();
    let (out, page) = up.login(&[], str::to_string);
    out.assert_code(2).assert_stderr_has("redirect-uri").assert_stderr_has("UPSTOX_REDIRECT_URI");
    assert!(page.is_none());
    std::fs::write(up.w.dir.join(".env"), &env_after_first).unwrap();

    assert_eq!(up.stored_token().as_deref(), Some(first.as_str()));
    assert_eq!(up.env_file(), env_after_first);
    up.assert_no_leak();
}

#[test]
fn token_request_faults_give_the_documented_codes_and_keep_the_token() {
    let mut up = upstox_world("upstox-run-faults");
    up.w.write(
        "tokenhost.toml",
        "[accounts.upstox]\nprovider = \"upstox.wasm\"\n[accounts.upstox.limits]\nread_timeout_secs = 1\n",
    );
    let first = up.good_login(&[]);
    for fault in TRANSIENT.into_iter().chain([Fault::Slow(Duration::from_secs(3))]) {
        up.mock.fault(fault);
        up.w.run(&["run", "upstox", "--force", "--attempts", "1"]).assert_code(4);
        assert_eq!(up.stored_token().as_deref(), Some(first.as_str()), "{fault:?}");
    }
    // Only the slow answer got through to the broker, too late to count.
    assert_eq!(up.mock.state().token_requests, 1);
    let wrong = format!("WrongSecret-{}", nonce());
    up.secrets.push(wrong.clone());
    up.w.set_env("UPSTOX_API_SECRET", Some(&wrong));
    up.w.run(&["run", "upstox", "--force"]).assert_code(3).assert_stderr_has("UDAPI100016");
    up.w.set_env("UPSTOX_API_SECRET", None);
    // A wrong API root is a configuration error that names the setting.
    up.w.set_env("UPSTOX_API_ROOT", Some(&format!("{}/wrong", up.server.url())));
    up.w.run(&["run", "upstox", "--force"]).assert_code(2).assert_stderr_has("api-root");
    up.w.set_env("UPSTOX_API_ROOT", Some(&up.server.url()));
    // Profile check faults: an expired token is invalid (3), a 5xx is transient (4).
    up.mock.fault(Fault::ServerError);
    up.w.run(&["check", "upstox"]).assert_code(4);
    up.mock.fault(Fault::ErrorUnder200);
    up.w.run(&["check", "upstox"]).assert_code(3);
    // The request goes out once; later runs remind the person instead of asking again.
    up.w.run(&["run", "upstox", "--force"]).assert_code(5);
    up.w.run(&["run", "upstox", "--force"]).assert_code(5).assert_stderr_has("waiting for approval");
    assert_eq!(up.mock.state().token_requests, 2);
    assert_eq!(up.stored_token().as_deref(), Some(first.as_str()));
    up.assert_no_leak();
}

/// `serve-webhook` as a background process; killed when dropped.
struct Webhook {
    child: std::process::Child,
    url: String,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn webhook(up: &Up, args: &[&str]) -> Webhook {
    let mut argv = vec!["serve-webhook", "upstox", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let mut child = up.w.command(&argv).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect(&line);
    let url = url.trim_end_matches("/push/ACCOUNT").to_string();
    Webhook { child, url }
}

#[test]
fn pushed_tokens_are_stored_only_when_they_answer_our_request() {
    let up = upstox_world("upstox-push");
    let w = &up.w;
    let hook = webhook(&up, &["--sink", "dotenv=.env"]);
    let push = |body: &[u8]| http("POST", &format!("{}/push/upstox", hook.url), body);

    // Nothing asked for yet: a well-formed push is refused.
    let stray = up.mock.push_body(KEY, "7XABCD", "stray-token-value", now());
    assert_eq!(push(&stray).0, 403);

    w.run(&["run", "upstox.wasm"]).assert_code(5).assert_stderr_has("approve");
    assert_eq!(up.mock.state().token_requests, 1);

    // Wrong app, not JSON, not a token message, oversized, unknown account, wrong method.
    assert_eq!(push(&up.mock.push_body("someone-else", "7XABCD", "x", now())).0, 403);
    assert_eq!(push(b"<xml>not json</xml>").0, 400);
    assert_eq!(push(br#"{"client_id":"upkey-4f1c","message_type":"order_update"}"#).0, 400);
    assert_eq!(push(&vec![b' '; 70 * 1024]).0, 413);
    assert_eq!(http("POST", &format!("{}/push/nobody", hook.url), &stray).0, 404);
    assert_eq!(http("GET", &format!("{}/push/upstox", hook.url), b"").0, 405);
    assert!(up.stored_token().is_none());
    assert!(up.env_file().contains("UPSTOX_ACCESS_TOKEN=old-token-from-yesterday\n"));

    // The person approves on the phone; Upstox delivers the token.
    let body = up.mock.approve().unwrap();
    let pushed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let (status, _, answer) = push(&body);
    assert_eq!(status, 200, "{answer}");
    let token = pushed["access_token"].as_str().unwrap();
    assert_eq!(up.stored_token().as_deref(), Some(token));
    let expires = pushed["expires_at"].as_str().unwrap().parse::<i64>().unwrap() / 1000;
    assert_eq!(up.stored()["expires_at"].as_i64(), Some(expires));
    assert_eq!(
        up.stored()["issued_at"].as_i64(),
        pushed["issued_at"].as_str().unwrap().parse::<i64>().ok().map(|ms| ms / 1000)
    );
    assert!(up.env_file().contains(&format!("UPSTOX_ACCESS_TOKEN={token}\n")));
    w.run(&["check", "upstox"]).assert_code(0);

    // The same delivery again, and again after logout: refused, nothing stored.
    assert_eq!(push(&body).0, 403);
    w.run(&["logout", "upstox"]).assert_code(0).assert_stdout_has("logged out");
    assert_eq!(push(&body).0, 403);
    assert!(up.stored_token().is_none());
    drop(hook);
    up.assert_no_leak();
}

#[test]
fn the_mock_answers_malformed_requests_as_upstox_does() {
    let up = upstox_world("upstox-mock");
    let root = up.server.url();
    let code_of = |body: &str| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], "error");
        let e = &v["errors"][0];
        assert_eq!(e["errorCode"], e["error_code"]);
        e["errorCode"].as_str().unwrap().to_string()
    };
    // `http` sends JSON without Api-Version: both refused before the code is looked at.
    let (s, _, b) = http("POST", &format!("{root}/v2/login/authorization/token"), b"code=x");
    assert_eq!((s, code_of(&b).as_str()), (400, "UDAPI100015"));
    let (s, _, b) = http("GET", &format!("{root}/v2/login/authorization/token"), b"");
    assert_eq!(s, 405, "{b}");
    let (s, _, b) = http("GET", &format!("{root}/v2/user/profiles"), b"");
    assert_eq!(s, 404, "{b}");
    let (s, _, b) = http("GET", &format!("{root}/v2/user/profile"), b"");
    assert_eq!((s, code_of(&b).as_str()), (401, "UDAPI100050"));
    let (s, _, b) = http(
        "GET",
        &format!("{root}/v2/login/authorization/dialog?response_type=code&client_id=nope&redirect_uri=x"),
        b"",
    );
    assert_eq!((s, code_of(&b).as_str()), (400, "UDAPI100068"));
    let (s, _, b) =
        http("POST", &format!("{root}/v3/login/auth/token/request/{KEY}"), br#"{"client_secret":"nope"}"#);
    assert_eq!((s, code_of(&b).as_str()), (401, "UDAPI100016"));
    up.mock.fault(Fault::RateLimited);
    let (s, _, b) = http("GET", &format!("{root}/v2/user/profile"), b"");
    assert_eq!((s, code_of(&b).as_str()), (429, "UDAPI10005"));
}

#[test]
fn a_redirect_uri_that_is_not_loopback_is_pasted_back() {
    let mut up = upstox_world("upstox-paste");
    let redirect = "https://trader.example/upstox/callback";
    up.mock.state().redirect = redirect.into();
    up.w.set_env("UPSTOX_REDIRECT_URI", Some(redirect));
    let mut child =
        up.w.command(&["login", "upstox", "--no-browser"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut text = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no address printed:\n{text}");
        text.push_str(&line);
        if line.trim_start().starts_with("http") {
            break line.trim().to_string();
        }
    };
    // The browser lands on the registered page, which is not ours: the person copies its address.
    let (status, headers, _) = http("GET", &url, b"");
    assert_eq!(status, 302);
    let landed = headers["location"].clone();
    assert!(landed.starts_with(redirect), "{landed}");
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{landed}").unwrap();
    stderr.read_to_string(&mut text).unwrap();
    let out = child.wait_with_output().unwrap();
    let out = Output { status: out.status, stdout: out.stdout, stderr: text.into_bytes() };
    up.w.record(&["login"], &out);
    let out = Out::from(out);
    out.assert_code(0).assert_stdout_has("upstox: logged in").assert_stderr_has("paste the whole address");
    assert_eq!(up.stored_token().as_deref(), up.tokens().last().map(String::as_str));
    up.w.set_env("UPSTOX_REDIRECT_URI", None);
    up.assert_no_leak();
}
