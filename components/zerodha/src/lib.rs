//! Zerodha Kite Connect v3. There is no unattended login: the exchange requires the account
//! holder to log in by hand once a day, in a browser (`login-url` + `complete-login`), and every
//! access token dies at 06:00 IST the next morning (one got before 06:00 dies at 06:00 that day).
//!
//! - Login page: `{login-root}/connect/login?v=3&api_key=&redirect_params=` (Kite takes no
//!   redirect URI: it sends the browser to the URL registered for the app, so `redirect-uri`
//!   must be that URL, or no login arrives). `redirect_params` comes back as extra query
//!   parameters, which is how tokenhost's `state` is echoed.
//! - Back: `?action=login&type=login&status=success&request_token=...` (a few minutes' life,
//!   single use). `POST {api-root}/session/token` (form `api_key`, `request_token`, `checksum`
//!   = lower-case hex `sha256(api_key + request_token + api_secret)`, header
//!   `X-Kite-Version: 3`) gives `access_token` (opaque, 32 characters), `user_id`,
//!   `public_token` and `login_time` (IST, no offset): the expiry is the 06:00 IST after it.
//! - Check: `GET {api-root}/user/profile`; logout: `DELETE {api-root}/session/token`, both with
//!   `Authorization: token api_key:access_token`.
//! - Errors: `{"status":"error","message","error_type"}`. A TokenException (bad checksum, used
//!   or expired request token, dead session) is a refusal; 429, 5xx and NetworkException pass.
//!
//! UNCONFIRMED, so the safe choice: what Kite sends back when the person cancels. Any `status`
//! other than `success` (or no `request_token`) is taken as a login not completed, and nothing
//! is exchanged. The `refresh_token` only "certain approved platforms" get is not used: retail
//! apps get `""`, and using one would need an approval this provider cannot check. A new login
//! may end the previous token (a third-party note says so): tokenhost keeps only the newest, but
//! an exchange Kite completes after tokenhost gave up on it (a timeout) then ends the stored
//! token, and `tokenhost check` says so.

use serde_json::Value;
use tokenhost_sdk::hash::sha256_hex_of;
use tokenhost_sdk::http::{self, Response, percent_encode};
use tokenhost_sdk::time::{IST_MINUTES, parse_local};
use tokenhost_sdk::{
    Info, ProviderError, ProviderInfo, Result, Token, TokenProvider, config, config_error,
    interaction_required, protocol, rejected, transient,
};

struct Zerodha;

const API_ROOT: &str = "https://api.kite.trade";
const LOGIN_ROOT: &str = "https://kite.zerodha.com";

fn root(key: &str, default: &str) -> Result<String> {
    let root = config::or(key, default)?;
    if http::authority_of(&root).is_none() {
        return Err(config_error(key, format!("must be a URL such as {default}")));
    }
    Ok(http::trim_root(&root))
}

/// Kite's error, phrased as what to do next.
fn failure(answer: &Response, body: Option<&Value>, what: &str) -> ProviderError {
    let field = |k: &str| body.and_then(|b| b[k].as_str()).unwrap_or_default().to_string();
    let (kind, message) = (field("error_type"), field("message"));
    let said = format!("{what}: {message} ({kind}, HTTP {})", answer.status);
    match kind.as_str() {
        "" if answer.is_transient() => transient(format!("{what}: Kite answered HTTP {}", answer.status)),
        _ if answer.is_transient() || kind == "NetworkException" => transient(said),
        "TokenException" | "UserException" => rejected(said),
        "InputException" if message.contains("api_key") => config_error(
            "api-key",
            format!("{said}; api-key must be the key of the app registered at Kite Connect"),
        ),
        "InputException" if message.contains("request_token") => rejected(said),
        _ if answer.status == 404 => {
            config_error("api-root", format!("{what}: Kite has no such path (HTTP 404)"))
        }
        "" => protocol(format!("{what}: HTTP {} with a body that is not Kite's JSON", answer.status)),
        _ => protocol(said),
    }
}

/// The `data` of a `{"status":"success","data":...}` answer, or the error it carries.
fn envelope(answer: &Response, what: &str) -> Result<Value> {
    let body: Option<Value> = answer.json().ok();
    match body {
        Some(mut b) if answer.is_success() && b["status"] == "success" => Ok(b["data"].take()),
        _ => Err(failure(answer, body.as_ref(), what)),
    }
}

