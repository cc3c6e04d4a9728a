//! Time-based one-time passwords (RFC 6238), for brokers that log in unattended with a client
//! code, a PIN and a TOTP code. The seed is a secret setting, given in base32 as brokers show
//! it (spaces and lower case are fine); only this component ever sees it.
//!
//! ```ignore
//! let totp = totp::Totp::from_setting("totp-secret")?;
//! let token = totp.login(|code| {
//!     let answer = http::post(URL).json(&json!({ "pin": pin, "totp": code })).send()?;
//!     if answer_says_wrong_code(&answer) {
//!         return Ok(totp::Outcome::WrongCode(message));
//!     }
//!     Ok(totp::Outcome::Done(token_from(&answer)?))
//! })?;
//! ```
//!
//! Codes roll over every 30 seconds, and brokers reject one that rolled over in flight: when
//! fewer than [`MIN_LEFT_SECS`] remain in the current window, [`Totp::login`] waits for the
//! next. A code the broker calls wrong is tried once more with the next window's code (which
//! covers a clock a step behind the broker's), never more: brokers lock accounts after repeated
//! failures.

use crate::{Result, config, config_error, rejected};
use hmac::{Hmac, Mac};

/// The window of one code, seconds.
pub const STEP_SECS: u64 = 30;
/// A code with fewer seconds than this left is not sent; the next window's is.
pub const MIN_LEFT_SECS: u64 = 3;

/// The hash behind the codes (brokers use SHA-1; some authenticators offer the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1, the default.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// HMAC of `msg` under `key` with the hash `$d`.
macro_rules! hmac_of {
    ($d:ty, $key:expr, $msg:expr) => {{
        // HMAC takes keys of any length: this cannot fail.
        let mut m = <Hmac<$d> as Mac>::new_from_slice($key).expect("HMAC takes keys of any length");
        m.update($msg);
        m.finalize().into_bytes().to_vec()
    }};
}

/// A TOTP generator for one seed.
#[derive(Clone)]
pub struct Totp {
    key: Vec<u8>,
    algorithm: Algorithm,
    digits: u32,
    setting: String,
}

/// What a login attempt made of the broker's answer.
pub enum Outcome<T> {
    /// Logged in.
    Done(T),
    /// The broker refused the code (its own words).
    WrongCode(String),
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp").field("setting", &self.setting).finish_non_exhaustive()
    }
}

impl Totp {
    /// The generator for the secret setting `key`; a missing or malformed seed is a
    /// configuration error naming the setting.
    pub fn from_setting(key: &str) -> Result<Totp> {
        let seed = config::get(key)?;
        Totp::new(&seed)
            .map(|mut t| {
                t.setting = key.to_string();
                t
            })
            .ok_or_else(|| {
                config_error(
                    key,
                    "is not a TOTP secret: expected the base32 key the broker showed when TOTP was set up \
                 (letters A-Z and digits 2-7)",
                )
            })
    }

    /// The generator for a base32 seed (RFC 4648; spaces, dashes, lower case and `=` padding
    /// accepted); `None` when it is not base32 or decodes to fewer than 10 bytes.
    pub fn new(seed_base32: &str) -> Option<Totp> {
        let key = base32_decode(seed_base32)?;
        (key.len() >= 10).then(|| Totp { key, algorithm: Algorithm::Sha1, digits: 6, setting: String::new() })
    }

