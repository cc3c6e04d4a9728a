//! Write a tokenhost token provider.
//!
//! A provider is a type that implements [`TokenProvider`] and is registered with
//! [`register_provider!`]; it is built with `cargo build --target wasm32-wasip2 --release`
//! into a component the host loads. It reaches the outside world only through this crate:
//! [`http`] (to the hosts it declares), [`config`] (its own settings), [`kv`] (its own
//! storage); [`jwt`] reads token claims, [`totp`] makes TOTP codes from a seed and [`hash`]
//! computes the checksums brokers ask for.
//!
//! ```ignore
//! use tokenhost_sdk::{Info, Result, Token, TokenProvider, config, http};
//!
//! struct Example;
//!
//! impl TokenProvider for Example {
//!     fn describe() -> tokenhost_sdk::ProviderInfo {
//!         Info::new("example", env!("CARGO_PKG_VERSION"))
//!             .setting("api-key", "the app's key")
//!             .secret("api-secret", "the app's secret")
//!             .host("api.example.com")
//!             .build()
//!     }
//!     fn refresh(_current: Option<Token>) -> Result<Token> {
//!         let answer = http::post("https://api.example.com/token")
//!             .json(&serde_json::json!({ "key": config::get("api-key")? }))
//!             .send()?;
//!         Ok(Token::new(answer.json::<serde_json::Value>()?["token"].as_str().unwrap_or_default()))
//!     }
//! }
//!
//! tokenhost_sdk::register_provider!(Example);
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "tokenhost:provider/token-provider",
        path: [
            "../../wit/deps/io.wit",
            "../../wit/deps/clocks.wit",
            "../../wit/deps/random.wit",
            "../../wit/deps/filesystem.wit",
            "../../wit/deps/sockets.wit",
            "../../wit/deps/cli.wit",
            "../../wit/deps/http.wit",
            "../../wit/deps/config",
            "../../wit/deps/keyvalue",
            "../../wit/since_v0.1.0",
        ],
        generate_all,
        // wasi:cli names an unstable interface; the parser must see it to resolve the package.
        features: ["clocks-timezone"],
        pub_export_macro: true,
        export_macro_name: "export_provider",
        default_bindings_module: "tokenhost_sdk::bindings",
    });
}

pub mod config;
pub mod hash;
pub mod http;
mod info;
pub use tokenhost_rules::jwt;
pub mod kv;
pub mod time;
pub mod totp;

/// When a token is due and the fleet store's keys: the rules the host follows too.
pub use tokenhost_rules as rules;

pub use bindings::exports::tokenhost::provider::provider::{
    ConfigProblem, DailyCutoff, Extra, Interaction, ProviderError, ProviderInfo, Setting, Token,
};
pub use info::Info;

/// The version of the `tokenhost:provider` interface this SDK builds against.
pub const API_VERSION: &str = "0.1.0";

/// What every provider function returns.
pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// A broker's login logic. Only [`describe`](TokenProvider::describe) is required; every other
/// method answers `unsupported` until the provider implements it.
pub trait TokenProvider {
    /// Name, version, settings, hosts, daily cut-off. Build it with [`Info`].
    fn describe() -> ProviderInfo;

    /// Get a fresh token. `current` is the stored one, if any.
    fn refresh(current: Option<Token>) -> Result<Token> {
        let _ = current;
        Err(unsupported("refresh"))
    }

    /// Ask the broker whether `token` works: `Err(rejected(..))` means it does not.
    fn validate(token: Token) -> Result<()> {
        let _ = token;
        Err(unsupported("validate"))
    }

    /// Log out.
    fn revoke(token: Token) -> Result<()> {
        let _ = token;
        Err(unsupported("revoke"))
    }

    /// The page a person logs in at; the broker then redirects to `redirect_uri`.
    fn login_url(redirect_uri: String, state: String) -> Result<String> {
        let _ = (redirect_uri, state);
        Err(unsupported("browser login"))
    }

    /// Finish a browser login with the redirect's query parameters.
    fn complete_login(params: Vec<(String, String)>) -> Result<Token> {
        let _ = params;
        Err(unsupported("browser login"))
    }

    /// Take a token the broker pushed to a webhook.
    fn accept_push(body: Vec<u8>) -> Result<Token> {
        let _ = body;
        Err(unsupported("webhook delivery"))
    }
}

