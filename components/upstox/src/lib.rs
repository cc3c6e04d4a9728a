//! Upstox. There is no refresh token: every token dies at 03:30 IST, and a new one needs the
//! account holder, either in a browser (`login-url` + `complete-login`) or by approving a token
//! request on their phone, after which Upstox POSTs the token to the app's notifier webhook
//! (`refresh` starts the request, `accept-push` takes the delivery).
//!
//! Errors come as `{"status":"error","errors":[{"errorCode","message",...}]}`; the code decides
//! what the host should do next. `invalidValue` may echo a secret, so it is never read.

use serde_json::{Value, json};
use tokenhost_sdk::http::{self, Response, percent_encode};
use tokenhost_sdk::{
    Info, ProviderInfo, Result, Token, TokenProvider, config, config_error, interaction_required, kv,
    protocol, rejected, transient,
};

struct Upstox;

const DEFAULT_ROOT: &str = "https://api.upstox.com";
/// The kv key holding the epoch-ms expiry of the token request waiting for approval.
const PENDING: &str = "pending-request-expiry-ms";
/// How late after a request's expiry a delivery is still taken (clock skew, slow webhook).
const PUSH_GRACE_SECS: i64 = 300;

fn root() -> Result<String> {
    let root = config::or("api-root", DEFAULT_ROOT)?;
    if http::authority_of(&root).is_none() {
        return Err(config_error("api-root", "must be a URL such as https://api.upstox.com"));
    }
    Ok(http::trim_root(&root))
}

/// The error an Upstox answer carries, phrased as what to do next.
fn broker_error(answer: &Response, body: Option<&Value>, what: &str) -> tokenhost_sdk::ProviderError {
    let first = body.and_then(|b| b["errors"].get(0));
    let field = |camel: &str, snake: &str| {
        first.and_then(|e| e[camel].as_str().or_else(|| e[snake].as_str())).unwrap_or("").to_string()
    };
    let (code, message) = (field("errorCode", "error_code"), field("message", "message"));
    let said = format!("{what}: {message} ({code}, HTTP {})", answer.status);
    match code.as_str() {
        "UDAPI100050" | "UDAPI100016" | "UDAPI100069" | "UDAPI100073" => rejected(said),
        "UDAPI100057" => rejected(format!("{said}; the code is single use: log in again")),
        "UDAPI100068" => config_error(
            "redirect-uri",
            format!("{said}; api-key and redirect-uri must match the app registered at Upstox"),
        ),
        "UDAPI10005" | "UDAPI100500" => transient(said),
        "UDAPI100015" => protocol(said),
        _ if answer.is_transient() => transient(format!("{what}: broker answered HTTP {}", answer.status)),
        _ if answer.status == 404 => {
            config_error("api-root", format!("{what}: the broker has no such path (HTTP 404)"))
        }
        "" => protocol(format!("{what}: HTTP {} with a body that is not an Upstox answer", answer.status)),
        _ if answer.status == 401 => rejected(said),
        _ => protocol(said),
    }
}

/// The `data` of a `{"status":"success","data":...}` answer, or the error it carries.
fn envelope(answer: &Response, what: &str) -> Result<Value> {
    let body: Option<Value> = answer.json().ok();
    match body {
        Some(mut b) if answer.is_success() && b["status"] == "success" => Ok(b["data"].take()),
        _ => Err(broker_error(answer, body.as_ref(), what)),
    }
}

fn bearer(request: http::Request, token: &str) -> http::Request {
    request.header("Authorization", &format!("Bearer {token}")).header("Accept", "application/json")
}

/// Epoch milliseconds, sent as a string or a number, in unix seconds.
fn epoch_ms(v: &Value) -> Option<i64> {
    let ms = v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))?;
    Some(ms.div_euclid(1000))
}

