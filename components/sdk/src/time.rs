//! Reading brokers' clock times. Many give a local date and time with no offset (Dhan's
//! `expiryTime` is IST): [`parse_local`] turns one into unix seconds.

/// Minutes east of UTC of India Standard Time.
pub const IST_MINUTES: i16 = 330;

/// Unix seconds of a local date-time `YYYY-MM-DD[T ]HH:MM[:SS[.fff]]` at `utc_offset_minutes`
/// east of UTC; `None` when it is not one.
pub fn parse_local(text: &str, utc_offset_minutes: i16) -> Option<i64> {
    let text = text.trim();
    let (date, time) = text.split_once(['T', ' '])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let time = time.split(['.', 'Z', '+']).next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min) = (t.next()??, t.next()??);
    let s = t.next().unwrap_or(Some(0))?;
    if t.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&min) || !(0..61).contains(&s) {
        return None;
    }
    Some(days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + s - utc_offset_minutes as i64 * 60)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_of_brokers() {
        // 2026-01-01 00:00 IST is 2025-12-31 18:30 UTC.
        assert_eq!(parse_local("2026-01-01T00:00:00.000", IST_MINUTES), Some(1_767_205_800));
        assert_eq!(parse_local("2026-01-01 00:00:00", IST_MINUTES), Some(1_767_205_800));
        assert_eq!(parse_local("2026-01-01T05:30", 0), Some(1_767_205_800 + 11 * 3600));
        assert_eq!(parse_local("1970-01-01T00:00:00", 0), Some(0));
        assert_eq!(parse_local("2024-02-29T12:00:00", 0), Some(1_709_208_000));
        for bad in [
            "",
            "2026-13-01T00:00:00",
            "2026-01-01",
            "tomorrow",
            "2026-01-01T25:00:00",
            "2026-01-01T00:00:00:00",
        ] {
            assert_eq!(parse_local(bad, IST_MINUTES), None, "{bad}");
        }
    }
}
