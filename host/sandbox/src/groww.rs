//! A strict Groww Trade API on 127.0.0.1, following ../shared/BROKERS-MORE.md section 10: the
//! TOTP flow `POST /v1/token/api/access` (`Authorization: Bearer <TOTP API key>`,
//! `Content-Type: application/json`, `X-API-VERSION: 1.0`, body exactly
//! `{"key_type":"totp","totp":"<6 digits>"}`) answering `{"token","expiry"}`, every token dying
//! at 06:00 IST, `GET /v1/user/detail` (Bearer token, `Accept: application/json`,
//! `X-API-VERSION: 1.0`) answering `{"status":"SUCCESS","payload":{...}}`, and errors as
//! `{"status":"FAILURE","error":{"code":"GA0xx","message"}}`, or with [`State::header_envelope`]
//! as `{"header","response","error"}` without `status` (as a live token call was seen to answer;
//! a success then comes wrapped in `response`, this mock's guess).
//!
//! Mock's choices, where the docs say nothing: a wrong TOTP is HTTP 400 GA001 "Invalid TOTP"; a
//! missing or unknown key is HTTP 401 GA005 "User not authorised to perform this operation", as
//! is a dead token at `user/detail`; a missing header, a wrong `key_type` or body field is HTTP
//! 400 GA001; a wrong method is HTTP 405 GA001 and an unknown path HTTP 404 GA004; the rate
//! limit is HTTP 429 GA003 and a server error HTTP 500 GA000. How `expiry` is written is not
//! documented: [`Expiry`] picks the form. A new login does not end the earlier tokens (Groww's
//! web UI lists several), and the tokens are JWTs whose `sub` is a JSON string, as Groww's keys
//! carry (its fields are this mock's).

use crate::totp::{Account, Fault};
use crate::{IST_MINUTES, Request, Response, Server, fake_jwt, nonce};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The next 06:00 IST strictly after `t` (an independent statement of Groww's rule).
pub fn next_0600_ist(t: i64) -> i64 {
    crate::next_ist(t, 6, 0)
}

/// How the login answer writes `expiry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// `2026-11-23T06:00:00` in IST, no offset.
    #[default]
    IstLocal,
    /// Epoch seconds, a number.
    EpochSecs,
    /// Epoch milliseconds, a number.
    EpochMillis,
    /// Words no program reads (`"06:00 AM tomorrow"`).
    Unreadable,
    /// No `expiry` field.
    Absent,
}

/// What the stand-in knows and has seen.
#[derive(Debug, Default)]
pub struct State {
    /// Accounts by UCC; an account's `pin` is its TOTP API key (the Bearer of the login).
    pub accounts: BTreeMap<String, Account>,
    /// Live tokens, each with its account's UCC.
    pub live: BTreeMap<String, String>,
    /// Every token issued (for leak scans).
    pub issued: Vec<String>,
    /// Login attempts (token calls that reached the key and code checks).
    pub attempts: usize,
    /// Successful logins.
    pub logins: usize,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    /// Answers to give before behaving again.
    pub faults: Vec<Fault>,
    /// Seconds the broker's clock runs ahead of the real one.
    pub clock_offset: i64,
    /// How `expiry` is written.
    pub expiry: Expiry,
    /// `expiry` this long after the login; `None`: the next 06:00 IST.
    pub lifetime: Option<i64>,
    /// Answer the token call in the `{"header","response","error"}` envelope.
    pub header_envelope: bool,
}

/// The stand-in.
#[derive(Clone, Default)]
pub struct GrowwMock(Arc<Mutex<State>>);

fn failure(status: u16, code: &str, message: &str) -> Response {
    Response::json(status, &json!({"status": "FAILURE", "error": {"code": code, "message": message}}))
}

const NOT_AUTHORISED: &str = "User not authorised to perform this operation";

