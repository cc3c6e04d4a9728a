//! Groww Trade API: a fresh access token every day with no person present, from the TOTP API
//! key (a JWT the user creates once on Groww's Trade API keys page, with "TOTP" as the key type)
//! and a TOTP code from the seed shown next to it.
//!
//! - Login: `POST {api-root}/v1/token/api/access` with `Authorization: Bearer <api-key>`,
//!   `X-API-VERSION: 1.0` and the JSON body `{"key_type":"totp","totp":"123456"}` gives
//!   `{"token","expiry"}`. Every token dies daily at 06:00 IST (declared as the cut-off).
//! - Check: `GET {api-root}/v1/user/detail` with the token as Bearer gives
//!   `{"status":"SUCCESS","payload":{ucc,...}}`. `check` only reads it; nothing is stored.
//! - Errors: `{"status":"FAILURE","error":{"code":"GA0xx","message"}}`, or (seen on a live token
//!   call) `{"header","response","error"}` with no `status`: both are read, under any HTTP status.
//!   GA000 (internal), GA003 (unable to serve), HTTP 429 (auth calls: 5/s, 30/min) and 5xx are
//!   transient; GA005 ("User not authorised to perform this operation") and the rest are refusals.
//!
//! The other unattended-looking flow, key + secret "approval" (`key_type: "approval"` with a
//! SHA-256 checksum), needs the account holder to approve the key on Groww's page every day, so
//! it is not implemented: for it a person is needed anyway.
//!
//! UNCONFIRMED, so the safe choices:
//! - The body: the SDK-derived `{"key_type":"totp","totp":...}` is sent (one client sends
//!   `{key, key_type, question_id:"TOTP", answer}` instead; official docs do not show it).
//! - Which code a wrong TOTP gets: only an error whose message names the TOTP counts as a wrong
//!   code (retried once with the next window's code); any other refusal (GA005 for a wrong key)
//!   is rejected at once, never retried.
//! - The format of `expiry`: read as epoch seconds or milliseconds (number or digits), or as a
//!   local ISO time in IST (UTC when it ends in `Z`); anything else, or a time already past, is
//!   ignored. The token's JWT `exp` is the fallback, and the 06:00 IST cut-off caps both.
//! - The user id: only a JWT `sub` that is a plain string (a JSON-shaped `sub`, as Groww's key
//!   JWTs carry, is not an id); the login answer gives none, and `check` stays read-only.
//! - Logout: tokens are revoked only in Groww's web UI, so `logout` says so and keeps the token.

use serde_json::{Value, json};
use tokenhost_sdk::http::{self, Response};
use tokenhost_sdk::time::{IST_MINUTES, parse_local};
use tokenhost_sdk::totp::{Outcome, Totp};
use tokenhost_sdk::{
    Info, ProviderError, ProviderInfo, Result, Token, TokenProvider, config, config_error, now, protocol,
    rejected, transient, unsupported,
};

struct Groww;

const DEFAULT_ROOT: &str = "https://api.groww.in";

fn root() -> Result<String> {
    let root = config::or("api-root", DEFAULT_ROOT)?;
    if http::authority_of(&root).is_none() {
        return Err(config_error("api-root", format!("must be a URL such as {DEFAULT_ROOT}")));
    }
    Ok(http::trim_root(&root))
}

/// The `error` of a Groww answer, `(code, message)`, when it carries one (`status: FAILURE` or
/// a non-null `error`, whatever the envelope).
fn error_of(body: &Value) -> Option<(&str, &str)> {
    let e = &body["error"];
    if body["status"] != "FAILURE" && !e.is_object() {
        return None;
    }
    let message = e["message"].as_str().or_else(|| e["displayMessage"].as_str()).unwrap_or("no message");
    Some((e["code"].as_str().unwrap_or_default(), message))
}

/// `: message (code)` of a Groww error, or nothing when the answer carries none.
fn said(code: &str, message: &str) -> String {
    match (code, message) {
        ("", "") => String::new(),
        ("", m) => format!(": {m}"),
        (c, m) => format!(": {m} ({c})"),
    }
}

