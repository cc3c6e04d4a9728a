//! A strict Upstox on 127.0.0.1, following ../shared/BROKERS.md: the authorization dialog
//! (which redirects at once, as if the person had logged in), the code exchange, the profile,
//! logout and the v3 token request, with the error shape
//! `{"status":"error","errors":[{errorCode, message, propertyPath, invalidValue, ...snake_case}]}`.
//! A request with the wrong method, path, content type or a missing `Api-Version` gets the
//! broker's error, never a guess. Codes BROKERS.md does not give (not found, wrong method,
//! wrong content type) are marked as this mock's own; the provider must go by their status.

use crate::{Request, Response, Server, fake_jwt, nonce};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const IST: i64 = 330 * 60;

/// The next 03:30 IST strictly after `t` (an independent statement of the broker's rule).
pub fn next_0330_ist(t: i64) -> i64 {
    crate::next_ist(t, 3, 30)
}

/// An answer to give instead of the normal one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with UDAPI10005.
    RateLimited,
    /// 500 with UDAPI100500.
    ServerError,
    /// An HTML 502 from a proxy.
    BadGateway,
    /// The normal answer after this long.
    Slow(Duration),
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// The connection closes without an answer.
    HangUp,
    /// HTTP 200 carrying an error body (UDAPI100050).
    ErrorUnder200,
}

/// How the tokens' `exp` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exp {
    /// As Upstox does: the next 03:30 IST after `iat`.
    Cutoff,
    /// Two days after `iat` (the host must still stop at 03:30 IST).
    TwoDays,
    /// No `exp` claim.
    Absent,
}

#[derive(Debug)]
pub struct State {
    pub key: String,
    pub secret: String,
    pub redirect: String,
    pub user: String,
    /// Codes handed out by the dialog and not yet exchanged.
    pub codes: BTreeSet<String>,
    /// Tokens that work.
    pub live: BTreeSet<String>,
    /// Every token ever issued (for leak scans).
    pub issued: Vec<String>,
    /// v3 token requests waiting for approval: expiry (ms).
    pub pending: Vec<i64>,
    pub token_requests: usize,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    pub faults: Vec<Fault>,
    pub exp: Exp,
    /// `iat` of the next tokens (default: now).
    pub iat: Option<i64>,
    /// Whether the code exchange also hands out an `extended_token` (else `null`).
    pub extended: bool,
}

#[derive(Clone)]
pub struct UpstoxMock(Arc<Mutex<State>>);

fn error(status: u16, code: &str, message: &str, property: Option<&str>) -> Response {
    let e = serde_json::json!({
        "errorCode": code, "message": message, "propertyPath": property, "invalidValue": null,
        "error_code": code, "property_path": property, "invalid_value": null,
    });
    Response::json(status, &serde_json::json!({ "status": "error", "errors": [e] }))
}

/// UDAPI100068: the client id or redirect URI is not the registered one.
fn bad_client(property: Option<&str>) -> Response {
    let message = "Check your 'client_id' and 'redirect_uri'; one or both are incorrect.";
    error(400, "UDAPI100068", message, property)
}

fn now() -> i64 {
    crate::now()
}

