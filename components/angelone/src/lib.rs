//! Angel One SmartAPI: a fresh JWT every day with no person present, from the client code, the
//! PIN and a TOTP code (TOTP enabled once for SmartAPI), and renewals with the refresh token
//! in between.
//!
//! - Login: `POST {api-root}/rest/auth/angelbroking/user/v1/loginByPassword`,
//!   `{"clientcode","password" (the PIN),"totp"}`, with every header SmartAPI asks for:
//!   `X-UserType: USER`, `X-SourceID: WEB`, `X-ClientLocalIP`, `X-ClientPublicIP`,
//!   `X-MACAddress`, `X-PrivateKey: <api-key>`. It gives `jwtToken`, `refreshToken` and
//!   `feedToken`; the last two are kept as secret extras of the token.
//! - Renewal: with a stored refresh token, `POST .../jwt/v1/generateTokens {"refreshToken"}`
//!   with `Authorization: Bearer <jwt>` gives new tokens without a TOTP login. When Angel
//!   refuses the refresh token (any answer but a success, a rate limit or no answer at all),
//!   the full TOTP login follows at once.
//! - Check: `GET .../user/v1/getProfile`; logout: `POST .../user/v1/logout {"clientcode"}`.
//! - Errors come under HTTP 200 as often as not, so the body decides: the auth service's
//!   `{"status":false,"message","errorcode"}` or the gateway's `{"success":false,"message",
//!   "errorCode"}`. AB1050 is a wrong TOTP code (retried once with the next window's), AB1007 a
//!   wrong client code or PIN, AB1004 "Something Went Wrong, Please Try After Sometime" and HTTP
//!   403 "Access denied because of exceeding access rate" (text/plain) pass, AG8001 is a dead
//!   token.
//!
//! Expiry comes from the JWT's `exp`. UNCONFIRMED, so the safe choices: whether tokens still
//! die at 05:00 IST (Angel's old rule; it now speaks of "24-28 hours"). The 05:00 IST cut-off is
//! declared, so a token that might die then is replaced at 05:00, well before the market opens;
//! a token got early would die at the same 05:00, hence no refresh ahead of it. How long a
//! refresh token lives and which codes refuse one are not documented either: every refusal of
//! a renewal falls back to the TOTP login. The seed and PIN are read (the seed's format checked)
//! before a renewal too, so a broken setting shows at once, not at the next fallback. Angel
//! seems not to check the IP and MAC headers (OpenAlgo sends placeholders); they default to
//! 127.0.0.1 and 00:00:00:00:00:00, and the settings send the real ones (the registered static
//! IP, for orders). The SDK's `getProfile` also sends the refresh token as a query parameter:
//! this one does not put a secret in a URL, the Bearer token is the credential.

use serde_json::{Value, json};
use tokenhost_sdk::http::{self, Response};
use tokenhost_sdk::totp::{Outcome, Totp};
use tokenhost_sdk::{
    Info, ProviderError, ProviderInfo, Result, Token, TokenProvider, config, config_error, protocol,
    rejected, transient,
};

struct AngelOne;

const ROOT: &str = "https://apiconnect.angelone.in";
const LOGIN: &str = "/rest/auth/angelbroking/user/v1/loginByPassword";
const RENEW: &str = "/rest/auth/angelbroking/jwt/v1/generateTokens";
const PROFILE: &str = "/rest/secure/angelbroking/user/v1/getProfile";
const LOGOUT: &str = "/rest/secure/angelbroking/user/v1/logout";

