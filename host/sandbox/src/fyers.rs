//! A strict Fyers (API v3) on 127.0.0.1, following ../shared/BROKERS-MORE.md section 3: the
//! login page `GET /api/v3/generate-authcode` (which redirects at once, as if the person had
//! logged in, with `s=ok&code=200&auth_code=...&state=...`), the exchange
//! `POST /api/v3/validate-authcode` (JSON `{grant_type, appIdHash, code}`, the hash checked
//! exactly: sha256 of `app_id:secret`, computed here independently of the SDK), and
//! `GET /api/v3/profile` and `POST /api/v3/logout` with `Authorization: <app_id>:<token>`.
//! Errors are Fyers' envelope `{"s":"error","code":<negative>,"message"}`.
//!
//! Documented codes: -352 "Invalid App ID", -371 (a wrong appIdHash), -441 (no auth code),
//! -442 (a wrong grant_type), -16 "Token is Invalid or Expired" (HTTP 200 on logout), -429 the
//! rate limit. The mock's own codes and choices (Fyers documents none of them):
//! - -413 "Invalid auth code" for a used or unknown auth code and -413 "Auth code has expired"
//!   for one older than `code_ttl_secs` (default 300 s, mock's choice); a code is spent by any
//!   exchange that names it, even one that fails;
//! - -390 "Invalid redirect_uri" and -391 "Invalid response_type" on the login page; -50 for an
//!   exchange body that is not JSON; -99 for a wrong path (404) or method (405);
//! - the person cancelling (`deny`): the redirect carries `s=error&code=-1&message=...&state=`;
//! - HTTP statuses: login-page and exchange refusals under 200 (-441/-442/-50 under 400), the
//!   profile's -16 under 401, the 5xx fault as -500 under 500, the rate limit under 429;
//! - tokens: JWTs whose `exp` is the next 06:00 IST after issue (Fyers' clock time is not
//!   documented), `sub` "access_token" and the user in `fy_id`; `auth_code` is a JWT too. The
//!   `version: 3` header the official SDK sends is not required.

use crate::totp::Fault;
use crate::{Request, Response, Server, fake_jwt, nonce};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// The next 06:00 IST strictly after `t` (the mock's expiry rule, stated independently).
pub fn next_0600_ist(t: i64) -> i64 {
    crate::next_ist(t, 6, 0)
}

/// What the stand-in knows and has seen.
#[derive(Debug)]
pub struct State {
    /// The app: its id (with the `-100` suffix), secret and registered redirect URL.
    pub app_id: String,
    pub secret: String,
    pub redirect: String,
    /// The account's Fyers id (`fy_id`).
    pub user: String,
    /// Auth codes handed out by the login page and not yet exchanged: when each was issued.
    pub codes: BTreeMap<String, i64>,
    /// Access tokens that work.
    pub live: BTreeSet<String>,
    /// Every access token, refresh token and auth code ever issued (for leak scans).
    pub issued: Vec<String>,
    /// Exchange calls that reached the checks.
    pub exchanges: usize,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    /// Answers to give before behaving again.
    pub faults: Vec<Fault>,
    /// How long an auth code lasts.
    pub code_ttl_secs: i64,
    /// The person cancels at the login page.
    pub deny: bool,
}

/// The stand-in.
#[derive(Clone)]
pub struct FyersMock(Arc<Mutex<State>>);

fn error(status: u16, code: i64, message: &str) -> Response {
    Response::json(status, &json!({"s": "error", "code": code, "message": message}))
}

/// Lower-case hex `appIdHash` of `app_id` and `secret`, as Fyers checks it.
pub fn app_id_hash(app_id: &str, secret: &str) -> String {
    crate::sha256_hex(format!("{app_id}:{secret}").as_bytes())
}

/// The claims of a token this stand-in issued.
pub fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

impl FyersMock {
    /// An app `app_id` with `secret`, registered with `redirect`.
    pub fn new(app_id: &str, secret: &str, redirect: &str) -> FyersMock {
        FyersMock(Arc::new(Mutex::new(State {
            app_id: app_id.into(),
            secret: secret.into(),
            redirect: redirect.into(),
            user: "XA12345".into(),
            codes: BTreeMap::new(),
            live: BTreeSet::new(),
            issued: Vec::new(),
            exchanges: 0,
            seen: Vec::new(),
            faults: Vec::new(),
            code_ttl_secs: 300,
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
        Server::start(move |req| me.handle(req)).expect("mock Fyers server")
    }

    /// Fyers ends every session: later calls with those tokens get -16.
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
            || error(500, -500, "Internal Server Error"),
            || error(429, -429, "request limit reached"),
            || self.route(req),
        )
    }

    fn route(&self, req: &Request) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/v3/generate-authcode") => self.login_page(req),
            ("POST", "/api/v3/validate-authcode") => self.exchange(req),
            ("GET", "/api/v3/profile") => self.with_token(req, 401, |s| {
                json!({"s": "ok", "code": 200, "message": "", "data": {
                    "fy_id": s.user, "name": "A TRADER", "display_name": "TRADER", "email_id": "trader@example.in",
                    "mobile_number": "99XXXXXX12", "pan": "XXXXX1234X", "totp": true, "pwd_to_expire": 90,
                    "ddpi_enabled": false, "mtf_enabled": false, "image": null}})
            }),
            ("POST", "/api/v3/logout") => {
                let r = self.with_token(req, 200, |_| {
                    json!({"s": "ok", "code": 200, "message": "you are successfully logged out"})
                });
                if let (200, Some((_, token))) = (r.status, bearer(req)) {
                    self.state().live.remove(&token);
                }
                r
            }
            (
                _,
                "/api/v3/generate-authcode" | "/api/v3/validate-authcode" | "/api/v3/profile" | "/api/v3/logout",
            ) => error(405, -99, "Method not allowed"),
            _ => error(404, -99, "Not found"),
        }
    }