impl UpstoxMock {
    pub fn new(key: &str, secret: &str, redirect: &str) -> UpstoxMock {
        UpstoxMock(Arc::new(Mutex::new(State {
            key: key.into(),
            secret: secret.into(),
            redirect: redirect.into(),
            user: "7XABCD".into(),
            codes: BTreeSet::new(),
            live: BTreeSet::new(),
            issued: Vec::new(),
            pending: Vec::new(),
            token_requests: 0,
            seen: Vec::new(),
            faults: Vec::new(),
            exp: Exp::Cutoff,
            iat: None,
            extended: false,
        })))
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.handle(req)).unwrap()
    }

    /// The next answer is `fault`.
    pub fn fault(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Every token stops working (03:30 IST came).
    pub fn expire_all(&self) {
        self.state().live.clear();
    }

    /// The person approves the pending token request: Upstox's webhook body, with a token
    /// that is now live. `None` when no request is pending.
    pub fn approve(&self) -> Option<Vec<u8>> {
        let mut s = self.state();
        s.pending.pop()?;
        let token = self.issue(&mut s);
        let iat = s.iat.unwrap_or_else(now);
        Some(self.push_body(&s.key.clone(), &s.user.clone(), &token, iat))
    }

    /// A webhook body as Upstox sends it (times as epoch-millisecond strings).
    pub fn push_body(&self, client_id: &str, user: &str, token: &str, iat: i64) -> Vec<u8> {
        serde_json::json!({
            "client_id": client_id, "user_id": user, "access_token": token, "token_type": "Bearer",
            "expires_at": (next_0330_ist(iat) * 1000).to_string(), "issued_at": (iat * 1000).to_string(),
            "message_type": "access_token",
        })
        .to_string()
        .into_bytes()
    }

    fn issue(&self, s: &mut State) -> String {
        let iat = s.iat.unwrap_or_else(now);
        let mut claims = serde_json::json!({
            "sub": s.user, "iss": "udapi-gateway-service", "iat": iat, "jti": nonce(),
            "isMultiClient": false, "isPlusPlan": true,
        });
        match s.exp {
            Exp::Cutoff => claims["exp"] = next_0330_ist(iat).into(),
            Exp::TwoDays => claims["exp"] = (iat + 2 * 86_400).into(),
            Exp::Absent => {}
        }
        let token = fake_jwt(&claims);
        s.live.insert(token.clone());
        s.issued.push(token.clone());
        token
    }

    fn handle(&self, req: &Request) -> Response {
        let fault = {
            let s = &mut *self.state();
            crate::note_and_take(&mut s.seen, &mut s.faults, req)
        };
        match fault {
            Some(Fault::RateLimited) => return error(429, "UDAPI10005", "Too many requests", None),
            Some(Fault::ServerError) => return error(500, "UDAPI100500", "Something went wrong", None),
            Some(Fault::BadGateway) => {
                return Response::raw(502, "text/html", "<html><body>502 Bad Gateway</body></html>");
            }
            Some(Fault::Garbage) => return Response::raw(200, "text/html", "<html>maintenance</html>"),
            Some(Fault::HangUp) => return Response::hang_up(),
            Some(Fault::ErrorUnder200) => {
                let mut r = error(401, "UDAPI100050", "Invalid token used to access API", None);
                r.status = 200;
                return r;
            }
            Some(Fault::Slow(d)) => return self.route(req).after(d),
            None => {}
        }
        self.route(req)
    }

    fn route(&self, req: &Request) -> Response {
        let p = req.path.as_str();
        let method = |m: &str| req.method == m;
        match p {
            "/v2/login/authorization/dialog" if method("GET") => self.dialog(req),
            "/v2/login/authorization/token" if method("POST") => self.exchange(req),
            "/v2/user/profile" if method("GET") => self.with_token(req, |s| {
                serde_json::json!({"status": "success", "data": {
                    "email": "trader@example.in", "exchanges": ["NSE", "BSE"], "products": ["D", "I"],
                    "broker": "UPSTOX", "user_id": s.user, "user_name": "A Trader",
                    "order_types": ["MARKET", "LIMIT"], "user_type": "individual", "poa": false,
                    "ddpi": true, "is_active": true}})
            }),
            "/v2/logout" if method("DELETE") => {
                let r = self.with_token(req, |_| serde_json::json!({"status": "success", "data": true}));
                if r.status == 200 {
                    let token = bearer(req).unwrap_or_default();
                    self.state().live.remove(&token);
                }
                r
            }
            _ if p.starts_with("/v3/login/auth/token/request/") && method("POST") => self.token_request(req),
            "/v2/login/authorization/dialog"
            | "/v2/login/authorization/token"
            | "/v2/user/profile"
            | "/v2/logout" => error(405, "UDAPI100061", "Request method not supported (mock's code)", None),
            _ if p.starts_with("/v3/login/auth/token/request/") => {
                error(405, "UDAPI100061", "Request method not supported (mock's code)", None)
            }
            _ => error(404, "UDAPI100060", "Resource not Found (mock's code)", None),
        }
    }

    fn dialog(&self, req: &Request) -> Response {
        let mut s = self.state();
        if req.param("response_type") != Some("code") {
            return bad_client(Some("response_type"));
        }
        if req.param("client_id") != Some(s.key.as_str())
            || req.param("redirect_uri") != Some(s.redirect.as_str())
        {
            return bad_client(None);
        }
        let code = format!("code{}", nonce());
        s.codes.insert(code.clone());
        let state = req.param("state").map(|st| format!("&state={}", enc(st))).unwrap_or_default();
        Response::redirect(&format!("{}?code={code}{state}", s.redirect))
    }

    fn exchange(&self, req: &Request) -> Response {
        let mut s = self.state();
        if req.header("api-version") != Some("2.0") {
            return error(
                400,
                "UDAPI100015",
                "Api-Version header is missing or invalid",
                Some("Api-Version"),
            );
        }
        let form_type = req.header("content-type").unwrap_or("");
        if !form_type.starts_with("application/x-www-form-urlencoded") {
            return error(415, "UDAPI100062", "Content type not supported (mock's code)", None);
        }
        if req.header("accept") != Some("application/json") {
            return error(406, "UDAPI100063", "Accept must be application/json (mock's code)", None);
        }
        let f = req.form();
        let field = |k: &str| f.get(k).map(String::as_str);
        // A code is single use, even when the exchange fails.
        let code_ok = field("code").is_some_and(|c| s.codes.remove(c));
        if field("grant_type") != Some("authorization_code") {
            return error(400, "UDAPI100016", "Invalid Credentials", Some("grant_type"));
        }
        if field("client_id") != Some(s.key.as_str()) || field("redirect_uri") != Some(s.redirect.as_str()) {
            return bad_client(None);
        }
        if field("client_secret") != Some(s.secret.as_str()) {
            return error(
                401,
                "UDAPI100069",
                "Check your 'client_id' and 'client_secret'",
                Some("client_secret"),
            );
        }
        if !code_ok {
            return error(400, "UDAPI100057", "Invalid Auth code", Some("code"));
        }
        let token = self.issue(&mut s);
        let extended = s.extended.then(|| format!("ext{}", nonce()));
        s.issued.extend(extended.clone());
        Response::json(
            200,
            &serde_json::json!({
                "email": "trader@example.in", "exchanges": ["NSE", "BSE"], "products": ["D", "I"],
                "broker": "UPSTOX", "user_id": s.user, "user_name": "A Trader", "order_types": ["MARKET"],
                "user_type": "individual", "poa": false, "is_active": true,
                "access_token": token, "extended_token": extended,
            }),
        )
    }

    fn token_request(&self, req: &Request) -> Response {
        let mut s = self.state();
        let client = crate::server::percent_decode(&req.path["/v3/login/auth/token/request/".len()..]);
        if !req.header("content-type").unwrap_or("").starts_with("application/json") {
            return error(415, "UDAPI100062", "Content type not supported (mock's code)", None);
        }
        if client != s.key {
            return bad_client(None);
        }
        if req.json().and_then(|b| b["client_secret"].as_str().map(str::to_string)).as_deref()
            != Some(s.secret.as_str())
        {
            return error(401, "UDAPI100016", "Invalid Credentials", Some("client_secret"));
        }
        let expiry = next_0330_ist(now()) * 1000;
        s.pending.push(expiry);
        s.token_requests += 1;
        Response::json(
            200,
            &serde_json::json!({"status": "success", "data": {
            "authorization_expiry": expiry.to_string(), "notifier_url": "https://example.in/notify"}}),
        )
    }

    fn with_token(&self, req: &Request, ok: impl Fn(&State) -> serde_json::Value) -> Response {
        let s = self.state();
        match bearer(req) {
            Some(t) if s.live.contains(&t) => Response::json(200, &ok(&s)),
            _ => error(401, "UDAPI100050", "Invalid token used to access API", None),
        }
    }
}

fn bearer(req: &Request) -> Option<String> {
    req.header("authorization")?.strip_prefix("Bearer ").map(str::to_string)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
