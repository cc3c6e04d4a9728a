//! Finvasia Shoonya (NorenAPI), through its OAuth login: once a trading day the account holder
//! logs in at Shoonya's page in a browser, Shoonya sends the browser back to the app's
//! registered redirect URL with a single-use `code`, and the provider trades it for a token.
//!
//! - Login page: `{api-root}/OAuthlogin/authorize/oauth?client_id=<client-id>`. The redirect
//!   URL is the one registered with the app at Shoonya; it is not sent.
//! - Exchange: `POST {api-root}/NorenWClientAPI/GenAcsTok`, `Content-Type: text/plain`, body
//!   `jData={"code","checksum","uid"}`: the literal `jData=` and the JSON after it, not
//!   url-encoded. `checksum` is the lower-case hex sha256(client-id + secret-key + code),
//!   computed here. Without `uid` Shoonya answers `Invalid Input : INVALID_VERIFIER`. The answer
//!   has `access_token`, `refresh_token`, `expires_in`, `USERID`/`uid` and `actid`; `stat` may be
//!   absent, so `access_token` decides. `actid` is kept as an extra, the refresh token as the
//!   secret extra `refresh-token`.
//! - Later calls: `Authorization: Bearer <access_token>` and a `jData=` body against
//!   `/NorenWClientAPI/*`. Check: `UserDetails {"uid"}`; logout: `Logout {"ordersource":"API","uid"}`.
//! - Errors: `{"stat":"Not_Ok","emsg"}`, under HTTP 200 as often as not, so the body decides.
//!   "Session Expired :  Invalid Session Key" (two spaces) is a dead token; "Invalid Input :
//!   Password Expired" / "Change Password" need the person at Shoonya's site.
//!
//! UNCONFIRMED, so the safe choices:
//! - Only the OAuth login is used. Whether the legacy `QuickAuth` (password + TOTP, no person
//!   present) still works for Shoonya's retail users after the OAuth migration is unconfirmed,
//!   so `refresh` asks for a person instead of relying on it.
//! - Whether the login page sends a `state` back: none is sent; tokenhost's one-time start page
//!   (a cookie in the browser that opened it) ties the answer to the login it started.
//! - `expires_in` is documented as the epoch second of the expiry; a small number (below 10^9)
//!   is read as a lifetime in seconds from now, a huge one (10^11 and up) as epoch milliseconds.
//! - Tokens die daily at a clock time nobody documents: no daily cut-off is declared, so the
//!   expiry is Shoonya's `expires_in` (or a JWT's `exp`, should the token be one).
//! - Shoonya's use of the refresh token (a Noren variant's `RefreshToken`) is unconfirmed: it is
//!   kept, never used.
//! - The check and logout routes are the Noren ones (Zebu's docs). Only "Session Expired" marks
//!   a token dead; any other answer (404, an unknown error) counts as not understood, so a wrong
//!   guess never throws a good token away. A logout answered "Session Expired" had nothing left
//!   to end: the token is forgotten all the same.

use serde_json::{Value, json};
use tokenhost_sdk::hash::sha256_hex_of;
use tokenhost_sdk::http::{self, Response, percent_encode};
use tokenhost_sdk::{
    Info, ProviderError, ProviderInfo, Result, Token, TokenProvider, config, config_error,
    interaction_required, protocol, rejected, transient,
};

struct Shoonya;

const DEFAULT_ROOT: &str = "https://api.shoonya.com";

fn root() -> Result<String> {
    let root = config::or("api-root", DEFAULT_ROOT)?;
    if http::authority_of(&root).is_none() {
        return Err(config_error("api-root", format!("must be a URL such as {DEFAULT_ROOT}")));
    }
    Ok(http::trim_root(&root))
}

