//! The rules every place that refreshes tokens must agree on, as pure functions: the native host (`host/src/policy.rs`) and the guests (the SDK, and through it
//! the wasmCloud scheduler) build this same file, so a token is due at the same moment wherever
//! it is refreshed, and is stored under the same key.

pub mod jwt;

/// How long a token whose expiry nobody can tell is trusted.
pub const ASSUMED_LIFETIME_SECS: i64 = 24 * 3600;

/// 9999-12-31T23:59:59Z: times are clamped to within this many seconds of the epoch (beyond
/// it nothing is meaningful, and sums stay in range).
pub const LAST_SECOND: i64 = 253_402_300_799;

/// A broker's daily cut-off: every token dies at `hour:minute` local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// Local hour.
    pub hour: u8,
    /// Local minute.
    pub minute: u8,
    /// Local time minus UTC, in minutes.
    pub utc_offset_minutes: i16,
}

/// The first moment after `after` at which the local time (UTC + `offset_minutes`) reads
/// `hour:minute`.
pub fn next_daily(after: i64, hour: u8, minute: u8, offset_minutes: i16) -> i64 {
    let after = after.clamp(-LAST_SECOND, LAST_SECOND);
    let offset = offset_minutes as i64 * 60;
    let local = after + offset;
    let day_start = local.div_euclid(86_400) * 86_400;
    let mut at = day_start + hour as i64 * 3600 + minute as i64 * 60 - offset;
    if at <= after {
        at += 86_400;
    }
    at
}

/// The expiry of a new token and where it came from: the provider's word, else the JWT's
/// `exp`, else the next daily cut-off, else [`ASSUMED_LIFETIME_SECS`]. A cut-off also caps the
/// other two, since the broker kills every token then whatever it claims.
pub fn resolve_expiry(
    provider_expiry: Option<i64>,
    jwt_exp: Option<i64>,
    issued_at: Option<i64>,
    cutoff: Option<Cutoff>,
    now: i64,
) -> (i64, &'static str) {
    let cut = cutoff.map(|c| next_daily(issued_at.unwrap_or(now), c.hour, c.minute, c.utc_offset_minutes));
    let (claimed, source) = match (provider_expiry, jwt_exp) {
        (Some(e), _) => (Some(e), "provider"),
        (None, Some(e)) => (Some(e), "jwt"),
        (None, None) => (None, "cutoff"),
    };
    match (claimed, cut) {
        (Some(e), Some(c)) if c < e => (c, "cutoff"),
        (Some(e), _) => (e, source),
        (None, Some(c)) => (c, "cutoff"),
        (None, None) => (now.saturating_add(ASSUMED_LIFETIME_SECS), "assumed"),
    }
}

/// What of a stored token decides when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// When it stops working (unix seconds), if known.
    pub expires_at: Option<i64>,
    /// When it was stored.
    pub refreshed_at: i64,
    /// Refresh this long before `expires_at`.
    pub refresh_ahead_secs: u32,
}

/// Why a refresh is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// No token stored.
    Missing,
    /// Past its expiry (or the broker's cut-off).
    Expired,
    /// Within its refresh-ahead window.
    Expiring,
}

impl Held {
    /// When it stops being trusted: its expiry, else [`ASSUMED_LIFETIME_SECS`] after it was
    /// stored.
    pub fn expires(&self) -> i64 {
        self.expires_at.unwrap_or(self.refreshed_at.saturating_add(ASSUMED_LIFETIME_SECS))
    }

    /// When it becomes due: `refresh_ahead` (else its own) before it expires. A token got
    /// inside that window is due only at its expiry: where a daily cut-off caps every token at
    /// the same time, a new one would die just as soon, and asking again at once would log in
    /// over and over until the cut-off (a TOTP broker locks such an account).
    pub fn refresh_at(&self, refresh_ahead: Option<u32>) -> i64 {
        let early = self.expires().saturating_sub(refresh_ahead.unwrap_or(self.refresh_ahead_secs) as i64);
        if self.refreshed_at >= early { self.expires() } else { early }
    }
}

/// Whether the token `held` needs refreshing at `now`; `refresh_ahead` overrides its own.
pub fn due(held: Option<Held>, refresh_ahead: Option<u32>, now: i64) -> Option<Due> {
    let Some(t) = held else {
        return Some(Due::Missing);
    };
    if now >= t.expires() {
        Some(Due::Expired)
    } else if now >= t.refresh_at(refresh_ahead) {
        Some(Due::Expiring)
    } else {
        None
    }
}

/// How long a refresher waits before trying an account that keeps failing again: 30 s after
/// the first failure, doubling, at most half an hour (so a wrong secret does not lock the
/// account at a broker that counts failed logins).
pub const FAILING_FIRST_SECS: u64 = 30;
/// The longest of those waits.
pub const FAILING_MAX_SECS: u64 = 1800;

/// The wait after `failures` (>= 1) failures in a row, before any jitter.
pub fn failing_wait_secs(failures: u32) -> u64 {
    FAILING_FIRST_SECS.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(FAILING_MAX_SECS)
}

