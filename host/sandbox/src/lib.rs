//! Strict stand-ins for the brokers, on 127.0.0.1: the example broker the bundled example
//! provider talks to ([`example`]), XTS ([`xts`]) and Upstox ([`upstox`]), each following
//! ../shared/BROKERS.md to the letter (a wrong path, method, header or field gets the broker's
//! own error) and able to inject faults. `tokenhost demo`, the end-to-end tests and the benches
//! run against them. Not part of tokenhost itself: nothing here is linked into its library.

pub mod aliceblue;
pub mod angelone;
pub mod breeze;
pub mod browser;
pub mod dhan;
pub mod example;
pub mod fivepaisa;
pub mod fyers;
pub mod groww;
pub mod kotakneo;
pub mod server;
pub mod shoonya;
pub mod totp;
pub mod upstox;
pub mod xts;
pub mod zerodha;

pub use example::{BrokerState, ExampleBroker, Fault};
pub use server::{Request, Response, Server, http, request};

/// Lower-case hex SHA-256 of `data`: the brokers' checksums.
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

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

/// `2026-11-23T09:00:00.000` for `unix_secs` at `offset_minutes` east of UTC (no offset shown,
/// as Indian brokers write their times).
pub fn local_datetime(unix_secs: i64, offset_minutes: i64) -> String {
    let t = unix_secs + offset_minutes * 60;
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Minutes east of UTC of India Standard Time.
pub const IST_MINUTES: i64 = 330;

/// The next `hour:minute` IST strictly after `t`: the brokers' daily rules, stated here
/// independently of the host's own code.
pub fn next_ist(t: i64, hour: i64, minute: i64) -> i64 {
    let ist = IST_MINUTES * 60;
    let local = t + ist;
    let today = local.div_euclid(86_400) * 86_400 + hour * 3600 + minute * 60;
    (if local < today { today } else { today + 86_400 }) - ist
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_known_digests() {
        assert_eq!(
            super::sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            super::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
