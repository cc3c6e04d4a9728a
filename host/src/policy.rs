//! When a token needs refreshing, and when it expires.

use crate::store::StoredToken;
use base64::Engine as _;

/// A broker's daily cut-off: every token dies at `hour:minute` local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cutoff {
    /// Local hour.
    pub hour: u8,
    /// Local minute.
    pub minute: u8,
    /// Local time minus UTC, in minutes.
    pub utc_offset_minutes: i16,
}

/// How long a token whose expiry nobody can tell is trusted.
pub const ASSUMED_LIFETIME_SECS: i64 = 24 * 3600;

/// The expiry of a new token and where it came from: the provider's word, else the JWT's
/// `exp`, else the next daily cut-off, else [`ASSUMED_LIFETIME_SECS`]. A cut-off also caps the
/// other two, since the broker kills every token then whatever it claims.
pub fn resolve_expiry(
    provider_expiry: Option<i64>,
    access_token: &str,
    issued_at: Option<i64>,
    cutoff: Option<Cutoff>,
    now: i64,
) -> (i64, &'static str) {
    let cut = cutoff
        .map(|c| crate::time::next_daily(issued_at.unwrap_or(now), c.hour, c.minute, c.utc_offset_minutes));
    let (claimed, source) = match (provider_expiry, jwt_exp(access_token)) {
        (Some(e), _) => (Some(e), "provider"),
        (None, Some(e)) => (Some(e), "jwt"),
        (None, None) => (None, "cutoff"),
    };
    match (claimed, cut) {
        (Some(e), Some(c)) if c < e => (c, "cutoff"),
        (Some(e), _) => (e, source),
        (None, Some(c)) => (c, "cutoff"),
        (None, None) => (now + ASSUMED_LIFETIME_SECS, "assumed"),
    }
}

/// The `exp` claim of a JWT, read without checking the signature (the brokers' keys are not
/// ours); `None` when the token is not a JWT.
pub fn jwt_exp(token: &str) -> Option<i64> {
    jwt_claim(token, "exp")
}

/// A numeric claim (`exp`, `iat`) of a JWT, read without checking the signature.
pub fn jwt_claim(token: &str, name: &str) -> Option<i64> {
    let mut parts = token.split('.');
    let payload = parts.nth(1)?;
    parts.next()?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get(name).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// Why a refresh is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No token stored.
    Missing,
    /// Past its expiry (or the broker's cut-off).
    Expired,
    /// Within `refresh_ahead` of expiry.
    Expiring,
    /// Asked for with `--force`.
    Forced,
    /// `check` found the broker no longer accepts it.
    Invalid,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Missing => "no token stored",
            Reason::Expired => "token expired",
            Reason::Expiring => "token expires soon",
            Reason::Forced => "forced",
            Reason::Invalid => "the broker rejected the token at the last check",
        })
    }
}

/// Whether the stored token needs refreshing now; `refresh_ahead` overrides the token's own.
pub fn due(token: Option<&StoredToken>, refresh_ahead: Option<u32>, now: i64) -> Option<Reason> {
    let Some(t) = token else {
        return Some(Reason::Missing);
    };
    if now >= expires(t) {
        Some(Reason::Expired)
    } else if now >= refresh_at(t, refresh_ahead) {
        Some(Reason::Expiring)
    } else {
        None
    }
}

/// When `t` stops being trusted: its expiry, else [`ASSUMED_LIFETIME_SECS`] after it was stored.
fn expires(t: &StoredToken) -> i64 {
    t.expires_at.unwrap_or(t.refreshed_at + ASSUMED_LIFETIME_SECS)
}

/// When `t` becomes due: `refresh_ahead` (else the ahead stored with it) before it expires.
pub fn refresh_at(t: &StoredToken, refresh_ahead: Option<u32>) -> i64 {
    expires(t) - refresh_ahead.unwrap_or(t.refresh_ahead_secs) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const IST: Cutoff = Cutoff { hour: 3, minute: 30, utc_offset_minutes: 330 };

    fn jwt(exp: i64) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", e.encode(b"{\"alg\":\"HS256\"}"), e.encode(format!("{{\"exp\":{exp}}}")))
    }

    #[test]
    fn expiry_sources_in_order() {
        let now = 1_795_321_800; // 2026-11-22T04:30Z, 10:00 IST
        assert_eq!(resolve_expiry(Some(now + 60), &jwt(now + 99), None, None, now), (now + 60, "provider"));
        assert_eq!(resolve_expiry(None, &jwt(now + 99), None, None, now), (now + 99, "jwt"));
        assert_eq!(resolve_expiry(None, "opaque", None, None, now), (now + ASSUMED_LIFETIME_SECS, "assumed"));
        // The cut-off caps a later JWT expiry: next 03:30 IST is 2026-11-22T22:00Z.
        let cut = 1_795_321_800 + 17 * 3600 + 1800;
        assert_eq!(resolve_expiry(None, &jwt(now + 86_400), None, Some(IST), now), (cut, "cutoff"));
        assert_eq!(resolve_expiry(None, &jwt(now + 60), None, Some(IST), now), (now + 60, "jwt"));
        // Issued at 01:00 IST: dies at 03:30 IST the same day.
        let one_am = now - 9 * 3600;
        assert_eq!(
            resolve_expiry(None, "opaque", Some(one_am), Some(IST), now),
            (one_am + 2 * 3600 + 1800, "cutoff")
        );
    }

    #[test]
    fn refresh_when_missing_expired_or_close() {
        let t = StoredToken {
            account: "a".into(),
            provider: "p".into(),
            access_token: crate::secret::Secret::new("t"),
            expires_at: Some(1000),
            expiry_source: "jwt".into(),
            issued_at: None,
            user_id: None,
            extras: vec![],
            refreshed_at: 0,
            refresh_ahead_secs: 100,
            component_sha256: None,
        };
        assert_eq!(due(None, None, 0), Some(Reason::Missing));
        assert_eq!(due(Some(&t), None, 899), None);
        assert_eq!(due(Some(&t), None, 900), Some(Reason::Expiring));
        assert_eq!(due(Some(&t), Some(10), 900), None);
        assert_eq!(due(Some(&t), None, 1000), Some(Reason::Expired));
    }
}
