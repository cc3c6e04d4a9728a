//! Strict stand-ins for the brokers, on 127.0.0.1: the example broker the bundled example
//! provider talks to ([`example`]), XTS ([`xts`]) and Upstox ([`upstox`]), each following
//! ../shared/BROKERS.md to the letter (a wrong path, method, header or field gets the broker's
//! own error) and able to inject faults. `tokenhost demo`, the end-to-end tests and the benches
//! run against them. Not part of tokenhost itself: nothing here is linked into its library.

pub mod example;
pub mod server;
pub mod upstox;
pub mod xts;

pub use example::{BrokerState, ExampleBroker, Fault};
pub use server::{Request, Response, Server, http};

/// Notes `req` in `seen` and takes the next injected fault, if any: the start of every
/// sandbox broker's answer.
pub fn note_and_take<F>(seen: &mut Vec<String>, faults: &mut Vec<F>, req: &Request) -> Option<F> {
    seen.push(format!("{} {}", req.method, req.path));
    if faults.is_empty() { None } else { Some(faults.remove(0)) }
}

/// A JWT-shaped token (unsigned: the signature is a fixed string) with the given claims.
pub fn fake_jwt(claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        e.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        e.encode(claims.to_string()),
        e.encode(b"sandbox")
    )
}

/// 128 unpredictable bits as hex, for tokens, codes and test secrets.
pub fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(N.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

/// Now, in unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
