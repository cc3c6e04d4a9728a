//! A strict Shoonya (Finvasia NorenAPI, the OAuth login) on 127.0.0.1, following
//! ../shared/BROKERS-MORE.md section 5:
//!
//! - `GET /OAuthlogin/authorize/oauth?client_id=` is the login page. An unknown client id gets
//!   `{"stat":"Not_Ok","emsg":"Invalid Input : Invalid client_id"}`; else it acts as the person
//!   logging in at once: a 302 to the app's registered redirect URL with a fresh single-use
//!   `code` (shaped as a UUID, as users' scripts show them). It echoes no `state` (whether
//!   Shoonya does is unconfirmed), and Shoonya documents no answer for a person who cancels, so
//!   there is no knob for one.
//! - `POST /NorenWClientAPI/GenAcsTok`, `Content-Type: text/plain`, body `jData=<JSON>` (the JSON
//!   as it is, not url-encoded) with `code`, `checksum` = lower-case hex
//!   sha256(client_id + secret_key + code) (computed here with `sha2`, not the SDK) and
//!   `uid`. Without `uid`, with another user's, or with a wrong checksum: `Invalid Input :
//!   INVALID_VERIFIER`. A code is spent by any exchange that names it, good or bad. The answer
//!   has `access_token`, `refresh_token`, `expires_in`, `USERID` and `actid`, and no `stat`.
//! - `POST /NorenWClientAPI/UserDetails` `jData={"uid"}` and `POST /NorenWClientAPI/Logout`
//!   `jData={"ordersource":"API","uid"}`, each with `Authorization: Bearer <access_token>`; a
//!   token that is not live gets "Session Expired :  Invalid Session Key" (two spaces).
//! - Errors are `{"stat":"Not_Ok","emsg"}`.
//!
//! Mock's choices (not in the docs): errors come under HTTP 200, a wrong path gets 404 and a
//! wrong method 405 (both with Noren's envelope), the rate limit 429 and a server error 500 in
//! the same envelope; the wording of "Invalid Input : Invalid code" (an unknown or spent code),
//! "Invalid Input : code expired", "Invalid Input : jData is Missing", "Invalid Input : jData is
//! not valid JSON", "Invalid Input : Content-Type must be text/plain", "Invalid Input :
//! Authorization is Missing", "Invalid Input : Invalid uid", "Invalid Input : Invalid
//! ordersource"; a code's life (300 s, `code_ttl_secs`); a token's life (24 h,
//! `lifetime_secs`); tokens and refresh tokens as 64 hex characters; `expires_in` as the epoch
//! second written as a string (as Noren writes its numbers), or with [`ExpiresIn::Seconds`] a
//! lifetime as a number.

use crate::totp::Fault;
use crate::{Request, Response, Server, nonce};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Shoonya's answer for a token that is not (or no longer) live.
pub const SESSION_EXPIRED: &str = "Session Expired :  Invalid Session Key";
const VERIFIER: &str = "Invalid Input : INVALID_VERIFIER";
const ROUTES: [&str; 4] = [
    "/OAuthlogin/authorize/oauth",
    "/NorenWClientAPI/GenAcsTok",
    "/NorenWClientAPI/UserDetails",
    "/NorenWClientAPI/Logout",
];

/// How `expires_in` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiresIn {
    /// As documented: the epoch second of the expiry.
    Epoch,
    /// A lifetime in seconds, as OAuth servers usually write it.
    Seconds,
    /// Not at all.
    Absent,
}

/// One live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// When it ends (unix seconds).
    pub expires_at: i64,
    /// The refresh token handed out with it.
    pub refresh_token: String,
}

