//! `tokenhost login`: a person logs in at the broker in a browser; the broker sends the browser
//! back to the provider's `redirect-uri`, where the host's listener, bound to that loopback
//! address for this one login, takes the answer, checks `state`, and hands the parameters to
//! the provider. A redirect URI that is not loopback `http://` cannot be listened on here: the
//! person then pastes the address the broker sent them to.
//!
//! What the person sees is up to the caller's [`LoginUi`]; nothing here prints.

use crate::listener::{self, Listener, Request, Response};
use crate::plan::Plan;
use crate::service::{Outcome, Service};
use crate::{Error, time};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The setting a provider with a browser login declares for its registered redirect URI.
pub(crate) const REDIRECT_SETTING: &str = "redirect-uri";

/// How the person takes part in a login.
pub trait LoginUi: Send + Sync {
    /// Show `url` (the broker's login page for `provider`) to the person, and say that
    /// tokenhost waits for `waiting_for`, up to `timeout`.
    fn show(&self, url: &str, provider: &str, waiting_for: &str, timeout: Duration);
    /// The address the broker sent the browser to, pasted by the person, when tokenhost cannot
    /// listen on `redirect` itself. Blocking.
    fn paste(&self, redirect: &str) -> std::io::Result<String>;
}

type Params = Vec<(String, String)>;
/// A callback the listener took, and where the page to show goes.
type Callback = (Params, oneshot::Sender<Response>);

/// Runs a browser login for the plan's account and stores the token it yields.
pub async fn login(
    service: &Service,
    plan: &Plan,
    timeout: Duration,
    ui: &dyn LoginUi,
) -> Result<Outcome, Error> {
    let mut provider = service.start_for_login(plan).await?;
    let info = provider.info().clone();
    let redirect =
        plan.settings(&info)?.get(REDIRECT_SETTING).map(|s| s.expose().to_string()).ok_or_else(|| {
            Error::Config(format!(
                "provider `{}` declares no `{REDIRECT_SETTING}` setting, so it has no browser login",
                info.name
            ))
        })?;
    let state = crate::secret::random_hex();
    let (params, callback) = match Loopback::parse(&redirect) {
        Some(lb) => {
            // Listen before the browser opens, so a fast broker cannot beat us to it.
            let (tx, rx) = oneshot::channel();
            let server = lb.listen(state.clone(), tx).await?;
            let url = provider.login_url(&redirect, &state).await?;
            ui.show(&url, &info.name, &format!("the broker to send you back to {redirect}"), timeout);
            let (params, page) = match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(callback)) => callback,
                _ => {
                    return Err(Error::interaction(format!(
                        "no login arrived within {}; nothing was changed. Run `tokenhost login {}` again",
                        time::span(timeout.as_secs() as i64),
                        plan.account
                    )));
                }
            };
            (params, Some((page, server)))
        }
        None => {
            let url = provider.login_url(&redirect, &state).await?;
            ui.show(&url, &info.name, "you", timeout);
            let line = crate::service::off_thread(|| ui.paste(&redirect))
                .map_err(|e| Error::io("reading the pasted address", e))?;
            (pasted(&line, &state)?, None)
        }
    };
    let result = service.complete_login(plan, &mut provider, &params).await;
    if let Some((page, server)) = callback {
        let _ = page.send(match &result {
            Ok(o) => html(
                200,
                "Logged in",
                &format!(
                    "tokenhost stored the token for {} (expires {}). You can close this tab.",
                    plan.account,
                    o.expires_at.map(time::iso).unwrap_or_else(|| "at an unknown time".into())
                ),
            ),
            Err(e) => html(
                400,
                "Login failed",
                &format!("{e}. Nothing was changed; run `tokenhost login {}` again.", plan.account),
            ),
        });
        server.shutdown(Duration::from_secs(5)).await;
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

    /// Serves the redirect path: the first callback with the right `state` goes to `tx`; the
    /// page the browser then shows comes back from the login.
    async fn listen(&self, state: String, tx: oneshot::Sender<Callback>) -> Result<Listener, Error> {
        let path = self.path.clone();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let handler = listener::handler(move |req: Request| {
            let (path, state, tx) = (path.clone(), state.clone(), tx.clone());
            async move {
                if req.path != path {
                    return html(404, "Not found", "This is tokenhost's login listener; nothing is here.");
                }
                if req.method != http::Method::GET {
                    return html(405, "Method not allowed", "The broker's redirect is a GET.");
                }
                if req.param("state") != Some(state.as_str()) {
                    tracing::warn!("login: a redirect with a wrong or missing state was refused");
                    return html(
                        400,
                        "Login refused",
                        "This answer does not belong to the login tokenhost started (the state does not match). Nothing was stored.",
                    );
                }
                let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) else {
                    return html(
                        409,
                        "Already done",
                        "This login was already completed; you can close this tab.",
                    );
                };
                let (page_tx, page_rx) = oneshot::channel();
                if tx.send((req.query.clone(), page_tx)).is_err() {
                    return html(
                        503,
                        "Login over",
                        "tokenhost stopped waiting for this login; run it again.",
                    );
                }
                match tokio::time::timeout(Duration::from_secs(120), page_rx).await {
                    Ok(Ok(page)) => page,
                    _ => html(
                        504,
                        "Still working",
                        "tokenhost is still finishing the login; check the terminal.",
                    ),
                }
            }
        });
        let limits = listener::Limits { max_body: 16 << 10, ..Default::default() };
        Listener::bind(&self.bind, limits, handler).await.map_err(|e| {
            Error::Config(format!(
                "cannot listen on {} for the login redirect ({e}); is another login running, or the port in use?",
                self.bind
            ))
        })
    }
}

/// The parameters of the pasted address, if its `state` is this login's.
fn pasted(line: &str, state: &str) -> Result<Params, Error> {
    let line = line.trim();
    let query = line.split_once('?').map_or(line, |(_, q)| q);
    let params = listener::parse_query(query.split('#').next().unwrap_or(""));
    if !params.iter().any(|(k, v)| k == "state" && v == state) {
        return Err(Error::Config(
            "the pasted address does not belong to this login (its state does not match); nothing was stored"
                .into(),
        ));
    }
    Ok(params)
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
    listener::text(status, "text/html; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_pasted_address_must_carry_this_logins_state() {
        let p = pasted("https://x.example/cb?code=abc&state=s1#frag\n", "s1").unwrap();
        assert_eq!(p, vec![("code".to_string(), "abc".to_string()), ("state".to_string(), "s1".to_string())]);
        assert!(pasted("https://x.example/cb?code=abc&state=s2", "s1").is_err());
        assert!(pasted("code=abc", "s1").is_err());
    }
}
