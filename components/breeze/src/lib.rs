//! ICICI Direct Breeze. There is no refresh token and no unattended login: once a day the
//! account holder logs in (password and OTP) at `{api-root}/apiuser/login?api_key=<key>`, and
//! ICICI's page POSTs the session key to the app's registered redirect URL as the form field
//! `API_Session`. Breeze sends no `state` back, so the login URL carries none (tokenhost's own
//! start page and cookie tie the answer to the login).
//!
//! - Exchange: `GET {api-root}/breezeapi/api/v1/customerdetails` with a JSON *body*
//!   `{"SessionToken":<API_Session>,"AppKey":<api-key>}` gives `Success.session_token`
//!   (base64 of `userid:session_key`, sent as `X-SessionToken` by later calls: the stored
//!   token) and `Success.idirect_userid` (the user).
//! - Expiry: "valid for 24hrs or before midnight, whichever is earlier": the token says
//!   issue + 24 h and the daily cut-off at 00:00 IST caps it.
//! - Check: a signed `GET {api-root}/breezeapi/api/v1/funds` with the body `{}`:
//!   `X-Checksum: token <sha256(timestamp + body + api-secret)>`, `X-Timestamp` in UTC
//!   (`YYYY-MM-DDTHH:MM:SS.000Z`), `X-AppKey`, `X-SessionToken`. So a wrong `api-secret`
//!   shows at `tokenhost check`, not at login (the exchange does not use it).
//! - Errors: `{"Success":null,"Status":<code>,"Error":"..."}`, often under HTTP 200 and with
//!   `Status` 500 for refusals ("Resource not available." is an expired session): the message
//!   decides, not the status.
//!
//! UNCONFIRMED, so the safe choices: ICICI documents no logout endpoint, so `logout` says so
//! and keeps the token (it dies at midnight IST). ICICI's wording for a bad checksum is not
//! known: any error naming the checksum is taken as a refusal pointing at `api-secret`. An
//! unknown error with `Status` 5xx is taken as passing trouble (the stored token is kept), any
//! other unknown error as a refusal. A cancelled login has no documented answer: a redirect
//! without `API_Session` (or with an `error`) is refused without calling ICICI.

use serde_json::{Value, json};
use tokenhost_sdk::hash::sha256_hex_of;
use tokenhost_sdk::http::{self, Response, percent_encode};
use tokenhost_sdk::{
    Info, ProviderInfo, Result, Token, TokenProvider, config, config_error, interaction_required, protocol,
    rejected, transient, unsupported,
};

struct Breeze;

const DEFAULT_ROOT: &str = "https://api.icicidirect.com";
/// "valid for 24hrs or before midnight, whichever is earlier"; the cut-off gives midnight.
const SESSION_SECS: i64 = 86_400;

fn root() -> Result<String> {
    let root = config::or("api-root", DEFAULT_ROOT)?;
    if http::authority_of(&root).is_none() {
        return Err(config_error("api-root", "must be a URL such as https://api.icicidirect.com"));
    }
    Ok(http::trim_root(&root))
}

