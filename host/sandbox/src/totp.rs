//! What the stand-ins of the TOTP brokers share: codes computed here, independently of the
//! SDK (RFC 6238 with HMAC-SHA1, 30 s windows, 6 digits), fresh seeds, and the faults they can
//! inject. A broker here accepts the code of its current window only, by its own clock, which a
//! test can set ahead to make the provider's code one from the previous window.

use hmac::{Hmac, Mac};
use std::time::Duration;

/// The code for the base32 `seed` in the window holding `unix_secs`; empty for a bad seed.
pub fn code(seed: &str, unix_secs: i64) -> String {
    let Some(key) = base32(seed) else { return String::new() };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&key) else { return String::new() };
    mac.update(&((unix_secs.max(0) as u64) / 30).to_be_bytes());
    let d = mac.finalize().into_bytes();
    let o = (d[19] & 0xf) as usize;
    let n = (u32::from_be_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]) & 0x7fff_ffff) % 1_000_000;
    format!("{n:06}")
}

/// A new random seed, as a broker shows it: 32 base32 characters.
pub fn new_seed() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let hex = format!("{}{}", crate::nonce(), crate::nonce());
    hex.as_bytes()
        .chunks(2)
        .take(32)
        .map(|p| ALPHABET[(p[0] as usize + p[1] as usize) % 32] as char)
        .collect()
}

fn base32(seed: &str) -> Option<Vec<u8>> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u64, 0);
    for c in seed.chars().filter(|c| c.is_ascii_alphanumeric()) {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => return None,
        };
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// One account at a TOTP broker.
#[derive(Debug, Clone)]
pub struct Account {
    /// PIN (or password, or MPIN).
    pub pin: String,
    /// Base32 TOTP seed.
    pub seed: String,
}

impl Account {
    /// An account with `pin` and a fresh seed.
    pub fn new(pin: &str) -> Account {
        Account { pin: pin.into(), seed: new_seed() }
    }

    /// Whether `code` is this account's code at `now` (the broker's clock).
    pub fn accepts(&self, code: &str, now: i64) -> bool {
        !code.is_empty() && code == self::code(&self.seed, now)
    }
}

/// An answer to give instead of the normal one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A 5xx in the broker's own envelope.
    ServerError,
    /// The broker's rate-limit answer.
    RateLimited,
    /// The normal answer after this long.
    Slow(Duration),
    /// The connection closes without an answer.
    HangUp,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
}

/// A stand-in's answer to a request, given the fault injected for it, if any: a 5xx or a rate
/// limit in the broker's own envelope (`server_error`, `rate_limited`), the normal answer
/// (`route`) late, a hang-up, or HTML where JSON belongs; else the normal answer.
pub fn answer(
    fault: Option<Fault>,
    server_error: impl FnOnce() -> crate::Response,
    rate_limited: impl FnOnce() -> crate::Response,
    route: impl FnOnce() -> crate::Response,
) -> crate::Response {
    match fault {
        None => route(),
        Some(Fault::ServerError) => server_error(),
        Some(Fault::RateLimited) => rate_limited(),
        Some(Fault::Slow(d)) => route().after(d),
        Some(Fault::HangUp) => crate::Response::hang_up(),
        Some(Fault::Garbage) => {
            crate::Response::raw(200, "text/html", "<html><body>Service Temporarily Down</body></html>")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc_6238_sha1_six_digits() {
        // "12345678901234567890" in base32.
        let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(super::code(seed, 59), "287082");
        assert_eq!(super::code(seed, 1_111_111_109), "081804");
        assert_eq!(super::code(seed, 20_000_000_000), "353130");
        assert_eq!(super::new_seed().len(), 32);
    }
}