/// Makes `$provider` the component's export. Call it once, at the crate's top level.
#[macro_export]
macro_rules! register_provider {
    ($provider:ty) => {
        struct __TokenhostExport;

        impl $crate::bindings::exports::tokenhost::provider::provider::Guest for __TokenhostExport {
            fn describe() -> $crate::ProviderInfo {
                <$provider as $crate::TokenProvider>::describe()
            }
            fn refresh(current: Option<$crate::Token>) -> $crate::Result<$crate::Token> {
                <$provider as $crate::TokenProvider>::refresh(current)
            }
            fn validate(token: $crate::Token) -> $crate::Result<()> {
                <$provider as $crate::TokenProvider>::validate(token)
            }
            fn revoke(token: $crate::Token) -> $crate::Result<()> {
                <$provider as $crate::TokenProvider>::revoke(token)
            }
            fn login_url(redirect_uri: String, state: String) -> $crate::Result<String> {
                <$provider as $crate::TokenProvider>::login_url(redirect_uri, state)
            }
            fn complete_login(params: Vec<(String, String)>) -> $crate::Result<$crate::Token> {
                <$provider as $crate::TokenProvider>::complete_login(params)
            }
            fn accept_push(body: Vec<u8>) -> $crate::Result<$crate::Token> {
                <$provider as $crate::TokenProvider>::accept_push(body)
            }
        }

        $crate::bindings::export_provider!(__TokenhostExport with_types_in $crate::bindings);
    };
}

impl Token {
    /// A token with nothing but its value; add the rest with the `with_*` methods.
    pub fn new(access_token: impl Into<String>) -> Token {
        Token {
            access_token: access_token.into(),
            expires_at: None,
            issued_at: None,
            user_id: None,
            extras: Vec::new(),
        }
    }

    /// Sets the expiry (unix seconds).
    pub fn with_expiry(mut self, expires_at: Option<i64>) -> Token {
        self.expires_at = expires_at;
        self
    }

    /// Sets the issue time (unix seconds).
    pub fn with_issued_at(mut self, issued_at: Option<i64>) -> Token {
        self.issued_at = issued_at;
        self
    }

    /// Sets the broker's user id.
    pub fn with_user(mut self, user_id: impl Into<String>) -> Token {
        self.user_id = Some(user_id.into());
        self
    }

    /// Adds a named value that is not secret (a client code, a flag).
    pub fn with_extra(mut self, name: &str, value: impl Into<String>) -> Token {
        self.extras.push(Extra { name: name.into(), value: value.into(), secret: false });
        self
    }

    /// Adds a named secret value (a second token).
    pub fn with_secret_extra(mut self, name: &str, value: impl Into<String>) -> Token {
        self.extras.push(Extra { name: name.into(), value: value.into(), secret: true });
        self
    }

    /// Fills `expires_at`, `issued_at` and `user_id` from the token's JWT claims where they are
    /// still empty.
    pub fn with_jwt_claims(mut self) -> Token {
        if let Some(claims) = jwt::claims(&self.access_token) {
            self.expires_at = self.expires_at.or(claims.exp);
            self.issued_at = self.issued_at.or(claims.iat);
            if self.user_id.is_none() {
                self.user_id = claims.sub;
            }
        }
        self
    }

    /// The value of the extra called `name`.
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.extras.iter().find(|e| e.name == name).map(|e| e.value.as_str())
    }
}

/// The credentials or token were refused; retrying will not help.
pub fn rejected(message: impl Into<String>) -> ProviderError {
    ProviderError::Rejected(message.into())
}

/// A passing failure (network, 5xx, rate limit); the host retries later.
pub fn transient(message: impl Into<String>) -> ProviderError {
    ProviderError::Transient(message.into())
}

/// The broker said something the provider cannot understand.
pub fn protocol(message: impl Into<String>) -> ProviderError {
    ProviderError::Protocol(message.into())
}

/// The setting `key` is missing or wrong.
pub fn config_error(key: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Config(ConfigProblem { key: key.into(), message: message.into() })
}

/// A person has to act; `url` is the page to open, if there is one.
pub fn interaction_required(message: impl Into<String>, url: Option<String>) -> ProviderError {
    ProviderError::InteractionRequired(Interaction { message: message.into(), url })
}

/// The provider does not do `what`.
pub fn unsupported(what: &str) -> ProviderError {
    ProviderError::Unsupported(format!("this provider does not support {what}"))
}

impl From<serde_json::Error> for ProviderError {
    fn from(err: serde_json::Error) -> Self {
        protocol(format!("unexpected JSON from the broker: {err}"))
    }
}

/// The current time in unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
