//! A strict Kotak Neo (Trade API v2) on 127.0.0.1, following ../shared/BROKERS-MORE.md section 6,
//! Kotak's Limits page and its SDK:
//! - `POST /login/1.0/tradeApiLogin` with `Authorization: <access token>` (plain: `Bearer ...` is
//!   refused), `neo-fin-key: neotradeapi`, `Content-Type: application/json` and
//!   `{"mobileNumber","ucc","totp"}` (strings) gives `data.token` (a View JWT) and `data.sid`;
//! - `POST /login/1.0/tradeApiValidate` with the same headers plus `sid` and `Auth` from step 1
//!   and `{"mpin"}` gives the Trade JWT, the trade `sid` and `baseUrl`. It is refused without
//!   step 1's sid and token, with wrong ones, or with another access token's. A view session
//!   ends when it is validated;
//! - `POST /quick/user/limits` on the session's `baseUrl` with `accept: application/json`,
//!   `Sid`, `Auth`, `neo-fin-key`, a form body `jData={"seg","exch","prod"}` (values from the
//!   Limits page) answers the limits with `"stat":"Ok"` (an `Authorization` header is allowed,
//!   not required: the page does not list it); an unknown session gets 403 "Invalid session,
//!   please re-login to continue" (the SDK's words for 403);
//! - errors as `{"error":[{"code","message"}]}`. The missing-field messages ("Missing required
//!   field 'Mpin'"), 429 and 500 are documented. Mock's choices: a wrong TOTP is 400 "Invalid
//!   TOTP", a wrong MPIN 400 "Invalid MPIN", a wrong mobile number 400 "Invalid mobile number",
//!   an unknown UCC "Invalid UCC" (code "400") under HTTP 200 (the SDK says a 2xx can carry an
//!   invalid-UCC error), a wrong access token 401, missing `sid`/`Auth` headers or a wrong header
//!   or body shape 400, a wrong session 403, a limits call on a host other than the session's
//!   `baseUrl` 403, wrong paths 404, wrong methods 405, and the codes in the envelope (the HTTP
//!   status as a string).
//!
//! `baseUrl` is the URL of the first server started ([`KotakNeoMock::serve`]) unless a test sets
//! [`State::base_url`] to another server of the same mock (a second data centre). Resetting an
//! access token ([`KotakNeoMock::reset_access_token`]) ends every session of its client at once,
//! as Kotak's FAQ says. Trade JWTs say they last 24 h (mock's choice); the provider's cut-off
//! ends them earlier.

use crate::totp::{Account, Fault};
use crate::{Request, Response, Server, fake_jwt, nonce};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One client of the broker.
#[derive(Debug, Clone)]
pub struct Client {
    /// The access token of the client's Trade API app (from the Neo app).
    pub access_token: String,
    /// Registered mobile number, `+91...`.
    pub mobile: String,
    /// MPIN (as `pin`) and TOTP seed.
    pub account: Account,
}

/// A view (step 1) or trade (step 2) session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The client's UCC.
    pub ucc: String,
    /// The session's token (`Auth`).
    pub token: String,
    /// The `baseUrl` its calls must go to (trade sessions).
    pub base_url: String,
}

/// What the stand-in knows and has seen.
#[derive(Debug, Default)]
pub struct State {
    /// Clients by UCC.
    pub accounts: BTreeMap<String, Client>,
    /// Step-1 sessions waiting for their MPIN, by view sid.
    pub views: BTreeMap<String, Session>,
    /// Live trade sessions, by trade sid.
    pub live: BTreeMap<String, Session>,
    /// Every token and sid issued (for leak scans).
    pub issued: Vec<String>,
    /// Login attempts (`tradeApiLogin` calls that reached the credential checks).
    pub attempts: usize,
    /// MPIN checks (`tradeApiValidate` calls that reached the MPIN).
    pub validations: usize,
    /// Successful logins (trade sessions made).
    pub logins: usize,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    /// `Host` of every limits call.
    pub limits_hosts: Vec<String>,
    /// Answers to give before behaving again.
    pub faults: Vec<Fault>,
    /// Seconds the broker's clock runs ahead of the real one.
    pub clock_offset: i64,
    /// The `baseUrl` given to new trade sessions.
    pub base_url: Option<String>,
}

/// The stand-in.
#[derive(Clone, Default)]
pub struct KotakNeoMock(Arc<Mutex<State>>);

fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({"error": [{"code": status.to_string(), "message": message}]}))
}

/// A sid as Kotak writes them (UUID-shaped).
fn sid() -> String {
    let n = nonce();
    format!("{}-{}-{}-{}-{}", &n[..8], &n[8..12], &n[12..16], &n[16..20], &n[20..32])
}

