//! Kotak Neo (Trade API v2, 2025+): a fresh trade session every day with no person present, from
//! the access token of the Neo app, the mobile number, the UCC, a TOTP code and the MPIN. Once,
//! by a person: create the access token in the Neo app (Invest → Trade API) and register TOTP.
//!
//! - Step 1: `POST {login-root}/login/1.0/tradeApiLogin` with `Authorization: <access token>`
//!   (no `Bearer`), `neo-fin-key: neotradeapi` and `{"mobileNumber","ucc","totp"}` gives a view
//!   token and sid. Step 2: `POST {login-root}/login/1.0/tradeApiValidate` with those as `Auth`
//!   and `sid` and `{"mpin"}` gives the trade token, the trade `sid` and the `baseUrl` of the
//!   account's data centre. The token is the trade token; `baseUrl` is an extra and `sid` a
//!   secret one, since every later call goes to `{baseUrl}/...` with `Auth` and `Sid`.
//! - Check: `POST {baseUrl}/quick/user/limits` with `accept`, `Sid`, `Auth`, `neo-fin-key`
//!   (and `Authorization: <access token>`, as order calls take) and the form body
//!   `jData={"seg":"ALL","exch":"ALL","prod":"ALL"}`, as in Kotak's Limits page and its SDK;
//!   success is `"stat":"Ok"`, and 403 "Invalid session" means the session has ended.
//! - Errors: `{"error":[{"code","message"}]}` (also `errMsg`, `emsg`, `message`), sometimes
//!   under HTTP 200 (the SDK says so for an invalid UCC): the body is judged, not the status.
//!
//! UNCONFIRMED, so the safe choice:
//! - The words of a wrong-TOTP answer: a step-1 refusal whose message names the TOTP (and is
//!   not a missing field) counts as a wrong code, retried once with the next window's code; any
//!   other is the access token, mobile number or UCC (rejected, never retried). A wrong MPIN is
//!   rejected and never retried.
//! - When sessions end: the cut-off is declared at 00:00 IST, so a fresh session is made before
//!   each trading day (a JWT `exp` earlier than that wins). Resetting the access token in the Neo
//!   app ends every session at once (Kotak's FAQ); the next login needs the new one.
//! - The check: no profile endpoint is documented, so the limits call stands in for one. (A copy
//!   of Kotak's docs puts it under `{baseUrl}/Orders/2.0/`; Kotak's current Limits page and its
//!   SDK, `PROD_URL["limits"]`, use `{baseUrl}/quick/user/limits`, which is followed here.)
//! - The hosts of `baseUrl`: declared are the data centres Kotak's SDK names (mis, cis, e21,
//!   e22, e41, e43 .kotaksecurities.com). A `baseUrl` elsewhere is denied by the host with the
//!   `allow_hosts` line to add.
//! - Logout: the SDK's server call is commented out and its route is unconfirmed, so `logout`
//!   says so and keeps the session.

use serde_json::{Value, json};
use tokenhost_sdk::http::{self, Response};
use tokenhost_sdk::totp::{Outcome, Totp};
use tokenhost_sdk::{
    Info, ProviderError, ProviderInfo, Result, Token, TokenProvider, config, config_error, protocol,
    rejected, transient, unsupported,
};

struct KotakNeo;

const LOGIN_ROOT: &str = "https://mis.kotaksecurities.com";
const FIN_KEY: &str = "neotradeapi";
/// The data centres a `baseUrl` is on, as Kotak's SDK lists them.
const DATA_CENTRES: [&str; 6] = ["mis", "cis", "e21", "e22", "e41", "e43"];

/// Kotak's code and message, wherever the answer put them.
fn kotak_error(answer: &Response) -> (String, Option<String>) {
    let body: Value = answer.json().unwrap_or(Value::Null);
    let first = &body["error"][0];
    let message = [&first["message"], &body["errMsg"], &body["emsg"], &body["message"], &body["error"]]
        .into_iter()
        .find_map(|v| v.as_str().map(str::to_string));
    let code = [&first["code"], &body["code"], &body["stCode"], &body["errCode"]]
        .into_iter()
        .find_map(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())))
        .unwrap_or_else(|| format!("HTTP {}", answer.status));
    (code, message)
}

/// The broker's error, judged: a rate limit, 5xx or "try after" is transient, the rest a refusal.
fn failure(answer: &Response, what: &str) -> ProviderError {
    let (code, message) = kotak_error(answer);
    if answer.is_transient() {
        let why = message.unwrap_or_else(|| "no message".into());
        return transient(format!("{what}: Kotak answered HTTP {} ({why})", answer.status));
    }
    match message {
        None => protocol(format!("{what}: HTTP {} without Kotak's error fields", answer.status)),
        Some(m) if m.to_ascii_lowercase().contains("try after") => transient(format!("{what}: {m} ({code})")),
        Some(m) => rejected(format!("{what}: {m} ({code})")),
    }
}

/// The `data` of a login step that succeeded (token and sid), else the broker's refusal.
fn session(answer: &Response, what: &str) -> Result<Value> {
    let data = answer.json::<Value>().map(|mut b| b["data"].take()).unwrap_or_default();
    let ok = answer.is_success() && data["status"].as_str().is_none_or(|s| s == "success");
    if ok && ["token", "sid"].iter().all(|k| data[*k].as_str().is_some_and(|v| !v.is_empty())) {
        return Ok(data);
    }
    Err(failure(answer, what))
}

