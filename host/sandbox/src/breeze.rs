//! A strict ICICI Direct Breeze on 127.0.0.1, following ../shared/BROKERS-MORE.md section 7:
//!
//! - `GET /apiuser/login?api_key=<URL-encoded key>`: the login page. An unknown (or unencoded,
//!   hence cut) key gets "Public Key does not exist." (as a JSON page: the shape is mock's).
//!   Otherwise the person logs in at once and the page POSTs a fresh session key to the app's
//!   registered redirect URL as the form field `API_Session` (a self-submitting form). ICICI
//!   has no documented "cancelled" answer, so there is no knob for one.
//! - `GET /breezeapi/api/v1/customerdetails` with the JSON body `{"SessionToken","AppKey"}`
//!   (a GET with a body, as ICICI's SDK sends it): `Success.session_token` is
//!   base64(`userid:session_key`), `Success.idirect_userid` the user.
//! - `GET /breezeapi/api/v1/funds`, signed: `X-Checksum: token <sha256(X-Timestamp + body +
//!   secret)>` over exactly the bytes sent, `X-Timestamp` UTC `YYYY-MM-DDTHH:MM:SS.000Z`
//!   within ±60 s, `X-AppKey`, `X-SessionToken`.
//!
//! Errors are `{"Success":null,"Status":<code>,"Error":"..."}` under HTTP 200, as ICICI answers
//! them. Real messages: "Public Key does not exist.", "Invalid session." (a key never issued),
//! "Resource not available." (with Status 500: an expired session key, here also a used one),
//! "API Session cannot be empty". Mock's: every `Status` but 500 for "Resource not available.",
//! "Request Object is Null" (wrong content type or body shape), "Invalid Checksum", "Request
//! timestamp is out of range", the not-found and wrong-method answers, and the fault answers
//! (HTTP 500 / 429 in the same envelope). Whether ICICI takes a session key twice is not
//! documented: this stand-in takes each once (mock's choice, the strict one), within
//! `code_ttl_secs` (default 24 h, the documented life of a session).

use crate::totp::Fault;
use crate::{Request, Response, Server, nonce};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// India Standard Time, seconds east of UTC.
pub const IST: i64 = 330 * 60;

/// The next 00:00 IST strictly after `t` (an independent statement of the broker's rule).
pub fn next_midnight_ist(t: i64) -> i64 {
    crate::next_ist(t, 0, 0)
}

/// A session key the login page handed out.
#[derive(Debug, Clone)]
pub struct SessionKey {
    /// When it was issued (unix seconds).
    pub issued: i64,
    /// Whether it was presented to `customerdetails` already.
    pub used: bool,
}

/// What the stand-in knows and has seen.
#[derive(Debug)]
pub struct State {
    /// The app's API key (AppKey).
    pub key: String,
    /// The app's secret key (signs the calls after login).
    pub secret: String,
    /// The app's registered redirect URL.
    pub redirect: String,
    /// The account holder's `idirect_userid`.
    pub user: String,
    /// Every session key the login page issued.
    pub sessions: BTreeMap<String, SessionKey>,
    /// Session tokens that work.
    pub live: BTreeSet<String>,
    /// Session tokens that worked and were ended (expired).
    pub ended: BTreeSet<String>,
    /// Every session token and session key ever issued (for leak scans).
    pub issued: Vec<String>,
    /// `customerdetails` calls that reached the checks.
    pub exchanges: usize,
    /// `funds` calls that reached the checks.
    pub checks: usize,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    /// Answers to give before behaving again.
    pub faults: Vec<Fault>,
    /// How long a session key can be exchanged.
    pub code_ttl_secs: i64,
}

/// The stand-in.
#[derive(Clone)]
pub struct BreezeMock(Arc<Mutex<State>>);

fn envelope(status: i64, error: &str) -> Response {
    Response::json(200, &json!({"Success": null, "Status": status, "Error": error}))
}

fn request_object_is_null() -> Response {
    envelope(500, "Request Object is Null")
}

