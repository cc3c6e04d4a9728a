//! 5paisa (Xstream OpenAPI): a fresh access token every day with no person present, from the API
//! app's user key, user id and encryption key, the login id (client code, email or mobile), the
//! PIN and a TOTP code. "Only available to Individual Users".
//!
//! - Step 1: `POST {api-root}/VendorsAPI/Service1.svc/TOTPLogin` with
//!   `{"head":{"Key"},"body":{"Email_ID","TOTP","PIN"}}` gives `body.RequestToken` and
//!   `body.ClientCode` when `body.Status` is 0 (the code is sent as a JSON string).
//! - Step 2: `POST .../GetAccessToken` with `{"head":{"Key"},"body":{"RequestToken","EncryKey",
//!   "UserId"}}` gives `body.AccessToken` (a JWT), `body.ClientCode` and `body.Message` "Success".
//!   The token's user is that ClientCode (else step 1's), which the check sends: the login id
//!   may be an email (`client-code`, also read from `FIVEPAISA_EMAIL`) or a mobile number.
//! - Errors come under HTTP 200 as `body.Status` and `body.Message`: -1 "Server unable to
//!   process request" (transient), 1 "Invalid login/password" (rejected), 2 undocumented.
//! - Expiry: "Token expires every day at 11:59 PM", so a daily cut-off at 23:59 IST, which also
//!   caps the JWT's `exp` (the JWT's `exp` counts when it is earlier). A token got early dies at
//!   the same 23:59, so it is not fetched ahead.
//!
//! UNCONFIRMED, so the safe choices:
//! - Which Status and Message a wrong TOTP code gets: a user's report shows Status 2 "Invalid
//!   TOTP" (py5paisa issue 261). Only a refusal whose message names the TOTP counts as a wrong
//!   code (retried once with the next window's code); any other is the login id, the PIN or the
//!   key (rejected, never retried).
//! - The check: `POST .../V4/Margin` with `Authorization: bearer <token>` and
//!   `{"head":{"key"},"body":{"ClientCode"}}`, known only from third-party clients of the API.
//!   Status 0 with an `EquityMargin` array is a live token; Status -1 is transient; any other
//!   refusal (Status 9 "Invalid Session", or a `head.statusDescription` such as "403 : Access
//!   denied." under `"body":null`) means it is not.
//! - Which messages step 2 gives for a wrong encryption key or user id: step 1 passed, so any
//!   refusal there is rejected with the broker's words and a pointer to those two settings.
//! - 5paisa documents no logout endpoint, so `logout` says so and keeps the token.
//! - The rate limit's answer is not documented: HTTP 429, or a message saying to try again
//!   later, is transient.
//! - py5paisa's own names `USER_KEY`, `USER_ID` and `ENCRYPTION_KEY` are too generic to read as
//!   whole variables (another program's `ENCRYPTION_KEY` would be sent to 5paisa); the
//!   `FIVEPAISA_` names its users write are this provider's own.

use serde_json::{Value, json};
use tokenhost_sdk::http;
use tokenhost_sdk::totp::{Outcome, Totp};
use tokenhost_sdk::{
    Info, ProviderError, ProviderInfo, Result, Token, TokenProvider, config, config_error, protocol,
    rejected, transient, unsupported,
};

struct FivePaisa;

const DEFAULT_ROOT: &str = "https://Openapi.5paisa.com";

fn root() -> Result<String> {
    let root = config::or("api-root", DEFAULT_ROOT)?;
    if http::authority_of(&root).is_none() {
        return Err(config_error("api-root", format!("must be a URL such as {DEFAULT_ROOT}")));
    }
    Ok(http::trim_root(&root))
}

