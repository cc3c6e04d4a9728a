//! Browser logins, for brokers that need a person once a day. The provider gives the broker's
//! login page; the broker sends the browser back to the provider's `redirect-uri` (a GET with
//! query parameters, or a form POST), where a host listener takes the answer and hands its
//! parameters to the provider.
//!
//! An answer is taken only when it belongs to a login tokenhost started: its `state` is the one
//! tokenhost gave the broker, or, for a broker that sends no `state` back, the browser carries
//! the cookie of the one-time start page tokenhost showed (`/start/<nonce>`), and each login is
//! taken once. So a stray request cannot plant a token.
//!
//! [`Logins`] keeps the logins in progress: `tokenhost login` listens on its loopback redirect
//! for one of them, and the daemon serves them on its own listener (`/login/<account>` starts
//! one, which is the link its reminders send). A redirect URI tokenhost cannot listen on gets the
//! pasted address instead. What the person sees is up to the caller's [`LoginUi`]; nothing here
//! prints.

use crate::listener::{self, Handler, Listener, Request, Response};
use crate::plan::Plan;
use crate::provider::Provider;
use crate::service::{Outcome, Service};
use crate::{Error, time};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The setting a provider with a browser login declares for its registered redirect URI.
pub const REDIRECT_SETTING: &str = "redirect-uri";

/// How long a started login waits for the broker's answer at most.
const PENDING_FOR: Duration = Duration::from_secs(15 * 60);

/// The cookie that marks the browser a login started in.
const COOKIE: &str = "tokenhost_login";

/// How the person takes part in a login.
pub trait LoginUi: Send + Sync {
    /// Show `url` (where `provider`'s login starts) to the person, and say that tokenhost waits
    /// for `waiting_for`, up to `timeout`.
    fn show(&self, url: &str, provider: &str, waiting_for: &str, timeout: Duration);
    /// The address the broker sent the browser to, pasted by the person, when tokenhost cannot
    /// listen on `redirect` itself. Blocking.
    fn paste(&self, redirect: &str) -> std::io::Result<String>;
}

type Params = Vec<(String, String)>;

/// The outcome of a login, when its answer has come.
pub type Finished = oneshot::Receiver<Result<Outcome, Error>>;

/// Logins in progress.
#[derive(Default)]
pub struct Logins {
    pending: Mutex<Vec<Pending>>,
}

struct Pending {
    account: String,
    plan: Plan,
    provider: Provider,
    /// The path of the provider's redirect URI, where the answer comes.
    path: String,
    state: String,
    /// The start page's nonce, for a broker that sends no `state` back.
    nonce: Option<String>,
    /// The broker's login page.
    url: String,
    started: bool,
    until: Instant,
    done: oneshot::Sender<Result<Outcome, Error>>,
}

impl Logins {
    /// Starts a login for `plan`: the address to open (the broker's page, or this listener's
    /// one-time start page at `base`, e.g. `http://127.0.0.1:5055`) and the outcome to come. A
    /// later login of the same account replaces an earlier one.
    pub async fn begin(
        &self,
        service: &Service,
        plan: &Plan,
        base: &str,
    ) -> Result<(String, Finished), Error> {
        self.start(service, plan, base).await.map(|(shown, finished, _)| (shown, finished))
    }

    /// [`Logins::begin`], and the login's redirect URI.
    async fn start(
        &self,
        service: &Service,
        plan: &Plan,
        base: &str,
    ) -> Result<(String, Finished, String), Error> {
        let mut provider = service.start_for_login(plan).await?;
        let redirect = redirect_uri(plan, &provider)?;
        let state = crate::secret::random_hex();
        let url = provider.login_url(&redirect, &state).await?;
        // A broker that sends `state` back gets it in its login page's address.
        let nonce = (!url.contains(&state)).then(crate::secret::random_hex);
        let shown = match &nonce {
            Some(n) => format!("{}/start/{n}", base.trim_end_matches('/')),
            None => url.clone(),
        };
        let (done, finished) = oneshot::channel();
        let pending = Pending {
            account: plan.account.clone(),
            plan: plan.clone(),
            provider,
            path: path_of(&redirect),
            state,
            nonce,
            url,
            started: false,
            until: Instant::now() + PENDING_FOR,
            done,
        };
        if let Ok(mut p) = self.pending.lock() {
            p.retain(|x| x.account != plan.account && x.until > Instant::now());
            p.push(pending);
        }
        Ok((shown, finished, redirect))
    }

