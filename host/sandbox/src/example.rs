//! The broker the bundled example provider talks to: `POST /v1/session` with JSON
//! `{"key","secret"}` logs in, `GET /v1/me` checks a token, `DELETE /v1/session` logs out.

use crate::{Request, Response, Server, fake_jwt, nonce};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The sandbox broker that the bundled example provider talks to: `POST /v1/session` with
/// JSON `{"key","secret"}` logs in, `GET /v1/me` checks a token, `DELETE /v1/session` logs out.
/// Faults can be injected for the next answers.
#[derive(Clone)]
pub struct ExampleBroker {
    inner: Arc<Mutex<BrokerState>>,
    in_flight: Arc<AtomicUsize>,
}

/// What the sandbox broker knows and has seen.
#[derive(Debug, Default)]
pub struct BrokerState {
    /// Accepted key.
    pub key: String,
    /// Accepted secret.
    pub secret: String,
    /// Token lifetime, seconds.
    pub ttl: i64,
    /// Tokens issued and not revoked.
    pub live: Vec<String>,
    /// Logins answered with a token.
    pub logins: usize,
    /// Every request seen, as `METHOD /path`.
    pub seen: Vec<String>,
    /// Answers to give before behaving normally again.
    pub faults: Vec<Fault>,
    /// Most logins handled at the same time.
    pub max_in_flight: usize,
    /// How long each login takes.
    pub login_delay: Duration,
}

/// An injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503.
    Unavailable,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// Answer after this many seconds.
    Slow(u64),
    /// Close the connection.
    HangUp,
    /// HTTP 200 with a huge body.
    Huge,
}

impl ExampleBroker {
    /// A broker accepting `key`/`secret`, issuing tokens that live `ttl` seconds.
    pub fn new(key: &str, secret: &str, ttl: i64) -> ExampleBroker {
        ExampleBroker {
            inner: Arc::new(Mutex::new(BrokerState {
                key: key.into(),
                secret: secret.into(),
                ttl,
                ..Default::default()
            })),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Its state, to inspect or change.
    pub fn state(&self) -> std::sync::MutexGuard<'_, BrokerState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves it on a free loopback port.
    pub fn serve(&self) -> std::io::Result<Server> {
        let me = self.clone();
        Server::start(move |req| me.handle(req))
    }

    /// Answers one request.
    pub fn handle(&self, req: &Request) -> Response {
        let fault = {
            let s = &mut *self.state();
            crate::note_and_take(&mut s.seen, &mut s.faults, req)
        };
        match fault {
            Some(Fault::Unavailable) => return error(503, "service unavailable"),
            Some(Fault::Garbage) => {
                return Response::raw(200, "text/html", "<html>maintenance</html>");
            }
            Some(Fault::Slow(secs)) => return error(503, "slow").after(Duration::from_secs(secs)),
            Some(Fault::HangUp) => return Response::hang_up(),
            Some(Fault::Huge) => {
                return Response::raw(200, "application/json", vec![b' '; 4 << 20]);
            }
            None => {}
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/v1/session") => self.login(req),
            ("GET", "/v1/me") => match self.bearer(req) {
                Some(_) => Response::json(200, &serde_json::json!({"status": "ok"})),
                None => error(401, "invalid token"),
            },
            ("DELETE", "/v1/session") => match self.bearer(req) {
                Some(t) => {
                    self.state().live.retain(|l| *l != t);
                    Response::json(200, &serde_json::json!({"status": "ok"}))
                }
                None => error(401, "invalid token"),
            },
            (_, "/v1/session" | "/v1/me") => error(405, "method not allowed"),
            _ => error(404, "no such endpoint"),
        }
    }

    fn login(&self, req: &Request) -> Response {
        if req.header("content-type").map(|c| c.split(';').next().unwrap_or("").trim())
            != Some("application/json")
        {
            return error(415, "content type must be application/json");
        }
        let Some(body) = req.json() else {
            return error(400, "body is not JSON");
        };
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let delay = {
            let mut s = self.state();
            s.max_in_flight = s.max_in_flight.max(now_in_flight);
            s.login_delay
        };
        std::thread::sleep(delay);
        let answer = {
            let mut s = self.state();
            if body["key"] != s.key.as_str() || body["secret"] != s.secret.as_str() {
                error(401, "invalid credentials")
            } else {
                let now = crate::now();
                let token = fake_jwt(
                    &serde_json::json!({"sub": "DEMO01", "iat": now, "exp": now + s.ttl, "jti": nonce()}),
                );
                s.live.push(token.clone());
                s.logins += 1;
                Response::json(
                    200,
                    &serde_json::json!({"status": "ok", "token": token, "feed_token": nonce()}),
                )
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    fn bearer(&self, req: &Request) -> Option<String> {
        let t = req.header("authorization")?.strip_prefix("Bearer ")?.to_string();
        self.state().live.contains(&t).then_some(t)
    }
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, &serde_json::json!({"status": "error", "message": message}))
}