    /// The same seed with another hash.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Totp {
        self.algorithm = algorithm;
        self
    }

    /// The same seed with codes of `digits` digits, 6 to 8 (6 unless the broker says otherwise).
    pub fn with_digits(mut self, digits: u32) -> Totp {
        self.digits = digits.clamp(6, 8);
        self
    }

    /// The code of the window that contains `unix_secs`, zero-padded.
    pub fn code_at(&self, unix_secs: u64) -> String {
        let counter = (unix_secs / STEP_SECS).to_be_bytes();
        let digest = match self.algorithm {
            Algorithm::Sha1 => hmac_of!(sha1::Sha1, &self.key, &counter),
            Algorithm::Sha256 => hmac_of!(sha2::Sha256, &self.key, &counter),
            Algorithm::Sha512 => hmac_of!(sha2::Sha512, &self.key, &counter),
        };
        // RFC 4226 dynamic truncation.
        let offset = (digest[digest.len() - 1] & 0x0f) as usize;
        let bin = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        let code = bin % 10u32.pow(self.digits);
        format!("{code:0width$}", width = self.digits as usize)
    }

    /// The time at which to take the code to send now: the current window, or the next one
    /// when fewer than [`MIN_LEFT_SECS`] remain, after waiting for it.
    pub fn fresh_time(&self) -> u64 {
        let now = now_secs();
        let left = STEP_SECS - now % STEP_SECS;
        if left < MIN_LEFT_SECS {
            std::thread::sleep(std::time::Duration::from_millis(left * 1000 + 50));
            return now + left;
        }
        now
    }

    /// Logs in with `attempt(code)`, fresh code first. A code the broker calls wrong is tried
    /// once more, with the next window's code; twice wrong is `rejected`.
    pub fn login<T>(&self, mut attempt: impl FnMut(&str) -> Result<Outcome<T>>) -> Result<T> {
        let at = self.fresh_time();
        let first = match attempt(&self.code_at(at))? {
            Outcome::Done(t) => return Ok(t),
            Outcome::WrongCode(message) => message,
        };
        match attempt(&self.code_at(at + STEP_SECS))? {
            Outcome::Done(t) => Ok(t),
            Outcome::WrongCode(message) => Err(rejected(format!(
                "the broker refused the TOTP code twice ({first}; then {message}): check the setting `{}` \
                 and this machine's clock",
                if self.setting.is_empty() { "totp-secret" } else { &self.setting }
            ))),
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// RFC 4648 base32, as authenticator apps show it.
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    let mut padding = false;
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '-') {
        if c == '=' {
            padding = true;
            continue;
        }
        if padding {
            return None;
        }
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
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the seeds are the ASCII strings, 8-digit codes.
    #[test]
    fn rfc_6238_appendix_b() {
        let b32 = |ascii: &str| {
            // Encode the ASCII seed as base32 to go through the same path as a broker's seed.
            let bytes = ascii.as_bytes();
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
            let (mut out, mut acc, mut bits) = (String::new(), 0u64, 0u32);
            for &b in bytes {
                acc = (acc << 8) | b as u64;
                bits += 8;
                while bits >= 5 {
                    bits -= 5;
                    out.push(alphabet[((acc >> bits) & 31) as usize] as char);
                }
            }
            if bits > 0 {
                out.push(alphabet[((acc << (5 - bits)) & 31) as usize] as char);
            }
            out
        };
        let sha1 = Totp::new(&b32("12345678901234567890")).unwrap().with_digits(8);
        let sha256 = Totp::new(&b32("12345678901234567890123456789012"))
            .unwrap()
            .with_digits(8)
            .with_algorithm(Algorithm::Sha256);
        let sha512 = Totp::new(&b32("1234567890123456789012345678901234567890123456789012345678901234"))
            .unwrap()
            .with_digits(8)
            .with_algorithm(Algorithm::Sha512);
        let vectors: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, a, b, c) in vectors {
            assert_eq!(sha1.code_at(t), a, "SHA1 at {t}");
            assert_eq!(sha256.code_at(t), b, "SHA256 at {t}");
            assert_eq!(sha512.code_at(t), c, "SHA512 at {t}");
        }
        // Six digits are the last six of the eight.
        assert_eq!(Totp::new(&b32("12345678901234567890")).unwrap().code_at(59), "287082");
    }

    #[test]
    fn seeds_as_brokers_show_them() {
        let plain = Totp::new("JBSWY3DPEHPK3PXP").unwrap();
        for same in ["jbsw y3dp ehpk 3pxp", "JBSW-Y3DP-EHPK-3PXP", "JBSWY3DPEHPK3PXP======"] {
            assert_eq!(
                Totp::new(same).unwrap().code_at(1_700_000_000),
                plain.code_at(1_700_000_000),
                "{same}"
            );
        }
        for bad in ["", "not base32!", "JBSW1", "ABC=D", "AAAA"] {
            assert!(Totp::new(bad).is_none(), "{bad}");
        }
    }
}
