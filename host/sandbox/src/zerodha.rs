//! A strict Zerodha Kite Connect v3 on 127.0.0.1, following ../shared/BROKERS-MORE.md section 1
//! and its addenda, for one app (API key, secret, registered redirect URL):
//!
//! - `GET /connect/login?v=3&api_key=&redirect_params=`, the login page. It acts as the person
//!   logging in at once: a 302 to the registered redirect URL with
//!   `?action=login&type=login&status=success&request_token=<32 alnum>` followed by the decoded
//!   `redirect_params`, as Kite appends them. With [`State::deny`] the person cancels:
//!   `status=cancelled` and no request token (this mock's guess: Kite's cancel answer is
//!   UNCONFIRMED).
//! - `POST /session/token` (`X-Kite-Version: 3`, a form with `api_key`, `request_token` and
//!   `checksum` = lower-case hex `sha256(api_key + request_token + api_secret)`, computed here
//!   independently of the SDK) answering Kite's session envelope with an opaque 32-character
//!   `access_token`, `public_token`, `enctoken`, `user_id` and `login_time` (IST, no offset). A
//!   request token is single use (taken by the first exchange that reaches the checks, even one
//!   that fails: mock's choice) and lives [`State::code_ttl_secs`] (default 300 s, as Kite
//!   staff say "about 5 minutes").
//! - `GET /user/profile` and `DELETE /session/token?api_key=&access_token=`, with
//!   `Authorization: token api_key:access_token`.
//!
//! Errors are Kite's `{"status":"error","message","error_type"}`. From the docs and forum:
//! 403 TokenException "Invalid `checksum`." and "Incorrect `api_key` or `access_token`.".
//! Mock's wording or status: "Token is invalid or has expired." (403 TokenException) for a used
//! or expired request token; "Invalid `api_key`." (400 InputException) for an unknown key, on
//! the login page as in the exchange; a missing `X-Kite-Version`, a body that is not a form or a
//! missing field (400 InputException); a wrong method (405 InputException) and an unknown path
//! (404 GeneralException "Route not found"); the rate limit (429 NetworkException "Too many
//! requests"), a server error (500 GeneralException) and logging out a dead token (403
//! TokenException). UNCONFIRMED and done here: a new access token for the app ends the previous
//! one, so a second login kills the first token.

use crate::totp::Fault;
use crate::{IST_MINUTES, Request, Response, Server, nonce};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// What the stand-in knows and has seen.
#[derive(Debug)]
pub struct State {
    /// The app's API key.
    pub key: String,
    /// The app's API secret.
    pub secret: String,
    /// The app's registered redirect URL.
    pub redirect: String,
    /// The account holder's Kite user id.
    pub user: String,
    /// Request tokens handed out and not yet exchanged, with when they were issued.
    pub request_tokens: BTreeMap<String, i64>,
    /// How long a request token lives.
    pub code_ttl_secs: i64,
    /// Access tokens that work (one at most: a new one ends the old).
    pub live: BTreeSet<String>,
    /// Every access, public and enc token and every request token issued (for leak scans).
    pub issued: Vec<String>,
    /// Exchange calls that reached the checks.
    pub exchanges: usize,
    /// Successful logouts.
    pub logouts: usize,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    /// Answers to give before behaving again.
    pub faults: Vec<Fault>,
    /// The person cancels at the login page.
    pub deny: bool,
}

/// The stand-in.
#[derive(Clone)]
pub struct ZerodhaMock(Arc<Mutex<State>>);

fn error(status: u16, kind: &str, message: &str) -> Response {
    Response::json(status, &json!({"status": "error", "message": message, "error_type": kind, "data": null}))
}

fn success(data: Value) -> Response {
    Response::json(200, &json!({"status": "success", "data": data}))
}

const BAD_KEY: &str = "Invalid `api_key`.";
const BAD_SESSION: &str = "Incorrect `api_key` or `access_token`.";

