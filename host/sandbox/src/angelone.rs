//! A strict Angel One SmartAPI on 127.0.0.1, following ../shared/BROKERS-MORE.md section 2 and
//! its addenda: `POST /rest/auth/angelbroking/user/v1/loginByPassword` with
//! `{"clientcode","password","totp"}` (strings), `POST /rest/auth/angelbroking/jwt/v1/generateTokens`
//! with `{"refreshToken"}` and the Bearer JWT, `GET /rest/secure/angelbroking/user/v1/getProfile`
//! and `POST /rest/secure/angelbroking/user/v1/logout` with `{"clientcode"}`. Every call must
//! carry `Accept: application/json`, `X-UserType: USER`, `X-SourceID: WEB`, `X-ClientLocalIP`,
//! `X-ClientPublicIP`, `X-MACAddress` and `X-PrivateKey` (the client's API key), and a POST
//! `Content-Type: application/json`.
//!
//! Errors come in Angel's two envelopes: the auth service's
//! `{"status":false,"message","errorcode","data":null}`, always under HTTP 200 as Angel answers
//! most errors, and the gateway's `{"success":false,"message","errorCode","data":""}`. Angel's own
//! codes: AB1007 "Login Id or password is invalid" (a wrong PIN; also an unknown client code,
//! mock's choice), AB1050 "Invalid totp", AB1053 "Invalid apiKey" (documented for
//! generateTokens; given for a wrong `X-PrivateKey` on every call, mock's choice), AB1004
//! "Something Went Wrong, Please Try After Sometime" (the 5xx fault, and `try_later` under HTTP
//! 200), AG8001 "Invalid Token". The rate limit is HTTP 403 `text/plain` "Access denied because
//! of exceeding access rate". This mock's own: AB4000 for a body of the wrong shape, AG4000 for a
//! missing or wrong header, AG4004 and AG4005 for an unknown path or method (mock's codes);
//! AB8050 "Invalid Refresh Token" for a refused renewal and AG8003 for a call without a Bearer
//! token (codes seen in clients, meanings unconfirmed); HTTP 401 for AG8001/AG8003, 400 for
//! AG4000, 404, 405, and 500 for the 5xx fault (mock's choice). One session per client code: a new login or a renewal ends the previous
//! JWT and refresh token (mock's choice). JWTs live `jwt_life` seconds (28 h by default, the
//! long end of Angel's "24-28 hours").

use crate::totp::{Account, Fault};
use crate::{Request, Response, Server, fake_jwt, nonce};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The login path.
pub const LOGIN: &str = "/rest/auth/angelbroking/user/v1/loginByPassword";
/// The renewal path.
pub const RENEW: &str = "/rest/auth/angelbroking/jwt/v1/generateTokens";
/// The profile path.
pub const PROFILE: &str = "/rest/secure/angelbroking/user/v1/getProfile";
/// The logout path.
pub const LOGOUT: &str = "/rest/secure/angelbroking/user/v1/logout";

/// What a client's last login or renewal issued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The JWT (`jwtToken`).
    pub jwt: String,
    /// `refreshToken`.
    pub refresh: String,
    /// `feedToken`.
    pub feed: String,
}

/// What the stand-in knows and has seen.
#[derive(Debug, Default)]
pub struct State {
    /// Accounts by client code.
    pub accounts: BTreeMap<String, Account>,
    /// The SmartAPI app key (`X-PrivateKey`) of each client code.
    pub api_keys: BTreeMap<String, String>,
    /// The live session of each client code.
    pub live: BTreeMap<String, Session>,
    /// Every token issued: JWTs, refresh and feed tokens (for leak scans).
    pub issued: Vec<String>,
    /// Login attempts (`loginByPassword` calls that reached the checks).
    pub attempts: usize,
    /// Successful logins.
    pub logins: usize,
    /// `generateTokens` calls that reached the checks.
    pub renew_attempts: usize,
    /// Successful renewals.
    pub renewals: usize,
    /// Successful logouts.
    pub logouts: usize,
    /// The `X-ClientPublicIP` of every login attempt.
    pub public_ips: Vec<String>,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    /// Answers to give before behaving again.
    pub faults: Vec<Fault>,
    /// Seconds the broker's clock runs ahead of the real one.
    pub clock_offset: i64,
    /// How long the JWTs it issues live, seconds.
    pub jwt_life: i64,
    /// `generateTokens` refuses every refresh token (as when one has expired).
    pub refresh_refused: bool,
    /// The next this many logins answer AB1004 under HTTP 200.
    pub try_later: usize,
}

