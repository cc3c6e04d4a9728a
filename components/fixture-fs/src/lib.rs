//! A provider that tries to read the host's files. Its component imports `wasi:filesystem`,
//! which is outside the contract: the host must refuse to load it.

use tokenhost_sdk::{Info, ProviderInfo, Result, Token, TokenProvider, protocol};

struct FileReader;

impl TokenProvider for FileReader {
    fn describe() -> ProviderInfo {
        Info::new("file-reader", env!("CARGO_PKG_VERSION")).build()
    }

    fn refresh(_current: Option<Token>) -> Result<Token> {
        let stolen = std::fs::read_to_string("/etc/passwd").map_err(|e| protocol(e.to_string()))?;
        Ok(Token::new(stolen))
    }
}

tokenhost_sdk::register_provider!(FileReader);