impl KotakNeoMock {
    /// A broker with no clients.
    pub fn new() -> KotakNeoMock {
        KotakNeoMock::default()
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds client `ucc` with the app's `access_token`, `mobile`, `mpin` and a fresh TOTP seed;
    /// returns the seed.
    pub fn account(&self, access_token: &str, mobile: &str, ucc: &str, mpin: &str) -> String {
        let account = Account::new(mpin);
        let seed = account.seed.clone();
        let client = Client { access_token: access_token.into(), mobile: mobile.into(), account };
        self.state().accounts.insert(ucc.into(), client);
        seed
    }

    /// Gives client `ucc` a new access token, ending all its sessions; returns the token.
    pub fn reset_access_token(&self, ucc: &str) -> String {
        let token = format!("{}-{}", nonce(), nonce());
        let s = &mut *self.state();
        if let Some(c) = s.accounts.get_mut(ucc) {
            c.access_token = token.clone();
        }
        s.views.retain(|_, v| v.ucc != ucc);
        s.live.retain(|_, v| v.ucc != ucc);
        token
    }

    /// Serves it on a free loopback port (the first server is also the default `baseUrl`).
    pub fn serve(&self) -> Server {
        let me = self.clone();
        let server = Server::start(move |req| me.handle(req)).expect("mock Kotak Neo server");
        self.state().base_url.get_or_insert_with(|| server.url());
        server
    }

    /// Answers one request (tests call it directly for requests no provider would make).
    pub fn handle(&self, req: &Request) -> Response {
        let fault = {
            let s = &mut *self.state();
            crate::note_and_take(&mut s.seen, &mut s.faults, req)
        };
        crate::totp::answer(
            fault,
            || error(500, "Unexpected error"),
            || error(429, "Too many requests to the API"),
            || self.route(req),
        )
    }

    fn route(&self, req: &Request) -> Response {
        const PATHS: [&str; 3] =
            ["/login/1.0/tradeApiLogin", "/login/1.0/tradeApiValidate", "/quick/user/limits"];
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/login/1.0/tradeApiLogin") => self.login(req),
            ("POST", "/login/1.0/tradeApiValidate") => self.validate(req),
            ("POST", "/quick/user/limits") => self.limits(req),
            (_, p) if PATHS.contains(&p) => error(405, "Method not allowed (mock's message)"),
            _ => error(404, "Resource not found (mock's message)"),
        }
    }

    /// The checks both login steps share: `neo-fin-key`, a JSON body, and the client whose
    /// access token is the plain `Authorization`.
    fn login_gate(&self, req: &Request) -> Result<(String, Value), Response> {
        if req.header("neo-fin-key") != Some("neotradeapi") {
            return Err(error(400, "Missing or invalid header 'neo-fin-key' (mock's message)"));
        }
        if !req.header("content-type").is_some_and(|c| c.starts_with("application/json")) {
            return Err(error(400, "Content-Type must be application/json (mock's message)"));
        }
        let Some(body) = req.json().filter(Value::is_object) else {
            return Err(error(400, "Request body must be a JSON object (mock's message)"));
        };
        let auth = req.header("authorization").unwrap_or_default();
        let s = self.state();
        match s.accounts.iter().find(|(_, c)| !auth.is_empty() && c.access_token == auth) {
            Some((ucc, _)) => Ok((ucc.clone(), body)),
            None => Err(error(401, "Invalid access token (mock's message)")),
        }
    }

    fn login(&self, req: &Request) -> Response {
        let (owner, body) = match self.login_gate(req) {
            Ok(x) => x,
            Err(refusal) => return refusal,
        };
        let field = |k: &str| body[k].as_str().filter(|v| !v.is_empty());
        let (Some(mobile), Some(ucc), Some(totp)) = (field("mobileNumber"), field("ucc"), field("totp"))
        else {
            let missing = ["MobileNumber", "Ucc", "Totp"]
                .into_iter()
                .zip(["mobileNumber", "ucc", "totp"])
                .find(|(_, k)| field(k).is_none())
                .map_or("", |(name, _)| name);
            return error(400, &format!("Missing required field '{missing}'"));
        };
        let mut s = self.state();
        s.attempts += 1;
        let now = crate::now() + s.clock_offset;
        let Some(client) = s.accounts.get(ucc).filter(|_| ucc == owner).cloned() else {
            return Response::json(200, &json!({"error": [{"code": "400", "message": "Invalid UCC"}]}));
        };
        if client.mobile != mobile {
            return error(400, "Invalid mobile number");
        }
        if !client.account.accepts(totp, now) {
            return error(400, "Invalid TOTP");
        }
        let issued = crate::now();
        let token = fake_jwt(
            &json!({"sub": format!("user-{ucc}"), "kType": "View", "iat": issued, "exp": issued + 3600, "n": nonce()}),
        );
        let view_sid = sid();
        s.views.insert(
            view_sid.clone(),
            Session { ucc: ucc.into(), token: token.clone(), base_url: String::new() },
        );
        s.issued.extend([token.clone(), view_sid.clone()]);
        Response::json(
            200,
            &json!({"data": {
                "token": token, "sid": view_sid, "rid": sid(), "isUserPwdExpired": false, "ucc": ucc,
                "greetingName": "A TRADER", "isTrialAccount": false, "dataCenter": "E43", "dataCenterMap": null,
                "dormancyStatus": "A", "clientType": "RI", "isNRI": false, "kId": "ABCDE1234F", "kType": "View",
                "status": "success",
            }}),
        )
    }