/// What the stand-in knows and has seen.
#[derive(Debug)]
pub struct State {
    /// The app's OAuth client id.
    pub client_id: String,
    /// The app's secret key.
    pub secret: String,
    /// The app's registered redirect URL.
    pub redirect: String,
    /// The user who logs in (uid).
    pub user: String,
    /// Codes the login page handed out and no exchange has named yet: when each was issued.
    pub codes: BTreeMap<String, i64>,
    /// Live access tokens.
    pub live: BTreeMap<String, Session>,
    /// Every code, token and refresh token ever issued (for leak scans).
    pub issued: Vec<String>,
    /// Exchanges that reached the checks.
    pub exchanges: usize,
    /// Logouts that ended a session.
    pub logouts: usize,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    /// Answers to give before behaving again.
    pub faults: Vec<Fault>,
    /// How long a code can be exchanged (0: never).
    pub code_ttl_secs: i64,
    /// How long a token lives.
    pub lifetime_secs: i64,
    pub expires_in: ExpiresIn,
    /// The exchange answers "Invalid Input : Password Expired" (the person must set a new one).
    pub password_expired: bool,
    /// Whether `UserDetails` is served (false: 404, as if the route were a wrong guess).
    pub user_details: bool,
}

/// The stand-in.
#[derive(Clone)]
pub struct ShoonyaMock(Arc<Mutex<State>>);

fn not_ok(status: u16, emsg: &str) -> Response {
    Response::json(status, &json!({"stat": "Not_Ok", "emsg": emsg}))
}

fn request_time() -> String {
    // Noren writes `HH:MM:SS DD-MM-YYYY`, IST.
    let t = crate::local_datetime(crate::now(), crate::IST_MINUTES);
    format!("{} {}-{}-{}", &t[11..19], &t[8..10], &t[5..7], &t[..4])
}

/// The JSON of a `text/plain` body `jData=<JSON>`, or Noren's refusal.
fn jdata(req: &Request) -> Result<Value, Response> {
    if !req.header("content-type").unwrap_or("").starts_with("text/plain") {
        return Err(not_ok(200, "Invalid Input : Content-Type must be text/plain"));
    }
    let body = String::from_utf8_lossy(&req.body);
    let Some(json) = body.strip_prefix("jData=") else {
        return Err(not_ok(200, "Invalid Input : jData is Missing"));
    };
    match serde_json::from_str::<Value>(json) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(not_ok(200, "Invalid Input : jData is not valid JSON")),
    }
}

