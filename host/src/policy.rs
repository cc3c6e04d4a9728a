//! The host's rules, in one place: when a token expires and when it is due for a refresh,
//! how long to wait before trying again, which pushed tokens to refuse, and which new
//! component may replace a running one. Pure functions of their inputs; nothing here does I/O.

use crate::store::StoredToken;
use base64::Engine as _;
use std::time::Duration;

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

#[cfg(test)]
use tokenhost_rules::ASSUMED_LIFETIME_SECS;

/// The claims of a JWT the host reads, decoded once per token and without checking the
/// signature (the brokers' keys are not ours). Both are `None` when the token is not a JWT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims {
    /// `exp`, unix seconds.
    pub exp: Option<i64>,
    /// `iat`, unix seconds.
    pub iat: Option<i64>,
}

impl Claims {
    /// Reads the claims of `token`.
    pub fn of(token: &str) -> Claims {
        let mut parts = token.split('.');
        let payload = match (parts.next(), parts.next(), parts.next()) {
            (Some(_), Some(p), Some(_)) => p,
            _ => return Claims::default(),
        };
        let decoded =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok();
        let claims: Option<serde_json::Value> = decoded.and_then(|b| serde_json::from_slice(&b).ok());
        let num = |name: &str| {
            let v = claims.as_ref()?.get(name)?;
            v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        };
        Claims { exp: num("exp"), iat: num("iat") }
    }
}

/// The `exp` claim of a JWT; `None` when the token is not a JWT.
pub fn jwt_exp(token: &str) -> Option<i64> {
    Claims::of(token).exp
}

/// The expiry of a new token and where it came from: the provider's word, else the JWT's
/// `exp`, else the next daily cut-off, else a day ([`tokenhost_rules::resolve_expiry`]).
pub fn resolve_expiry(
    provider_expiry: Option<i64>,
    claims: Claims,
    issued_at: Option<i64>,
    cutoff: Option<Cutoff>,
    now: i64,
) -> (i64, &'static str) {
    let cutoff = cutoff.map(|c| tokenhost_rules::Cutoff {
        hour: c.hour,
        minute: c.minute,
        utc_offset_minutes: c.utc_offset_minutes,
    });
    tokenhost_rules::resolve_expiry(provider_expiry, claims.exp, issued_at, cutoff, now)
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

/// What of `t` decides when it is due.
fn held(t: &StoredToken) -> tokenhost_rules::Held {
    tokenhost_rules::Held {
        expires_at: t.expires_at,
        refreshed_at: t.refreshed_at,
        refresh_ahead_secs: t.refresh_ahead_secs,
    }
}

/// Whether the stored token needs refreshing now; `refresh_ahead` overrides the token's own
/// ([`tokenhost_rules::due`], the rule the wasmCloud scheduler follows too).
pub fn due(token: Option<&StoredToken>, refresh_ahead: Option<u32>, now: i64) -> Option<Reason> {
    tokenhost_rules::due(token.map(held), refresh_ahead, now).map(|d| match d {
        tokenhost_rules::Due::Missing => Reason::Missing,
        tokenhost_rules::Due::Expired => Reason::Expired,
        tokenhost_rules::Due::Expiring => Reason::Expiring,
    })
}

/// When `t` becomes due ([`tokenhost_rules::Held::refresh_at`]).
pub fn refresh_at(t: &StoredToken, refresh_ahead: Option<u32>) -> i64 {
    held(t).refresh_at(refresh_ahead)
}

/// Exponential backoff with jitter: `first`, doubled after each failure, capped at `max`, each
/// wait moved by up to a quarter either way so that many accounts do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub first: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait after `failures` failures in a row (>= 1); `jitter` in [-1, 1].
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let base = self.first.as_secs_f64() * 2f64.powi(failures.saturating_sub(1).min(30) as i32);
        let capped = base.min(self.max.as_secs_f64());
        Duration::from_secs_f64(capped * (1.0 + 0.25 * jitter.clamp(-1.0, 1.0)))
    }

    /// [`Backoff::delay`] with fresh jitter.
    pub fn next(&self, failures: u32) -> Duration {
        self.delay(failures, jitter())
    }
}

