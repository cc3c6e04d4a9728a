//! JWT claims and expiry: any token and any clock give an expiry without panicking, and the
//! rules hold: the provider's word first, then `exp`, then the cut-off, which caps the others.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenhost::policy::{Claims, Cutoff, resolve_expiry};

fuzz_target!(|input: (&str, Option<i64>, Option<i64>, Option<(u8, u8, i16)>, i64)| {
    let (token, provider, issued, cutoff, now) = input;
    let claims = Claims::of(token);
    let cutoff = cutoff.map(|(hour, minute, utc_offset_minutes)| Cutoff {
        hour: hour % 24,
        minute: minute % 60,
        utc_offset_minutes: utc_offset_minutes % (14 * 60),
    });
    let (at, source) = resolve_expiry(provider, claims, issued, cutoff, now);
    match (provider.or(claims.exp), cutoff) {
        (Some(claimed), None) => assert_eq!(at, claimed),
        (Some(claimed), Some(_)) => assert!(at <= claimed),
        (None, None) => assert_eq!(source, "assumed"),
        (None, Some(_)) => assert_eq!(source, "cutoff"),
    }
    if let Some(c) = cutoff {
        let next = tokenhost::time::next_daily(issued.unwrap_or(now), c.hour, c.minute, c.utc_offset_minutes);
        assert!(at <= next, "{at} past the cut-off {next}");
        // The cut-off is within a day after the issue time (for times a calendar can hold).
        let from = issued.unwrap_or(now).clamp(-tokenhost::time::LAST_SECOND, tokenhost::time::LAST_SECOND);
        assert!(next > from && next <= from + 86_400, "{from} -> {next}");
    }
    let _ = tokenhost::time::iso(at);
    let _ = tokenhost::time::relative(at, now);
});
