//! Reminders to log in, for accounts whose broker needs a person once a day: one message on a
//! trading day, at a set time before the market needs the token, for each account whose token
//! is missing, dead, or dies before the trading day ends. The message carries a login link the
//! daemon serves, so the login can be done from a phone.
//!
//! A link is `BASE/login/ACCOUNT?d=DAY&k=KEY`: `KEY` is an HMAC of the account and the day
//! under a key kept in the state directory, so only someone who got the message can start a
//! login, and only on that day. The link starts a login and nothing more: the broker still asks
//! the person for their credentials.

use crate::Error;
use crate::secret::Secret;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use std::path::Path;

/// India's offset east of UTC, minutes: the default of `utc_offset_minutes`.
const IST_MINUTES: i16 = 330;

/// `[remind]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemindConfig {
    /// When the reminder goes out, `HH:MM` local time (e.g. `"08:45"`).
    pub at: String,
    /// The end of the trading day, `HH:MM` (default `"15:30"`): a token that dies before it
    /// needs a login.
    pub until: Option<String>,
    /// The offset of those times east of UTC, minutes (default 330, India).
    pub utc_offset_minutes: Option<i16>,
    /// Remind on Monday to Friday only (default true).
    pub weekdays_only: Option<bool>,
    /// The base of the login links, as the phone reaches the daemon's listener (e.g.
    /// `https://desk.example`; default `http://` and the listener's own address).
    pub link: Option<String>,
}

/// When reminders go out.
#[derive(Debug, Clone)]
pub struct Reminders {
    at: (u8, u8),
    until: (u8, u8),
    offset: i16,
    weekdays_only: bool,
    link: Option<String>,
}

/// Today's reminder window: its day (`YYYY-MM-DD`) and when it closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The day, in the reminders' offset.
    pub day: String,
    /// Unix seconds: a token that dies before this needs a login.
    pub closes: i64,
}

impl Reminders {
    /// The reminders `config` describes; `listening` is the daemon listener's address, the
    /// base of the links when the config names none.
    pub fn new(config: &RemindConfig, listening: Option<&str>) -> Result<Reminders, Error> {
        let time = |key: &str, text: &str| {
            crate::schedule::parse_at(text).map_err(|e| Error::Config(format!("[remind] {key}: {e}")))
        };
        let offset = config.utc_offset_minutes.unwrap_or(IST_MINUTES);
        if !(-14 * 60..=14 * 60).contains(&offset) {
            return Err(Error::Config("[remind] utc_offset_minutes must be within -840..=840".into()));
        }
        let link = match &config.link {
            Some(l) if !(l.starts_with("http://") || l.starts_with("https://")) => {
                return Err(Error::Config(format!(
                    "[remind] link must be an http:// or https:// URL, such as https://desk.example (got {l:?})"
                )));
            }
            Some(l) => Some(l.trim_end_matches('/').to_string()),
            None => listening.map(|a| format!("http://{a}")),
        };
        Ok(Reminders {
            at: time("at", &config.at)?,
            until: time("until", config.until.as_deref().unwrap_or("15:30"))?,
            offset,
            weekdays_only: config.weekdays_only.unwrap_or(true),
            link,
        })
    }

    /// The base of the login links, if there is one.
    pub fn link_base(&self) -> Option<&str> {
        self.link.as_deref()
    }

    /// The reminder window `now` is in, if any: from `at` on a reminder day to the next
    /// `until` after it.
    pub fn window(&self, now: i64) -> Option<Window> {
        let next_at = crate::time::next_daily(now, self.at.0, self.at.1, self.offset);
        let opened = next_at - 86_400;
        let closes = crate::time::next_daily(opened, self.until.0, self.until.1, self.offset);
        if now >= closes {
            return None;
        }
        let local = opened + self.offset as i64 * 60;
        // 1970-01-01 was a Thursday: 0 = Monday.
        let weekday = (local.div_euclid(86_400) + 3).rem_euclid(7);
        if self.weekdays_only && weekday >= 5 {
            return None;
        }
        Some(Window { day: crate::time::civil(opened, self.offset as i64 * 60).0, closes })
    }

    /// Whether a token that expires at `expires_at` (`None`: none stored), `dead` or not,
    /// needs a login in `window`.
    pub fn needs_login(window: &Window, expires_at: Option<i64>, dead: bool) -> bool {
        dead || expires_at.is_none_or(|e| e <= window.closes)
    }

    /// The login link of `account` for `day`, if there is a base.
    pub fn link(&self, key: &Secret, account: &str, day: &str) -> Option<String> {
        let base = self.link.as_deref()?;
        Some(format!("{base}/login/{account}?d={day}&k={}", mac(key, account, day)))
    }

    /// Whether `k` is the key of a link to `account` for `day`, and `day` is today or
    /// yesterday (a link clicked just after midnight) in the reminders' offset.
    pub fn link_valid(&self, key: &Secret, account: &str, day: &str, k: &str, now: i64) -> bool {
        let offset = self.offset as i64 * 60;
        let recent = [now, now - 86_400].map(|t| crate::time::civil(t, offset).0);
        recent.iter().any(|d| d == day) && constant_time_eq(mac(key, account, day).as_bytes(), k.as_bytes())
    }
}

