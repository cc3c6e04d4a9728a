//! Reading JWT claims. The brokers sign with keys we do not have, so nothing here checks a
//! signature: use the claims only to learn when a token expires, never to trust it.

use serde_json::Value;

/// The claims tokenhost cares about, plus the whole payload.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// Expiry, unix seconds.
    pub exp: Option<i64>,
    /// Issue time, unix seconds.
    pub iat: Option<i64>,
    /// Subject (often the user id).
    pub sub: Option<String>,
    /// Every claim.
    pub all: Value,
}

/// The claims of `token`, or `None` when it is not a JWT.
pub fn claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let all: Value = serde_json::from_slice(&base64url_decode(payload)?).ok()?;
    let number = |name: &str| all.get(name).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
    Some(Claims {
        exp: number("exp"),
        iat: number("iat"),
        sub: all.get("sub").and_then(Value::as_str).map(str::to_string),
        all,
    })
}

/// Decodes unpadded (or padded) base64url.
fn base64url_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in input.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
