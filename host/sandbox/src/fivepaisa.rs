//! A strict 5paisa (Xstream OpenAPI) on 127.0.0.1, following ../shared/BROKERS-MORE.md section 8:
//! `POST /VendorsAPI/Service1.svc/TOTPLogin` with `{"head":{"Key"},"body":{"Email_ID","TOTP",
//! "PIN"}}` (the TOTP a JSON string) gives a `RequestToken` (60 minutes, one use);
//! `POST .../GetAccessToken` with `{"head":{"Key"},"body":{"RequestToken","EncryKey","UserId"}}`
//! turns it into an `AccessToken` JWT; `POST .../V4/Margin` with `Authorization: bearer <token>`
//! and `{"head":{"key"},"body":{"ClientCode"}}` answers a live token with an `EquityMargin`
//! array. Every request needs `Content-Type: application/json`. Answers are `{"head","body"}`
//! with errors under HTTP 200 as `body.Status`/`body.Message`: -1 "Server unable to process
//! request", 1 "Invalid login/password" (a wrong login id or PIN).
//!
//! Not in the docs, so this mock's choice: a wrong TOTP is Status 2 "Invalid TOTP" (as a user's
//! report shows it, py5paisa issue 261); a wrong key, RequestToken, EncryKey or UserId is Status 1
//! with a message naming it; a dead token at Margin is Status 9 "Invalid Session" and a wrong
//! `head.key` is `head.status` "-2" "403 : Access denied." with `"body":null` (both from
//! third-party material); a wrong ClientCode there is Status 2. Every other `head` mirrors the
//! body's Status. A malformed request is HTTP 400 with Status 2, a wrong method 405 and an
//! unknown path 404 (mock's codes). A new login does not end earlier tokens; the `exp` of a token is `token_life` after it is issued (a day unless a
//! test says otherwise), and 5paisa kills them all at 23:59 IST (a test clears `live`). Faults:
//! HTTP 500 with Status -1, HTTP 429 with a "try after sometime" message (mock's statuses);
//! `unable` answers HTTP 200 with Status -1.

use crate::totp::{Account, Fault};
use crate::{Request, Response, Server, fake_jwt, nonce};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

const SERVICE: &str = "/VendorsAPI/Service1.svc";
/// How long a RequestToken lasts.
pub const REQUEST_TOKEN_SECS: i64 = 3600;

/// What the stand-in knows and has seen.
#[derive(Debug, Default)]
pub struct State {
    /// Accounts by client code.
    pub accounts: BTreeMap<String, Account>,
    /// Other login ids (email, mobile) and the client code each logs in to.
    pub login_ids: BTreeMap<String, String>,
    /// The API app's user key, user id and encryption key.
    pub user_key: String,
    /// See `user_key`.
    pub user_id: String,
    /// See `user_key`.
    pub encryption_key: String,
    /// RequestTokens not yet used: client code and when each was issued.
    pub request_tokens: BTreeMap<String, (String, i64)>,
    /// Live access tokens and the client code of each.
    pub live: BTreeMap<String, String>,
    /// Every token issued, request tokens too (for leak scans).
    pub issued: Vec<String>,
    /// Login attempts (`TOTPLogin` calls that reached the checks).
    pub attempts: usize,
    /// `GetAccessToken` calls that reached the checks.
    pub exchanges: usize,
    /// Successful logins (access tokens issued).
    pub logins: usize,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    /// Answers to give before behaving again.
    pub faults: Vec<Fault>,
    /// Answers to give as HTTP 200 with Status -1 before behaving again.
    pub unable: usize,
    /// Seconds the broker's clock runs ahead of the real one.
    pub clock_offset: i64,
    /// Seconds from a token's `iat` to its `exp` (a day when 0).
    pub token_life: i64,
}

/// The stand-in.
#[derive(Clone)]
pub struct FivePaisaMock(Arc<Mutex<State>>);

impl Default for FivePaisaMock {
    fn default() -> Self {
        FivePaisaMock::new()
    }
}

