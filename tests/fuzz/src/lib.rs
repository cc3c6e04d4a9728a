//! What the fuzz targets share: a state directory, the real service with the bundled
//! providers pointed at a loopback "broker" that answers whatever bytes the fuzzer chose, and a
//! panic hook that turns a panic anywhere (a runtime's task included) into a crash libFuzzer
//! sees.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once, OnceLock};
use tokenhost::plan::{Plan, Planner};
use tokenhost::provider::{ProviderInfo, Setting};
use tokenhost::service::Service;
use tokenhost::settings::Config;
use tokenhost::store::StateDir;

/// Where the components were built: the main build's, taken as they are.
fn components() -> PathBuf {
    std::env::var_os("TOKENHOST_PREBUILT_COMPONENTS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/wasm/wasm32-wasip2/release"))
    })
}

fn abort_on_panic() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            std::process::abort();
        }));
    });
}

/// A state directory for this process.
pub fn state() -> StateDir {
    static STATE: OnceLock<StateDir> = OnceLock::new();
    STATE
        .get_or_init(|| {
            abort_on_panic();
            // run.sh keeps one across targets, so that components compile once.
            let dir = std::env::var_os("TOKENHOST_FUZZ_STATE").map(PathBuf::from).unwrap_or_else(|| {
                std::env::temp_dir().join(format!("tokenhost-fuzz-{}", std::process::id()))
            });
            StateDir::open(dir).expect("a state directory")
        })
        .clone()
}

/// What the example provider declares.
pub fn example_info() -> ProviderInfo {
    let setting = |name: &str, secret: bool, required: bool| Setting {
        name: name.into(),
        secret,
        required,
        description: String::new(),
        aliases: Vec::new(),
    };
    ProviderInfo {
        name: "example".into(),
        version: "0".into(),
        api_version: "0.1.0".into(),
        settings: vec![
            setting("api-root", false, true),
            setting("api-key", false, true),
            setting("api-secret", true, true),
            setting("mode", false, false),
        ],
        hosts: Vec::new(),
        daily_cutoff: None,
        refresh_ahead_secs: 600,
    }
}

/// A broker on 127.0.0.1 that reads each request and answers with the bytes it was last given.
pub struct RawBroker {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    answer: Arc<Mutex<Vec<u8>>>,
}

impl RawBroker {
    fn start() -> RawBroker {
        let socket = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}", socket.local_addr().expect("its address"));
        let answer = Arc::new(Mutex::new(Vec::new()));
        let given = answer.clone();
        std::thread::spawn(move || {
            for conn in socket.incoming().flatten() {
                let given = given.clone();
                std::thread::spawn(move || {
                    let mut conn = conn;
                    let _ = conn.set_read_timeout(Some(std::time::Duration::from_millis(200)));
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    // The request head and as much body as comes within the read timeout.
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        if head_and_body_done(&seen) {
                            break;
                        }
                    }
                    let bytes = given.lock().map(|a| a.clone()).unwrap_or_default();
                    let _ = conn.write_all(&bytes);
                });
            }
        });
        RawBroker { url, answer }
    }

    /// The next answers are `bytes`.
    pub fn answer(&self, bytes: &[u8]) {
        if let Ok(mut a) = self.answer.lock() {
            *a = bytes.to_vec();
        }
    }
}

fn head_and_body_done(seen: &[u8]) -> bool {
    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    seen.len() >= end + 4 + length
}

/// The service, with one plan per bundled provider pointed at the raw broker.
pub struct World {
    /// The runtime the service runs on.
    pub rt: tokio::runtime::Runtime,
    /// The core.
    pub service: Arc<Service>,
    /// The broker that answers what the fuzzer chose.
    pub broker: RawBroker,
    /// Plans by account name, each a bundled provider.
    pub plans: Vec<Plan>,
}

/// A base32 TOTP seed (for the providers that need one).
pub const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// Whether the providers that mint TOTP codes would wait for the next window now (they do in
/// the last 3 s of one), which would make an iteration seconds long.
pub fn totp_would_wait() -> bool {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    30 - now % 30 <= 4
}

