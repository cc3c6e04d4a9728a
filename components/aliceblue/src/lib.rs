//! Alice Blue (ANT Open API). There is no refresh token and no login without a person: the
//! account holder logs in once a trading day in a browser, and the provider exchanges what
//! Alice Blue sends back for the session.
//!
//! - Login page: `{login-root}/?appcode=<app-code>`. It takes no redirect and no state: Alice
//!   Blue sends the browser to the redirect registered with the app, with `authCode` and
//!   `userId`. tokenhost's one-time start page (a cookie) stands in for the missing state.
//! - Exchange: `POST {api-root}/open-api/od/v1/vendor/getUserDetails` with the JSON
//!   `{"checkSum": sha256(userId + authCode + api-secret)}` (lower-case hex), computed here;
//!   the answer `{"stat":"Ok","userSession","clientId"}` gives the token and the user.
//! - Errors: `{"stat":"Not_ok","emsg"}`, under HTTP 200 as well as a 4xx, so `stat` decides,
//!   not the status. "Enable/Login with TOTP, to create the session." means the account holder
//!   has to log in to Alice Blue's web or app with TOTP first that day.
//!
//! UNCONFIRMED, so the safe choice:
//! - When sessions end: users report a reset around 06:00-07:00 IST. The earlier, 06:00 IST,
//!   is the cut-off, and a session got before it dies at the same hour (no refresh ahead).
//! - What `userSession` looks like: it is taken as opaque (JWT claims are read if it has
//!   them, and the 06:00 IST cut-off still caps them).
//! - The wording for a used or expired `authCode` and for a bad checksum: every `Not_ok`
//!   answer that does not name the TOTP or the app code refuses this login (rejected, never
//!   retried), with Alice Blue's own message.
//! - Whether the login page sends a refusal back: a redirect with an `error` or `emsg`
//!   parameter, or without `authCode` and `userId`, is a login not completed (rejected).
//! - Checking and ending a session: the only known endpoints (`customer/accountDetails`,
//!   `customer/logout`) belong to the legacy session of the old API; calling them with a new
//!   session could call a good token dead. So `check` and `logout` say they are unsupported
//!   and keep the token.

use serde_json::{Value, json};
use tokenhost_sdk::hash::sha256_hex_of;
use tokenhost_sdk::http::{self, Response, percent_encode};
use tokenhost_sdk::{
    Info, ProviderError, ProviderInfo, Result, Token, TokenProvider, config, config_error,
    interaction_required, protocol, rejected, transient, unsupported,
};

struct AliceBlue;

const ROOT: &str = "https://ant.aliceblueonline.com";
const EXCHANGE: &str = "session exchange";

fn root(key: &str) -> Result<String> {
    let root = config::or(key, ROOT)?;
    if http::authority_of(&root).is_none() {
        return Err(config_error(key, format!("must be a URL such as {ROOT}")));
    }
    Ok(http::trim_root(&root))
}

/// A failed exchange, judged by Alice Blue's `emsg`, phrased as what to do next.
fn failure(answer: &Response, body: Option<&Value>) -> ProviderError {
    let emsg = body.and_then(|b| b["emsg"].as_str()).unwrap_or_default();
    let said = format!("{EXCHANGE}: Alice Blue says \"{emsg}\" (HTTP {})", answer.status);
    let lower = emsg.to_ascii_lowercase();
    match body {
        _ if answer.is_transient() && emsg.is_empty() => {
            transient(format!("{EXCHANGE}: Alice Blue answered HTTP {}", answer.status))
        }
        _ if answer.is_transient() => transient(said),
        _ if answer.status == 404 => {
            config_error("api-root", format!("{EXCHANGE}: Alice Blue has no such path (HTTP 404)"))
        }
        Some(b) if b["stat"].is_string() && !emsg.is_empty() => {
            if lower.contains("totp") {
                interaction_required(
                    format!(
                        "{said}: log in to Alice Blue's web site or app with TOTP today, then run \
                         `tokenhost login` again"
                    ),
                    None,
                )
            } else if lower.contains("app code") || lower.contains("appcode") {
                config_error("app-code", format!("{said}; it must be the app code of your Alice Blue app"))
            } else if lower.contains("invalid input") || lower.contains("checksum") {
                rejected(format!("{said}; the checksum was refused: is api-secret the app's secret?"))
            } else {
                rejected(format!("{said}; log in again with `tokenhost login`"))
            }
        }
        _ => protocol(format!(
            "{EXCHANGE}: HTTP {} with a body that is not Alice Blue's answer",
            answer.status
        )),
    }
}