/// The stand-in.
#[derive(Clone)]
pub struct AngelOneMock(Arc<Mutex<State>>);

impl Default for AngelOneMock {
    fn default() -> AngelOneMock {
        AngelOneMock(Arc::new(Mutex::new(State { jwt_life: 28 * 3600, ..State::default() })))
    }
}

/// The auth service's envelope, under HTTP 200.
fn auth_error(code: &str, message: &str) -> Response {
    Response::json(200, &json!({"status": false, "message": message, "errorcode": code, "data": null}))
}

/// The gateway's envelope.
fn gateway_error(status: u16, code: &str, message: &str) -> Response {
    Response::json(status, &json!({"success": false, "message": message, "errorCode": code, "data": ""}))
}

fn success(data: Value) -> Response {
    Response::json(200, &json!({"status": true, "message": "SUCCESS", "errorcode": "", "data": data}))
}

/// The headers every call needs, with the value required (`None`: any non-empty one).
const HEADERS: [(&str, Option<&str>); 7] = [
    ("accept", Some("application/json")),
    ("x-usertype", Some("USER")),
    ("x-sourceid", Some("WEB")),
    ("x-clientlocalip", None),
    ("x-clientpublicip", None),
    ("x-macaddress", None),
    ("x-privatekey", None),
];

/// The refusal of a call without SmartAPI's headers, if it lacks one.
fn refuse_headers(req: &Request) -> Option<Response> {
    let post = req.method == "POST";
    let content_type = req.header("content-type").and_then(|v| v.split(';').next()).map(str::trim);
    if post && content_type != Some("application/json") {
        return Some(gateway_error(400, "AG4000", "Content-Type must be application/json"));
    }
    HEADERS.iter().find_map(|(name, want)| {
        let value = req.header(name).map(str::trim).filter(|v| !v.is_empty());
        let ok = match want {
            Some(want) => value == Some(*want),
            None => value.is_some(),
        };
        (!ok).then(|| gateway_error(400, "AG4000", &format!("Missing or invalid header {name}")))
    })
}

