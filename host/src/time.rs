//! Unix time helpers. The host shows UTC and brokers' cut-offs carry their own offset; only
//! the files the old scripts wrote are in the machine's local time ([`local_offset`]).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in unix seconds.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `2026-11-22T09:00:00Z`.
pub fn iso(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The machine's local time zone's offset east of UTC at `ts`, seconds (as the C library
/// reads `TZ` and `/etc/localtime`; `%LOCALAPPDATA%`'s zone on Windows); 0 when unknown.
pub fn local_offset(ts: i64) -> i64 {
    #[cfg(unix)]
    {
        let t = ts as libc::time_t;
        // SAFETY: localtime_r only reads `t` and writes the `tm` we own; it is thread-safe.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
    #[cfg(windows)]
    {
        use windows_sys::Win32::System::Time::{GetTimeZoneInformation, TIME_ZONE_INFORMATION};
        let _ = ts;
        // SAFETY: fills the struct we own.
        let mut tz: TIME_ZONE_INFORMATION = unsafe { std::mem::zeroed() };
        let kind = unsafe { GetTimeZoneInformation(&mut tz) };
        // 2 = daylight time in effect now.
        let bias = tz.Bias + if kind == 2 { tz.DaylightBias } else { tz.StandardBias };
        -(bias as i64) * 60
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = ts;
        0
    }
}

/// `(YYYY-MM-DD, HH:MM:SS)` of `ts` shifted by `offset` seconds.
pub fn civil(ts: i64, offset: i64) -> (String, String) {
    let t = ts.saturating_add(offset);
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let secs = t.rem_euclid(86_400);
    (format!("{y:04}-{m:02}-{d:02}"), format!("{:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60))
}

/// `in 5h 12m`, `3m ago`.
pub fn relative(ts: i64, now: i64) -> String {
    let d = ts.saturating_sub(now);
    let a = d.saturating_abs();
    if a < 1 {
        return "just now".into();
    }
    if d >= 0 { format!("in {}", span(a)) } else { format!("{} ago", span(a)) }
}

/// `5h 12m`, `5m`, `40s` for a number of seconds.
pub fn span(secs: i64) -> String {
    let a = secs.saturating_abs();
    if a >= 86_400 {
        format!("{}d {}h", a / 86_400, a % 86_400 / 3600)
    } else if a >= 3600 {
        format!("{}h {}m", a / 3600, a % 3600 / 60)
    } else if a >= 60 {
        format!("{}m", a / 60)
    } else {
        format!("{a}s")
    }
}

pub use tokenhost_rules::{LAST_SECOND, next_daily};

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn civil_time_at_an_offset() {
        // 2026-11-22T04:30Z is 10:00 in India.
        assert_eq!(civil(1_795_321_800, 330 * 60), ("2026-11-22".to_string(), "10:00:00".to_string()));
        assert_eq!(civil(0, -3600), ("1969-12-31".to_string(), "23:00:00".to_string()));
    }

    #[test]
    fn next_cutoff_in_india() {
        // 03:30 IST is 22:00 UTC the day before.
        let ist = 330;
        // 2026-11-22 10:00 IST (04:30Z) -> 2026-11-23 03:30 IST (2026-11-22T22:00Z).
        let t = 1_795_321_800;
        assert_eq!(iso(t), "2026-11-22T04:30:00Z");
        assert_eq!(iso(next_daily(t, 3, 30, ist)), "2026-11-22T22:00:00Z");
        // 01:00 IST (19:30Z the day before) -> 03:30 IST the same day.
        let early = t - 9 * 3600;
        assert_eq!(iso(early), "2026-11-21T19:30:00Z");
        assert_eq!(iso(next_daily(early, 3, 30, ist)), "2026-11-21T22:00:00Z");
        // 23:50 IST, before midnight (18:20Z) -> 03:30 IST the next morning, 3h 40m later.
        let late = t + 13 * 3600 + 50 * 60;
        assert_eq!(iso(late), "2026-11-22T18:20:00Z");
        assert_eq!(next_daily(late, 3, 30, ist), late + 3 * 3600 + 40 * 60);
        // 00:10 IST, after midnight -> 03:30 IST the same morning, the same instant.
        assert_eq!(next_daily(late + 20 * 60, 3, 30, ist), late + 3 * 3600 + 40 * 60);
        // Exactly at the cut-off -> the next day's.
        let at = next_daily(t, 3, 30, ist);
        assert_eq!(next_daily(at, 3, 30, ist), at + 86_400);
    }
}