impl TokenProvider for AliceBlue {
    fn describe() -> ProviderInfo {
        let api = config::optional("api-root").ok().flatten().unwrap_or_else(|| ROOT.into());
        Info::new("aliceblue", env!("CARGO_PKG_VERSION"))
            .setting("app-code", "the app code of your Alice Blue API app")
            .alias("ALICE_APP_CODE")
            .alias("ALICEBLUE_APP_CODE")
            .secret("api-secret", "the app's API secret")
            .alias("ALICE_API_SECRET")
            .alias("ALICEBLUE_API_SECRET")
            .setting("redirect-uri", "the app's registered redirect URL, e.g. http://127.0.0.1:5055/callback")
            .alias("ALICE_REDIRECT_URI")
            .optional("login-root", "login page root URL (default https://ant.aliceblueonline.com)")
            .optional("api-root", "API root URL (default https://ant.aliceblueonline.com)")
            .host_of(&api)
            .daily_cutoff(6, 0, 330)
            // A session got early dies at the same 06:00 IST as the one it replaces.
            .refresh_ahead_secs(0)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        Err(interaction_required(
            "aliceblue needs a person to log in once a day (Alice Blue's Open API has no refresh \
             token and gives a session only after a browser login): run `tokenhost login`",
            None,
        ))
    }

    fn validate(_token: Token) -> Result<()> {
        Err(unsupported(
            "checking a session at aliceblue (the only known check belongs to the legacy API's \
             session; using it could call a good token dead)",
        ))
    }

    fn revoke(_token: Token) -> Result<()> {
        Err(unsupported(
            "logout at aliceblue (the only known logout belongs to the legacy API's session and \
             the new API documents none; the session ends at the daily reset)",
        ))
    }

    fn login_url(_redirect_uri: String, _state: String) -> Result<String> {
        // Alice Blue takes neither: it sends the browser to the app's registered redirect.
        let code = config::get("app-code")?;
        Ok(format!("{}/?appcode={}", root("login-root")?, percent_encode(&code)))
    }

    fn complete_login(params: Vec<(String, String)>) -> Result<Token> {
        let given = |name: &str| http::param(&params, name).filter(|v| !v.trim().is_empty());
        if let Some(said) = given("emsg").or_else(|| given("error")) {
            return Err(rejected(format!("the login at Alice Blue was not completed: {said}")));
        }
        let (Some(code), Some(user)) = (given("authCode"), given("userId")) else {
            return Err(rejected(
                "Alice Blue sent the browser back without authCode and userId: the login was not \
                 completed; log in again",
            ));
        };
        let secret = config::get("api-secret")?;
        let answer = http::post(&format!("{}/open-api/od/v1/vendor/getUserDetails", root("api-root")?))
            .header("Accept", "application/json")
            .json(&json!({ "checkSum": sha256_hex_of(&[user, code, &secret]) }))
            .send()?;
        let body: Option<Value> = answer.json().ok();
        let session = body
            .as_ref()
            .filter(|b| answer.is_success() && b["stat"] == "Ok")
            .and_then(|b| b["userSession"].as_str())
            .filter(|s| !s.is_empty());
        let Some(session) = session else { return Err(failure(&answer, body.as_ref())) };
        let client = body.as_ref().and_then(|b| b["clientId"].as_str()).filter(|c| !c.is_empty());
        Ok(Token::new(session).with_user(client.unwrap_or(user)).with_jwt_claims())
    }
}

tokenhost_sdk::register_provider!(AliceBlue);
