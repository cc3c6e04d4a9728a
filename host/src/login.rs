//! `tokenhost login`: a person logs in at the broker in a browser; the broker sends the browser
//! back to the provider's `redirect-uri`, where a one-shot listener on the loopback interface
//! takes the answer, checks `state`, and hands the parameters to the provider.
//!
//! A redirect URI that is not loopback `http://` cannot be listened on here: the person then
//! pastes the address the broker sent them to.

use crate::accounts::Context;
use crate::serve::{Response, Server};
use crate::settings::Account;
use crate::store::StoredToken;
use crate::{Error, time};
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// The setting a provider with a browser login declares for its registered redirect URI.
pub const REDIRECT_SETTING: &str = "redirect-uri";

/// How `login` behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Open the system's browser (else only print the address).
    pub open_browser: bool,
    /// How long to wait for the broker's redirect.
    pub timeout: Duration,
    /// Something other than a person that follows the login page (the demo plays the
    /// browser); called on its own thread with the address, instead of showing it.
    pub agent: Option<fn(&str)>,
}

type Params = Vec<(String, String)>;
/// A callback the listener took, and where to send the page to show.
type Callback = (Params, mpsc::Sender<Response>);

/// Runs a browser login for `account` and stores the token it yields.
pub async fn login(ctx: &Context, account: &Account, opts: &Options) -> Result<StoredToken, Error> {
    let dir = ctx.state.account(&account.name)?;
    let mut provider = ctx.start(account).await?;
    let info = provider.info().clone();
    let redirect = ctx
        .config
        .resolve(account, &info)?
        .get(REDIRECT_SETTING)
        .map(|s| s.expose().to_string())
        .ok_or_else(|| {
            Error::Config(format!(
                "provider `{}` declares no `{REDIRECT_SETTING}` setting, so it has no browser login",
                info.name
            ))
        })?;
    let state = crate::secret::random_hex();
    let (params, page) = match Loopback::parse(&redirect) {
        Some(lb) => {
            // Listen before the browser opens, so a fast broker cannot beat us to it.
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let server = lb.listen(state.clone(), tx)?;
            let url = provider.login_url(&redirect, &state).await?;
            show(&url, &info.name, opts, &format!("the broker to send you back to {redirect}"));
            let (params, page) = wait(rx, opts.timeout, &account.name).await?;
            (params, Some((page, server)))
        }
        None => {
            let url = provider.login_url(&redirect, &state).await?;
            show(&url, &info.name, opts, "you");
            eprintln!(
                "{redirect} is not a loopback http:// address, so tokenhost cannot catch the redirect.\n\
                 After logging in, paste the whole address the browser was sent to, then press Enter:"
            );
            (pasted(&state)?, None)
        }
    };
    let _lock = dir.lock()?;
    let result = match provider.complete_login(&params).await {
        Ok(fresh) => ctx.store_new(account, &dir, &provider, fresh),
        Err(e) => Err(e),
    };
    let result = ctx.finish(account, &dir, result).await;
    if let Some((page, server)) = page {
        let _ = page.send(match &result {
            Ok(t) => html(
                200,
                "Logged in",
                &format!(
                    "tokenhost stored the token for {} (expires {}). You can close this tab.",
                    account.name,
                    t.expires_at.map(time::iso).unwrap_or_else(|| "at an unknown time".into())
                ),
            ),
            Err(e) => html(
                400,
                "Login failed",
                &format!("{e}. Nothing was changed; run `tokenhost login {}` again.", account.name),
            ),
        });
        server.drain(Duration::from_secs(5));
    }
    result
}

/// A redirect URI tokenhost can listen on.
struct Loopback {
    bind: String,
    path: String,
}

