//! A strict XTS broker on 127.0.0.1, following ../shared/BROKERS.md: JSON envelopes
//! `{type, code, description, result}`, raw `Authorization` tokens (a "Bearer " prefix is an
//! invalid token), HTTP 400 errors, optionally HTTP 200 "Invalid Token" for dead sessions.
//! The end-to-end tests and the bench run against it, and so does `tokenhost demo`.

use crate::{Fault, Request, Response, Server, fake_jwt, nonce};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Which API an app key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Interactive,
    MarketData,
}

#[derive(Debug, Clone)]
pub struct App {
    pub secret: String,
    pub user: String,
    pub api: Api,
}

#[derive(Default)]
pub struct XtsState {
    pub apps: HashMap<String, App>,
    /// Live sessions: token -> (user, api).
    pub sessions: HashMap<String, (String, Api)>,
    pub ttl: i64,
    /// When set, logins must carry this `accessToken` instead of `source`.
    pub access_token: Option<String>,
    /// The one market-data login path this server has.
    pub market_data_path: String,
    /// Answer a dead session with HTTP 200 and `"type":"error"` (as some servers do).
    pub invalid_token_as_200: bool,
    pub faults: Vec<Fault>,
    /// Answer this many of the next logins successfully, but only after this long (a broker
    /// under load); the session counts as issued when the request arrives.
    pub slow_logins: Option<(usize, Duration)>,
    pub logins: usize,
    pub seen: Vec<String>,
}

#[derive(Clone)]
pub struct XtsMock {
    state: Arc<Mutex<XtsState>>,
}

fn envelope_error(status: u16, code: &str, description: &str) -> Response {
    Response::json(status, &json!({"type": "error", "code": code, "description": description, "result": {}}))
}

fn success(code: &str, description: &str, result: Value) -> Response {
    Response::json(
        200,
        &json!({"type": "success", "code": code, "description": description, "result": result}),
    )
}

impl Default for XtsMock {
    fn default() -> Self {
        XtsMock::new()
    }
}

impl XtsMock {
    pub fn new() -> XtsMock {
        let state = XtsState {
            ttl: 24 * 3600,
            market_data_path: "/apimarketdata/auth/login".into(),
            ..Default::default()
        };
        XtsMock { state: Arc::new(Mutex::new(state)) }
    }

    pub fn state(&self) -> MutexGuard<'_, XtsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an app key.
    pub fn app(&self, key: &str, secret: &str, user: &str, api: Api) -> &XtsMock {
        self.state().apps.insert(key.into(), App { secret: secret.into(), user: user.into(), api });
        self
    }

    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.handle(req)).expect("mock XTS server")
    }

    pub fn handle(&self, req: &Request) -> Response {
        let fault = {
            let s = &mut *self.state();
            crate::note_and_take(&mut s.seen, &mut s.faults, req)
        };
        match fault {
            Some(Fault::Unavailable) => {
                return Response::raw(503, "text/html", "<h1>503 Service Unavailable</h1>");
            }
            Some(Fault::Garbage) => return Response::raw(200, "text/html", "<html>under maintenance</html>"),
            Some(Fault::Slow(secs)) => {
                return envelope_error(503, "e-slow", "slow").after(Duration::from_secs(secs));
            }
            Some(Fault::HangUp) => return Response::hang_up(),
            Some(Fault::Huge) => return Response::raw(200, "application/json", vec![b' '; 4 << 20]),
            None => {}
        }
        let md_path = self.state().market_data_path.clone();
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/interactive/user/session") => self.login(req, Api::Interactive),
            ("POST", p) if p == md_path => self.login(req, Api::MarketData),
            ("GET", "/interactive/user/profile") => match self.session(req, Api::Interactive) {
                Ok(user) => success("s-user-0001", "Fetched user profile", json!({"ClientId": user})),
                Err(r) => r,
            },
            ("DELETE", "/interactive/user/session") => self.logout(req, Api::Interactive),
            ("DELETE", p) if p == md_path.replace("/auth/login", "/auth/logout") => {
                self.logout(req, Api::MarketData)
            }
            _ => envelope_error(404, "e-route-0404", "Route not found"),
        }
    }

    fn login(&self, req: &Request, api: Api) -> Response {
        if req.header("content-type").map(|c| c.split(';').next().unwrap_or("").trim())
            != Some("application/json")
        {
            return envelope_error(400, "e-app-0001", "Content-Type must be application/json");
        }
        let Some(body) = req.json() else { return envelope_error(400, "e-app-0002", "Invalid JSON body") };
        let (Some(key), Some(secret)) = (body["appKey"].as_str(), body["secretKey"].as_str()) else {
            return envelope_error(400, "e-app-0003", "appKey and secretKey are required");
        };
        let mut s = self.state();
        match &s.access_token {
            Some(expected) => {
                if body.get("source").is_some() || body["accessToken"].as_str() != Some(expected.as_str()) {
                    return envelope_error(400, "e-user-0006", "Invalid accessToken");
                }
            }
            None => {
                if body["source"].as_str() != Some("WEBAPI") || body.get("accessToken").is_some() {
                    return envelope_error(400, "e-user-0005", "Invalid source");
                }
            }
        }
        let app = match s.apps.get(key) {
            Some(app) if app.secret == secret && app.api == api => app.clone(),
            _ => return envelope_error(400, "e-user-0004", "Invalid appKey or secretKey"),
        };
        let now = crate::now();
        let user_id = format!("{}_{}", app.user, key.to_ascii_uppercase());
        let token = fake_jwt(
            &json!({"userID": user_id, "publicKey": key, "iat": now, "exp": now + s.ttl, "n": nonce()}),
        );
        s.sessions.insert(token.clone(), (app.user.clone(), api));
        s.logins += 1;
        let delay = match &mut s.slow_logins {
            Some((n, d)) if *n > 0 => {
                *n -= 1;
                *d
            }
            _ => Duration::ZERO,
        };
        let answer = match api {
            Api::Interactive => success(
                "s-user-0001",
                "Valid User.",
                json!({"token": token, "userID": app.user, "isInvestorClient": false,
                    "clientCodes": [app.user], "exchangeSegmentArray": [{"key": "NSECM", "value": 1}], "enums": {}}),
            ),
            Api::MarketData => success(
                "e-response-0010",
                "Provided Valid Credentials",
                json!({"token": token, "userID": app.user, "appVersion": "1.0", "application_expiry_date": "2030-01-01"}),
            ),
        };
        answer.after(delay)
    }

    /// The session's user, or the broker's "Invalid Token" answer.
    fn session(&self, req: &Request, api: Api) -> Result<String, Response> {
        let s = self.state();
        let invalid = || {
            let status = if s.invalid_token_as_200 { 200 } else { 400 };
            envelope_error(status, "e-session-0002", "Invalid Token")
        };
        let Some(token) = req.header("authorization") else { return Err(invalid()) };
        match s.sessions.get(token) {
            Some((user, a)) if *a == api => Ok(user.clone()),
            _ => Err(invalid()),
        }
    }

    fn logout(&self, req: &Request, api: Api) -> Response {
        match self.session(req, api) {
            Ok(_) => {
                if let Some(t) = req.header("authorization") {
                    self.state().sessions.remove(t);
                }
                success("s-session-0001", "User logged out successfully", json!({}))
            }
            Err(r) => r,
        }
    }
}