impl BreezeMock {
    /// An app with `key`, `secret` and the registered `redirect`.
    pub fn new(key: &str, secret: &str, redirect: &str) -> BreezeMock {
        BreezeMock(Arc::new(Mutex::new(State {
            key: key.into(),
            secret: secret.into(),
            redirect: redirect.into(),
            user: "TRADER42".into(),
            sessions: BTreeMap::new(),
            live: BTreeSet::new(),
            ended: BTreeSet::new(),
            issued: Vec::new(),
            exchanges: 0,
            checks: 0,
            seen: Vec::new(),
            faults: Vec::new(),
            code_ttl_secs: 86_400,
        })))
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves it on a free loopback port.
    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.handle(req)).expect("mock Breeze server")
    }

    /// ICICI ends every session (midnight IST came): their tokens and unused keys stop working.
    pub fn expire_all(&self) {
        let mut s = self.state();
        let live = std::mem::take(&mut s.live);
        s.ended.extend(live);
        s.sessions.values_mut().for_each(|k| k.used = true);
    }

    /// The session tokens issued so far (not the session keys).
    pub fn tokens(&self) -> Vec<String> {
        let s = self.state();
        s.issued.iter().filter(|t| !s.sessions.contains_key(*t)).cloned().collect()
    }

    fn handle(&self, req: &Request) -> Response {
        let fault = {
            let s = &mut *self.state();
            crate::note_and_take(&mut s.seen, &mut s.faults, req)
        };
        crate::totp::answer(
            fault,
            || {
                let body = json!({"Success": null, "Status": 500, "Error": "Internal Server Error"});
                Response::json(500, &body)
            },
            || {
                let body = json!({"Success": null, "Status": 429, "Error": "Too many requests"});
                Response::json(429, &body)
            },
            || self.route(req),
        )
    }

    fn route(&self, req: &Request) -> Response {
        const PATHS: [&str; 3] =
            ["/apiuser/login", "/breezeapi/api/v1/customerdetails", "/breezeapi/api/v1/funds"];
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/apiuser/login") => self.login_page(req),
            ("GET", "/breezeapi/api/v1/customerdetails") => self.customer_details(req),
            ("GET", "/breezeapi/api/v1/funds") => self.funds(req),
            (_, p) if PATHS.contains(&p) => {
                Response::json(405, &json!({"Success": null, "Status": 405, "Error": "Method not allowed"}))
            }
            _ => Response::json(404, &json!({"Success": null, "Status": 404, "Error": "Resource not found"})),
        }
    }

    fn login_page(&self, req: &Request) -> Response {
        let mut s = self.state();
        if req.param("api_key") != Some(s.key.as_str()) {
            return envelope(500, "Public Key does not exist.");
        }
        // Eight digits, as ICICI's keys look, plus letters (mock's), so that no two collide.
        let digits: String = (nonce() + &nonce()).chars().filter(char::is_ascii_digit).take(8).collect();
        let key = format!("{digits}{}", &nonce()[..6]);
        s.sessions.insert(key.clone(), SessionKey { issued: crate::now(), used: false });
        s.issued.push(key.clone());
        crate::browser::auto_post_page(&s.redirect, &[("API_Session", &key)])
    }

    fn customer_details(&self, req: &Request) -> Response {
        let json_type = req.header("content-type").is_some_and(|t| t.starts_with("application/json"));
        let body = req.json().unwrap_or(Value::Null);
        let (Some(session), Some(app)) = (body["SessionToken"].as_str(), body["AppKey"].as_str()) else {
            return request_object_is_null();
        };
        if !json_type {
            return request_object_is_null();
        }
        let mut s = self.state();
        s.exchanges += 1;
        if session.is_empty() {
            return envelope(500, "API Session cannot be empty");
        }
        if app != s.key {
            return envelope(500, "Public Key does not exist.");
        }
        let ttl = s.code_ttl_secs;
        let Some(key) = s.sessions.get_mut(session) else { return envelope(500, "Invalid session.") };
        let fresh = !key.used && crate::now() - key.issued < ttl;
        key.used = true;
        if !fresh {
            return envelope(500, "Resource not available.");
        }
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{session}", s.user));
        s.live.insert(token.clone());
        s.issued.push(token.clone());
        let success = json!({
            "exg_trade_date": {"NSE": "23-Nov-2026", "BSE": "23-Nov-2026", "FNO": "23-Nov-2026", "NDX": "23-Nov-2026"},
            "exg_status": {"NSE": "O", "BSE": "O", "FNO": "Y", "NDX": "O"},
            "segments_allowed": {"Trading": "Y", "Equity": "Y", "Derivatives": "Y", "Currency": "N"},
            "idirect_userid": s.user, "session_token": token, "idirect_user_name": "A TRADER",
            "idirect_ORD_TYP": "N", "idirect_lastlogin_time": crate::local_datetime(crate::now(), crate::IST_MINUTES),
            "mf_holding_mode_popup_flg": "N", "commodity_exchange_status": "N", "commodity_allowed": "C",
        });
        Response::json(200, &json!({"Success": success, "Status": 200, "Error": null}))
    }

    fn funds(&self, req: &Request) -> Response {
        let json_type = req.header("content-type").is_some_and(|t| t.starts_with("application/json"));
        let headers = (
            req.header("x-checksum").and_then(|c| c.strip_prefix("token ")),
            req.header("x-timestamp"),
            req.header("x-appkey"),
            req.header("x-sessiontoken"),
        );
        let (Some(checksum), Some(stamp), Some(app), Some(token)) = headers else {
            return request_object_is_null();
        };
        if !json_type || req.json().is_none() {
            return request_object_is_null();
        }
        let mut s = self.state();
        s.checks += 1;
        if app != s.key {
            return envelope(500, "Public Key does not exist.");
        }
        if !s.live.contains(token) {
            let known = s.ended.contains(token);
            return envelope(500, if known { "Resource not available." } else { "Invalid session." });
        }
        // UTC, in exactly ICICI's shape, within a minute of this clock.
        let now = crate::now();
        if !(now - 60..=now + 60).any(|t| stamp == format!("{}Z", crate::local_datetime(t, 0))) {
            return envelope(500, "Request timestamp is out of range");
        }
        let mut signed = stamp.as_bytes().to_vec();
        signed.extend_from_slice(&req.body);
        signed.extend_from_slice(s.secret.as_bytes());
        if checksum != crate::sha256_hex(&signed) {
            return envelope(401, "Invalid Checksum");
        }
        let success = json!({
            "bank_account": "000401234567", "total_bank_balance": 250000.0, "allocated_equity": 100000.0,
            "allocated_fno": 50000.0, "allocated_commodity": 0.0, "allocated_currency": 0.0,
            "block_by_trade_equity": 0.0, "block_by_trade_fno": 0.0, "unallocated_balance": "100000.0",
        });
        Response::json(200, &json!({"Success": success, "Status": 200, "Error": null}))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn midnight_ist() {
        // 2026-01-01 00:00 IST is 1_767_205_800; a second before it, the next one is it.
        assert_eq!(super::next_midnight_ist(1_767_205_799), 1_767_205_800);
        assert_eq!(super::next_midnight_ist(1_767_205_800), 1_767_205_800 + 86_400);
    }
}