/// The world, made once per process.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let state = state();
        let broker = RawBroker::start();
        let dir = components();
        let url = &broker.url;
        let accounts: [(&str, &str, Vec<(&str, String)>); 8] = [
            (
                "example",
                "fixture",
                vec![("api-root", url.clone()), ("api-key", "k".into()), ("api-secret", "s".into())],
            ),
            (
                "xts",
                "xts",
                vec![("api-root", url.clone()), ("api-key", "k".into()), ("api-secret", "s".into())],
            ),
            (
                "upstox",
                "upstox",
                vec![
                    ("api-root", url.clone()),
                    ("api-key", "k".into()),
                    ("api-secret", "s".into()),
                    ("redirect-uri", "http://127.0.0.1:5055/cb".into()),
                ],
            ),
            (
                "dhan",
                "dhan",
                vec![
                    ("auth-root", url.clone()),
                    ("api-root", url.clone()),
                    ("client-id", "1100012345".into()),
                    ("pin", "123456".into()),
                    ("totp-secret", SEED.into()),
                ],
            ),
            (
                "angelone",
                "angelone",
                vec![
                    ("api-root", url.clone()),
                    ("api-key", "k".into()),
                    ("client-code", "A1".into()),
                    ("pin", "1234".into()),
                    ("totp-secret", SEED.into()),
                ],
            ),
            (
                "kotakneo",
                "kotakneo",
                vec![
                    ("login-root", url.clone()),
                    ("access-token", "t".into()),
                    ("mobile-number", "+919999999999".into()),
                    ("ucc", "AB123".into()),
                    ("mpin", "123456".into()),
                    ("totp-secret", SEED.into()),
                ],
            ),
            (
                "fivepaisa",
                "fivepaisa",
                vec![
                    ("api-root", url.clone()),
                    ("user-key", "k".into()),
                    ("user-id", "u".into()),
                    ("encryption-key", "e".into()),
                    ("client-code", "c".into()),
                    ("pin", "123456".into()),
                    ("totp-secret", SEED.into()),
                ],
            ),
            (
                "groww",
                "groww",
                vec![("api-root", url.clone()), ("api-key", "k".into()), ("totp-secret", SEED.into())],
            ),
        ];
        let mut toml =
            String::from("[retry]\nattempts = 1\n[limits]\ntimeout_secs = 10\nread_timeout_secs = 2\n");
        for (name, component, settings) in &accounts {
            let wasm = dir.join(format!("{component}.wasm"));
            toml.push_str(&format!(
                "[accounts.{name}]\nprovider = {:?}\n[accounts.{name}.settings]\n",
                wasm.display().to_string()
            ));
            for (k, v) in settings {
                toml.push_str(&format!("{k} = {v:?}\n"));
            }
        }
        let config = Config::parse(&toml, None, Default::default()).expect("the fuzz config");
        let planner = Planner::new(config, state.clone());
        let plans = accounts.iter().map(|(n, _, _)| planner.plan(n).expect("a plan")).collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let service = Arc::new(Service::new(state, Default::default(), None));
        World { rt, service, broker, plans }
    })
}

/// The bytes of the stored token of `account` (empty when none).
pub fn stored(account: &str) -> Vec<u8> {
    std::fs::read(state().path().join("accounts").join(account).join("token.json")).unwrap_or_default()
}

/// Leaves the provider's storage as a phone-approval request leaves it, so a push is read past
/// the "nothing was asked for" check.
pub fn pending_request(account: &str) {
    use base64::Engine as _;
    let dir = state().path().join("accounts").join(account);
    let _ = std::fs::create_dir_all(&dir);
    let far = ((std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 3600)
        * 1000)
        .to_string();
    let kv = serde_json::json!({ "pending-request-expiry-ms": base64::engine::general_purpose::STANDARD.encode(far) });
    let _ = std::fs::write(dir.join("kv.json"), kv.to_string());
}
