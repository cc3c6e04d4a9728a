//! Login reminders: the daemon tells people once, in the configured window, that an account
//! whose broker needs a person has a token that dies before the trading day ends, with a link
//! its own listener serves; the link logs in from a phone's browser. Driven with the Upstox
//! provider (its broker sends `state` back to the daemon's own listener) and the Breeze one (no
//! `state`, a form POST to a loopback redirect on another port, which the daemon listens on for
//! the login's length).

use crate::breeze::BREEZE;
use crate::daemon::{spawn, wait_for};
use crate::support::*;
use crate::upstox::UPSTOX;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenhost_sandbox::breeze::BreezeMock;
use tokenhost_sandbox::browser::{Browser, Step};
use tokenhost_sandbox::upstox::UpstoxMock;
use tokenhost_sandbox::{Response, Server, nonce};

/// `HH:MM` in India, `minutes` from now.
fn ist_clock(minutes: i64) -> String {
    let t = tokenhost::time::now() + minutes * 60;
    tokenhost::time::civil(t, 330 * 60).1[..5].to_string()
}

/// A webhook that keeps every JSON body POSTed to it.
fn webhook() -> (Server, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let server = Server::start(move |req| {
        if let Some(v) = req.json() {
            kept.lock().unwrap().push(v);
        }
        Response::json(200, &serde_json::json!({"ok": true}))
    })
    .unwrap();
    (server, got)
}

fn config(hook: &str, at: &str, until: &str) -> String {
    config_of("up", "upstox", hook, at, until)
}

fn config_of(account: &str, provider: &str, hook: &str, at: &str, until: &str) -> String {
    format!(
        "[accounts.{account}]\nprovider = \"{provider}.wasm\"\n\n[notify]\nwebhook_url = \"{hook}/hook\"\n\n\
         [remind]\nat = \"{at}\"\nuntil = \"{until}\"\nweekdays_only = false\n"
    )
}

fn reminders(got: &Mutex<Vec<serde_json::Value>>) -> Vec<serde_json::Value> {
    got.lock().unwrap().iter().filter(|v| v["outcome"] == "login-due").cloned().collect()
}

#[cfg(unix)]
#[test]
fn a_reminder_goes_out_once_in_its_window_and_its_link_logs_in_from_a_phone() {
    let mut w = World::new("remind");
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let secret = format!("UpSecret-{}", nonce());
    let mock = UpstoxMock::new("upkey-remind", &secret, &redirect);
    let broker = mock.serve();
    w.set_env("UPSTOX_API_ROOT", Some(&broker.url()));
    w.write(
        ".env",
        &format!("UPSTOX_API_KEY=upkey-remind\nUPSTOX_API_SECRET={secret}\nUPSTOX_REDIRECT_URI={redirect}\n"),
    );
    std::fs::copy(UPSTOX, w.dir.join("upstox.wasm")).unwrap();
    let (hook, got) = webhook();
    // The window opens in two hours: nothing is sent yet.
    w.write("tokenhost.toml", &config(&hook.url(), &ist_clock(120), &ist_clock(180)));

    let listen = format!("127.0.0.1:{port}");
    let (d, _) = spawn(&w, &["daemon", "--tick-ms", "100", "--listen", &listen]);
    // The first run asks Upstox for a token request: only a person can approve it.
    wait_for("the first run", Duration::from_secs(30), || {
        d.output().contains("up: failed (interaction-required)")
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(reminders(&got).is_empty(), "a reminder outside its window: {:?}", got.lock().unwrap());

    // The window is open now (it opened a minute ago): one reminder, at once.
    w.write("tokenhost.toml", &config(&hook.url(), &ist_clock(-1), &ist_clock(120)));
    d.signal(libc::SIGHUP);
    wait_for("the reminder", Duration::from_secs(30), || !reminders(&got).is_empty());
    let sent = reminders(&got).remove(0);
    assert_eq!(sent["account"], "up");
    let link = sent["link"].as_str().unwrap().to_string();
    assert!(link.starts_with(&format!("http://{listen}/login/up?d=")), "{link}");
    let text = sent["text"].as_str().unwrap();
    assert!(text.contains("up needs a login today: no token is stored") && text.contains(&link), "{text}");
    wait_for("the daemon's line", Duration::from_secs(10), || d.output().contains("up: login reminder sent"));

    // Once a day: another look (a reload makes one at once) and a restart send nothing more.
    d.signal(libc::SIGHUP);
    wait_for("the reload", Duration::from_secs(10), || d.output().matches("config reloaded").count() == 2);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(reminders(&got).len(), 1, "{:?}", got.lock().unwrap());
    // `status` says a login is due now: no token is stored.
    let rows: serde_json::Value = serde_json::from_str(&w.run(&["status", "--json"]).stdout).unwrap();
    let due = rows[0]["login_due_at"].as_i64().unwrap();
    assert!((tokenhost::time::now() - 60..=tokenhost::time::now()).contains(&due), "{rows}");

    // A forged or stale link starts nothing.
    let browser = Browser::new();
    for bad in [
        link.replace("k=", "k=0"),
        link.replace("/login/up?", "/login/other?"),
        link.replace("?d=", "?d=1999-01-01&x="),
        format!("http://{listen}/login/up"),
    ] {
        let page = browser.request(&Step::get(&bad));
        assert!(matches!(page.status, 403 | 404), "{bad}: {} {}", page.status, page.body);
        w.note_shown(&page.body);
    }

    // The link, opened on a phone: the daemon starts the login and sends the browser on to
    // Upstox, which comes back to the daemon's own listener with the code.
    let (page, _) = browser.follow(&link, |_| false);
    w.note_shown(&page.body);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("You can close this tab"), "{}", page.body);
    wait_for("the login", Duration::from_secs(30), || d.output().contains("up: logged in"));
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.account_dir("up").join("token.json")).unwrap()).unwrap();
    let issued = mock.state().issued.clone();
    assert_eq!(stored["access_token"].as_str(), issued.last().map(String::as_str));
    assert!(d.output().contains("up: login started from a reminder link"), "{}", d.output());

    // The next login is due when this token dies.
    let status = w.run(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(rows[0]["login_due_at"], stored["expires_at"], "{}", status.stdout);
    let table = w.run(&["status"]);
    assert!(table.stdout.contains("LOGIN DUE"), "{}", table.stdout);

    drop(d);
    let printed = got.lock().unwrap().iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n");
    w.note_shown(&printed);
    w.note_shown(&std::fs::read_to_string(w.dir.join("daemon.out")).unwrap_or_default());
    w.note_shown(&std::fs::read_to_string(w.dir.join("daemon.err")).unwrap_or_default());
    w.assert_not_leaked(&[secret], &issued);
}

