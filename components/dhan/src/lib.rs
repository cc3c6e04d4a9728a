//! Dhan (DhanHQ v2): a fresh access token every day with no person present, from the client id,
//! the 6-digit PIN and a TOTP code (TOTP set up once in Dhan Web).
//!
//! - Login: `POST {auth-root}/app/generateAccessToken?dhanClientId=&pin=&totp=` (query
//!   parameters, no body) gives `accessToken` and `expiryTime`, IST without an offset. A new
//!   token ends the previous one ("only one active token at a time").
//! - Check: `GET {api-root}/v2/profile` with the `access-token` header.
//! - Errors: `{"errorType","errorCode":"DH-9xx","errorMessage"}`. DH-904 is the rate limit.
//!
//! UNCONFIRMED, so the safe choice: which code the login gives for a wrong TOTP. A DH-9xx whose
//! message names the TOTP counts as a wrong code (retried once with the next window's code);
//! any other is the PIN or the client id (rejected, never retried). Dhan documents no logout
//! endpoint, so `logout` says so and keeps the token.

use serde_json::Value;
use tokenhost_sdk::http::{self, Response, percent_encode};
use tokenhost_sdk::time::{IST_MINUTES, parse_local};
use tokenhost_sdk::totp::{Outcome, Totp};
use tokenhost_sdk::{
    Info, ProviderInfo, Result, Token, TokenProvider, config, config_error, protocol, rejected, transient,
    unsupported,
};

struct Dhan;

fn root(key: &str, default: &str) -> Result<String> {
    let root = config::or(key, default)?;
    if http::authority_of(&root).is_none() {
        return Err(config_error(key, format!("must be a URL such as {default}")));
    }
    Ok(http::trim_root(&root))
}

/// The broker's error, judged: a rate limit or 5xx is transient, the rest is Dhan's refusal.
fn failure(answer: &Response, what: &str) -> tokenhost_sdk::ProviderError {
    let body: Value = answer.json().unwrap_or(Value::Null);
    let code = body["errorCode"].as_str().unwrap_or_default();
    let message = body["errorMessage"].as_str().unwrap_or("no message");
    if answer.status == 429 || code == "DH-904" {
        return transient(format!("{what}: Dhan's rate limit ({message})"));
    }
    if answer.is_transient() {
        return transient(format!("{what}: Dhan answered HTTP {}", answer.status));
    }
    if code.is_empty() {
        return protocol(format!("{what}: HTTP {} without Dhan's error fields", answer.status));
    }
    rejected(format!("{what}: {message} ({code})"))
}

impl TokenProvider for Dhan {
    fn describe() -> ProviderInfo {
        let auth =
            config::optional("auth-root").ok().flatten().unwrap_or_else(|| "https://auth.dhan.co".into());
        let api = config::optional("api-root").ok().flatten().unwrap_or_else(|| "https://api.dhan.co".into());
        Info::new("dhan", env!("CARGO_PKG_VERSION"))
            .setting("client-id", "your Dhan client id")
            .secret("pin", "your 6-digit Dhan PIN")
            .secret("totp-secret", "the TOTP key (base32) shown when TOTP was set up in Dhan Web")
            .alias("DHAN_TOTP_KEY")
            .optional("auth-root", "login root URL (default https://auth.dhan.co)")
            .optional("api-root", "API root URL (default https://api.dhan.co)")
            .host_of(&auth)
            .host_of(&api)
            .refresh_ahead_secs(3600)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        let totp = Totp::from_setting("totp-secret")?;
        let (client, pin) = (config::get("client-id")?, config::get("pin")?);
        let auth = root("auth-root", "https://auth.dhan.co")?;
        let body: Value = totp.login(|code| {
            let url = format!(
                "{auth}/app/generateAccessToken?dhanClientId={}&pin={}&totp={code}",
                percent_encode(&client),
                percent_encode(&pin)
            );
            let answer = http::post(&url).header("Accept", "application/json").send()?;
            if answer.is_success() {
                return Ok(Outcome::Done(answer.json::<Value>()?));
            }
            let error = failure(&answer, "login");
            let message =
                answer.json::<Value>().ok().and_then(|b| b["errorMessage"].as_str().map(str::to_string));
            match message {
                Some(m) if m.to_ascii_lowercase().contains("totp") && answer.status < 500 => {
                    Ok(Outcome::WrongCode(m))
                }
                _ => Err(error),
            }
        })?;
        let token = body["accessToken"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| protocol("login: the answer has no accessToken"))?;
        if body["dhanClientId"].as_str().is_some_and(|id| id != client) {
            return Err(config_error("client-id", "Dhan logged in another client id"));
        }
        let expires = body["expiryTime"].as_str().and_then(|t| parse_local(t, IST_MINUTES));
        Ok(Token::new(token)
            .with_expiry(expires)
            .with_jwt_claims()
            .with_user(client.clone())
            .with_extra("dhanClientId", client)
            .with_extra("dhanClientName", body["dhanClientName"].as_str().unwrap_or_default()))
    }

    fn validate(token: Token) -> Result<()> {
        let api = root("api-root", "https://api.dhan.co")?;
        let answer = http::get(&format!("{api}/v2/profile"))
            .header("access-token", &token.access_token)
            .header("Accept", "application/json")
            .send()?;
        if answer.is_success() && answer.json::<Value>().is_ok_and(|b| b["dhanClientId"].is_string()) {
            return Ok(());
        }
        Err(failure(&answer, "profile"))
    }

    fn revoke(_token: Token) -> Result<()> {
        // None is documented: a token ends at its expiry or when the next login replaces it.
        Err(unsupported("logout at Dhan (it documents no logout endpoint; the next login ends the token)"))
    }
}

tokenhost_sdk::register_provider!(Dhan);