impl TokenProvider for KotakNeo {
    fn describe() -> ProviderInfo {
        let login = config::optional("login-root").ok().flatten().unwrap_or_else(|| LOGIN_ROOT.into());
        let info = Info::new("kotakneo", env!("CARGO_PKG_VERSION"))
            .secret("access-token", "the access token from the Neo app (Invest > Trade API > API Dashboard)")
            .alias("KOTAK_ACCESS_TOKEN")
            .setting("mobile-number", "the registered mobile number with its country code: +91XXXXXXXXXX")
            .alias("KOTAK_MOBILE_NUMBER")
            .setting("ucc", "your UCC (Unique Client Code), under Profile in the Neo app")
            .alias("KOTAK_UCC")
            .secret("mpin", "your Neo MPIN")
            .alias("KOTAK_MPIN")
            .secret("totp-secret", "the TOTP key (base32) shown when TOTP was registered for the Trade API")
            .alias("KOTAK_TOTP_SECRET")
            .optional("login-root", "login root URL (default https://mis.kotaksecurities.com)")
            .host_of(&login);
        DATA_CENTRES
            .iter()
            .fold(info, |i, dc| i.host(&format!("{dc}.kotaksecurities.com")))
            .daily_cutoff(0, 0, 330)
            // A token got before midnight dies at the same midnight as the one it replaces.
            .refresh_ahead_secs(0)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        let totp = Totp::from_setting("totp-secret")?;
        let access = config::get("access-token")?;
        let (mobile, ucc, mpin) = (config::get("mobile-number")?, config::get("ucc")?, config::get("mpin")?);
        let login = http::trim_root(&config::or("login-root", LOGIN_ROOT)?);
        if http::authority_of(&login).is_none() {
            return Err(config_error("login-root", format!("must be a URL such as {LOGIN_ROOT}")));
        }
        let post = |path: &str| {
            http::post(&format!("{login}/login/1.0/{path}"))
                .header("Authorization", &access)
                .header("neo-fin-key", FIN_KEY)
        };
        let view = totp.login(|code| {
            let answer = post("tradeApiLogin")
                .json(&json!({"mobileNumber": mobile, "ucc": ucc, "totp": code}))
                .send()?;
            // A refusal that names the TOTP is a wrong code; a missing field is not.
            let message = kotak_error(&answer).1.unwrap_or_default();
            let wrong = message.to_ascii_lowercase().contains("totp") && !message.contains("required");
            match session(&answer, "login (TOTP step)") {
                Ok(data) => Ok(Outcome::Done(data)),
                Err(_) if wrong && answer.status < 429 => Ok(Outcome::WrongCode(message)),
                Err(e) => Err(e),
            }
        })?;
        let answer = post("tradeApiValidate")
            .header("sid", view["sid"].as_str().unwrap_or_default())
            .header("Auth", view["token"].as_str().unwrap_or_default())
            .json(&json!({"mpin": mpin}))
            .send()?;
        let trade = session(&answer, "login (MPIN step)")?;
        if trade["ucc"].as_str().is_some_and(|u| !u.eq_ignore_ascii_case(&ucc)) {
            return Err(config_error("ucc", "Kotak logged in another UCC"));
        }
        let base = trade["baseUrl"]
            .as_str()
            .filter(|b| http::authority_of(b).is_some())
            .ok_or_else(|| protocol("login (MPIN step): the answer has no baseUrl"))?;
        Ok(Token::new(trade["token"].as_str().unwrap_or_default())
            .with_jwt_claims()
            .with_user(ucc)
            .with_extra("baseUrl", http::trim_root(base))
            .with_secret_extra("sid", trade["sid"].as_str().unwrap_or_default())
            .with_extra("dataCenter", trade["dataCenter"].as_str().unwrap_or_default()))
    }

    fn validate(token: Token) -> Result<()> {
        let (Some(base), Some(sid)) = (token.extra("baseUrl"), token.extra("sid")) else {
            return Err(rejected("the stored session has no baseUrl or sid; the next login brings both"));
        };
        let answer = http::post(&format!("{}/quick/user/limits", http::trim_root(base)))
            .header("accept", "application/json")
            .header("Sid", sid)
            .header("Auth", &token.access_token)
            .header("neo-fin-key", FIN_KEY)
            .header("Authorization", &config::get("access-token")?)
            .form(&[("jData", r#"{"seg":"ALL","exch":"ALL","prod":"ALL"}"#)])
            .send()?;
        if answer.is_success() && answer.json::<Value>().is_ok_and(|b| b["stat"] == "Ok") {
            return Ok(());
        }
        Err(failure(&answer, "limits"))
    }

    fn revoke(_token: Token) -> Result<()> {
        Err(unsupported(
            "logout at Kotak Neo (its SDK's server logout is commented out and the route is unconfirmed; \
             the session ends at the daily cut-off, or at once when the access token is reset in the Neo app)",
        ))
    }
}

tokenhost_sdk::register_provider!(KotakNeo);