/// The broker's error, judged: a rate limit, GA000, GA003 or 5xx is transient, the rest is
/// Groww's refusal.
fn failure(answer: &Response, what: &str) -> ProviderError {
    let body: Value = answer.json().unwrap_or(Value::Null);
    let (code, message) = error_of(&body).unwrap_or_default();
    if answer.status == 429 {
        return transient(format!("{what}: Groww's rate limit{}", said(code, message)));
    }
    if answer.is_transient() || matches!(code, "GA000" | "GA003") {
        return transient(format!("{what}: Groww answered HTTP {}{}", answer.status, said(code, message)));
    }
    if code.is_empty() {
        return protocol(format!("{what}: HTTP {} without Groww's error fields", answer.status));
    }
    rejected(format!("{what}{}", said(code, message)))
}

/// `expiry` as unix seconds: epoch seconds or milliseconds, or an ISO local time in IST.
fn expiry(v: &Value) -> Option<i64> {
    let at = match v {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) if s.trim().bytes().all(|b| b.is_ascii_digit()) => s.trim().parse().ok()?,
        Value::String(s) => parse_local(s, if s.trim().ends_with('Z') { 0 } else { IST_MINUTES })?,
        _ => return None,
    };
    Some(if at > 100_000_000_000 { at / 1000 } else { at }).filter(|&at| at > now())
}

/// `Authorization`, `Accept` and `X-API-VERSION`, as every Groww call needs them.
fn groww(request: http::Request, bearer: &str) -> http::Request {
    request
        .header("Authorization", &format!("Bearer {bearer}"))
        .header("Accept", "application/json")
        .header("X-API-VERSION", "1.0")
}

impl TokenProvider for Groww {
    fn describe() -> ProviderInfo {
        let api = config::optional("api-root").ok().flatten().unwrap_or_else(|| DEFAULT_ROOT.into());
        Info::new("groww", env!("CARGO_PKG_VERSION"))
            .secret("api-key", "the TOTP API key (a long JWT) created on Groww's Trade API keys page")
            .secret("totp-secret", "the TOTP seed (base32) shown with that key")
            .alias("GROWW_TOTP_KEY")
            .optional("api-root", "API root URL (default https://api.groww.in)")
            .host_of(&api)
            .daily_cutoff(6, 0, 330)
            // A token got before 06:00 IST dies at the same 06:00 as the one it replaces.
            .refresh_ahead_secs(0)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        let totp = Totp::from_setting("totp-secret")?;
        let key = config::get("api-key")?;
        let api = root()?;
        let body: Value = totp.login(|otp| {
            let answer = groww(http::post(&format!("{api}/v1/token/api/access")), key.trim())
                .json(&json!({ "key_type": "totp", "totp": otp }))
                .send()?;
            let body: Value = answer.json().unwrap_or(Value::Null);
            let error = failure(&answer, "login");
            let passing = matches!(error, ProviderError::Transient(_));
            match error_of(&body) {
                None if answer.is_success() => Ok(Outcome::Done(answer.json::<Value>()?)),
                Some((code, m)) if !passing && m.to_ascii_lowercase().contains("totp") => {
                    Ok(Outcome::WrongCode(said(code, m).trim_start_matches(": ").to_string()))
                }
                Some(("GA005", m)) if !passing => Err(rejected(format!(
                    "login: {m} (GA005): check the setting `api-key` (Groww's TOTP API key)"
                ))),
                _ => Err(error),
            }
        })?;
        // The documented answer is bare; a wrapped one carries it in `payload` or `response`.
        let inner =
            ["payload", "response"].iter().map(|k| &body[*k]).find(|v| v.is_object()).unwrap_or(&body);
        let token = inner["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| protocol("login: the answer has no token"))?;
        let mut token = Token::new(token).with_expiry(expiry(&inner["expiry"])).with_jwt_claims();
        token.user_id = token.user_id.filter(|sub| !sub.trim_start().starts_with('{'));
        Ok(token)
    }

    fn validate(token: Token) -> Result<()> {
        let api = root()?;
        let answer = groww(http::get(&format!("{api}/v1/user/detail")), &token.access_token).send()?;
        let body: Value = answer.json().unwrap_or(Value::Null);
        if answer.is_success() && body["status"] == "SUCCESS" && body["payload"].is_object() {
            return Ok(());
        }
        Err(failure(&answer, "user detail"))
    }

    fn revoke(_token: Token) -> Result<()> {
        Err(unsupported(
            "logout at Groww (it has no logout endpoint: tokens are revoked on its Trade API keys page; \
             each ends at 06:00 IST)",
        ))
    }
}

tokenhost_sdk::register_provider!(Groww);