impl ZerodhaMock {
    /// Kite with one app: `key`, `secret` and the registered `redirect` URL.
    pub fn new(key: &str, secret: &str, redirect: &str) -> ZerodhaMock {
        ZerodhaMock(Arc::new(Mutex::new(State {
            key: key.into(),
            secret: secret.into(),
            redirect: redirect.into(),
            user: "ZX1234".into(),
            request_tokens: BTreeMap::new(),
            code_ttl_secs: 300,
            live: BTreeSet::new(),
            issued: Vec::new(),
            exchanges: 0,
            logouts: 0,
            seen: Vec::new(),
            faults: Vec::new(),
            deny: false,
        })))
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves it on a free loopback port.
    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.handle(req)).expect("mock Kite server")
    }

    /// Kite ends every session (06:00 IST, or a master logout from Kite Web).
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
            || error(500, "GeneralException", "Internal server error"),
            || error(429, "NetworkException", "Too many requests"),
            || self.route(req),
        )
    }

    fn route(&self, req: &Request) -> Response {
        let version = req.header("x-kite-version") == Some("3");
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/connect/login") => self.login_page(req),
            (_, "/session/token" | "/user/profile") if !version => {
                error(400, "InputException", "Missing or invalid `X-Kite-Version` header (mock's wording)")
            }
            ("POST", "/session/token") => self.exchange(req),
            ("DELETE", "/session/token") => self.logout(req),
            ("GET", "/user/profile") => self.profile(req),
            (_, "/connect/login" | "/session/token" | "/user/profile") => {
                error(405, "InputException", "Method not allowed (mock's wording)")
            }
            _ => error(404, "GeneralException", "Route not found"),
        }
    }

    fn login_page(&self, req: &Request) -> Response {
        let mut s = self.state();
        if req.param("v") != Some("3") {
            return error(400, "InputException", "Invalid `v` (mock's wording)");
        }
        if req.param("api_key") != Some(s.key.as_str()) {
            return error(400, "InputException", BAD_KEY);
        }
        let mut back = format!("{}?action=login&type=login", s.redirect);
        if s.deny {
            back.push_str("&status=cancelled");
        } else {
            let request_token = nonce();
            s.request_tokens.insert(request_token.clone(), crate::now());
            s.issued.push(request_token.clone());
            back.push_str(&format!("&status=success&request_token={request_token}"));
        }
        if let Some(extra) = req.param("redirect_params").filter(|p| !p.is_empty()) {
            back.push('&');
            back.push_str(extra);
        }
        Response::redirect(&back)
    }

    fn exchange(&self, req: &Request) -> Response {
        if !req.header("content-type").unwrap_or("").starts_with("application/x-www-form-urlencoded") {
            return error(400, "InputException", "The body must be a form (mock's wording)");
        }
        let form = req.form();
        let (Some(key), Some(request_token), Some(checksum)) =
            (form.get("api_key"), form.get("request_token"), form.get("checksum"))
        else {
            return error(
                400,
                "InputException",
                "Missing `api_key`, `request_token` or `checksum` (mock's wording)",
            );
        };
        let mut s = self.state();
        s.exchanges += 1;
        if *key != s.key {
            return error(400, "InputException", BAD_KEY);
        }
        let issued = s.request_tokens.remove(request_token.as_str());
        let expected = crate::sha256_hex(format!("{key}{request_token}{}", s.secret).as_bytes());
        if *checksum != expected {
            return error(403, "TokenException", "Invalid `checksum`.");
        }
        let now = crate::now();
        if issued.is_none_or(|at| now >= at + s.code_ttl_secs) {
            return error(403, "TokenException", "Token is invalid or has expired.");
        }
        let (access, public, enc) = (nonce(), nonce(), format!("{}{}", nonce(), nonce()));
        // UNCONFIRMED, done here: a new access token ends the app's previous one.
        s.live.clear();
        s.live.insert(access.clone());
        s.issued.extend([access.clone(), public.clone(), enc.clone()]);
        let login_time = crate::local_datetime(now, IST_MINUTES)[..19].replace('T', " ");
        let mut data = profile(&s.user);
        let extra = json!({
            "api_key": s.key, "access_token": access, "public_token": public, "enctoken": enc,
            "refresh_token": "", "silo": "", "login_time": login_time,
        });
        if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        success(data)
    }

    fn session(&self, req: &Request) -> Option<String> {
        let s = self.state();
        let auth = req.header("authorization")?.strip_prefix("token ")?;
        let (key, token) = auth.split_once(':')?;
        (key == s.key && s.live.contains(token)).then(|| token.to_string())
    }

    fn profile(&self, req: &Request) -> Response {
        match self.session(req) {
            Some(_) => {
                let user = self.state().user.clone();
                success(profile(&user))
            }
            None => error(403, "TokenException", BAD_SESSION),
        }
    }

    fn logout(&self, req: &Request) -> Response {
        let mut s = self.state();
        if req.param("api_key") != Some(s.key.as_str()) {
            return error(400, "InputException", BAD_KEY);
        }
        let Some(token) = req.param("access_token") else {
            return error(400, "InputException", "Missing `access_token` (mock's wording)");
        };
        if !s.live.remove(token) {
            return error(403, "TokenException", BAD_SESSION);
        }
        s.logouts += 1;
        success(json!(true))
    }
}

/// The profile fields Kite returns, with the session's as well after a login.
fn profile(user: &str) -> Value {
    json!({
        "user_id": user, "user_type": "individual", "email": "trader@example.in",
        "user_name": "A Trader", "user_shortname": "Trader", "broker": "ZERODHA",
        "exchanges": ["NSE", "BSE", "NFO"], "products": ["CNC", "NRML", "MIS"],
        "order_types": ["MARKET", "LIMIT", "SL", "SL-M"], "avatar_url": null,
        "meta": {"demat_consent": "physical"},
    })
}