    /// [`Logins::begin`] for a listener at `own` serving this registry: when the login's
    /// redirect URI is loopback on another address, that address is listened on too until the
    /// login ends.
    pub async fn begin_served(
        self: &Arc<Self>,
        service: &Arc<Service>,
        plan: &Plan,
        base: &str,
        own: std::net::SocketAddr,
    ) -> Result<(String, Finished), Error> {
        let (shown, inner, redirect) = self.start(service, plan, base).await?;
        let served = |a: &std::net::SocketAddr| {
            a.port() == own.port() && (own.ip().is_unspecified() || a.ip() == own.ip())
        };
        let Some(addr) = loopback(&redirect).filter(|a| !a.parse().is_ok_and(|a| served(&a))) else {
            return Ok((shown, inner));
        };
        let limits = listener::Limits { max_body: 16 << 10, ..Default::default() };
        // An earlier login of this account, just replaced, may still be letting the address go.
        let mut tries = 0;
        let extra = loop {
            match Listener::bind(&addr, limits, self.handler(service.clone())).await {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(Error::Config(format!(
                        "cannot listen on {addr} for the login redirect ({e})"
                    )));
                }
            }
        };
        let (done, finished) = oneshot::channel();
        tokio::spawn(async move {
            let result = tokio::time::timeout(PENDING_FOR, inner).await;
            extra.shutdown(Duration::from_secs(5)).await;
            if let Ok(Ok(result)) = result {
                let _ = done.send(result);
            }
        });
        Ok((shown, finished))
    }

    /// Whether `path` is where a pending login's answer comes.
    fn awaits(&self, path: &str) -> bool {
        self.pending.lock().is_ok_and(|p| p.iter().any(|x| x.path == path))
    }

    /// The listener's handler: start pages (`/start/<nonce>`) and the answers of pending logins
    /// (on their redirect path). Anything else is 404.
    pub fn handler(self: &Arc<Self>, service: Arc<Service>) -> Handler {
        let logins = self.clone();
        listener::handler(move |req: Request| {
            let (logins, service) = (logins.clone(), service.clone());
            async move { logins.answer(&service, req).await.unwrap_or_else(not_here) }
        })
    }

    /// The answer to `req` if it is a login's; `None` when it is not this registry's.
    pub async fn answer(&self, service: &Service, req: Request) -> Option<Response> {
        if let Some(nonce) = req.path.strip_prefix("/start/") {
            return Some(self.start_page(nonce));
        }
        if !self.awaits(&req.path) {
            return None;
        }
        let params = match callback_params(&req) {
            Ok(p) => p,
            Err((status, title)) => {
                return Some(html(status, title, "The broker's answer is a GET or a form POST."));
            }
        };
        let taken = self.pending.lock().ok().and_then(|mut p| {
            let i = p
                .iter()
                .position(|x| x.path == req.path && x.until > Instant::now() && belongs(x, &params, &req))?;
            Some(p.remove(i))
        });
        let Some(mut pending) = taken else {
            tracing::warn!("login: an answer that does not belong to a login in progress was refused");
            return Some(html(
                400,
                "Login refused",
                "This answer does not belong to the login tokenhost started (the state does not match, \
                 or this browser did not open the address tokenhost showed). Nothing was stored.",
            ));
        };
        let result = service.complete_login(&pending.plan, &mut pending.provider, &params).await;
        let page = result_page(&pending.account, &result);
        let _ = pending.done.send(result);
        Some(page)
    }

    /// `GET /start/<nonce>`, once: marks the browser and sends it on to the broker's page.
    fn start_page(&self, nonce: &str) -> Response {
        let Ok(mut pending) = self.pending.lock() else { return html(500, "Error", "Try again.") };
        let Some(p) = pending.iter_mut().find(|p| p.nonce.as_deref() == Some(nonce) && !p.started) else {
            return html(
                404,
                "Not found",
                "This login address is not valid (any more); start the login again.",
            );
        };
        p.started = true;
        let mut r = html(302, "Logging in", "Going on to the broker's login page...");
        let headers = r.headers_mut();
        if let Ok(v) = http::HeaderValue::from_str(&p.url) {
            headers.insert(http::header::LOCATION, v);
        }
        // Lax for brokers that come back with a GET; None+Secure (a loopback origin may set it)
        // for those that POST a form back from their own site.
        for cookie in [
            format!("{COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Lax"),
            format!("{COOKIE}_post={nonce}; Path=/; HttpOnly; Secure; SameSite=None"),
        ] {
            if let Ok(v) = http::HeaderValue::from_str(&cookie) {
                headers.append(http::header::SET_COOKIE, v);
            }
        }
        r
    }
}

