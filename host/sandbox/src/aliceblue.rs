//! A strict Alice Blue (ANT Open API) on 127.0.0.1, following ../shared/BROKERS-MORE.md
//! section 9:
//!
//! - the login page `GET /?appcode=<app code>`, which acts as the person logging in at once: a
//!   302 to the app's registered redirect with `authCode=<fresh, single use>&userId=<the
//!   account's user id>`. Alice Blue takes no redirect or state parameter and sends no state
//!   back;
//! - the exchange `POST /open-api/od/v1/vendor/getUserDetails`, `Content-Type:
//!   application/json`, body exactly `{"checkSum": sha256(userId + authCode + apiSecret)}` in
//!   lower-case hex (checked here with this file's own SHA-256, independent of the SDK),
//!   answering `{"stat":"Ok","userSession","clientId"}`;
//! - errors as `{"stat":"Not_ok","emsg"}`, and "Enable/Login with TOTP, to create the
//!   session." for an account that has not logged in with TOTP that day
//!   ([`State::totp_required`]).
//!
//! Mock's choices, where the docs say nothing: an unknown or missing appcode gets HTTP 400
//! "Invalid App Code" on the login page; the exchange's refusals come under HTTP 200 (judge
//! `stat`): a checksum that matches no authCode (a wrong secret) is "Invalid Input", a used
//! authCode "Invalid authCode: already used", an expired one "Invalid authCode: expired" (an
//! authCode lives [`State::code_ttl_secs`], 300 s by default, and an exchange whose checksum
//! matches it spends it, whatever the answer). A body that is not exactly that object is HTTP
//! 400 "Invalid Input", another content type HTTP 415, a wrong method HTTP 405 and an unknown
//! path HTTP 404, each in the same envelope; a server error is HTTP 500 "Internal Server
//! Error" and the rate limit HTTP 429 "Too many requests". Sessions are opaque (64 hex
//! characters; their real form is not documented). The person cannot refuse on this page:
//! Alice Blue documents no denial answer to the redirect.

use crate::totp::Fault;
use crate::{Request, Response, Server, nonce};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where the exchange is.
pub const EXCHANGE_PATH: &str = "/open-api/od/v1/vendor/getUserDetails";

/// The next 06:00 IST strictly after `t` (the earlier end of the reset users report).
pub fn next_0600_ist(t: i64) -> i64 {
    crate::next_ist(t, 6, 0)
}

/// What the stand-in knows and has seen.
#[derive(Debug)]
pub struct State {
    /// The app: its code, secret and registered redirect.
    pub app_code: String,
    pub secret: String,
    pub redirect: String,
    /// The user id of the account that logs in.
    pub user: String,
    /// authCodes handed out by the login page and not yet spent, with when.
    pub codes: BTreeMap<String, i64>,
    /// authCodes spent (exchanged or found expired).
    pub spent: BTreeSet<String>,
    /// How long an authCode can be exchanged.
    pub code_ttl_secs: i64,
    /// Sessions that work.
    pub live: BTreeSet<String>,
    /// Every session and authCode ever issued (for leak scans).
    pub issued: Vec<String>,
    /// Exchange calls that reached the checksum check.
    pub exchanges: usize,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    /// Answers to give before behaving again.
    pub faults: Vec<Fault>,
    /// The account has not logged in with TOTP today: the exchange says so.
    pub totp_required: bool,
}

/// The stand-in.
#[derive(Clone)]
pub struct AliceBlueMock(Arc<Mutex<State>>);

fn error(status: u16, emsg: &str) -> Response {
    Response::json(status, &json!({"stat": "Not_ok", "emsg": emsg}))
}

impl AliceBlueMock {
    /// An app with `app_code`, `secret` and the registered `redirect`, and one account.
    pub fn new(app_code: &str, secret: &str, redirect: &str) -> AliceBlueMock {
        AliceBlueMock(Arc::new(Mutex::new(State {
            app_code: app_code.into(),
            secret: secret.into(),
            redirect: redirect.into(),
            user: "AB1234".into(),
            codes: BTreeMap::new(),
            spent: BTreeSet::new(),
            code_ttl_secs: 300,
            live: BTreeSet::new(),
            issued: Vec::new(),
            exchanges: 0,
            seen: Vec::new(),
            faults: Vec::new(),
            totp_required: false,
        })))
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves it on a free loopback port.
    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.handle(req)).expect("mock Alice Blue server")
    }

    /// The next answer is `fault`.
    pub fn fault(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Every session ends (the daily reset, or a logout on Alice Blue's web site).
    pub fn expire_all(&self) {
        self.state().live.clear();
    }

    fn handle(&self, req: &Request) -> Response {
        let fault = {
            let s = &mut *self.state();
            crate::note_and_take(&mut s.seen, &mut s.faults, req)
        };
        crate::totp::answer(
            fault,
            || error(500, "Internal Server Error"),
            || error(429, "Too many requests"),
            || self.route(req),
        )
    }

    fn route(&self, req: &Request) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/") => self.login_page(req),
            ("POST", EXCHANGE_PATH) => self.exchange(req),
            (_, "/" | EXCHANGE_PATH) => error(405, "Method Not Allowed"),
            _ => error(404, "Not Found"),
        }
    }

    fn login_page(&self, req: &Request) -> Response {
        let mut s = self.state();
        if req.param("appcode") != Some(s.app_code.as_str()) {
            return error(400, "Invalid App Code");
        }
        let code = nonce();
        s.codes.insert(code.clone(), crate::now());
        s.issued.push(code.clone());
        let sep = if s.redirect.contains('?') { '&' } else { '?' };
        Response::redirect(&format!("{}{sep}authCode={code}&userId={}", s.redirect, s.user))
    }

    fn exchange(&self, req: &Request) -> Response {
        if !req.header("content-type").unwrap_or("").starts_with("application/json") {
            return error(415, "Content type not supported");
        }
        let body = req.json().unwrap_or_default();
        let checksum = match body.as_object() {
            Some(o) if o.len() == 1 => o.get("checkSum").and_then(|c| c.as_str()).unwrap_or_default(),
            _ => "",
        };
        let lower_hex =
            |c: &str| c.len() == 64 && c.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !lower_hex(checksum) {
            return error(400, "Invalid Input");
        }
        let mut s = self.state();
        s.exchanges += 1;
        let of = |code: &str| crate::sha256_hex(format!("{}{code}{}", s.user, s.secret).as_bytes());
        let fresh = s.codes.iter().find(|(code, _)| of(code) == checksum).map(|(c, t)| (c.clone(), *t));
        let Some((code, at)) = fresh else {
            if s.spent.iter().any(|code| of(code) == checksum) {
                return error(200, "Invalid authCode: already used");
            }
            return error(200, "Invalid Input");
        };
        s.codes.remove(&code);
        s.spent.insert(code);
        if at + s.code_ttl_secs <= crate::now() {
            return error(200, "Invalid authCode: expired");
        }
        if s.totp_required {
            return error(200, "Enable/Login with TOTP, to create the session.");
        }
        let session = format!("{}{}", nonce(), nonce());
        s.live.insert(session.clone());
        s.issued.push(session.clone());
        Response::json(200, &json!({"stat": "Ok", "userSession": session, "clientId": s.user}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_the_next_0600_ist() {
        // 2026-01-01T00:30:00Z is 06:00 IST.
        let six = 1_767_227_400;
        assert_eq!(next_0600_ist(six - 1), six);
        assert_eq!(next_0600_ist(six), six + 86_400);
    }
}