impl TokenProvider for Upstox {
    fn describe() -> ProviderInfo {
        let root = config::optional("api-root").ok().flatten().unwrap_or_else(|| DEFAULT_ROOT.into());
        Info::new("upstox", env!("CARGO_PKG_VERSION"))
            .setting("api-key", "the app's API key (client_id)")
            .secret("api-secret", "the app's API secret")
            .setting("redirect-uri", "the app's registered redirect URL, e.g. http://127.0.0.1:5055/callback")
            .optional("api-root", "API root URL (default https://api.upstox.com)")
            .host_of(&root)
            .daily_cutoff(3, 30, 330)
            // A token got early dies at the same 03:30 IST as the one it replaces.
            .refresh_ahead_secs(0)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        let pending = kv::get(PENDING)?.and_then(|ms| epoch_ms(&json!(ms)));
        let now = tokenhost_sdk::now();
        if let Some(until) = pending.filter(|until| *until > now) {
            return Err(interaction_required(
                format!(
                    "a token request is waiting for approval in the Upstox app ({} min left); once \
                     approved the token is delivered to the notifier webhook. Or log in with `tokenhost login`",
                    (until - now) / 60
                ),
                None,
            ));
        }
        let key = config::get("api-key")?;
        let url = format!("{}/v3/login/auth/token/request/{}", root()?, percent_encode(&key));
        let answer = http::post(&url)
            .header("Accept", "application/json")
            .json(&json!({ "client_secret": config::get("api-secret")? }))
            .send()?;
        let data = envelope(&answer, "token request")?;
        let until = epoch_ms(&data["authorization_expiry"])
            .ok_or_else(|| protocol("token request: the answer has no authorization_expiry"))?;
        kv::set(PENDING, &(until * 1000).to_string())?;
        Err(interaction_required(
            "Upstox asked the account holder to approve a token request in the Upstox app; once \
             approved the token is delivered to the notifier webhook. Or log in with `tokenhost login`",
            None,
        ))
    }

    fn validate(token: Token) -> Result<()> {
        let answer =
            bearer(http::get(&format!("{}/v2/user/profile", root()?)), &token.access_token).send()?;
        envelope(&answer, "profile").map(|_| ())
    }

    fn revoke(token: Token) -> Result<()> {
        kv::delete(PENDING)?;
        let answer = bearer(http::delete(&format!("{}/v2/logout", root()?)), &token.access_token).send()?;
        envelope(&answer, "logout").map(|_| ())
    }

    fn login_url(redirect_uri: String, state: String) -> Result<String> {
        Ok(format!(
            "{}/v2/login/authorization/dialog?response_type=code&client_id={}&redirect_uri={}&state={}",
            root()?,
            percent_encode(&config::get("api-key")?),
            percent_encode(&redirect_uri),
            percent_encode(&state)
        ))
    }

    fn complete_login(params: Vec<(String, String)>) -> Result<Token> {
        if let Some(error) = http::param(&params, "error") {
            let said = http::param(&params, "error_description").unwrap_or(error);
            return Err(rejected(format!("the login was not completed: {said}")));
        }
        let code = http::param(&params, "code").ok_or_else(|| protocol("the redirect has no code"))?;
        let answer = http::post(&format!("{}/v2/login/authorization/token", root()?))
            .header("Accept", "application/json")
            .header("Api-Version", "2.0")
            .form(&[
                ("code", code),
                ("client_id", &config::get("api-key")?),
                ("client_secret", &config::get("api-secret")?),
                ("redirect_uri", &config::get("redirect-uri")?),
                ("grant_type", "authorization_code"),
            ])
            .send()?;
        let body: Option<Value> = answer.json().ok();
        let Some(body) = body.as_ref().filter(|b| answer.is_success() && b["access_token"].is_string())
        else {
            return Err(broker_error(&answer, body.as_ref(), "code exchange"));
        };
        let mut token = Token::new(body["access_token"].as_str().unwrap_or_default());
        if let Some(user) = body["user_id"].as_str() {
            token = token.with_user(user);
        }
        if let Some(extended) = body["extended_token"].as_str().filter(|t| !t.is_empty()) {
            token = token.with_secret_extra("extended-token", extended);
        }
        Ok(token.with_jwt_claims())
    }

    fn accept_push(body: Vec<u8>) -> Result<Token> {
        let push: Value = serde_json::from_slice(&body).map_err(|_| protocol("the push is not JSON"))?;
        if push["message_type"].as_str() != Some("access_token") {
            return Err(protocol("the push is not an access_token message"));
        }
        if push["client_id"].as_str() != Some(config::get("api-key")?.as_str()) {
            return Err(rejected("the push is for another app (client_id does not match api-key)"));
        }
        let access = push["access_token"].as_str().filter(|t| !t.is_empty());
        let access = access.ok_or_else(|| protocol("the push has no access_token"))?;
        // Pushes are unsigned: take one only while a request of ours waits for approval.
        let pending = kv::get(PENDING)?.and_then(|ms| epoch_ms(&json!(ms)));
        match pending {
            None => return Err(rejected("no token request is waiting for approval; the push is refused")),
            Some(until) if until + PUSH_GRACE_SECS < tokenhost_sdk::now() => {
                return Err(rejected("the token request this push answers has lapsed; the push is refused"));
            }
            Some(_) => kv::delete(PENDING)?,
        }
        let mut token = Token::new(access)
            .with_expiry(epoch_ms(&push["expires_at"]))
            .with_issued_at(epoch_ms(&push["issued_at"]));
        if let Some(user) = push["user_id"].as_str() {
            token = token.with_user(user);
        }
        Ok(token.with_jwt_claims())
    }
}

tokenhost_sdk::register_provider!(Upstox);