/// `POST {api-root}/NorenWClientAPI/{name}` with the `jData=<JSON>` body Noren reads, and the
/// Bearer token once there is one.
fn call(name: &str, data: &Value, token: Option<&str>) -> Result<Response> {
    let mut request = http::post(&format!("{}/NorenWClientAPI/{name}", root()?))
        .header("Content-Type", "text/plain")
        .header("Accept", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    request.body(format!("jData={data}")).send()
}

/// Whether Shoonya said `"stat":"Ok"`.
fn ok(answer: &Response) -> bool {
    answer.is_success() && answer.json::<Value>().is_ok_and(|b| b["stat"] == "Ok")
}

/// What every call makes of a failed answer: a 5xx or a rate limit passes, a body that is not
/// Shoonya's is not understood, "Session Expired" is a dead token; else Shoonya's `emsg`.
fn judge(answer: &Response, what: &str) -> std::result::Result<String, ProviderError> {
    let said = answer.json::<Value>().ok().and_then(|b| b["emsg"].as_str().map(str::to_string));
    if answer.is_transient() {
        let said = said.map(|m| format!(" ({m})")).unwrap_or_default();
        return Err(transient(format!("{what}: Shoonya answered HTTP {}{said}", answer.status)));
    }
    match said {
        None => {
            Err(protocol(format!("{what}: HTTP {} with a body that is not Shoonya's JSON", answer.status)))
        }
        Some(m) if m.trim_start().to_ascii_lowercase().starts_with("session expired") => {
            Err(rejected(format!("{what}: {m} (the session has ended; run `tokenhost login`)")))
        }
        Some(m) => Ok(m),
    }
}

/// A check or logout that did not succeed: a dead token is `rejected`, anything else not understood.
fn session_error(answer: &Response, what: &str) -> ProviderError {
    match judge(answer, what) {
        Ok(m) => protocol(format!("{what}: {m} (HTTP {})", answer.status)),
        Err(e) => e,
    }
}

/// A refused code exchange, phrased as what to do next.
fn exchange_error(answer: &Response) -> ProviderError {
    let what = "code exchange";
    if answer.status == 404 {
        return config_error("api-root", format!("{what}: Shoonya has no such path (HTTP 404)"));
    }
    let m = match judge(answer, what) {
        Ok(m) => m,
        Err(e) => return e,
    };
    if m.contains("Password Expired") || m.contains("Change Password") {
        let fix = "set a new password at Shoonya's site, then run `tokenhost login`";
        return interaction_required(format!("{what}: {m}: {fix}"), None);
    }
    if m.contains("client_id") {
        return config_error("client-id", format!("{what}: {m}; it must be the app's client id at Shoonya"));
    }
    if m.contains("INVALID_VERIFIER") {
        let check = "Shoonya refused the checksum or the user id: check secret-key, client-id and user-id";
        return rejected(format!("{what}: {m} ({check})"));
    }
    rejected(format!("{what}: {m} (a code is single use and short-lived: log in again)"))
}

/// `expires_in` as unix seconds: an epoch second as documented; a small number is a lifetime,
/// a huge one epoch milliseconds.
fn expiry(v: &Value) -> Option<i64> {
    let n = v.as_f64().or_else(|| v.as_str()?.trim().parse().ok())? as i64;
    match n {
        ..=0 => None,
        1..1_000_000_000 => Some(tokenhost_sdk::now() + n),
        1_000_000_000..100_000_000_000 => Some(n),
        _ => Some(n / 1000),
    }
}

impl TokenProvider for Shoonya {
    fn describe() -> ProviderInfo {
        let root = config::optional("api-root").ok().flatten().unwrap_or_else(|| DEFAULT_ROOT.into());
        Info::new("shoonya", env!("CARGO_PKG_VERSION"))
            .setting("client-id", "the OAuth client id of your Shoonya API app, e.g. FA12345_U")
            .alias("SHOONYA_CLIENT_ID")
            .secret("secret-key", "the app's secret key")
            .alias("SHOONYA_SECRET_KEY")
            .setting("user-id", "your Shoonya user id (uid), e.g. FA12345")
            .alias("SHOONYA_USER_ID")
            .alias("SHOONYA_USERID")
            .setting("redirect-uri", "the app's registered redirect URL, e.g. http://127.0.0.1:5055/callback")
            .alias("SHOONYA_REDIRECT_URI")
            .optional("api-root", "API root URL (default https://api.shoonya.com)")
            .host_of(&root)
            .build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        Err(interaction_required(
            "shoonya needs a person to log in once a day (its OAuth login happens at Shoonya's page in a \
             browser; a login without a person is not confirmed to work since the move to OAuth): run \
             `tokenhost login`",
            None,
        ))
    }

    fn validate(token: Token) -> Result<()> {
        let data = json!({ "uid": config::get("user-id")? });
        let answer = call("UserDetails", &data, Some(&token.access_token))?;
        if ok(&answer) { Ok(()) } else { Err(session_error(&answer, "user details")) }
    }

    fn revoke(token: Token) -> Result<()> {
        let data = json!({ "ordersource": "API", "uid": config::get("user-id")? });
        let answer = call("Logout", &data, Some(&token.access_token))?;
        if ok(&answer) { Ok(()) } else { Err(session_error(&answer, "logout")) }
    }

    fn login_url(_redirect_uri: String, _state: String) -> Result<String> {
        let client = percent_encode(&config::get("client-id")?);
        Ok(format!("{}/OAuthlogin/authorize/oauth?client_id={client}", root()?))
    }

    fn complete_login(params: Vec<(String, String)>) -> Result<Token> {
        if let Some(error) = http::param(&params, "error").or_else(|| http::param(&params, "emsg")) {
            let said = http::param(&params, "error_description").unwrap_or(error);
            return Err(rejected(format!("the login was not completed at Shoonya: {said}")));
        }
        let code = http::param(&params, "code").filter(|c| !c.is_empty());
        let code = code.ok_or_else(|| protocol("the redirect from Shoonya has no code"))?;
        let (client, uid) = (config::get("client-id")?, config::get("user-id")?);
        let checksum = sha256_hex_of(&[&client, &config::get("secret-key")?, code]);
        let answer = call("GenAcsTok", &json!({ "code": code, "checksum": checksum, "uid": uid }), None)?;
        let body: Value = answer.json().unwrap_or(Value::Null);
        let access = body["access_token"].as_str().filter(|t| answer.is_success() && !t.is_empty());
        let Some(access) = access else { return Err(exchange_error(&answer)) };
        let user = ["USERID", "uid"].iter().find_map(|k| body[k].as_str()).unwrap_or(&uid);
        let mut token = Token::new(access).with_user(user).with_expiry(expiry(&body["expires_in"]));
        if let Some(actid) = body["actid"].as_str() {
            token = token.with_extra("actid", actid);
        }
        if let Some(refresh) = body["refresh_token"].as_str().filter(|t| !t.is_empty()) {
            token = token.with_secret_extra("refresh-token", refresh);
        }
        Ok(token.with_jwt_claims())
    }
}

tokenhost_sdk::register_provider!(Shoonya);