/// Runs a browser login for the plan's account from a terminal and stores the token it yields:
/// listens on the redirect URI when it is loopback `http://`, else takes the pasted address.
pub async fn login(
    service: &Arc<Service>,
    plan: &Plan,
    timeout: Duration,
    ui: &dyn LoginUi,
) -> Result<Outcome, Error> {
    let mut provider = service.start_for_login(plan).await?;
    let redirect = redirect_uri(plan, &provider)?;
    let name = provider.info().name.clone();
    let Some(bind) = loopback(&redirect) else {
        // Not ours to listen on: the person pastes the address the broker sent them to.
        let state = crate::secret::random_hex();
        let url = provider.login_url(&redirect, &state).await?;
        ui.show(&url, &name, "you", timeout);
        let line = crate::off_thread(|| ui.paste(&redirect))
            .map_err(|e| Error::io("reading the pasted address", e))?;
        let params = pasted(&line, &state, url.contains(&state))?;
        return service.complete_login(plan, &mut provider, &params).await;
    };
    drop(provider);
    // Listen before the browser opens, so a fast broker cannot beat us to it.
    let logins = Arc::new(Logins::default());
    let limits = listener::Limits { max_body: 16 << 10, ..Default::default() };
    let server = Listener::bind(&bind, limits, logins.handler(service.clone())).await.map_err(|e| {
        Error::Config(format!(
            "cannot listen on {bind} for the login redirect ({e}); is another login running, or the port in use?"
        ))
    })?;
    let (url, finished) = logins.begin(service, plan, &format!("http://{bind}")).await?;
    ui.show(&url, &name, &format!("the broker to send you back to {redirect}"), timeout);
    let result = match tokio::time::timeout(timeout, finished).await {
        Ok(Ok(result)) => result,
        _ => Err(Error::interaction(format!(
            "no login arrived within {}; nothing was changed. Run `tokenhost login {}` again \
             (if the broker did not send the browser back to {redirect}, that is not the redirect \
             URL registered with the broker's app)",
            time::span(timeout.as_secs() as i64),
            plan.account
        ))),
    };
    server.shutdown(Duration::from_secs(5)).await;
    result
}

/// The provider's redirect URI, which a browser login needs.
fn redirect_uri(plan: &Plan, provider: &Provider) -> Result<String, Error> {
    let info = provider.info();
    plan.settings(info)?.get(REDIRECT_SETTING).map(|s| s.expose().to_string()).ok_or_else(|| {
        Error::Config(format!(
            "provider `{}` declares no `{REDIRECT_SETTING}` setting, so it has no browser login",
            info.name
        ))
    })
}

/// The address to listen on for a loopback `http://` redirect URI (`None` for any other).
fn loopback(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (h, p.parse::<u16>().ok()?),
        _ => (authority, 80),
    };
    let ip = match host.to_ascii_lowercase().as_str() {
        "127.0.0.1" | "localhost" => "127.0.0.1",
        "[::1]" => "[::1]",
        _ => return None,
    };
    Some(format!("{ip}:{port}"))
}

/// The path part of a URI (`/` when it has none).
fn path_of(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    match rest.find('/') {
        Some(i) => rest[i..].split(['?', '#']).next().unwrap_or("/").to_string(),
        None => "/".into(),
    }
}