/// `{"head","body"}` with the body's Status and Message.
fn answer(http: u16, status: i64, message: &str, body: Value) -> Response {
    let mut body = if body.is_object() { body } else { json!({}) };
    body["Status"] = json!(status);
    body["Message"] = json!(message);
    let description = if status == 0 { "Success" } else { message };
    Response::json(
        http,
        &json!({"head": {"status": status.to_string(), "statusDescription": description}, "body": body}),
    )
}

/// A TOTPLogin refusal, shaped as the user's report shows it.
fn login_refused(status: i64, message: &str) -> Response {
    answer(
        200,
        status,
        message,
        json!({"ClientCode": null, "RedirectURL": null, "RequestToken": null, "Userkey": null}),
    )
}

fn bad_request(message: &str) -> Response {
    answer(400, 2, &format!("{message} (mock's message)"), Value::Null)
}

/// The string at `pointer` in the request's JSON.
fn field<'a>(json: &'a Value, pointer: &str) -> Option<&'a str> {
    json.pointer(pointer).and_then(Value::as_str)
}

impl FivePaisaMock {
    /// A broker with no accounts and a fresh API app.
    pub fn new() -> FivePaisaMock {
        let state = State {
            user_key: format!("K{}", nonce()),
            user_id: format!("U{}", &nonce()[..11]),
            encryption_key: format!("E{}", nonce()),
            ..State::default()
        };
        FivePaisaMock(Arc::new(Mutex::new(state)))
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds client `code` with `pin` and a fresh TOTP seed; returns the seed.
    pub fn account(&self, code: &str, pin: &str) -> String {
        let account = Account::new(pin);
        let seed = account.seed.clone();
        self.state().accounts.insert(code.into(), account);
        seed
    }

    /// Lets client `code` also log in as `login_id` (an email or a mobile number).
    pub fn login_id(&self, login_id: &str, code: &str) {
        self.state().login_ids.insert(login_id.into(), code.into());
    }

    /// Serves it on a free loopback port.
    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.handle(req)).expect("mock 5paisa server")
    }

    fn handle(&self, req: &Request) -> Response {
        let fault = {
            let s = &mut *self.state();
            if s.unable > 0 {
                s.seen.push(format!("{} {}", req.method, req.path));
                s.unable -= 1;
                return answer(200, -1, "Server unable to process request", Value::Null);
            }
            crate::note_and_take(&mut s.seen, &mut s.faults, req)
        };
        crate::totp::answer(
            fault,
            || answer(500, -1, "Server unable to process request", Value::Null),
            || answer(429, -1, "Too many requests, please try after sometime", Value::Null),
            || self.route(req),
        )
    }

    fn route(&self, req: &Request) -> Response {
        let Some(endpoint) = req.path.strip_prefix(SERVICE) else {
            return answer(404, 2, "Endpoint not found (mock's code)", Value::Null);
        };
        if !matches!(endpoint, "/TOTPLogin" | "/GetAccessToken" | "/V4/Margin") {
            return answer(404, 2, "Endpoint not found (mock's code)", Value::Null);
        }
        if req.method != "POST" {
            return answer(405, 2, "Method not allowed (mock's code)", Value::Null);
        }
        if !req.header("content-type").is_some_and(|c| c.starts_with("application/json")) {
            return bad_request("Content-Type must be application/json");
        }
        let Some(json) = req.json().filter(|j| j["head"].is_object() && j["body"].is_object()) else {
            return bad_request("the request must be JSON with a head and a body");
        };
        match endpoint {
            "/TOTPLogin" => self.totp_login(&json),
            "/GetAccessToken" => self.access_token(&json),
            _ => self.margin(req, &json),
        }
    }

    fn totp_login(&self, json: &Value) -> Response {
        if json.pointer("/body/TOTP").is_some_and(|t| !t.is_string()) {
            return bad_request("TOTP must be a JSON string");
        }
        let (Some(key), Some(login), Some(totp), Some(pin)) = (
            field(json, "/head/Key"),
            field(json, "/body/Email_ID"),
            field(json, "/body/TOTP"),
            field(json, "/body/PIN"),
        ) else {
            return bad_request("head.Key, body.Email_ID, body.TOTP and body.PIN are required");
        };
        let mut s = self.state();
        s.attempts += 1;
        let now = crate::now() + s.clock_offset;
        if key != s.user_key {
            return login_refused(1, "Invalid Userkey");
        }
        let code = s.login_ids.get(login).cloned().unwrap_or_else(|| login.to_string());
        let Some(account) = s.accounts.get(&code).cloned() else {
            return login_refused(1, "Invalid login/password");
        };
        if account.pin != pin {
            return login_refused(1, "Invalid login/password");
        }
        if !account.accepts(totp, now) {
            return login_refused(2, "Invalid TOTP");
        }
        let issued = crate::now();
        let token = fake_jwt(&json!({
            "unique_name": code, "role": "request", "nbf": issued, "exp": issued + REQUEST_TOKEN_SECS,
            "iat": issued, "n": nonce(),
        }));
        s.request_tokens.insert(token.clone(), (code.clone(), issued));
        s.issued.push(token.clone());
        let user_key = s.user_key.clone();
        answer(
            200,
            0,
            "Success",
            json!({"ClientCode": code, "RedirectURL": "", "RequestToken": token, "Userkey": user_key}),
        )
    }

    fn access_token(&self, json: &Value) -> Response {
        let (Some(key), Some(request_token), Some(encryption_key), Some(user_id)) = (
            field(json, "/head/Key"),
            field(json, "/body/RequestToken"),
            field(json, "/body/EncryKey"),
            field(json, "/body/UserId"),
        ) else {
            return bad_request("head.Key, body.RequestToken, body.EncryKey and body.UserId are required");
        };
        let refused = |message: &str| answer(200, 1, message, json!({"AccessToken": "", "ClientCode": ""}));
        let mut s = self.state();
        s.exchanges += 1;
        // One use: a RequestToken named in any exchange is spent.
        let pending = s.request_tokens.remove(request_token);
        if key != s.user_key {
            return refused("Invalid Userkey");
        }
        let Some((code, at)) = pending.filter(|(_, at)| crate::now() - at < REQUEST_TOKEN_SECS) else {
            return refused("Invalid RequestToken");
        };
        if encryption_key != s.encryption_key {
            return refused("Invalid EncryKey");
        }
        if user_id != s.user_id {
            return refused("Invalid UserId");
        }
        let issued = crate::now().max(at);
        let life = if s.token_life > 0 { s.token_life } else { 86_400 };
        let token = fake_jwt(&json!({
            "unique_name": code, "role": "client", "RedirectServer": "C", "nbf": issued,
            "exp": issued + life, "iat": issued, "n": nonce(),
        }));
        s.live.insert(token.clone(), code.clone());
        s.issued.push(token.clone());
        s.logins += 1;
        answer(200, 0, "Success", json!({"AccessToken": token, "ClientCode": code}))
    }

    fn margin(&self, req: &Request, json: &Value) -> Response {
        let s = self.state();
        if field(json, "/head/key") != Some(s.user_key.as_str()) {
            let head = json!({"responseCode": "5PMarginV4", "status": "-2", "statusDescription": "403 : Access denied."});
            return Response::json(200, &json!({"head": head, "body": null}));
        }
        let Some(client) = field(json, "/body/ClientCode") else {
            return bad_request("body.ClientCode is required");
        };
        let bearer = req.header("authorization").and_then(|h| {
            let (scheme, token) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
        });
        let Some(owner) = bearer.and_then(|t| s.live.get(t)) else {
            return answer(200, 9, "Invalid Session", json!({"ClientCode": client}));
        };
        if owner != client {
            return answer(200, 2, "Invalid ClientCode", json!({"ClientCode": client}));
        }
        let margin = json!({"AdhocMargin": 0, "NetAvailableMargin": 25_000.5, "MarginUtilized": 0, "Ledgerbalance": 25_000.5});
        answer(
            200,
            0,
            "",
            json!({
                "ClientCode": client, "EquityMargin": [margin],
                "MFMargin": [{"MFCollateralValue": 0, "MFFreeStockValue": 0, "MFHaircutValue": 0}],
                "TimeStamp": crate::local_datetime(crate::now(), crate::IST_MINUTES),
            }),
        )
    }
}