impl Loopback {
    fn parse(uri: &str) -> Option<Loopback> {
        let rest = uri.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].split(['?', '#']).next().unwrap_or("/")),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => (h, p.parse::<u16>().ok()?),
            _ => (authority, 80),
        };
        let ip = match host.to_ascii_lowercase().as_str() {
            "127.0.0.1" | "localhost" => "127.0.0.1",
            "[::1]" => "[::1]",
            _ => return None,
        };
        Some(Loopback { bind: format!("{ip}:{port}"), path: path.to_string() })
    }

    /// Serves the redirect path: a callback with the right `state` goes to `tx` (once); the
    /// page the browser then shows comes back from the login.
    fn listen(
        &self,
        state: String,
        tx: tokio::sync::mpsc::UnboundedSender<Callback>,
    ) -> Result<Server, Error> {
        let path = self.path.clone();
        let taken = Arc::new(AtomicBool::new(false));
        Server::bind_limited(&self.bind, 16 << 10, move |req| {
            if req.path != path {
                return html(404, "Not found", "This is tokenhost's login listener; nothing is here.");
            }
            if req.method != "GET" {
                return html(405, "Method not allowed", "The broker's redirect is a GET.");
            }
            if req.param("state") != Some(state.as_str()) {
                tracing::warn!("login: a redirect with a wrong or missing state was refused");
                return html(400, "Login refused", "This answer does not belong to the login tokenhost started (the state does not match). Nothing was stored.");
            }
            if taken.swap(true, Ordering::SeqCst) {
                return html(409, "Already done", "This login was already completed; you can close this tab.");
            }
            let (page_tx, page_rx) = mpsc::channel();
            if tx.send((req.query.clone(), page_tx)).is_err() {
                return html(503, "Login over", "tokenhost stopped waiting for this login; run it again.");
            }
            page_rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
                html(504, "Still working", "tokenhost is still finishing the login; check the terminal.")
            })
        })
        .map_err(|e| {
            Error::Config(format!(
                "cannot listen on {} for the login redirect ({e}); is another login running, or the port in use?",
                self.bind
            ))
        })
    }
}

async fn wait(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Callback>,
    timeout: Duration,
    account: &str,
) -> Result<Callback, Error> {
    match tokio::time::timeout(timeout, rx.recv()).await {
        Ok(Some(callback)) => Ok(callback),
        _ => Err(Error::Interaction(format!(
            "no login arrived within {}; nothing was changed. Run `tokenhost login {account}` again",
            time::span(timeout.as_secs() as i64)
        ))),
    }
}

/// Reads the address the person pastes and checks its `state`.
fn pasted(state: &str) -> Result<Params, Error> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Error::io("reading the pasted address", e))?;
    let line = line.trim();
    let query = line.split_once('?').map_or(line, |(_, q)| q);
    let params = crate::serve::parse_query(query.split('#').next().unwrap_or(""));
    if !params.iter().any(|(k, v)| k == "state" && v == state) {
        return Err(Error::Config(
            "the pasted address does not belong to this login (its state does not match); nothing was stored"
                .into(),
        ));
    }
    Ok(params)
}

/// Tells the person where to log in, and opens the browser if asked.
fn show(url: &str, provider: &str, opts: &Options, waiting_for: &str) {
    if let Some(agent) = opts.agent {
        let url = url.to_string();
        std::thread::spawn(move || agent(&url));
        return;
    }
    let opened = opts.open_browser && open_browser(url);
    let lead =
        if opened { "Log in in the browser that opened, or open" } else { "Open this address to log in" };
    eprintln!("{lead} ({provider}):\n\n  {url}\n");
    eprintln!("Waiting for {waiting_for} (up to {})...", time::span(opts.timeout.as_secs() as i64));
}

fn open_browser(url: &str) -> bool {
    let mut cmd = if cfg!(target_os = "windows") {
        let mut c = std::process::Command::new("rundll32");
        c.args(["url.dll,FileProtocolHandler", url]);
        c
    } else if cfg!(target_os = "macos") {
        let mut c = std::process::Command::new("open");
        c.arg(url);
        c
    } else {
        let mut c = std::process::Command::new("xdg-open");
        c.arg(url);
        c
    };
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// A small page for the browser.
fn html(status: u16, title: &str, text: &str) -> Response {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>tokenhost: {t}</title>\
         <body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\"><h1>{t}</h1><p>{x}</p>",
        t = escape(title),
        x = escape(text)
    );
    Response::raw(status, "text/html; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::Loopback;

    #[test]
    fn loopback_redirects_are_listened_on() {
        let lb = Loopback::parse("http://127.0.0.1:5055/callback?x=1").unwrap();
        assert_eq!((lb.bind.as_str(), lb.path.as_str()), ("127.0.0.1:5055", "/callback"));
        let lb = Loopback::parse("http://localhost/").unwrap();
        assert_eq!((lb.bind.as_str(), lb.path.as_str()), ("127.0.0.1:80", "/"));
        assert_eq!(Loopback::parse("http://[::1]:9/cb").unwrap().bind, "[::1]:9");
        assert!(Loopback::parse("https://127.0.0.1:5055/callback").is_none());
        assert!(Loopback::parse("http://example.com:5055/callback").is_none());
        assert!(Loopback::parse("http://127.0.0.1:notaport/").is_none());
    }
}