/// The parameters of a login's answer: the query's, and a form POST's fields after them.
fn callback_params(req: &Request) -> Result<Params, (u16, &'static str)> {
    let mut params = req.query.clone();
    match req.method {
        http::Method::GET => {}
        http::Method::POST => {
            let form = req
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            if !form {
                return Err((415, "Unsupported"));
            }
            params.extend(listener::parse_query(&String::from_utf8_lossy(&req.body)));
        }
        _ => return Err((405, "Method not allowed")),
    }
    Ok(params)
}

/// Whether an answer belongs to `login`: its `state` is the login's, or it has none, the broker
/// sends none back, and the browser carries the cookie of the login's start page.
fn belongs(login: &Pending, params: &Params, req: &Request) -> bool {
    let states: Vec<&str> = params.iter().filter(|(k, _)| k == "state").map(|(_, v)| v.as_str()).collect();
    if !states.is_empty() {
        return states.iter().all(|s| *s == login.state);
    }
    let Some(nonce) = &login.nonce else { return false };
    login.started
        && req.headers.get_all(http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).any(|header| {
            header
                .split(';')
                .filter_map(|c| c.trim().split_once('='))
                .any(|(name, value)| (name == COOKIE || name == format!("{COOKIE}_post")) && value == nonce)
        })
}

/// The parameters of the pasted address; its `state` must be this login's when the broker
/// sends one back (`echoed`).
fn pasted(line: &str, state: &str, echoed: bool) -> Result<Params, Error> {
    let line = line.trim();
    let query = line.split_once('?').map_or(line, |(_, q)| q);
    let params = listener::parse_query(query.split('#').next().unwrap_or(""));
    if echoed && !params.iter().any(|(k, v)| k == "state" && v == state) {
        return Err(Error::Config(
            "the pasted address does not belong to this login (its state does not match); nothing was stored"
                .into(),
        ));
    }
    Ok(params)
}

/// The page the browser shows once the login is done.
fn result_page(account: &str, result: &Result<Outcome, Error>) -> Response {
    match result {
        Ok(o) => html(
            200,
            "Logged in",
            &format!(
                "tokenhost stored the token for {account} (expires {}). You can close this tab.",
                o.expires_at.map(time::iso).unwrap_or_else(|| "at an unknown time".into())
            ),
        ),
        Err(e) => html(400, "Login failed", &format!("{e}. Nothing was changed; start the login again.")),
    }
}

fn not_here() -> Response {
    html(404, "Not found", "This is tokenhost's login listener; nothing is here.")
}

/// A small page for the browser.
pub fn html(status: u16, title: &str, text: &str) -> Response {
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
        assert_eq!(loopback("http://127.0.0.1:5055/callback?x=1").as_deref(), Some("127.0.0.1:5055"));
        assert_eq!(path_of("http://127.0.0.1:5055/callback?x=1"), "/callback");
        assert_eq!(loopback("http://localhost/").as_deref(), Some("127.0.0.1:80"));
        assert_eq!(path_of("http://localhost"), "/");
        assert_eq!(loopback("http://[::1]:9/cb").as_deref(), Some("[::1]:9"));
        assert!(loopback("https://127.0.0.1:5055/callback").is_none());
        assert!(loopback("http://example.com:5055/callback").is_none());
        assert!(loopback("http://127.0.0.1:notaport/").is_none());
        assert_eq!(path_of("https://desk.example/kite/back#x"), "/kite/back");
    }

    #[test]
    fn a_pasted_address_must_carry_this_logins_state() {
        let p = pasted("https://x.example/cb?code=abc&state=s1#frag\n", "s1", true).unwrap();
        assert_eq!(p, vec![("code".to_string(), "abc".to_string()), ("state".to_string(), "s1".to_string())]);
        assert!(pasted("https://x.example/cb?code=abc&state=s2", "s1", true).is_err());
        assert!(pasted("code=abc", "s1", true).is_err());
        // A broker that sends no state back: the person's own paste is taken.
        assert_eq!(pasted("https://x.example/cb?authCode=a1", "s1", false).unwrap().len(), 1);
    }
}