    fn validate(&self, req: &Request) -> Response {
        let (owner, body) = match self.login_gate(req) {
            Ok(x) => x,
            Err(refusal) => return refusal,
        };
        let (Some(view_sid), Some(auth)) = (req.header("sid"), req.header("auth")) else {
            return error(400, "Missing required headers 'sid' and 'Auth' (mock's message)");
        };
        let mut s = self.state();
        let view = s.views.get(view_sid).filter(|v| v.token == auth && v.ucc == owner).cloned();
        let Some(view) = view else {
            return error(403, "Invalid session, please re-login to continue");
        };
        let Some(mpin) = body["mpin"].as_str().filter(|m| !m.is_empty()) else {
            return error(400, "Missing required field 'Mpin'");
        };
        s.validations += 1;
        if s.accounts.get(&view.ucc).is_none_or(|c| c.account.pin != mpin) {
            return error(400, "Invalid MPIN");
        }
        s.views.remove(view_sid);
        let issued = crate::now();
        let token = fake_jwt(&json!({
            "sub": format!("user-{}", view.ucc), "kType": "Trade", "iat": issued, "exp": issued + 86_400, "n": nonce(),
        }));
        let trade_sid = sid();
        let base_url = s.base_url.clone().unwrap_or_default();
        let session = Session { ucc: view.ucc.clone(), token: token.clone(), base_url: base_url.clone() };
        s.live.insert(trade_sid.clone(), session);
        s.issued.extend([token.clone(), trade_sid.clone()]);
        s.logins += 1;
        Response::json(
            200,
            &json!({"data": {
                "token": token, "sid": trade_sid, "rid": sid(), "baseUrl": base_url, "isUserPwdExpired": false,
                "ucc": view.ucc, "greetingName": "A TRADER", "isTrialAccount": false, "dataCenter": "E43",
                "dataCenterMap": null, "dormancyStatus": "A", "clientType": "RI", "isNRI": false,
                "kId": "ABCDE1234F", "kType": "Trade", "status": "success",
            }}),
        )
    }

    fn limits(&self, req: &Request) -> Response {
        if !req.header("accept").is_some_and(|a| a.contains("application/json")) {
            return error(400, "Header 'accept' must be application/json (mock's message)");
        }
        if req.header("neo-fin-key") != Some("neotradeapi") {
            return error(400, "Missing or invalid header 'neo-fin-key' (mock's message)");
        }
        if !req.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
            return error(400, "Content-Type must be application/x-www-form-urlencoded (mock's message)");
        }
        let jdata: Option<Value> = req.form().get("jData").and_then(|j| serde_json::from_str(j).ok());
        let allowed = |k: &str, values: &[&str]| {
            jdata.as_ref().and_then(|j| j[k].as_str()).is_some_and(|v| values.contains(&v))
        };
        if !(allowed("seg", &["ALL", "CASH", "CUR", "FO"])
            && allowed("exch", &["ALL", "NSE", "BSE"])
            && allowed("prod", &["ALL", "NRML", "CNC", "MIS"]))
        {
            return error(400, "Invalid jData: seg, exch and prod are required (mock's message)");
        }
        let host = req.header("host").unwrap_or_default().to_string();
        let mut s = self.state();
        s.limits_hosts.push(host.clone());
        let (sid, auth) = (req.header("sid").unwrap_or_default(), req.header("auth").unwrap_or_default());
        let Some(session) = s.live.get(sid).filter(|l| l.token == auth) else {
            return error(403, "Invalid session, please re-login to continue");
        };
        if session.base_url.strip_prefix("http://") != Some(host.as_str()) {
            return error(403, "Session belongs to another data centre (mock's message)");
        }
        Response::json(
            200,
            &json!({
                "Category": "CLIENT", "EntityId": format!("account-{}", session.ucc), "BoardLotLimit": "5000",
                "CollateralValue": "10197.48", "Collateral": "0", "Net": "10157.08", "MarginUsed": "40.4",
                "AdhocMargin": "0", "NotionalCash": "0", "UnrealizedMtomPrsnt": "0", "RealizedMtomPrsnt": "0",
                "TimeStamp": (crate::now() * 1000).to_string(), "stCode": 200, "stat": "Ok",
            }),
        )
    }
}