impl GrowwMock {
    /// A broker with no accounts.
    pub fn new() -> GrowwMock {
        GrowwMock::default()
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the account `ucc` whose TOTP API key is `api_key`, with a fresh TOTP seed; returns
    /// the seed.
    pub fn account(&self, ucc: &str, api_key: &str) -> String {
        let account = Account::new(api_key);
        let seed = account.seed.clone();
        self.state().accounts.insert(ucc.into(), account);
        seed
    }

    /// 06:00 IST came: every token dies.
    pub fn expire_all(&self) {
        self.state().live.clear();
    }

    /// Serves it on a free loopback port.
    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.handle(req)).expect("mock Groww server")
    }

    fn handle(&self, req: &Request) -> Response {
        let fault = {
            let s = &mut *self.state();
            crate::note_and_take(&mut s.seen, &mut s.faults, req)
        };
        crate::totp::answer(
            fault,
            || failure(500, "GA000", "Internal error occurred"),
            || failure(429, "GA003", "Too many requests: rate limit exceeded (mock's message)"),
            || self.route(req),
        )
    }

    fn route(&self, req: &Request) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/v1/token/api/access") => {
                let envelope = self.state().header_envelope;
                let answer = self.login(req);
                if envelope { rewrap(answer) } else { answer }
            }
            ("GET", "/v1/user/detail") => self.user_detail(req),
            (_, "/v1/token/api/access" | "/v1/user/detail") => {
                failure(405, "GA001", "Method not allowed (mock's code)")
            }
            _ => failure(404, "GA004", "Not found"),
        }
    }

    fn login(&self, req: &Request) -> Response {
        if req.header("x-api-version") != Some("1.0") {
            return failure(400, "GA001", "Bad request: X-API-VERSION 1.0 is required");
        }
        if !req.header("content-type").is_some_and(|c| c.starts_with("application/json")) {
            return failure(400, "GA001", "Bad request: Content-Type must be application/json");
        }
        let bearer = req.header("authorization").and_then(|a| a.strip_prefix("Bearer "));
        let Some(key) = bearer.filter(|k| !k.is_empty()) else {
            return failure(401, "GA005", NOT_AUTHORISED);
        };
        let Some(Value::Object(body)) = req.json() else {
            return failure(400, "GA001", "Bad request: the body must be a JSON object");
        };
        if body.keys().any(|k| k != "key_type" && k != "totp") {
            return failure(400, "GA001", "Bad request: unexpected field");
        }
        if body.get("key_type") != Some(&json!("totp")) {
            return failure(400, "GA001", "Bad request: key_type must be totp for this key");
        }
        let Some(Value::String(totp)) = body.get("totp") else {
            return failure(400, "GA001", "Bad request: totp must be a string");
        };
        if totp.len() != 6 || !totp.bytes().all(|b| b.is_ascii_digit()) {
            return failure(400, "GA001", "Bad request: totp must be 6 digits");
        }
        let mut s = self.state();
        s.attempts += 1;
        let now = crate::now() + s.clock_offset;
        let Some((ucc, account)) = s.accounts.iter().find(|(_, a)| a.pin == key) else {
            return failure(401, "GA005", NOT_AUTHORISED);
        };
        if !account.accepts(totp, now) {
            return failure(400, "GA001", "Invalid TOTP");
        }
        let ucc = ucc.clone();
        let issued = crate::now();
        let sub = json!({"tokenRefId": nonce(), "userAccountId": format!("acct-{ucc}"), "role": "auth-totp"});
        let token = fake_jwt(&json!({
            "iss": "groww-sandbox", "sub": sub.to_string(), "iat": issued, "exp": issued + 86_400, "n": nonce(),
        }));
        s.live.insert(token.clone(), ucc);
        s.issued.push(token.clone());
        s.logins += 1;
        let at = s.lifetime.map_or_else(|| next_0600_ist(issued), |l| issued + l);
        let expiry = match s.expiry {
            Expiry::IstLocal => json!(crate::local_datetime(at, IST_MINUTES)),
            Expiry::EpochSecs => json!(at),
            Expiry::EpochMillis => json!(at * 1000),
            Expiry::Unreadable => json!("06:00 AM tomorrow"),
            Expiry::Absent => Value::Null,
        };
        let mut answer =
            json!({"token": token, "tokenRefId": nonce(), "sessionName": "tokenhost", "isActive": true});
        if !expiry.is_null() {
            answer["expiry"] = expiry;
        }
        Response::json(200, &answer)
    }

    fn user_detail(&self, req: &Request) -> Response {
        if req.header("x-api-version") != Some("1.0") {
            return failure(400, "GA001", "Bad request: X-API-VERSION 1.0 is required");
        }
        if req.header("accept") != Some("application/json") {
            return failure(400, "GA001", "Bad request: Accept must be application/json");
        }
        let s = self.state();
        let token = req.header("authorization").and_then(|a| a.strip_prefix("Bearer ")).unwrap_or_default();
        match s.live.get(token) {
            Some(ucc) => Response::json(
                200,
                &json!({"status": "SUCCESS", "payload": {
                    "vendor_user_id": format!("vendor-{ucc}"), "ucc": ucc, "nse_enabled": true,
                    "bse_enabled": true, "ddpi_enabled": false, "active_segments": ["CASH", "FNO"],
                }}),
            ),
            None => failure(401, "GA005", NOT_AUTHORISED),
        }
    }
}