/// A number sent as a number or as a string (`"status":"-2"`).
fn number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The Status and Message of an answer: the body's, else the head's (an answer refused before
/// its body is built has `"body":null`).
fn status(answer: &Value) -> (i64, String) {
    let (body, head) = (&answer["body"], &answer["head"]);
    let (code, message) = if body.get("Status").is_some() || body.get("Message").is_some() {
        (&body["Status"], &body["Message"])
    } else {
        (&head["status"], &head["statusDescription"])
    };
    let message = message.as_str().filter(|m| !m.trim().is_empty()).unwrap_or("no message");
    (number(code).unwrap_or(0), message.to_string())
}

/// 5paisa's refusal, judged: Status -1 or "try again later" is transient, the rest is final.
fn refusal(code: i64, message: &str, what: &str) -> ProviderError {
    let m = message.to_ascii_lowercase();
    if code == -1 || m.contains("try after") || m.contains("try again") {
        return transient(format!("{what}: {message} (Status {code})"));
    }
    rejected(format!("{what}: {message} (Status {code})"))
}

/// POSTs `{"head","body"}` to `{api-root}/VendorsAPI/Service1.svc/{path}` and returns the whole
/// answer when it came with a 2xx; its Status is for the caller to judge.
fn call(path: &str, head: Value, body: Value, bearer: Option<&str>, what: &str) -> Result<Value> {
    let mut request = http::post(&format!("{}/VendorsAPI/Service1.svc/{path}", root()?))
        .header("Accept", "application/json")
        .json(&json!({ "head": head, "body": body }));
    if let Some(token) = bearer {
        request = request.header("Authorization", &format!("bearer {token}"));
    }
    let answer = request.send()?;
    let http = answer.status;
    if http == 429 {
        return Err(transient(format!("{what}: 5paisa's rate limit (HTTP 429)")));
    }
    let parsed = answer.json::<Value>().ok().filter(|v| v["body"].is_object() || v["head"].is_object());
    match parsed {
        Some(reply) if answer.is_success() => Ok(reply),
        _ if answer.is_transient() => Err(transient(format!("{what}: 5paisa answered HTTP {http}"))),
        Some(reply) => {
            let (code, message) = status(&reply);
            Err(refusal(code, &format!("HTTP {http}: {message}"), what))
        }
        None => Err(protocol(format!("{what}: HTTP {http} without 5paisa's head and body"))),
    }
}

impl TokenProvider for FivePaisa {
    fn describe() -> ProviderInfo {
        let root = config::optional("api-root").ok().flatten().unwrap_or_else(|| DEFAULT_ROOT.into());
        Info::new("fivepaisa", env!("CARGO_PKG_VERSION"))
            .setting("user-key", "the API app's user key (USER_KEY in py5paisa)")
            .setting("user-id", "the API app's user id (USER_ID in py5paisa)")
            .secret("encryption-key", "the API app's encryption key (ENCRYPTION_KEY in py5paisa)")
            .setting("client-code", "what you log in to 5paisa with: client code, email or mobile number")
            .alias("email")
            .secret("pin", "your 5paisa login PIN")
            .secret("totp-secret", "the TOTP key (base32) shown when TOTP was set up for 5paisa")
            .optional("api-root", "API root URL (default https://Openapi.5paisa.com)")
            .host_of(&root)
            .daily_cutoff(23, 59, 330)
            // A token got early dies at the same 23:59 IST as the one it replaces.
            .refresh_ahead_secs(0)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        let totp = Totp::from_setting("totp-secret")?;
        let (key, login, pin) = (config::get("user-key")?, config::get("client-code")?, config::get("pin")?);
        let (encryption_key, user_id) = (config::get("encryption-key")?, config::get("user-id")?);
        let head = json!({ "Key": key });
        let step1 = totp.login(|code| {
            let body = json!({ "Email_ID": login, "TOTP": code, "PIN": pin });
            let answer = call("TOTPLogin", head.clone(), body, None, "TOTP login")?;
            let (status, message) = status(&answer);
            match answer["body"]["RequestToken"].as_str().filter(|t| !t.is_empty()) {
                Some(_) if status == 0 => Ok(Outcome::Done(answer["body"].clone())),
                _ if status == 0 => Err(protocol("TOTP login: Status 0 without a RequestToken")),
                _ if status != -1 && message.to_ascii_lowercase().contains("totp") => {
                    Ok(Outcome::WrongCode(format!("{message} (Status {status})")))
                }
                _ => Err(refusal(status, &message, "TOTP login")),
            }
        })?;
        let request_token = step1["RequestToken"].as_str().unwrap_or_default();
        let body = json!({ "RequestToken": request_token, "EncryKey": encryption_key, "UserId": user_id });
        let answer = call("GetAccessToken", head, body, None, "access token")?;
        let Some(token) = answer["body"]["AccessToken"].as_str().filter(|t| !t.is_empty()) else {
            let (status, message) = status(&answer);
            return Err(match refusal(status, &message, "access token") {
                _ if status == 0 => protocol("access token: Status 0 without an AccessToken"),
                ProviderError::Rejected(m) => rejected(format!("{m}: check `encryption-key` and `user-id`")),
                other => other,
            });
        };
        let code = |v: &Value| v.as_str().filter(|c| !c.is_empty()).map(str::to_string);
        let client = code(&answer["body"]["ClientCode"]).or(code(&step1["ClientCode"])).unwrap_or(login);
        Ok(Token::new(token).with_jwt_claims().with_user(client.clone()).with_extra("ClientCode", client))
    }

    fn validate(token: Token) -> Result<()> {
        let client = token.extra("ClientCode").or(token.user_id.as_deref()).unwrap_or_default().to_string();
        let head = json!({ "key": config::get("user-key")? });
        let answer =
            call("V4/Margin", head, json!({ "ClientCode": client }), Some(&token.access_token), "margin")?;
        let (status, message) = status(&answer);
        match status {
            0 if answer["body"]["EquityMargin"].is_array() => Ok(()),
            0 => Err(protocol("margin: Status 0 without EquityMargin")),
            _ => Err(refusal(status, &message, "margin")),
        }
    }

    fn revoke(_token: Token) -> Result<()> {
        // None is documented: a token ends at 23:59 IST.
        Err(unsupported("logout at 5paisa (it documents no logout endpoint; the token ends at 23:59 IST)"))
    }
}

tokenhost_sdk::register_provider!(FivePaisa);
