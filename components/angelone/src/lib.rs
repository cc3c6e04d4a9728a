//! Being written.

use tokenhost_sdk::{Info, ProviderInfo, TokenProvider};

struct Provider;

impl TokenProvider for Provider {
    fn describe() -> ProviderInfo {
        Info::new("angelone", env!("CARGO_PKG_VERSION")).build()
    }
}

tokenhost_sdk::register_provider!(Provider);
