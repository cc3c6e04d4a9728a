//! The five TOTP brokers together: `run --all` over 50 accounts, ten at each broker, one with a
//! wrong PIN (a wrong key at Groww, which has no PIN) at each: 45 tokens stored, 5 rejected, and
//! each broker saw one login per good account and one attempt per bad one.

use crate::support::*;
use tokenhost_sandbox::angelone::AngelOneMock;
use tokenhost_sandbox::dhan::DhanMock;
use tokenhost_sandbox::fivepaisa::FivePaisaMock;
use tokenhost_sandbox::groww::GrowwMock;
use tokenhost_sandbox::kotakneo::KotakNeoMock;
use tokenhost_sandbox::nonce;

const ANGELONE: &str = env!("TOKENHOST_COMPONENT_ANGELONE");
const DHAN: &str = env!("TOKENHOST_COMPONENT_DHAN");
const FIVEPAISA: &str = env!("TOKENHOST_COMPONENT_FIVEPAISA");
const GROWW: &str = env!("TOKENHOST_COMPONENT_GROWW");
const KOTAKNEO: &str = env!("TOKENHOST_COMPONENT_KOTAKNEO");

fn secret(tag: &str) -> String {
    format!("{tag}{}", &nonce()[..10])
}

#[test]
fn run_all_over_fifty_accounts_at_five_totp_brokers_with_five_bad_pins() {
    let mut w = World::new("totp-fleet");
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let (angel, dhan, five, groww, kotak) =
        (AngelOneMock::new(), DhanMock::new(), FivePaisaMock::new(), GrowwMock::new(), KotakNeoMock::new());
    let servers = [angel.serve(), dhan.serve(), five.serve(), groww.serve(), kotak.serve()];
    let url = |i: usize| format!("{:?}", servers[i].url());
    let (app_key, user_id, encryption_key) = {
        let s = five.state();
        (s.user_key.clone(), s.user_id.clone(), s.encryption_key.clone())
    };
    let mut secrets = vec![encryption_key.clone()];
    let mut toml = String::from("[retry]\nattempts = 1\n");
    for i in 0..50 {
        let (broker, bad) = (i / 10, i % 10 == 3);
        let name = format!("acct-{i:02}");
        let (pin, key) = (secret("P"), secret("K"));
        let given = if bad { secret("W") } else { pin.clone() };
        let (provider, settings) = match broker {
            0 => {
                let seed = angel.account(&format!("A{i:02}"), &pin, &key);
                secrets.push(seed.clone());
                (
                    ANGELONE,
                    format!(
                        "api-root = {}\napi-key = {key:?}\nclient-code = \"A{i:02}\"\npin = {given:?}\ntotp-secret = {seed:?}\n",
                        url(0)
                    ),
                )
            }
            1 => {
                let seed = dhan.account(&format!("11000{i:05}"), &pin);
                secrets.push(seed.clone());
                (
                    DHAN,
                    format!(
                        "auth-root = {}\napi-root = {}\nclient-id = \"11000{i:05}\"\npin = {given:?}\ntotp-secret = {seed:?}\n",
                        url(1),
                        url(1)
                    ),
                )
            }
            2 => {
                let seed = five.account(&format!("C{i:02}"), &pin);
                secrets.push(seed.clone());
                (
                    FIVEPAISA,
                    format!(
                        "api-root = {}\nuser-key = {app_key:?}\nuser-id = {user_id:?}\nencryption-key = {encryption_key:?}\n\
                     client-code = \"C{i:02}\"\npin = {given:?}\ntotp-secret = {seed:?}\n",
                        url(2)
                    ),
                )
            }
            3 => {
                // Groww has no PIN: its bad account has a wrong API key instead.
                let seed = groww.account(&format!("G{i:02}"), &key);
                secrets.push(seed.clone());
                let given = if bad { secret("W") } else { key.clone() };
                secrets.push(given.clone());
                (GROWW, format!("api-root = {}\napi-key = {given:?}\ntotp-secret = {seed:?}\n", url(3)))
            }
            _ => {
                let access = secret("T");
                let mobile = format!("+9198765{i:05}");
                let seed = kotak.account(&access, &mobile, &format!("U{i:02}"), &pin);
                secrets.extend([seed.clone(), access.clone()]);
                (
                    KOTAKNEO,
                    format!(
                        "login-root = {}\naccess-token = {access:?}\nmobile-number = {mobile:?}\nucc = \"U{i:02}\"\n\
                     mpin = {given:?}\ntotp-secret = {seed:?}\n",
                        url(4)
                    ),
                )
            }
        };
        secrets.extend([pin, given, key]);
        toml.push_str(&format!(
            "[accounts.{name}]\nprovider = {provider:?}\n[accounts.{name}.settings]\n{settings}\n"
        ));
    }
    w.write("tokenhost.toml", &toml);
    let out = w.run(&["run", "--all"]);
    out.assert_code(3).assert_stdout_has("50 accounts: 45 refreshed, 5 rejected");
    for i in 0..50 {
        let name = format!("acct-{i:02}");
        let line = out.stdout.lines().find(|l| l.starts_with(&format!("{name}: "))).unwrap();
        let stored = w.account_dir(&name).join("token.json").exists();
        if i % 10 == 3 {
            assert!(line.contains("failed (rejected)"), "{line}");
            assert!(!stored, "{name}");
        } else {
            assert!(line.contains("refreshed (no token stored)"), "{line}");
            assert!(stored, "{name}");
        }
    }
    let counts = [
        {
            let s = angel.state();
            (s.attempts, s.logins)
        },
        {
            let s = dhan.state();
            (s.attempts, s.logins)
        },
        {
            let s = five.state();
            (s.attempts, s.logins)
        },
        {
            let s = groww.state();
            (s.attempts, s.logins)
        },
        {
            let s = kotak.state();
            (s.attempts, s.logins)
        },
    ];
    for (broker, (attempts, logins)) in counts.iter().enumerate() {
        assert_eq!(*logins, 9, "broker {broker}: one login per good account");
        // A bad PIN is one attempt, never retried (a TOTP retry would make it two).
        assert_eq!(*attempts, 10, "broker {broker}: one attempt per account");
    }
    let mut tokens = angel.state().issued.clone();
    tokens.extend(dhan.state().issued.clone());
    tokens.extend(five.state().issued.clone());
    tokens.extend(groww.state().issued.clone());
    tokens.extend(kotak.state().issued.clone());
    w.assert_not_leaked(&secrets, &tokens);
}
