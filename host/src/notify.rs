//! Telling people: a message when an account starts failing (and again when the kind of
//! failure changes), one when it recovers, and optionally one on every new token. Telegram (as
//! the old scripts did, `TELEGRAM_TOKEN` / `TELEGRAM_CHAT_ID`) and a generic JSON webhook.
//!
//! Messages name the account, the outcome, the expiry and what to do next; they are built from
//! errors already scrubbed of secrets and never carry a token. A notifier that fails is logged
//! and changes nothing else: the refresh's outcome and exit code stay what they were.

use crate::Error;
use crate::secret::Secret;
use crate::store::{AccountStatus, StoredToken};
use crate::time;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use std::time::Duration;

/// `[notify]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Also send a message for every new token (default: only failures and recoveries).
    #[serde(default)]
    pub on_success: bool,
    /// Telegram bot token (else `TELEGRAM_TOKEN` from the environment or `.env`).
    pub telegram_bot_token: Option<String>,
    /// Telegram chat id (else `TELEGRAM_CHAT_ID`).
    pub telegram_chat_id: Option<String>,
    /// Telegram API root (default `https://api.telegram.org`).
    pub telegram_api_root: Option<String>,
    /// A URL that gets each message as a JSON POST.
    pub webhook_url: Option<String>,
}

/// Where messages go, resolved.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    on_success: bool,
    telegram: Option<(String, Secret, String)>,
    webhook: Option<Secret>,
}

/// What happened to an account, worth a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new token after a failure (or on every new token with `on_success`).
    Refreshed {
        /// Whether the account had been failing.
        recovered: bool,
    },
    /// The account started failing, or fails differently now.
    Failed,
}

impl Notifier {
    /// The notifier `config` describes, with Telegram's credentials from `lookup` (the
    /// environment, then `.env`) when the file has none.
    pub fn new(config: &NotifyConfig, lookup: impl Fn(&str) -> Option<String>) -> Notifier {
        let token = config.telegram_bot_token.clone().or_else(|| lookup("TELEGRAM_TOKEN"));
        let chat = config.telegram_chat_id.clone().or_else(|| lookup("TELEGRAM_CHAT_ID"));
        let root = config.telegram_api_root.clone().unwrap_or_else(|| "https://api.telegram.org".into());
        Notifier {
            on_success: config.on_success,
            telegram: token
                .zip(chat)
                .map(|(t, c)| (root.trim_end_matches('/').to_string(), Secret::new(t), c)),
            webhook: config.webhook_url.clone().map(Secret::new),
        }
    }

    /// Whether any channel is configured.
    pub fn enabled(&self) -> bool {
        self.telegram.is_some() || self.webhook.is_some()
    }

    /// The event an outcome is, given the account's status before it; `None`: no message.
    pub(crate) fn event(&self, before: &AccountStatus, result: &Result<StoredToken, Error>) -> Option<Event> {
        match result {
            Ok(_) if before.consecutive_failures > 0 => Some(Event::Refreshed { recovered: true }),
            Ok(_) if self.on_success => Some(Event::Refreshed { recovered: false }),
            Ok(_) => None,
            Err(e)
                if before.consecutive_failures == 0 || before.last_outcome.as_deref() != Some(e.kind()) =>
            {
                Some(Event::Failed)
            }
            Err(_) => None,
        }
    }

    /// Sends the message for `event` on every channel; failures are logged, never returned.
    pub async fn send(
        &self,
        account: &str,
        event: &Event,
        result: &Result<StoredToken, Error>,
        kept: Option<&StoredToken>,
    ) {
        let outcome = match result {
            Ok(_) => "refreshed",
            Err(e) => e.kind(),
        };
        let expires_at = result.as_ref().ok().or(kept).and_then(|t| t.expires_at);
        self.deliver(account, outcome, expires_at, None, &message(account, event, result, kept)).await;
    }

    /// Reminds people that `account` needs a login today: its token expires at `expires_at`
    /// (`None`: none stored) or is `dead`; `link` starts the login. Failures are logged.
    pub async fn remind(&self, account: &str, expires_at: Option<i64>, dead: bool, link: Option<&str>) {
        let text = reminder(account, expires_at, dead, link, time::now());
        self.deliver(account, "login-due", expires_at, link, &text).await;
    }

