//! Fyers (API v3). A person logs in once a trading day in a browser: Fyers stopped refresh-token
//! sessions on 1 April 2026 (SEBI's retail-algo rules: "Complete 2FA once every trading day").
//!
//! - Login page: `GET {api-root}/api/v3/generate-authcode?client_id=&redirect_uri=&response_type=code&state=`;
//!   Fyers sends the browser back with `s=ok&code=200&auth_code=...&state=...` (`code` is a status,
//!   the single-use code is `auth_code`).
//! - Exchange: `POST {api-root}/api/v3/validate-authcode`, JSON `{grant_type, appIdHash, code}`
//!   where `appIdHash` is the lower-case hex sha256 of `app-id + ":" + secret-key`, computed here.
//!   The `app-id` is the client_id with its suffix (`XC12345678-100`); one without it is refused
//!   before any call. The answer's `refresh_token` is not stored: it was discontinued on 1 April
//!   2026 and no later call needs it.
//! - Check and logout: `GET /api/v3/profile` and `POST /api/v3/logout`, with the header
//!   `Authorization: <app-id>:<access_token>`. Logout ends the token for this app only.
//! - Errors: `{"s":"error","code":<negative>,"message"}`, often under HTTP 200, so `s` is judged,
//!   not the status. -371 is a wrong appIdHash (the secret-key), -352 an unknown app id, -441/-442
//!   a malformed exchange, -8/-15/-16/-17 a dead or invalid token or code, -429 the rate limit.
//!
//! UNCONFIRMED, so the safe choice:
//! - When the access token dies ("1 trading day", the clock time is not documented): no daily
//!   cut-off is declared and the token's JWT `exp` is trusted; the default refresh-ahead is kept,
//!   so a person is asked an hour before `exp` rather than after the token died.
//! - What the redirect carries when the person cancels or Fyers refuses: any `s` other than
//!   `ok` (or an `error` parameter) is a login not completed, with Fyers' `message`.
//! - The code for a used or expired `auth_code`: any error code not named above is a refusal
//!   (a single-use code cannot be retried), never a guess that it is transient.
//! - The user id: the token's `fy_id` claim when it has one (Fyers' `sub` is the literal
//!   `access_token`, never the user).

use serde_json::{Value, json};
use tokenhost_sdk::http::{self, Response, percent_encode};
use tokenhost_sdk::{
    Info, ProviderInfo, Result, Token, TokenProvider, config, config_error, hash, interaction_required, jwt,
    protocol, rejected, transient,
};

struct Fyers;

const DEFAULT_ROOT: &str = "https://api-t1.fyers.in";

fn root() -> Result<String> {
    let root = config::or("api-root", DEFAULT_ROOT)?;
    if http::authority_of(&root).is_none() {
        return Err(config_error("api-root", "must be a URL such as https://api-t1.fyers.in"));
    }
    Ok(http::trim_root(&root))
}

/// The app id, which must carry its app-type suffix (`XC12345678-100`).
fn app_id() -> Result<String> {
    let id = config::get("app-id")?;
    match id.rsplit_once('-') {
        Some((base, kind)) if !base.is_empty() && !kind.is_empty() => Ok(id),
        _ => Err(config_error("app-id", "must be the App ID with its suffix, such as XC12345678-100")),
    }
}

/// The error a Fyers answer carries, phrased as what to do next.
fn failure(answer: &Response, what: &str) -> tokenhost_sdk::ProviderError {
    let body: Value = answer.json().unwrap_or(Value::Null);
    let Some(code) = body["code"].as_i64().filter(|_| body["s"] == "error") else {
        if answer.is_transient() {
            return transient(format!("{what}: Fyers answered HTTP {}", answer.status));
        }
        return protocol(format!("{what}: HTTP {} without Fyers' answer", answer.status));
    };
    let message = body["message"].as_str().unwrap_or("no message");
    let said = format!("{what}: {message} (Fyers code {code}, HTTP {})", answer.status);
    match code {
        -371 => rejected(format!("{said}; check secret-key (appIdHash is sha256 of app-id:secret-key)")),
        -352 => config_error("app-id", said),
        -441 | -442 => protocol(said),
        -429 => transient(said),
        _ if answer.is_transient() => transient(said),
        _ => rejected(said),
    }
}