impl AngelOneMock {
    /// A broker with no accounts.
    pub fn new() -> AngelOneMock {
        AngelOneMock::default()
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds client `code` with `pin`, the app key `api_key` and a fresh TOTP seed; returns the
    /// seed.
    pub fn account(&self, code: &str, pin: &str, api_key: &str) -> String {
        let account = Account::new(pin);
        let seed = account.seed.clone();
        let mut s = self.state();
        s.accounts.insert(code.into(), account);
        s.api_keys.insert(code.into(), api_key.into());
        seed
    }

    /// Serves it on a free loopback port.
    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.handle(req)).expect("mock Angel One server")
    }

    fn handle(&self, req: &Request) -> Response {
        let fault = {
            let s = &mut *self.state();
            crate::note_and_take(&mut s.seen, &mut s.faults, req)
        };
        crate::totp::answer(
            fault,
            || {
                let body = json!({"status": false, "message": "Something Went Wrong, Please Try After Sometime",
                    "errorcode": "AB1004", "data": null});
                Response::json(500, &body)
            },
            || Response::raw(403, "text/plain", "Access denied because of exceeding access rate"),
            || self.route(req),
        )
    }

    fn route(&self, req: &Request) -> Response {
        let known = [LOGIN, RENEW, PROFILE, LOGOUT].contains(&req.path.as_str());
        let get = req.path == PROFILE;
        if !known {
            return gateway_error(404, "AG4004", "Resource not found");
        }
        if req.method != if get { "GET" } else { "POST" } {
            return gateway_error(405, "AG4005", "Method not allowed");
        }
        if let Some(refusal) = refuse_headers(req) {
            return refusal;
        }
        match req.path.as_str() {
            LOGIN => self.login(req),
            RENEW => self.renew(req),
            PROFILE => self.profile(req),
            _ => self.logout(req),
        }
    }

    fn login(&self, req: &Request) -> Response {
        let body = req.json().unwrap_or_default();
        let field = |name: &str| body.get(name).and_then(Value::as_str);
        let (Some(id), Some(pin), Some(totp)) = (field("clientcode"), field("password"), field("totp"))
        else {
            return auth_error("AB4000", "clientcode, password and totp are required, as strings");
        };
        let mut s = self.state();
        if s.try_later > 0 {
            s.try_later -= 1;
            return auth_error("AB1004", "Something Went Wrong, Please Try After Sometime");
        }
        s.attempts += 1;
        s.public_ips.push(req.header("x-clientpublicip").unwrap_or_default().to_string());
        let now = crate::now() + s.clock_offset;
        let Some(account) = s.accounts.get(id).cloned() else {
            return auth_error("AB1007", "Login Id or password is invalid");
        };
        if s.api_keys.get(id).map(String::as_str) != req.header("x-privatekey") {
            return auth_error("AB1053", "Invalid apiKey");
        }
        if account.pin != pin {
            return auth_error("AB1007", "Login Id or password is invalid");
        }
        if !account.accepts(totp, now) {
            return auth_error("AB1050", "Invalid totp");
        }
        let session = issue(&mut s, id);
        s.logins += 1;
        success(json!({"jwtToken": session.jwt, "refreshToken": session.refresh, "feedToken": session.feed}))
    }

    fn renew(&self, req: &Request) -> Response {
        let body = req.json().unwrap_or_default();
        let Some(refresh) = body.get("refreshToken").and_then(Value::as_str) else {
            return auth_error("AB4000", "refreshToken is required, as a string");
        };
        let mut s = self.state();
        s.renew_attempts += 1;
        let id = match session_of(&s, req) {
            Ok(id) => id,
            Err(refusal) => return refusal,
        };
        if s.refresh_refused || s.live.get(&id).is_none_or(|x| x.refresh != refresh) {
            return auth_error("AB8050", "Invalid Refresh Token");
        }
        let session = issue(&mut s, &id);
        s.renewals += 1;
        success(json!({"jwtToken": session.jwt, "refreshToken": session.refresh, "feedToken": session.feed}))
    }

    fn profile(&self, req: &Request) -> Response {
        let s = self.state();
        match session_of(&s, req) {
            Ok(id) => success(json!({
                "clientcode": id, "name": "A TRADER", "email": "", "mobileno": "",
                "exchanges": ["NSE", "BSE", "NFO"], "products": ["MARGIN", "MIS", "NRML", "CNC"],
                "lastlogintime": "", "broker": "",
            })),
            Err(refusal) => refusal,
        }
    }

    fn logout(&self, req: &Request) -> Response {
        let body = req.json().unwrap_or_default();
        let Some(code) = body.get("clientcode").and_then(Value::as_str) else {
            return auth_error("AB4000", "clientcode is required, as a string");
        };
        let mut s = self.state();
        let id = match session_of(&s, req) {
            Ok(id) => id,
            Err(refusal) => return refusal,
        };
        if code != id {
            return auth_error("AB4000", "clientcode does not match the token");
        }
        s.live.remove(&id);
        s.logouts += 1;
        Response::json(200, &json!({"status": true, "message": "SUCCESS", "errorcode": "", "data": ""}))
    }
}