/// A call with the stored token: Kite's version header and `token api_key:access_token`.
fn authorized(request: http::Request, token: &Token) -> Result<http::Request> {
    let auth = format!("token {}:{}", config::get("api-key")?, token.access_token);
    Ok(request.header("X-Kite-Version", "3").header("Authorization", &auth))
}

impl TokenProvider for Zerodha {
    fn describe() -> ProviderInfo {
        let api = config::optional("api-root").ok().flatten().unwrap_or_else(|| API_ROOT.into());
        Info::new("zerodha", env!("CARGO_PKG_VERSION"))
            .setting("api-key", "the Kite Connect app's API key")
            .alias("KITE_API_KEY")
            .secret("api-secret", "the Kite Connect app's API secret")
            .alias("KITE_API_SECRET")
            .setting(
                "redirect-uri",
                "the redirect URL registered for the app at Kite Connect, e.g. http://127.0.0.1:5055/callback",
            )
            .alias("KITE_REDIRECT_URL")
            .optional("login-root", "login page root URL (default https://kite.zerodha.com)")
            .optional("api-root", "API root URL (default https://api.kite.trade)")
            .host_of(&api)
            .daily_cutoff(6, 0, 330)
            // A token got before 06:00 IST dies at the same 06:00 as the one it replaces.
            .refresh_ahead_secs(0)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        Err(interaction_required(
            "zerodha needs a person to log in once a day (Kite Connect has no unattended login: the \
             exchange requires a manual login every day, and every token dies at 06:00 IST): run \
             `tokenhost login`",
            None,
        ))
    }

    fn validate(token: Token) -> Result<()> {
        let url = format!("{}/user/profile", root("api-root", API_ROOT)?);
        envelope(&authorized(http::get(&url), &token)?.send()?, "profile").map(|_| ())
    }

    fn revoke(token: Token) -> Result<()> {
        let url = format!(
            "{}/session/token?api_key={}&access_token={}",
            root("api-root", API_ROOT)?,
            percent_encode(&config::get("api-key")?),
            percent_encode(&token.access_token)
        );
        envelope(&authorized(http::delete(&url), &token)?.send()?, "logout").map(|_| ())
    }

    fn login_url(_redirect_uri: String, state: String) -> Result<String> {
        // Kite sends the browser to the registered redirect URL; `state` rides redirect_params.
        Ok(format!(
            "{}/connect/login?v=3&api_key={}&redirect_params={}",
            root("login-root", LOGIN_ROOT)?,
            percent_encode(&config::get("api-key")?),
            percent_encode(&format!("state={}", percent_encode(&state)))
        ))
    }

    fn complete_login(params: Vec<(String, String)>) -> Result<Token> {
        let status = http::param(&params, "status").unwrap_or("success");
        if status != "success" {
            return Err(rejected(format!("the login was not completed at Kite (status {status})")));
        }
        let request_token = http::param(&params, "request_token").filter(|t| !t.is_empty());
        let request_token =
            request_token.ok_or_else(|| rejected("Kite sent the browser back with no request_token"))?;
        let key = config::get("api-key")?;
        let checksum = sha256_hex_of(&[&key, request_token, &config::get("api-secret")?]);
        let answer = http::post(&format!("{}/session/token", root("api-root", API_ROOT)?))
            .header("X-Kite-Version", "3")
            .form(&[("api_key", &key), ("request_token", request_token), ("checksum", &checksum)])
            .send()?;
        let data = envelope(&answer, "session token")?;
        let access = data["access_token"].as_str().filter(|t| !t.is_empty());
        let access = access.ok_or_else(|| protocol("session token: the answer has no access_token"))?;
        let login_time = data["login_time"].as_str().and_then(|t| parse_local(t, IST_MINUTES));
        let mut token = Token::new(access).with_issued_at(login_time);
        if let Some(user) = data["user_id"].as_str() {
            token = token.with_user(user);
        }
        if let Some(public) = data["public_token"].as_str().filter(|t| !t.is_empty()) {
            token = token.with_secret_extra("public-token", public);
        }
        Ok(token)
    }
}

tokenhost_sdk::register_provider!(Zerodha);