#[cfg(unix)]
#[test]
fn a_reminder_link_logs_in_where_the_broker_posts_a_form_back_to_another_port() {
    let mut w = World::new("remind-breeze");
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let redirect = loopback_redirect();
    let secret = format!("S{}", &nonce()[..12]);
    let mock = BreezeMock::new("bz-app-key", &secret, &redirect);
    let broker = mock.serve();
    w.set_env("BREEZE_API_ROOT", Some(&broker.url()));
    w.write(
        ".env",
        &format!("BREEZE_API_KEY=bz-app-key\nBREEZE_API_SECRET={secret}\nBREEZE_REDIRECT_URI={redirect}\n"),
    );
    std::fs::copy(BREEZE, w.dir.join("breeze.wasm")).unwrap();
    let (hook, got) = webhook();
    w.write("tokenhost.toml", &config_of("desk", "breeze", &hook.url(), &ist_clock(-1), &ist_clock(120)));
    // The daemon listens on one port; the redirect registered at ICICI is another.
    let listen = format!("127.0.0.1:{}", free_port());
    let (d, _) = spawn(&w, &["daemon", "--tick-ms", "100", "--listen", &listen]);
    wait_for("the reminder", Duration::from_secs(30), || !reminders(&got).is_empty());
    let sent = reminders(&got).remove(0);
    assert_eq!(sent["account"], "desk");
    let link = sent["link"].as_str().unwrap().to_string();

    // A browser that did not open the link (no cookie of its start page) cannot plant a
    // session key, even with a key ICICI issued.
    let phone = Browser::new();
    let (_, callback) = phone.follow(&link, |s| s.url.starts_with(&redirect));
    let callback = callback.expect("ICICI posts the session key back to the redirect URI");
    assert_eq!(callback.method, "POST");
    let stranger = Browser::new();
    let refused = stranger.request(&callback);
    w.note_shown(&refused.body);
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("Login refused"), "{}", refused.body);
    // The phone that opened the link is taken, once.
    let page = phone.request(&callback);
    w.note_shown(&page.body);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("You can close this tab"), "{}", page.body);
    wait_for("the login", Duration::from_secs(30), || d.output().contains("desk: logged in"));
    let again = phone.request(&callback);
    assert!(again.status == 400 || again.status == 0, "{} {}", again.status, again.body);
    w.note_shown(&again.body);
    assert!(w.account_dir("desk").join("token.json").is_file());

    drop(d);
    let said = got.lock().unwrap().iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n");
    w.note_shown(&said);
    w.note_shown(&std::fs::read_to_string(w.dir.join("daemon.out")).unwrap_or_default());
    w.note_shown(&std::fs::read_to_string(w.dir.join("daemon.err")).unwrap_or_default());
    let mut issued = mock.state().issued.clone();
    issued.extend(callback.form.iter().map(|(_, v)| v.clone()));
    w.assert_not_leaked(&[secret], &issued);
}