/// The key of the login links, made once and kept 0600 in the state directory.
pub fn link_key(state: &Path) -> Result<Secret, Error> {
    let path = state.join("login-link.key");
    match std::fs::read_to_string(&path) {
        Ok(k) if k.trim().len() >= 32 => return Ok(Secret::new(k.trim())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    }
    let key = format!("{}{}", crate::secret::random_hex(), crate::secret::random_hex());
    crate::store::write_atomic(&path, key.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(Secret::new(key))
}

fn mac(key: &Secret, account: &str, day: &str) -> String {
    let mut m = <Hmac<sha2::Sha256>>::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key");
    m.update(format!("login\n{account}\n{day}").as_bytes());
    m.finalize().into_bytes()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reminders(at: &str, until: &str, weekdays_only: bool) -> Reminders {
        let config = RemindConfig {
            at: at.into(),
            until: Some(until.into()),
            utc_offset_minutes: None,
            weekdays_only: Some(weekdays_only),
            link: None,
        };
        Reminders::new(&config, Some("127.0.0.1:8977")).unwrap()
    }

    // Monday 2026-11-23, 08:45 IST = 03:15Z.
    const MON_0845_IST: i64 = 1_795_403_700;

    #[test]
    fn the_window_runs_from_at_to_until_on_trading_days() {
        assert_eq!(crate::time::iso(MON_0845_IST), "2026-11-23T03:15:00Z");
        let r = reminders("08:45", "15:30", true);
        assert_eq!(r.window(MON_0845_IST - 1), None);
        let w = r.window(MON_0845_IST).unwrap();
        assert_eq!(w.day, "2026-11-23");
        assert_eq!(crate::time::iso(w.closes), "2026-11-23T10:00:00Z");
        assert_eq!(r.window(w.closes - 1).unwrap(), w);
        assert_eq!(r.window(w.closes), None);
        // Saturday and Sunday have none, unless every day is asked for.
        let sat = MON_0845_IST - 2 * 86_400 + 60;
        assert_eq!(r.window(sat), None);
        assert_eq!(reminders("08:45", "15:30", false).window(sat).unwrap().day, "2026-11-21");
    }

    #[test]
    fn a_window_may_cross_midnight() {
        // 23:00 to 01:00 IST; at 00:30 IST on Tuesday the window is Monday's.
        let r = reminders("23:00", "01:00", true);
        let tue_0030 = MON_0845_IST + 15 * 3600 + 45 * 60;
        let w = r.window(tue_0030).unwrap();
        assert_eq!(w.day, "2026-11-23");
        assert_eq!(w.closes, tue_0030 + 30 * 60);
    }

    #[test]
    fn a_login_is_needed_when_the_token_dies_in_the_window() {
        let w = Window { day: "2026-11-23".into(), closes: 1000 };
        assert!(Reminders::needs_login(&w, None, false));
        assert!(Reminders::needs_login(&w, Some(1000), false));
        assert!(!Reminders::needs_login(&w, Some(1001), false));
        assert!(Reminders::needs_login(&w, Some(5000), true));
    }

    #[test]
    fn links_are_bound_to_the_account_and_the_day() {
        let r = reminders("08:45", "15:30", true);
        let key = Secret::new("k".repeat(64));
        let link = r.link(&key, "kite", "2026-11-23").unwrap();
        let k = link.rsplit_once("k=").unwrap().1;
        assert!(link.starts_with("http://127.0.0.1:8977/login/kite?d=2026-11-23&k="));
        assert!(r.link_valid(&key, "kite", "2026-11-23", k, MON_0845_IST));
        assert!(r.link_valid(&key, "kite", "2026-11-23", k, MON_0845_IST + 86_400));
        assert!(!r.link_valid(&key, "kite", "2026-11-23", k, MON_0845_IST + 2 * 86_400));
        assert!(!r.link_valid(&key, "fyers", "2026-11-23", k, MON_0845_IST));
        assert!(!r.link_valid(&key, "kite", "2026-11-24", k, MON_0845_IST + 86_400));
        assert!(!r.link_valid(&Secret::new("x".repeat(64)), "kite", "2026-11-23", k, MON_0845_IST));
        assert!(!r.link_valid(&key, "kite", "2026-11-23", "", MON_0845_IST));
    }

    #[test]
    fn bad_settings_are_named() {
        let mut c = RemindConfig {
            at: "8.45".into(),
            until: None,
            utc_offset_minutes: None,
            weekdays_only: None,
            link: None,
        };
        assert!(Reminders::new(&c, None).unwrap_err().to_string().contains("[remind] at"));
        c.at = "08:45".into();
        c.link = Some("desk.example".into());
        assert!(Reminders::new(&c, None).unwrap_err().to_string().contains("[remind] link"));
    }
}