/// The client code whose live JWT is the request's Bearer token, sent with that client's key.
fn session_of(s: &State, req: &Request) -> Result<String, Response> {
    let Some(jwt) = req.header("authorization").and_then(|v| v.strip_prefix("Bearer ")) else {
        return Err(gateway_error(401, "AG8003", "Token missing"));
    };
    let Some((id, _)) = s.live.iter().find(|(_, x)| x.jwt == jwt) else {
        return Err(gateway_error(401, "AG8001", "Invalid Token"));
    };
    if s.api_keys.get(id).map(String::as_str) != req.header("x-privatekey") {
        return Err(auth_error("AB1053", "Invalid apiKey"));
    }
    Ok(id.clone())
}

/// A new session for client `id`, ending its previous one.
fn issue(s: &mut State, id: &str) -> Session {
    let iat = crate::now();
    let exp = iat + s.jwt_life;
    let session = Session {
        jwt: fake_jwt(
            &json!({"username": id, "roles": 0, "userType": "USER", "source": "SPA", "iat": iat, "exp": exp, "n": nonce()}),
        ),
        refresh: fake_jwt(&json!({"token": "REFRESH-TOKEN", "iat": iat, "n": nonce()})),
        feed: fake_jwt(&json!({"username": id, "iat": iat, "exp": exp, "n": nonce()})),
    };
    s.issued.extend([session.jwt.clone(), session.refresh.clone(), session.feed.clone()]);
    s.live.insert(id.into(), session.clone());
    session
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(seed: &str, key: &str) -> Request {
        let body =
            json!({"clientcode": "A1", "password": "Pin-1", "totp": crate::totp::code(seed, crate::now())});
        let headers = [
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("x-usertype", "USER"),
            ("x-sourceid", "WEB"),
            ("x-clientlocalip", "127.0.0.1"),
            ("x-clientpublicip", "203.0.113.7"),
            ("x-macaddress", "00:00:00:00:00:00"),
            ("x-privatekey", key),
        ];
        Request {
            method: "POST".into(),
            path: LOGIN.into(),
            query: vec![],
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.to_string().into_bytes(),
        }
    }

    fn answer(r: &Response) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn a_login_without_any_one_of_smartapis_headers_is_refused_in_angels_envelope() {
        let mock = AngelOneMock::new();
        let seed = mock.account("A1", "Pin-1", "key-1");
        let full = login(&seed, "key-1");
        for (name, _) in &full.headers {
            let mut partial = full.clone();
            partial.headers.retain(|(k, _)| k != name);
            let a = answer(&mock.route(&partial));
            assert_eq!(
                (a["success"].clone(), a["errorCode"].clone()),
                (json!(false), json!("AG4000")),
                "{name}"
            );
        }
        let mut wrong = full.clone();
        wrong.headers.retain(|(k, _)| k != "x-usertype");
        wrong.headers.push(("x-usertype".into(), "ADMIN".into()));
        assert_eq!(answer(&mock.route(&wrong))["errorCode"], "AG4000");
        assert_eq!(mock.state().attempts, 0);

        assert_eq!(answer(&mock.route(&login(&seed, "key-2")))["errorcode"], "AB1053");
        // A code sent as a number is not Angel's shape.
        let mut number = full.clone();
        number.body = br#"{"clientcode":"A1","password":"Pin-1","totp":123456}"#.to_vec();
        assert_eq!(answer(&mock.route(&number))["errorcode"], "AB4000");
        let ok = answer(&mock.route(&full));
        assert_eq!(ok["status"], true, "{ok}");
        let s = mock.state();
        assert_eq!(
            (s.attempts, s.logins, s.public_ips.last().map(String::as_str)),
            (2, 1, Some("203.0.113.7"))
        );
    }
}