/// The fleet store's key layout (NATS JetStream key-value, or any `wasi:keyvalue` bucket that
/// every refresher and reader names). Keys use only `[-/_=.A-Za-z0-9]`, NATS's key characters.
pub mod keys {
    /// The account's stored token (the JSON of the state directory's `token.json`).
    pub fn token(account: &str) -> String {
        format!("accounts.{account}.token")
    }

    /// The account's last outcome.
    pub fn status(account: &str) -> String {
        format!("accounts.{account}.status")
    }

    /// Before every lease's key (leases have a bucket of their own).
    pub const LEASES: &str = "leases.";

    /// Who refreshes the account now.
    pub fn lease(account: &str) -> String {
        format!("{LEASES}{account}")
    }

    /// Before each key of the provider's own storage (then [`encode`]d).
    pub fn storage_prefix(account: &str) -> String {
        format!("accounts.{account}.kv.")
    }

    /// A provider's key in NATS's key characters: bytes outside `[-/_A-Za-z0-9]` as `=XX`.
    pub fn encode(key: &str) -> String {
        let mut out = String::with_capacity(key.len());
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'/' || b == b'_' {
                out.push(b as char);
            } else {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('=');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
        out
    }

    /// The provider's key [`encode`] made `s`.
    pub fn decode(s: &str) -> Option<String> {
        let mut out = Vec::with_capacity(s.len());
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            if b == b'=' {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            } else {
                out.push(b);
            }
        }
        String::from_utf8(out).ok()
    }

    /// The fleet store's data bucket unless configured.
    pub const DEFAULT_BUCKET: &str = "tokenhost";

    /// The setting (`wasi:config`) a runtime gives a provider to name the bucket it opens
    /// (unset: `""`); the scheduler reads it too, for the fleet's bucket.
    pub const BUCKET_SETTING: &str = "kv-bucket";
    /// The setting a runtime gives a provider to put before each of its keys (on wasmCloud
    /// [`storage_prefix`] of the account).
    pub const PREFIX_SETTING: &str = "kv-prefix";

    /// Whether `name` may name an account in a key: non-empty, no `.`, `*`, `>` or space.
    pub fn valid_account(name: &str) -> bool {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_cutoffs_are_the_next_local_time() {
        // 03:30 IST is 22:00 UTC the day before.
        let noon_utc = 1_767_268_800; // 2026-01-01 12:00 UTC
        assert_eq!(next_daily(noon_utc, 3, 30, 330), 1_767_304_800);
        assert_eq!(next_daily(1_767_304_800, 3, 30, 330), 1_767_304_800 + 86_400);
        assert_eq!(next_daily(i64::MAX, 0, 0, 0) % 86_400, 0);
    }

    #[test]
    fn expiry_sources_in_order_and_capped_by_the_cutoff() {
        let now = 1_767_268_800;
        let cut = Some(Cutoff { hour: 3, minute: 30, utc_offset_minutes: 330 });
        assert_eq!(resolve_expiry(Some(now + 60), Some(now + 99), None, None, now), (now + 60, "provider"));
        assert_eq!(resolve_expiry(None, Some(now + 99), None, None, now), (now + 99, "jwt"));
        assert_eq!(resolve_expiry(None, None, None, cut, now), (1_767_304_800, "cutoff"));
        assert_eq!(resolve_expiry(Some(now + 86_400 * 3), None, None, cut, now), (1_767_304_800, "cutoff"));
        assert_eq!(resolve_expiry(None, None, None, None, now), (now + ASSUMED_LIFETIME_SECS, "assumed"));
    }

    #[test]
    fn due_when_missing_expired_or_in_the_window_but_not_again_after_a_late_login() {
        let held = Held { expires_at: Some(10_000), refreshed_at: 1_000, refresh_ahead_secs: 600 };
        assert_eq!(due(None, None, 0), Some(Due::Missing));
        assert_eq!(due(Some(held), None, 9_399), None);
        assert_eq!(due(Some(held), None, 9_400), Some(Due::Expiring));
        assert_eq!(due(Some(held), Some(60), 9_400), None);
        assert_eq!(due(Some(held), None, 10_000), Some(Due::Expired));
        let late = Held { refreshed_at: 9_500, ..held };
        assert_eq!(due(Some(late), None, 9_600), None, "got inside the window: due at expiry only");
        let unknown = Held { expires_at: None, refreshed_at: 0, refresh_ahead_secs: 0 };
        assert_eq!(due(Some(unknown), None, ASSUMED_LIFETIME_SECS), Some(Due::Expired));
    }

    #[test]
    fn failing_accounts_wait_longer_each_time_up_to_half_an_hour() {
        let waits: Vec<u64> = (1..=8).map(failing_wait_secs).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1800, 1800]);
        assert_eq!(failing_wait_secs(u32::MAX), 1800);
    }

    #[test]
    fn keys_stay_in_nats_characters_and_round_trip() {
        for key in ["refreshes", "a.b", "upstox:pending", "ünï cödé", "=", ".", "x>*"] {
            let enc = keys::encode(key);
            assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_=".contains(&b)), "{enc}");
            assert_eq!(keys::decode(&enc).as_deref(), Some(key));
        }
        assert_eq!(keys::encode("refreshes"), "refreshes");
        assert_eq!(keys::decode("=4"), None);
        assert!(keys::valid_account("xts-md_2") && !keys::valid_account("a.b") && !keys::valid_account(""));
    }
}
