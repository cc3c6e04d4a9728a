//! XTS (Symphony Fintech), as run by many brokers on their own root URL. Logins need no
//! person: `refresh` logs in to the interactive API and, when market-data keys are set, to the
//! market-data API (the "feed token").
//!
//! Every answer is an envelope `{"type":"success"|"error","code","description","result"}`.
//! Some servers answer a dead session with HTTP 200 and `"type":"error"`, so the envelope's
//! `type` decides, never the status alone.

use serde_json::{Value, json};
use tokenhost_sdk::http::{self, Response};
use tokenhost_sdk::{
    Info, ProviderInfo, Result, Token, TokenProvider, config, config_error, protocol, rejected, transient,
};

struct Xts;

const DEFAULT_MARKET_DATA_PATH: &str = "/apimarketdata/auth/login";

fn root() -> Result<String> {
    let root = config::get("api-root")?;
    if http::authority_of(&root).is_none() {
        return Err(config_error("api-root", "must be a URL such as https://xts.broker.example"));
    }
    Ok(http::trim_root(&root))
}

/// The envelope's `result`, or the error it carries.
fn envelope(answer: &Response, what: &str) -> Result<Value> {
    if answer.is_transient() {
        return Err(transient(format!("{what}: broker answered HTTP {}", answer.status)));
    }
    let body: Value = answer.json().map_err(|_| {
        protocol(format!("{what}: HTTP {} with a body that is not an XTS answer", answer.status))
    })?;
    let description = body["description"].as_str().unwrap_or("no description").to_string();
    match body["type"].as_str() {
        Some("success") if answer.is_success() => Ok(body["result"].clone()),
        Some("error") | Some("success") => {
            let code = body["code"].as_str().unwrap_or("");
            Err(rejected(format!("{what}: {description} ({code})")))
        }
        _ => Err(protocol(format!("{what}: HTTP {} without an XTS envelope", answer.status))),
    }
}

/// Logs in at `path` with the given key and secret; returns the envelope's result.
fn login(path: &str, key: &str, secret: &str, what: &str) -> Result<Value> {
    let mut body = json!({ "appKey": key, "secretKey": secret });
    // Some brokers log in with a request token from their web login instead of `source`.
    match config::optional("access-token")? {
        Some(token) => body["accessToken"] = json!(token),
        None => body["source"] = json!(config::or("source", "WEBAPI")?),
    }
    let answer = http::post(&format!("{}{path}", root()?)).json(&body).send()?;
    if answer.status == 404 {
        // The path, not the credentials, is wrong: brokers differ in where they put logins.
        let key = if path == "/interactive/user/session" { "api-root" } else { "market-data-path" };
        return Err(config_error(key, format!("the broker has no {path} (HTTP 404)")));
    }
    let result = envelope(&answer, what)?;
    if result["token"].as_str().is_none_or(str::is_empty) {
        return Err(protocol(format!("{what}: the answer has no token")));
    }
    Ok(result)
}

fn authorized(request: http::Request, token: &str) -> http::Request {
    // XTS wants the raw token: no "Bearer".
    request.header("Authorization", token).header("Content-Type", "application/json")
}

impl TokenProvider for Xts {
    fn describe() -> ProviderInfo {
        let root = config::optional("api-root").ok().flatten().unwrap_or_default();
        Info::new("xts", env!("CARGO_PKG_VERSION"))
            .setting("api-root", "the broker's XTS root URL, e.g. https://xts.broker.example")
            .setting("api-key", "interactive API app key")
            .alias("interactive-api-key")
            .secret("api-secret", "interactive API secret key")
            .alias("interactive-api-secret")
            .optional("source", "login source (default WEBAPI)")
            .alias("api-source")
            .optional_secret(
                "access-token",
                "request token, for brokers that log in with one instead of a source",
            )
            .optional("market-data-key", "market-data API app key (to get the feed token too)")
            .optional_secret("market-data-secret", "market-data API secret key")
            .optional("market-data-path", "market-data login path (default /apimarketdata/auth/login)")
            .optional("user-id", "the expected user id, checked against the login answer")
            .host_of(&root)
            .refresh_ahead_secs(3600)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        let result = login(
            "/interactive/user/session",
            &config::get("api-key")?,
            &config::get("api-secret")?,
            "interactive login",
        )?;
        let user = result["userID"].as_str().unwrap_or_default().to_string();
        if let Some(expected) = config::optional("user-id")? {
            let same = user.eq_ignore_ascii_case(&expected)
                || user.to_ascii_uppercase().starts_with(&format!("{}_", expected.to_ascii_uppercase()));
            if !same {
                return Err(config_error(
                    "user-id",
                    format!("the broker logged in user {user}, not {expected}"),
                ));
            }
        }
        let codes: Vec<&str> =
            result["clientCodes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let mut token = Token::new(result["token"].as_str().unwrap_or_default())
            .with_jwt_claims()
            .with_user(user.clone())
            .with_extra("userID", user)
            .with_extra("isInvestorClient", result["isInvestorClient"].as_bool().unwrap_or(false).to_string())
            .with_extra("clientCodes", codes.join(","));
        if let Some(key) = config::optional("market-data-key")? {
            let secret = config::get("market-data-secret")?;
            let path = config::or("market-data-path", DEFAULT_MARKET_DATA_PATH)?;
            let feed = login(&path, &key, &secret, "market-data login")?;
            token = token.with_secret_extra("feed-token", feed["token"].as_str().unwrap_or_default());
        }
        Ok(token)
    }

    fn validate(token: Token) -> Result<()> {
        let answer =
            authorized(http::get(&format!("{}/interactive/user/profile", root()?)), &token.access_token)
                .send()?;
        envelope(&answer, "profile").map(|_| ())
    }

    fn revoke(token: Token) -> Result<()> {
        let answer =
            authorized(http::delete(&format!("{}/interactive/user/session", root()?)), &token.access_token)
                .send()?;
        envelope(&answer, "interactive logout")?;
        if let Some(feed) = token.extra("feed-token") {
            let path = config::or("market-data-path", DEFAULT_MARKET_DATA_PATH)?
                .replace("/auth/login", "/auth/logout");
            let answer = authorized(http::delete(&format!("{}{path}", root()?)), feed).send()?;
            envelope(&answer, "market-data logout")?;
        }
        Ok(())
    }
}

tokenhost_sdk::register_provider!(Xts);