impl ShoonyaMock {
    /// An app `client_id` with `secret` and its registered `redirect`, for the user `user`.
    pub fn new(client_id: &str, secret: &str, user: &str, redirect: &str) -> ShoonyaMock {
        ShoonyaMock(Arc::new(Mutex::new(State {
            client_id: client_id.into(),
            secret: secret.into(),
            redirect: redirect.into(),
            user: user.into(),
            codes: BTreeMap::new(),
            live: BTreeMap::new(),
            issued: Vec::new(),
            exchanges: 0,
            logouts: 0,
            seen: Vec::new(),
            faults: Vec::new(),
            code_ttl_secs: 300,
            lifetime_secs: 86_400,
            expires_in: ExpiresIn::Epoch,
            password_expired: false,
            user_details: true,
        })))
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves it on a free loopback port.
    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.handle(req)).expect("mock Shoonya server")
    }

    /// Shoonya ends every session: later calls with those tokens get "Session Expired".
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
            || not_ok(500, "Internal Server Error"),
            || not_ok(429, "Too many requests"),
            || self.route(req),
        )
    }

    fn route(&self, req: &Request) -> Response {
        let serves_details = self.state().user_details;
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/OAuthlogin/authorize/oauth") => self.login_page(req),
            ("POST", "/NorenWClientAPI/GenAcsTok") => self.exchange(req),
            ("POST", "/NorenWClientAPI/UserDetails") if serves_details => self.user_details(req),
            ("POST", "/NorenWClientAPI/Logout") => self.logout(req),
            (_, "/NorenWClientAPI/UserDetails") if !serves_details => not_ok(404, "Not Found"),
            (_, p) if ROUTES.contains(&p) => not_ok(405, "Method Not Allowed"),
            _ => not_ok(404, "Not Found"),
        }
    }

    fn login_page(&self, req: &Request) -> Response {
        let mut s = self.state();
        if req.param("client_id") != Some(s.client_id.as_str()) {
            return not_ok(200, "Invalid Input : Invalid client_id");
        }
        let n = nonce();
        let code = format!("{}-{}-{}-{}-{}", &n[..8], &n[8..12], &n[12..16], &n[16..20], &n[20..]);
        s.codes.insert(code.clone(), crate::now());
        s.issued.push(code.clone());
        let sep = if s.redirect.contains('?') { '&' } else { '?' };
        Response::redirect(&format!("{}{sep}code={code}", s.redirect))
    }

    fn exchange(&self, req: &Request) -> Response {
        let data = match jdata(req) {
            Ok(d) => d,
            Err(refused) => return refused,
        };
        let mut s = self.state();
        s.exchanges += 1;
        let field = |k: &str| data[k].as_str().unwrap_or_default().to_string();
        let (code, checksum, uid) = (field("code"), field("checksum"), field("uid"));
        // Spent by this exchange, whatever comes of it.
        let issued = s.codes.remove(&code);
        if uid.is_empty() {
            return not_ok(200, VERIFIER);
        }
        let Some(issued) = issued else { return not_ok(200, "Invalid Input : Invalid code") };
        if crate::now() >= issued + s.code_ttl_secs {
            return not_ok(200, "Invalid Input : code expired");
        }
        let expected = crate::sha256_hex(format!("{}{}{code}", s.client_id, s.secret).as_bytes());
        if uid != s.user || checksum != expected {
            return not_ok(200, VERIFIER);
        }
        if s.password_expired {
            return not_ok(200, "Invalid Input : Password Expired");
        }
        let token = format!("{}{}", nonce(), nonce());
        let refresh = format!("{}{}", nonce(), nonce());
        let expires_at = crate::now() + s.lifetime_secs;
        s.live.insert(token.clone(), Session { expires_at, refresh_token: refresh.clone() });
        s.issued.extend([token.clone(), refresh.clone()]);
        let mut body = json!({
            "access_token": token, "refresh_token": refresh, "USERID": s.user, "actid": s.user,
        });
        match s.expires_in {
            ExpiresIn::Epoch => body["expires_in"] = expires_at.to_string().into(),
            ExpiresIn::Seconds => body["expires_in"] = s.lifetime_secs.into(),
            ExpiresIn::Absent => {}
        }
        Response::json(200, &body)
    }

    /// The `jData` and Bearer token of a call on a live session, or Noren's refusal.
    fn session(&self, req: &Request) -> Result<(Value, String), Response> {
        let data = jdata(req)?;
        let Some(token) = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) else {
            return Err(not_ok(200, "Invalid Input : Authorization is Missing"));
        };
        let s = self.state();
        if s.live.get(token).is_none_or(|t| t.expires_at <= crate::now()) {
            return Err(not_ok(200, SESSION_EXPIRED));
        }
        if data["uid"].as_str() != Some(s.user.as_str()) {
            return Err(not_ok(200, "Invalid Input : Invalid uid"));
        }
        Ok((data, token.to_string()))
    }

    fn user_details(&self, req: &Request) -> Response {
        if let Err(refused) = self.session(req) {
            return refused;
        }
        let s = self.state();
        Response::json(
            200,
            &json!({
                "request_time": request_time(), "actid": s.user, "uname": "A TRADER", "uprev": "INVESTOR",
                "email": "trader@example.in", "brkname": "FINVASIA", "m_num": "98XXXXXX10",
                "exarr": ["NSE", "BSE", "NFO"], "prarr": [{"prd": "C", "s_prdt_ali": "CNC"}], "stat": "Ok",
            }),
        )
    }

    fn logout(&self, req: &Request) -> Response {
        let (data, token) = match self.session(req) {
            Ok(session) => session,
            Err(refused) => return refused,
        };
        if data["ordersource"] != "API" {
            return not_ok(200, "Invalid Input : Invalid ordersource");
        }
        let mut s = self.state();
        s.live.remove(&token);
        s.logouts += 1;
        Response::json(200, &json!({"request_time": request_time(), "stat": "Ok"}))
    }
}