/// Sends `body` to `path` with SmartAPI's headers, and the Bearer token once there is one.
fn send(method: &str, path: &str, jwt: Option<&str>, body: Option<Value>) -> Result<Response> {
    let root = config::or("api-root", ROOT)?;
    if http::authority_of(&root).is_none() {
        return Err(config_error("api-root", format!("must be a URL such as {ROOT}")));
    }
    let mut request = http::request(method, &format!("{}{path}", http::trim_root(&root)))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("X-UserType", "USER")
        .header("X-SourceID", "WEB")
        .header("X-ClientLocalIP", &config::or("client-local-ip", "127.0.0.1")?)
        .header("X-ClientPublicIP", &config::or("client-public-ip", "127.0.0.1")?)
        .header("X-MACAddress", &config::or("mac-address", "00:00:00:00:00:00")?)
        .header("X-PrivateKey", &config::get("api-key")?);
    if let Some(jwt) = jwt {
        request = request.header("Authorization", &format!("Bearer {jwt}"));
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    request.send()
}

/// The rate limit: HTTP 403 with a text body (or a plain 429).
fn rate_limited(answer: &Response) -> bool {
    answer.status == 429 || (answer.status == 403 && answer.text().contains("exceeding access rate"))
}

/// Angel's answer judged: the `data` of a success, else Angel's code and the error.
fn judge(answer: &Response, what: &str) -> std::result::Result<Value, (String, ProviderError)> {
    if rate_limited(answer) {
        return Err((
            String::new(),
            transient(format!("{what}: Angel One's rate limit ({})", answer.text())),
        ));
    }
    let body = answer.json::<Value>().unwrap_or_default();
    if (body["status"] == true || body["success"] == true) && answer.is_success() {
        return Ok(body["data"].clone());
    }
    let code = body["errorcode"].as_str().or(body["errorCode"].as_str()).unwrap_or_default().to_string();
    let message = body["message"].as_str().unwrap_or("no message");
    let error = if code.is_empty() && answer.is_transient() {
        transient(format!("{what}: Angel One answered HTTP {}", answer.status))
    } else if code.is_empty() {
        protocol(format!("{what}: HTTP {}, not an answer in Angel One's format", answer.status))
    } else if code == "AB1004" || answer.is_transient() {
        transient(format!("{what}: {message} ({code}, HTTP {})", answer.status))
    } else {
        rejected(format!("{what}: {message} ({code})"))
    };
    Err((code, error))
}

/// The token in a login's or renewal's `data`; a renewal may keep the refresh token it used.
fn token(data: &Value, client: &str, refresh: Option<&str>) -> Result<Token> {
    let field = |name: &str| data[name].as_str().filter(|t| !t.is_empty());
    let jwt = field("jwtToken").ok_or_else(|| protocol("the answer has no jwtToken"))?;
    let mut token = Token::new(jwt.trim_start_matches("Bearer "))
        .with_user(client)
        .with_jwt_claims()
        .with_extra("clientcode", client);
    if let Some(refresh) = field("refreshToken").or(refresh) {
        token = token.with_secret_extra("refreshToken", refresh);
    }
    if let Some(feed) = field("feedToken") {
        token = token.with_secret_extra("feedToken", feed);
    }
    Ok(token)
}

/// New tokens from the refresh token; `None` when Angel will not renew (log in instead).
fn renew(current: &Token, refresh: &str, client: &str) -> Result<Option<Token>> {
    let body = json!({ "refreshToken": refresh });
    let answer = send("POST", RENEW, Some(&current.access_token), Some(body))?;
    match judge(&answer, "generateTokens") {
        Ok(data) => token(&data, client, Some(refresh)).map(Some),
        Err((_, error)) if rate_limited(&answer) => Err(error),
        Err(_) => Ok(None),
    }
}

impl TokenProvider for AngelOne {
    fn describe() -> ProviderInfo {
        let root = config::optional("api-root").ok().flatten().unwrap_or_else(|| ROOT.into());
        Info::new("angelone", env!("CARGO_PKG_VERSION"))
            .secret("api-key", "the SmartAPI app's API key (sent as X-PrivateKey)")
            .alias("ANGEL_API_KEY")
            .setting("client-code", "your Angel One client code")
            .alias("ANGEL_CLIENT_CODE")
            .secret("pin", "your Angel One login PIN")
            .alias("ANGEL_PIN")
            .secret("totp-secret", "the TOTP key (base32) shown when TOTP was enabled for SmartAPI")
            .alias("ANGEL_TOTP_SECRET")
            .optional("client-local-ip", "sent as X-ClientLocalIP (default 127.0.0.1)")
            .optional("client-public-ip", "sent as X-ClientPublicIP (default 127.0.0.1)")
            .optional("mac-address", "sent as X-MACAddress (default 00:00:00:00:00:00)")
            .optional("api-root", "API root URL (default https://apiconnect.angelone.in)")
            .host_of(&root)
            .daily_cutoff(5, 0, 330)
            // A token got early dies at the same 05:00 IST as the one it replaces.
            .refresh_ahead_secs(0)
            .build()
    }

    fn refresh(current: Option<Token>) -> Result<Token> {
        let totp = Totp::from_setting("totp-secret")?;
        let (client, pin) = (config::get("client-code")?, config::get("pin")?);
        if let Some(t) = current.filter(|t| t.extra("clientcode") == Some(client.as_str()))
            && let Some(refresh) = t.extra("refreshToken")
            && let Some(renewed) = renew(&t, refresh, &client)?
        {
            return Ok(renewed);
        }
        let data = totp.login(|code| {
            let body = json!({ "clientcode": client, "password": pin, "totp": code });
            let answer = send("POST", LOGIN, None, Some(body))?;
            match judge(&answer, "login") {
                Ok(data) => Ok(Outcome::Done(data)),
                Err((code, ProviderError::Rejected(said))) if code == "AB1050" => {
                    Ok(Outcome::WrongCode(said))
                }
                Err((_, error)) => Err(error),
            }
        })?;
        token(&data, &client, None)
    }

    fn validate(token: Token) -> Result<()> {
        let answer = send("GET", PROFILE, Some(&token.access_token), None)?;
        match judge(&answer, "getProfile") {
            Ok(data) if data["clientcode"].is_string() => Ok(()),
            Ok(_) => Err(protocol("getProfile: the answer has no clientcode")),
            Err((_, error)) => Err(error),
        }
    }

    fn revoke(token: Token) -> Result<()> {
        let client = token.user_id.clone().map_or_else(|| config::get("client-code"), Ok)?;
        let answer = send("POST", LOGOUT, Some(&token.access_token), Some(json!({ "clientcode": client })))?;
        judge(&answer, "logout").map(|_| ()).map_err(|(_, error)| error)
    }
}

tokenhost_sdk::register_provider!(AngelOne);