/// A number in [-1, 1] that differs between processes and calls.
pub fn jitter() -> f64 {
    let bits = u64::from_str_radix(&crate::secret::random_hex()[..16], 16).unwrap_or(0);
    (bits as f64 / u64::MAX as f64) * 2.0 - 1.0
}

/// How a transient failure is retried within one run: [`Backoff`] between attempts, at most
/// `attempts` in all, none starting later than `max_total` after the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all.
    pub attempts: u32,
    /// The waits between them.
    pub backoff: Backoff,
    /// Budget from the first attempt's start.
    pub max_total: Duration,
}

/// How the daemon spaces whole runs of an account that keeps failing (each run retried
/// already): 30 s, doubling, up to half an hour.
pub const DAEMON_BACKOFF: Backoff = Backoff {
    first: Duration::from_secs(tokenhost_rules::FAILING_FIRST_SECS),
    max: Duration::from_secs(tokenhost_rules::FAILING_MAX_SECS),
};

/// Why a pushed token must not be stored, if it must not. Pushes are unsigned, so the host
/// trusts none by default: not a token it already has, not one older than the stored one, not
/// one issued before the last `logout` (a replay of a revoked token).
pub(crate) fn refuse_push(
    current: Option<&StoredToken>,
    pushed: &str,
    pushed_issued_at: Option<i64>,
    logged_out_at: Option<i64>,
) -> Option<String> {
    if let Some(c) = current {
        if c.access_token.expose() == pushed {
            return Some("this token is already stored: a replayed push is ignored".into());
        }
        if let (Some(new), Some(old)) = (pushed_issued_at, c.issued_at)
            && new < old
        {
            return Some("the pushed token is older than the stored one".into());
        }
    }
    match (pushed_issued_at, logged_out_at) {
        (Some(new), Some(out)) if new <= out => Some(format!(
            "the pushed token was issued before the logout at {}: a replay is refused",
            crate::time::iso(out)
        )),
        _ => None,
    }
}

/// What a provider component is, for deciding whether a new file may replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Provider name.
    pub name: String,
    /// Hosts it declares.
    pub hosts: Vec<String>,
}

