//! A strict Dhan (DhanHQ v2) on 127.0.0.1, following ../shared/BROKERS-MORE.md section 4:
//! `POST /app/generateAccessToken` with `dhanClientId`, `pin` and `totp` as query parameters (a
//! body is refused), `expiryTime` in IST without an offset, one active token per client (a new
//! login ends the old one), `GET /v2/profile` with the `access-token` header, and errors as
//! `{"errorType","errorCode","errorMessage"}`. Which code a wrong TOTP or PIN gets is not
//! documented: this stand-in answers DH-901 with a message naming the TOTP or the PIN. HTTP
//! statuses of the errors and the not-found/wrong-method answers are this mock's own choice.

use crate::totp::{Account, Fault};
use crate::{Request, Response, Server, fake_jwt, nonce};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the stand-in knows and has seen.
#[derive(Debug, Default)]
pub struct State {
    /// Accounts by client id.
    pub accounts: BTreeMap<String, Account>,
    /// The live token of each client id.
    pub live: BTreeMap<String, String>,
    /// Every token issued (for leak scans).
    pub issued: Vec<String>,
    /// Login attempts (`generateAccessToken` calls that reached the checks).
    pub attempts: usize,
    /// Successful logins.
    pub logins: usize,
    /// `METHOD /path` of every request.
    pub seen: Vec<String>,
    /// Answers to give before behaving again.
    pub faults: Vec<Fault>,
    /// Seconds the broker's clock runs ahead of the real one.
    pub clock_offset: i64,
}

/// The stand-in.
#[derive(Clone, Default)]
pub struct DhanMock(Arc<Mutex<State>>);

fn error(status: u16, kind: &str, code: &str, message: &str) -> Response {
    Response::json(status, &json!({"errorType": kind, "errorCode": code, "errorMessage": message}))
}

impl DhanMock {
    /// A broker with no accounts.
    pub fn new() -> DhanMock {
        DhanMock::default()
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds client `id` with `pin` and a fresh TOTP seed; returns the seed.
    pub fn account(&self, id: &str, pin: &str) -> String {
        let account = Account::new(pin);
        let seed = account.seed.clone();
        self.state().accounts.insert(id.into(), account);
        seed
    }

    /// Serves it on a free loopback port.
    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.handle(req)).expect("mock Dhan server")
    }

    fn handle(&self, req: &Request) -> Response {
        let fault = {
            let s = &mut *self.state();
            crate::note_and_take(&mut s.seen, &mut s.faults, req)
        };
        crate::totp::answer(
            fault,
            || error(500, "Internal_Server_Error", "DH-908", "Internal server error"),
            || error(429, "Rate_Limit", "DH-904", "Too many requests, please retry later"),
            || self.route(req),
        )
    }

    fn route(&self, req: &Request) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/app/generateAccessToken") => self.login(req),
            ("GET", "/v2/profile") => self.profile(req),
            (_, "/app/generateAccessToken" | "/v2/profile") => {
                error(405, "Input_Exception", "DH-905", "Method not allowed (mock's code)")
            }
            _ => error(404, "Resource_Not_Found", "DH-905", "Resource not found (mock's code)"),
        }
    }

    fn login(&self, req: &Request) -> Response {
        if !req.body.is_empty() {
            return error(
                400,
                "Input_Exception",
                "DH-905",
                "Parameters go in the query string, not the body",
            );
        }
        let (Some(id), Some(pin), Some(totp)) =
            (req.param("dhanClientId"), req.param("pin"), req.param("totp"))
        else {
            return error(400, "Input_Exception", "DH-905", "dhanClientId, pin and totp are required");
        };
        let mut s = self.state();
        s.attempts += 1;
        let now = crate::now() + s.clock_offset;
        let Some(account) = s.accounts.get(id).cloned() else {
            return error(401, "Invalid_Authentication", "DH-901", "Invalid dhanClientId");
        };
        if account.pin != pin {
            return error(401, "Invalid_Authentication", "DH-901", "Invalid PIN");
        }
        if !account.accepts(totp, now) {
            return error(401, "Invalid_Authentication", "DH-901", "Invalid TOTP");
        }
        let issued = crate::now();
        let token = fake_jwt(
            &json!({"iss": "dhan", "partnerId": "", "exp": issued + 86_400, "tokenConsumerType": "SELF", "dhanClientId": id, "n": nonce()}),
        );
        s.live.insert(id.into(), token.clone());
        s.issued.push(token.clone());
        s.logins += 1;
        Response::json(
            200,
            &json!({
                "dhanClientId": id, "dhanClientName": "A TRADER", "dhanClientUcc": format!("UCC{id}"),
                "givenPowerOfAttorney": false, "accessToken": token,
                "expiryTime": crate::local_datetime(issued + 86_400, crate::IST_MINUTES),
            }),
        )
    }

    fn profile(&self, req: &Request) -> Response {
        let s = self.state();
        let token = req.header("access-token").unwrap_or_default();
        match s.live.iter().find(|(_, t)| t.as_str() == token) {
            Some((id, _)) => Response::json(
                200,
                &json!({"dhanClientId": id, "tokenValidity": "30/03/2026 15:37", "activeSegment": "Equity, Derivative",
                    "ddpi": "Active", "mtf": "Active", "dataPlan": "Active", "dataValidity": "2026-12-31 23:59:59.0"}),
            ),
            None => error(
                401,
                "Invalid_Authentication",
                "DH-901",
                "Client ID or user generated access token is invalid or expired.",
            ),
        }
    }
}
