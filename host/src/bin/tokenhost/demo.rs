//! `tokenhost demo`: a full cycle through the real host against the sandbox brokers on
//! 127.0.0.1, in a throw-away state directory. Every step prints one line.

use crate::report::{self, out};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokenhost::login::LoginUi;
use tokenhost::notify::Notifier;
use tokenhost::plan::Planner;
use tokenhost::service::Service;
use tokenhost::settings::{AccountConfig, Config, ConfigFile};
use tokenhost::store::StateDir;
use tokenhost::{Error, ExitCode};
use tokenhost_sandbox::{ExampleBroker, Fault, nonce, upstox::UpstoxMock, xts};

/// The bundled example provider, built from `components/fixture` by the build script.
const EXAMPLE_PROVIDER: &[u8] = include_bytes!(env!("TOKENHOST_COMPONENT_FIXTURE"));
/// The bundled XTS provider.
const XTS_PROVIDER: &[u8] = include_bytes!(env!("TOKENHOST_COMPONENT_XTS"));
/// The bundled Upstox provider.
const UPSTOX_PROVIDER: &[u8] = include_bytes!(env!("TOKENHOST_COMPONENT_UPSTOX"));

/// Runs the demo in a fresh folder under the temp directory, removed afterwards.
pub async fn run() -> Result<ExitCode, Error> {
    let dir = std::env::temp_dir().join(format!("tokenhost-demo-{}-{}", std::process::id(), nonce()));
    let result = demo(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn step(n: u32, text: &str) {
    out(&format!("{n}. {text}"));
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::io(what, e)
}

async fn demo(dir: &std::path::Path) -> Result<ExitCode, Error> {
    let secret = format!("demo-secret-{}", nonce());
    let broker = ExampleBroker::new("demo-key", &secret, 8 * 3600);
    let server = broker.serve().map_err(io("starting the sandbox broker"))?;
    std::fs::create_dir_all(dir).map_err(io("creating the demo folder"))?;

    // The two brokers' stand-ins, with the bundled providers pointed at them.
    let xts = xts::XtsMock::new();
    let xts_secret = format!("demo-xts-secret-{}", nonce());
    xts.app("demo-xts-key", &xts_secret, "DEMO01", xts::Api::Interactive);
    let xts_server = xts.serve();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io("finding a free port"))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let up_secret = format!("demo-upstox-secret-{}", nonce());
    let upstox = UpstoxMock::new("demo-upstox-key", &up_secret, &redirect);
    let up_server = upstox.serve();

    let mut file = ConfigFile::default();
    for (name, bytes, settings) in [
        (
            "demo",
            EXAMPLE_PROVIDER,
            vec![("api-root", server.url()), ("api-key", "demo-key".into()), ("api-secret", secret)],
        ),
        (
            "xts-desk",
            XTS_PROVIDER,
            vec![
                ("api-root", xts_server.url()),
                ("api-key", "demo-xts-key".into()),
                ("api-secret", xts_secret),
            ],
        ),
        (
            "upstox-desk",
            UPSTOX_PROVIDER,
            vec![
                ("api-root", up_server.url()),
                ("api-key", "demo-upstox-key".into()),
                ("api-secret", up_secret),
                ("redirect-uri", redirect),
            ],
        ),
    ] {
        let wasm = dir.join(format!("{name}.wasm"));
        std::fs::write(&wasm, bytes).map_err(io("writing a bundled provider"))?;
        let mut account = AccountConfig { provider: Some(wasm), ..Default::default() };
        account.settings.extend(settings.into_iter().map(|(k, v)| (k.to_string(), v)));
        file.accounts.insert(name.into(), account);
    }
    // Quick retries, so the demo shows them without waiting seconds.
    file.retry.attempts = Some(3);
    file.retry.first_delay_ms = Some(100);
    step(
        1,
        &format!(
            "sandbox brokers listening: example {}, XTS {}, Upstox {}",
            server.url(),
            xts_server.url(),
            up_server.url()
        ),
    );
    let state = StateDir::open(dir.join("state"))?;
    let planner = Planner::new(Config::from_file(file), state.clone());
    let service = Arc::new(Service::new(state, Notifier::default(), None));

    let plan = planner.plan("demo")?;
    let t = Instant::now();
    let first = service.run(&plan, false).await?;
    step(2, &format!("run (cold: compiles the component): {}  [{} ms]", report::line(&first), ms(t)));

    let t = Instant::now();
    let again = service.run(&plan, false).await?;
    step(
        3,
        &format!(
            "run again, token still fresh, component not loaded: {}  [{} ms]",
            report::line(&again),
            ms(t)
        ),
    );

    let (stored, _) = service.token("demo").await?;
    step(
        4,
        &format!(
            "get: a {}-character JWT for user {} (shown by `tokenhost get demo`)",
            stored.access_token.expose().len(),
            stored.user_id.as_deref().unwrap_or("?")
        ),
    );

    service.check(&plan).await?;
    step(5, "check: the broker accepts the token");

    broker.state().faults = vec![Fault::Unavailable; 3];
    let t = Instant::now();
    match service.run(&plan, true).await {
        Err(e) => step(
            6,
            &format!(
                "forced refresh while the broker answers 503: 3 attempts with backoff, then a {} \
                 error (exit {}), old token kept  [{} ms]",
                e.kind(),
                e.exit_code() as i32,
                ms(t)
            ),
        ),
        Ok(_) => return Err(Error::fault("the injected broker failure was not reported")),
    }
    if service.token("demo").await?.0.access_token != stored.access_token {
        return Err(Error::fault("the stored token changed after a failed refresh"));
    }

    broker.state().faults = vec![Fault::Unavailable];
    let t = Instant::now();
    let healed = service.run(&plan, true).await?;
    step(
        7,
        &format!(
            "broker fails once more, the retry gets through: {}  [{} ms, warm cache]",
            report::line(&healed),
            ms(t)
        ),
    );

    let t = Instant::now();
    let report = service.run(&planner.plan("xts-desk")?, false).await?;
    step(8, &format!("XTS provider, unattended login: {}  [{} ms]", report::line(&report), ms(t)));

    let plan = planner.plan("upstox-desk")?;
    let t = Instant::now();
    let login = tokenhost::login::login(&service, &plan, Duration::from_secs(30), &Browser).await?;
    step(
        9,
        &format!(
            "Upstox provider, browser login (the demo plays the browser; the listener checks `state`): \
             expires {} at the 03:30 IST cut-off  [{} ms]",
            login.expires_at.map(tokenhost::time::iso).unwrap_or_default(),
            ms(t)
        ),
    );
    match service.run(&plan, true).await {
        Err(e @ Error::Interaction { .. }) => step(
            10,
            &format!(
                "Upstox has no refresh grant, so a run asks the phone (exit {}): {e}",
                e.exit_code() as i32
            ),
        ),
        other => return Err(Error::fault(format!("expected a phone approval request, got {other:?}"))),
    }
    let body = upstox.approve().ok_or_else(|| Error::fault("no token request reached the broker"))?;
    let pushed = service.push(&plan, &body).await?;
    step(
        11,
        &format!(
            "approved on the phone: the broker pushes the token to the webhook, stored (expires {})",
            pushed.expires_at.map(tokenhost::time::iso).unwrap_or_default()
        ),
    );
    let replay = service.push(&plan, &body).await;
    step(
        12,
        &format!(
            "the same push again is refused: {}",
            replay.err().map(|e| e.to_string()).unwrap_or_default()
        ),
    );

    step(13, "status:");
    out(&report::status_table(&service.status(&planner, None).await?));
    Ok(ExitCode::Ok)
}

fn ms(t: Instant) -> u128 {
    t.elapsed().as_millis()
}

/// The browser's part in the Upstox login: open the dialog (the sandbox logs in at once and
/// redirects), then follow the redirect back to tokenhost's listener.
struct Browser;

impl LoginUi for Browser {
    fn show(&self, url: &str, _provider: &str, _waiting_for: &str, _timeout: Duration) {
        let url = url.to_string();
        std::thread::spawn(move || {
            let (status, headers, _) = tokenhost_sandbox::http("GET", &url, b"");
            if let (302, Some(back)) = (status, headers.get("location")) {
                tokenhost_sandbox::http("GET", back, b"");
            }
        });
    }

    fn paste(&self, _redirect: &str) -> std::io::Result<String> {
        Err(std::io::Error::other("the demo's redirect is loopback; nothing is pasted"))
    }
}