/// Why `new` must not replace the running `old`, if it must not: it is another provider, or
/// it asks for hosts the running one did not (a swap never widens what a component may reach).
pub(crate) fn refuse_swap(old: &Identity, new: &Identity) -> Option<String> {
    if new.name != old.name {
        return Some(format!("it is provider `{}`, not `{}`", new.name, old.name));
    }
    let wider: Vec<&str> = new.hosts.iter().filter(|h| !old.hosts.contains(h)).map(String::as_str).collect();
    (!wider.is_empty()).then(|| format!("it declares hosts the running one did not: {}", wider.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IST: Cutoff = Cutoff { hour: 3, minute: 30, utc_offset_minutes: 330 };

    fn jwt(claims: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", e.encode(b"{\"alg\":\"HS256\"}"), e.encode(claims))
    }

    fn exp(t: i64) -> Claims {
        Claims::of(&jwt(&format!("{{\"exp\":{t}}}")))
    }

    #[test]
    fn claims_are_read_from_jwts_only() {
        assert_eq!(Claims::of(&jwt(r#"{"exp":5,"iat":2}"#)), Claims { exp: Some(5), iat: Some(2) });
        assert_eq!(Claims::of(&jwt(r#"{"exp":5.9}"#)).exp, Some(5));
        assert_eq!(Claims::of("opaque"), Claims::default());
        assert_eq!(Claims::of("a.b"), Claims::default());
        assert_eq!(Claims::of("a.!!!.c"), Claims::default());
        assert_eq!(Claims::of(&jwt(r#"{"exp":"soon"}"#)), Claims::default());
    }

    #[test]
    fn expiry_sources_in_order() {
        let now = 1_795_321_800; // 2026-11-22T04:30Z, 10:00 IST
        assert_eq!(resolve_expiry(Some(now + 60), exp(now + 99), None, None, now), (now + 60, "provider"));
        assert_eq!(resolve_expiry(None, exp(now + 99), None, None, now), (now + 99, "jwt"));
        assert_eq!(
            resolve_expiry(None, Claims::default(), None, None, now),
            (now + ASSUMED_LIFETIME_SECS, "assumed")
        );
        // The cut-off caps a later JWT expiry: next 03:30 IST is 2026-11-22T22:00Z.
        let cut = 1_795_321_800 + 17 * 3600 + 1800;
        assert_eq!(resolve_expiry(None, exp(now + 86_400), None, Some(IST), now), (cut, "cutoff"));
        assert_eq!(resolve_expiry(None, exp(now + 60), None, Some(IST), now), (now + 60, "jwt"));
        // Issued at 01:00 IST: dies at 03:30 IST the same day.
        let one_am = now - 9 * 3600;
        assert_eq!(
            resolve_expiry(None, Claims::default(), Some(one_am), Some(IST), now),
            (one_am + 2 * 3600 + 1800, "cutoff")
        );
    }

    fn token(expires_at: Option<i64>, issued_at: Option<i64>) -> StoredToken {
        StoredToken {
            account: "a".into(),
            provider: "p".into(),
            access_token: crate::secret::Secret::new("t"),
            expires_at,
            expiry_source: "jwt".into(),
            issued_at,
            user_id: None,
            extras: vec![],
            refreshed_at: 0,
            refreshed_at_micros: None,
            refresh_ahead_secs: 100,
            component_sha256: None,
        }
    }

    #[test]
    fn refresh_when_missing_expired_or_close() {
        let t = token(Some(1000), None);
        assert_eq!(due(None, None, 0), Some(Reason::Missing));
        assert_eq!(due(Some(&t), None, 899), None);
        assert_eq!(due(Some(&t), None, 900), Some(Reason::Expiring));
        assert_eq!(due(Some(&t), Some(10), 900), None);
        assert_eq!(due(Some(&t), None, 1000), Some(Reason::Expired));
        // Got inside its own window (the cut-off capped it): due only when it expires.
        let late = StoredToken { refreshed_at: 950, ..t.clone() };
        assert_eq!(refresh_at(&late, None), 1000);
        assert_eq!(due(Some(&late), None, 960), None);
        assert_eq!(due(Some(&late), None, 1000), Some(Reason::Expired));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let b = Backoff { first: Duration::from_secs(1), max: Duration::from_secs(3) };
        assert_eq!(b.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(2, 0.0), Duration::from_secs(2));
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(3));
        assert_eq!(b.delay(30, 0.0), Duration::from_secs(3));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(1250));
        assert_eq!(b.delay(1, -7.0), Duration::from_millis(750));
        for n in 1..10 {
            let d = DAEMON_BACKOFF.next(n).as_secs_f64();
            assert!((22.5..=2250.0).contains(&d), "{n}: {d}");
        }
    }

    #[test]
    fn pushes_that_replay_or_go_back_in_time_are_refused() {
        let current = token(Some(5000), Some(100));
        assert!(refuse_push(Some(&current), "t", Some(200), None).unwrap().contains("already stored"));
        assert!(refuse_push(Some(&current), "new", Some(50), None).unwrap().contains("older"));
        assert!(refuse_push(None, "new", Some(50), Some(60)).unwrap().contains("before the logout"));
        assert_eq!(refuse_push(Some(&current), "new", Some(200), Some(150)), None);
        assert_eq!(refuse_push(None, "new", None, Some(150)), None);
    }

    #[test]
    fn a_swap_never_changes_the_provider_or_widens_its_hosts() {
        let id = |n: &str, h: &[&str]| Identity {
            name: n.into(),
            hosts: h.iter().map(|s| s.to_string()).collect(),
        };
        let old = id("xts", &["a.example", "b.example"]);
        assert_eq!(refuse_swap(&old, &id("xts", &["a.example"])), None);
        assert!(refuse_swap(&old, &id("upstox", &["a.example"])).unwrap().contains("not `xts`"));
        assert_eq!(
            refuse_swap(&old, &id("xts", &["a.example", "c.example"])).unwrap(),
            "it declares hosts the running one did not: c.example"
        );
    }
}