    async fn deliver(
        &self,
        account: &str,
        outcome: &str,
        expires_at: Option<i64>,
        link: Option<&str>,
        text: &str,
    ) {
        if let Some((root, token, chat)) = &self.telegram {
            let url = format!("{root}/bot{}/sendMessage", token.expose());
            let body = serde_json::json!({ "chat_id": chat, "text": text, "disable_web_page_preview": true });
            if let Err(e) = post(&url, &body).await {
                tracing::warn!(account, "the Telegram notification was not delivered: {e}");
            }
        }
        if let Some(url) = &self.webhook {
            let mut body = serde_json::json!({
                "account": account,
                "outcome": outcome,
                "expires_at": expires_at,
                "text": text,
            });
            if let Some(link) = link {
                body["link"] = link.into();
            }
            if let Err(e) = post(url.expose(), &body).await {
                tracing::warn!(account, "the webhook notification was not delivered: {e}");
            }
        }
    }
}

/// The words of a login reminder.
pub fn reminder(account: &str, expires_at: Option<i64>, dead: bool, link: Option<&str>, now: i64) -> String {
    let why = match expires_at {
        _ if dead => "its token no longer works".to_string(),
        None => "no token is stored".to_string(),
        Some(e) if e <= now => format!("its token expired at {}", time::iso(e)),
        Some(e) => format!("its token expires at {} ({})", time::iso(e), time::relative(e, now)),
    };
    let how = match link {
        Some(l) => format!("Log in here: {l}"),
        None => format!("Run `tokenhost login {account}`."),
    };
    format!("tokenhost: {account} needs a login today: {why}. {how}")
}

/// The words of a message.
pub fn message(
    account: &str,
    event: &Event,
    result: &Result<StoredToken, Error>,
    kept: Option<&StoredToken>,
) -> String {
    let expiry = |t: Option<&StoredToken>| match t.and_then(|t| t.expires_at) {
        Some(e) => format!("expires {} ({})", time::iso(e), time::relative(e, time::now())),
        None => "no token stored".to_string(),
    };
    match (event, result) {
        (Event::Refreshed { recovered: true }, Ok(t)) => {
            format!("tokenhost: {account} recovered: new token, {}.", expiry(Some(t)))
        }
        (_, Ok(t)) => format!("tokenhost: {account} refreshed: {}.", expiry(Some(t))),
        (_, Err(e)) => {
            let next = match e {
                Error::Interaction { .. } => format!("act now, or run `tokenhost login {account}`"),
                Error::Rejected(_) => "fix the credentials; retrying will not help".to_string(),
                Error::Config(_) | Error::Io { .. } => "fix the configuration".to_string(),
                Error::Transient { .. } => "tokenhost tries again at the next run".to_string(),
                Error::Fault { .. } => "check the provider component".to_string(),
            };
            format!(
                "tokenhost: {account} FAILED ({}): {e}. Last good token kept: {}. Next: {next}.",
                e.kind(),
                expiry(kept)
            )
        }
    }
}

/// POSTs `body` as JSON; any answer but 2xx is an error.
async fn post(url: &str, body: &serde_json::Value) -> Result<(), String> {
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).map_err(|never| match never {}))
        .map_err(|_| "the URL is not valid".to_string())?;
    let options = wasmtime_wasi_http::RequestOptions {
        connect_timeout: Some(Duration::from_secs(10)),
        first_byte_timeout: Some(Duration::from_secs(10)),
        between_bytes_timeout: Some(Duration::from_secs(10)),
    };
    let send = async {
        let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options))
            .await
            .map_err(|e| format!("{e:?}"))?;
        let worker = tokio::spawn(io);
        let status = response.status();
        let _ = response.into_body().collect().await;
        worker.abort();
        if status.is_success() { Ok(()) } else { Err(format!("HTTP {}", status.as_u16())) }
    };
    tokio::time::timeout(Duration::from_secs(30), send).await.map_err(|_| "timed out".to_string())?
}