/// The same answer in the `{"header","response","error"}` envelope, without `status`.
fn rewrap(answer: Response) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&answer.body) else { return answer };
    let header = json!({"requestId": nonce()});
    let wrapped = if body["status"] == "FAILURE" {
        json!({"header": header, "response": null, "error": body["error"]})
    } else {
        json!({"header": header, "response": body, "error": null})
    };
    let mut out = Response::json(answer.status, &wrapped);
    out.delay = answer.delay;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            query: Vec::new(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn error_code(r: &Response) -> (u16, String) {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        (r.status, v["error"]["code"].as_str().unwrap_or_default().to_string())
    }

    #[test]
    fn refuses_every_deviation_in_its_envelope_before_the_checks() {
        let mock = GrowwMock::new();
        let seed = mock.account("UCC1", "KEY1");
        let code = crate::totp::code(&seed, crate::now());
        let good = [
            ("authorization", "Bearer KEY1"),
            ("content-type", "application/json"),
            ("x-api-version", "1.0"),
        ];
        let body = format!(r#"{{"key_type":"totp","totp":"{code}"}}"#);
        let cases: Vec<(Request, u16, &str)> = vec![
            (request("POST", "/v1/token/api/access", &good[..2], &body), 400, "GA001"),
            (request("POST", "/v1/token/api/access", &[good[0], good[2]], &body), 400, "GA001"),
            (request("POST", "/v1/token/api/access", &good[1..], &body), 401, "GA005"),
            (
                request(
                    "POST",
                    "/v1/token/api/access",
                    &[("authorization", "Token KEY1"), good[1], good[2]],
                    &body,
                ),
                401,
                "GA005",
            ),
            (
                request("POST", "/v1/token/api/access", &good, &body.replace("\"totp\",", "\"approval\",")),
                400,
                "GA001",
            ),
            (
                request(
                    "POST",
                    "/v1/token/api/access",
                    &good,
                    &format!(r#"{{"key":"KEY1","key_type":"totp","question_id":"TOTP","answer":"{code}"}}"#),
                ),
                400,
                "GA001",
            ),
            (
                request(
                    "POST",
                    "/v1/token/api/access",
                    &good,
                    &format!(r#"{{"key_type":"totp","totp":{code}}}"#),
                ),
                400,
                "GA001",
            ),
            (request("GET", "/v1/token/api/access", &good, ""), 405, "GA001"),
            (request("POST", "/v1/token/api/accesss", &good, &body), 404, "GA004"),
        ];
        for (req, status, code) in cases {
            assert_eq!(error_code(&mock.route(&req)), (status, code.to_string()), "{req:?}");
        }
        assert_eq!(mock.state().attempts, 0, "none reached the key and code checks");
        // The request as the provider sends it logs in, and its token passes `user/detail`.
        let fresh = format!(r#"{{"key_type":"totp","totp":"{}"}}"#, crate::totp::code(&seed, crate::now()));
        let ok = mock.route(&request("POST", "/v1/token/api/access", &good, &fresh));
        assert_eq!(ok.status, 200);
        let token = serde_json::from_slice::<Value>(&ok.body).unwrap()["token"].as_str().unwrap().to_string();
        let auth = format!("Bearer {token}");
        let detail =
            [("authorization", auth.as_str()), ("accept", "application/json"), ("x-api-version", "1.0")];
        assert_eq!(mock.route(&request("GET", "/v1/user/detail", &detail, "")).status, 200);
        assert_eq!(error_code(&mock.route(&request("GET", "/v1/user/detail", &detail[..2], ""))).1, "GA001");
        mock.expire_all();
        assert_eq!(
            error_code(&mock.route(&request("GET", "/v1/user/detail", &detail, ""))),
            (401, "GA005".into())
        );
    }

    #[test]
    fn the_0600_ist_rule() {
        // 2026-01-01 00:00 UTC is 05:30 IST: 06:00 IST is half an hour later.
        assert_eq!(next_0600_ist(1_767_225_600), 1_767_225_600 + 1800);
        // At 06:00 IST exactly, the next one is a day later.
        assert_eq!(next_0600_ist(1_767_225_600 + 1800), 1_767_225_600 + 1800 + 86_400);
    }
}