/// The `Success` of a Breeze answer, or the error it carries, judged by its message.
fn envelope(answer: &Response, what: &str) -> Result<Value> {
    let body: Option<Value> = answer.json().ok().filter(|b: &Value| b.get("Status").is_some());
    if answer.is_transient() {
        let said = body.as_ref().and_then(|b| b["Error"].as_str()).unwrap_or("no Breeze message");
        return Err(transient(format!("{what}: Breeze answered HTTP {} ({said})", answer.status)));
    }
    if answer.status == 404 {
        return Err(config_error("api-root", format!("{what}: the broker has no such path (HTTP 404)")));
    }
    let Some(mut body) = body else {
        return Err(protocol(format!("{what}: HTTP {} with a body not Breeze's JSON", answer.status)));
    };
    let status = body["Status"].as_i64().unwrap_or(0);
    if answer.is_success() && status == 200 && body["Error"].is_null() && !body["Success"].is_null() {
        return Ok(body["Success"].take());
    }
    let message = body["Error"].as_str().unwrap_or("no message").trim().to_string();
    let said = format!("{what}: {message} (Status {status}, HTTP {})", answer.status);
    let lower = message.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&["public key does not exist"]) {
        return Err(config_error("api-key", format!("{said}; api-key must be the app's key from ICICI")));
    }
    if has(&["invalid session", "not available", "cannot be empty", "session key is expired"]) {
        return Err(rejected(format!("{said}; the session is over: log in again with `tokenhost login`")));
    }
    if has(&["checksum"]) {
        return Err(rejected(format!("{said}; api-secret must be the app's secret key from ICICI")));
    }
    if status == 429 || status >= 500 {
        return Err(transient(said));
    }
    Err(rejected(said))
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` (UTC) for unix seconds, as Breeze's `X-Timestamp`.
fn utc_timestamp(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

impl TokenProvider for Breeze {
    fn describe() -> ProviderInfo {
        let root = config::optional("api-root").ok().flatten().unwrap_or_else(|| DEFAULT_ROOT.into());
        Info::new("breeze", env!("CARGO_PKG_VERSION"))
            .setting("api-key", "the app's API key (AppKey) from ICICI's Breeze app page")
            .alias("BREEZE_API_KEY")
            .alias("ICICI_API_KEY")
            .secret("api-secret", "the app's secret key, which signs every call after login")
            .alias("BREEZE_API_SECRET")
            .alias("BREEZE_SECRET_KEY")
            .setting("redirect-uri", "the app's registered redirect URL, e.g. http://127.0.0.1:5055/callback")
            .alias("BREEZE_REDIRECT_URI")
            .optional("api-root", "login page and API root URL (default https://api.icicidirect.com)")
            .host_of(&root)
            .daily_cutoff(0, 0, 330)
            // A session got early dies at the same midnight IST as the one it replaces.
            .refresh_ahead_secs(0)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        Err(interaction_required(
            "breeze needs a person to log in once a day (ICICI gives a session key only after a \
             browser login with password and OTP, and it ends at midnight IST): run `tokenhost login`",
            None,
        ))
    }

    fn validate(token: Token) -> Result<()> {
        let body = "{}";
        let stamp = utc_timestamp(tokenhost_sdk::now());
        let checksum = sha256_hex_of(&[&stamp, body, &config::get("api-secret")?]);
        let answer = http::get(&format!("{}/breezeapi/api/v1/funds", root()?))
            .header("Content-Type", "application/json")
            .header("X-Checksum", &format!("token {checksum}"))
            .header("X-Timestamp", &stamp)
            .header("X-AppKey", &config::get("api-key")?)
            .header("X-SessionToken", &token.access_token)
            .body(body)
            .send()?;
        envelope(&answer, "funds").map(|_| ())
    }

    fn revoke(_token: Token) -> Result<()> {
        Err(unsupported(
            "logout at breeze (ICICI documents no logout endpoint; the session ends at midnight IST)",
        ))
    }

    fn login_url(_redirect_uri: String, _state: String) -> Result<String> {
        // ICICI sends no state back and redirects to the URL registered with the app.
        Ok(format!("{}/apiuser/login?api_key={}", root()?, percent_encode(&config::get("api-key")?)))
    }

    fn complete_login(params: Vec<(String, String)>) -> Result<Token> {
        if let Some(error) = http::param(&params, "error") {
            return Err(rejected(format!("the login was not completed: {error}")));
        }
        let session = http::param(&params, "API_Session").map(str::trim).filter(|s| !s.is_empty());
        let session = session.ok_or_else(|| rejected("the login was not completed: no API_Session"))?;
        let now = tokenhost_sdk::now();
        let answer = http::get(&format!("{}/breezeapi/api/v1/customerdetails", root()?))
            .json(&json!({ "SessionToken": session, "AppKey": config::get("api-key")? }))
            .send()?;
        let success = envelope(&answer, "customer details")?;
        let token = success["session_token"].as_str().filter(|t| !t.is_empty());
        let token = token.ok_or_else(|| protocol("customer details: the answer has no session_token"))?;
        let mut token = Token::new(token).with_issued_at(Some(now)).with_expiry(Some(now + SESSION_SECS));
        if let Some(user) = success["idirect_userid"].as_str().filter(|u| !u.is_empty()) {
            token = token.with_user(user);
        }
        Ok(token)
    }
}

tokenhost_sdk::register_provider!(Breeze);