/// The body of a `{"s":"ok",...}` answer, or the error it carries.
fn envelope(answer: &Response, what: &str) -> Result<Value> {
    match answer.json::<Value>() {
        Ok(body) if body["s"] == "ok" => Ok(body),
        _ => Err(failure(answer, what)),
    }
}

fn authorized(request: http::Request, token: &str) -> Result<http::Request> {
    Ok(request
        .header("Authorization", &format!("{}:{token}", app_id()?))
        .header("version", "3")
        .header("Accept", "application/json"))
}

impl TokenProvider for Fyers {
    fn describe() -> ProviderInfo {
        let root = config::optional("api-root").ok().flatten().unwrap_or_else(|| DEFAULT_ROOT.into());
        Info::new("fyers", env!("CARGO_PKG_VERSION"))
            .setting("app-id", "the app's App ID (client_id) with its suffix, e.g. XC12345678-100")
            .alias("FYERS_APP_ID")
            .alias("FYERS_CLIENT_ID")
            .secret("secret-key", "the app's Secret ID")
            .alias("FYERS_SECRET_KEY")
            .alias("FYERS_SECRET_ID")
            .setting("redirect-uri", "the app's registered redirect URL, e.g. http://127.0.0.1:5055/callback")
            .alias("FYERS_REDIRECT_URI")
            .optional("api-root", "API root URL (default https://api-t1.fyers.in)")
            .host_of(&root)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        Err(interaction_required(
            "fyers needs a person to log in once a day (Fyers ended refresh tokens on 1 April 2026; \
             every trading day starts with a browser login and 2FA): run `tokenhost login`",
            None,
        ))
    }

    fn validate(token: Token) -> Result<()> {
        let answer =
            authorized(http::get(&format!("{}/api/v3/profile", root()?)), &token.access_token)?.send()?;
        let body = envelope(&answer, "profile")?;
        if !body["data"].is_object() {
            return Err(protocol("profile: the answer has no data"));
        }
        Ok(())
    }

    fn revoke(token: Token) -> Result<()> {
        let answer =
            authorized(http::post(&format!("{}/api/v3/logout", root()?)), &token.access_token)?.send()?;
        envelope(&answer, "logout").map(|_| ())
    }

    fn login_url(redirect_uri: String, state: String) -> Result<String> {
        Ok(format!(
            "{}/api/v3/generate-authcode?client_id={}&redirect_uri={}&response_type=code&state={}",
            root()?,
            percent_encode(&app_id()?),
            percent_encode(&redirect_uri),
            percent_encode(&state)
        ))
    }

    fn complete_login(params: Vec<(String, String)>) -> Result<Token> {
        let param = |name: &str| http::param(&params, name);
        if param("s").is_some_and(|s| s != "ok") || param("error").is_some() {
            let message = param("message").or(param("error_description")).or(param("error"));
            let code = param("code").unwrap_or("none");
            return Err(rejected(format!(
                "the login was not completed: {} (Fyers code {code})",
                message.unwrap_or("no message")
            )));
        }
        let code = param("auth_code").filter(|c| !c.is_empty());
        let code = code.ok_or_else(|| protocol("the redirect has no auth_code"))?;
        let app = app_id()?;
        let app_id_hash = hash::sha256_hex_of(&[&app, ":", &config::get("secret-key")?]);
        let answer = http::post(&format!("{}/api/v3/validate-authcode", root()?))
            .header("Accept", "application/json")
            .json(&json!({ "grant_type": "authorization_code", "appIdHash": app_id_hash, "code": code }))
            .send()?;
        let body = envelope(&answer, "auth code exchange")?;
        let access = body["access_token"].as_str().filter(|t| !t.is_empty());
        let access = access.ok_or_else(|| protocol("auth code exchange: the answer has no access_token"))?;
        // Fyers' `sub` is the literal "access_token": the user is the `fy_id` claim.
        let user = jwt::claims(access).and_then(|c| c.all["fy_id"].as_str().map(str::to_string));
        let mut token = Token::new(access).with_jwt_claims();
        token.user_id = user;
        Ok(token)
    }
}

tokenhost_sdk::register_provider!(Fyers);