    fn login_page(&self, req: &Request) -> Response {
        let mut s = self.state();
        if req.param("client_id") != Some(s.app_id.as_str()) {
            return error(200, -352, "Invalid App ID");
        }
        if req.param("redirect_uri") != Some(s.redirect.as_str()) {
            return error(200, -390, "Invalid redirect_uri");
        }
        if req.param("response_type") != Some("code") {
            return error(200, -391, "Invalid response_type");
        }
        let state = req.param("state").map(|st| format!("&state={}", enc(st))).unwrap_or_default();
        let sep = if s.redirect.contains('?') { '&' } else { '?' };
        if s.deny {
            let cancelled = enc("User cancelled the login");
            return Response::redirect(&format!(
                "{}{sep}s=error&code=-1&message={cancelled}{state}",
                s.redirect
            ));
        }
        let now = crate::now();
        let code = fake_jwt(&json!({
            "iss": "api.login.fyers.in", "iat": now, "exp": now + s.code_ttl_secs, "nbf": now,
            "sub": "auth_code", "app_id": s.app_id.split('-').next(), "display_name": "TRADER", "n": nonce(),
        }));
        s.codes.insert(code.clone(), now);
        s.issued.push(code.clone());
        Response::redirect(&format!("{}{sep}s=ok&code=200&auth_code={code}{state}", s.redirect))
    }

    fn exchange(&self, req: &Request) -> Response {
        let mut s = self.state();
        s.exchanges += 1;
        let json_type = req.header("content-type").unwrap_or("").starts_with("application/json");
        let Some(body) = req.json().filter(|b| json_type && b.is_object()) else {
            return error(400, -50, "Invalid request body: JSON expected");
        };
        let field = |k: &str| body[k].as_str().filter(|v| !v.is_empty());
        if field("grant_type") != Some("authorization_code") {
            return error(400, -442, "Please provide valid grant_type");
        }
        let Some(code) = field("code") else { return error(400, -441, "auth code is required") };
        // A code is single use, even when the exchange fails.
        let issued_at = s.codes.remove(code);
        if field("appIdHash") != Some(app_id_hash(&s.app_id, &s.secret).as_str()) {
            return error(200, -371, "Please provide sha256 hash of appId and app secret");
        }
        let now = crate::now();
        match issued_at {
            None => return error(200, -413, "Invalid auth code"),
            Some(at) if now >= at + s.code_ttl_secs => return error(200, -413, "Auth code has expired"),
            Some(_) => {}
        }
        let access = fake_jwt(&json!({
            "iss": "api.fyers.in", "iat": now, "exp": next_0600_ist(now), "nbf": now, "aud": ["d:1", "x:0"],
            "sub": "access_token", "display_name": "TRADER", "oms": "K1", "fy_id": s.user, "appType": 100,
            "poa_flag": "N", "n": nonce(),
        }));
        let refresh = fake_jwt(&json!({"iss": "api.fyers.in", "iat": now, "exp": now + 15 * 86_400,
            "sub": "refresh_token", "fy_id": s.user, "n": nonce()}));
        s.live.insert(access.clone());
        s.issued.extend([access.clone(), refresh.clone()]);
        Response::json(
            200,
            &json!({"s": "ok", "code": 200, "message": "", "access_token": access, "refresh_token": refresh}),
        )
    }

    /// `ok(state)` for a live token of this app; else -16 with `dead_status`.
    fn with_token(&self, req: &Request, dead_status: u16, ok: impl Fn(&State) -> Value) -> Response {
        let s = self.state();
        match bearer(req) {
            Some((app, token)) if app == s.app_id && s.live.contains(&token) => Response::json(200, &ok(&s)),
            _ => error(dead_status, -16, "Token is Invalid or Expired"),
        }
    }
}

/// `(app_id, token)` from `Authorization: <app_id>:<token>`.
fn bearer(req: &Request) -> Option<(String, String)> {
    let (app, token) = req.header("authorization")?.split_once(':')?;
    Some((app.to_string(), token.to_string()))
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_rule_is_the_next_0600_ist() {
        // 2026-04-01T00:30:00Z is 06:00 IST.
        let six = 1_775_003_400;
        assert_eq!(next_0600_ist(six - 1), six);
        assert_eq!(next_0600_ist(six), six + 86_400);
    }
}
