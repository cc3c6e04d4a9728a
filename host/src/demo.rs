//! `tokenhost demo`: a full cycle through the real host against the sandbox broker on
//! 127.0.0.1, in a throw-away state directory.

use crate::accounts::{Context, Target};
use crate::cli::{report_line, status_rows, status_table};
use crate::sandbox::{ExampleBroker, Fault};
use crate::settings::{AccountConfig, Config, ConfigFile};
use crate::store::StateDir;
use crate::{Error, ExitCode};
use std::time::Instant;

/// The bundled example provider, built from `components/fixture` by the build script.
pub const EXAMPLE_PROVIDER: &[u8] = include_bytes!(env!("TOKENHOST_EXAMPLE_WASM"));
/// The bundled XTS provider.
pub const XTS_PROVIDER: &[u8] = include_bytes!(env!("TOKENHOST_COMPONENT_XTS"));
/// The bundled Upstox provider.
pub const UPSTOX_PROVIDER: &[u8] = include_bytes!(env!("TOKENHOST_COMPONENT_UPSTOX"));

/// Runs the demo; every step prints one line.
pub fn run() -> Result<ExitCode, Error> {
    let dir = std::env::temp_dir().join(format!(
        "tokenhost-demo-{}-{}",
        std::process::id(),
        crate::sandbox::nonce()
    ));
    let result = demo(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn step(n: u32, text: &str) {
    println!("{n}. {text}");
}

fn demo(dir: &std::path::Path) -> Result<ExitCode, Error> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e| Error::io(what, e)
    };
    let secret = format!("demo-secret-{}", crate::sandbox::nonce());
    let broker = ExampleBroker::new("demo-key", &secret, 8 * 3600);
    let server = broker.serve().map_err(io("starting the sandbox broker"))?;

    std::fs::create_dir_all(dir).map_err(io("creating the demo folder"))?;
    let wasm = dir.join("example.wasm");
    std::fs::write(&wasm, EXAMPLE_PROVIDER).map_err(io("writing the example provider"))?;
    let mut account = AccountConfig { provider: Some(wasm.clone()), ..Default::default() };
    account.settings.insert("api-root".into(), server.url());
    account.settings.insert("api-key".into(), "demo-key".into());
    account.settings.insert("api-secret".into(), secret);
    let mut file = ConfigFile::default();

    // The two brokers' stand-ins, with the bundled providers pointed at them.
    let xts = crate::sandbox::xts::XtsMock::new();
    let xts_secret = format!("demo-xts-secret-{}", crate::sandbox::nonce());
    xts.app("demo-xts-key", &xts_secret, "DEMO01", crate::sandbox::xts::Api::Interactive);
    let xts_server = xts.serve();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io("finding a free port"))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let up_secret = format!("demo-upstox-secret-{}", crate::sandbox::nonce());
    let upstox = crate::sandbox::upstox::UpstoxMock::new("demo-upstox-key", &up_secret, &redirect);
    let up_server = upstox.serve();
    for (name, bytes, settings) in [
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
    file.accounts.insert("demo".into(), account);
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
    let ctx = Context::new(state, Config::from_file(file));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("starting the runtime"))?;

    rt.block_on(async {
        let acct = ctx.resolve(&Target::Account("demo".into())).await?;
        let t = Instant::now();
        let first = ctx.run(&acct, false).await?;
        step(
            2,
            &format!(
                "run (cold: compiles the component): {}  [{} ms]",
                report_line(&first),
                t.elapsed().as_millis()
            ),
        );

        let t = Instant::now();
        let again = ctx.run(&acct, false).await?;
        step(
            3,
            &format!(
                "run again, token still fresh, component not loaded: {}  [{} ms]",
                report_line(&again),
                t.elapsed().as_millis()
            ),
        );

        let stored =
            ctx.state.account("demo")?.load_token()?.ok_or_else(|| crate::accounts::no_token("demo"))?;
        let token = stored.access_token.expose();
        step(
            4,
            &format!(
                "get: a {}-character JWT for user {} (shown by `tokenhost get demo`)",
                token.len(),
                stored.user_id.as_deref().unwrap_or("?")
            ),
        );

        ctx.check(&acct).await?;
        step(5, "check: the broker accepts the token");

        broker.state().faults = vec![Fault::Unavailable; 3];
        let t = Instant::now();
        match ctx.run(&acct, true).await {
            Err(e) => step(
                6,
                &format!(
                    "forced refresh while the broker answers 503: 3 attempts with backoff, then a {} \
                     error (exit {}), old token kept  [{} ms]",
                    e.kind(),
                    e.exit_code() as i32,
                    t.elapsed().as_millis()
                ),
            ),
            Ok(_) => return Err(Error::Fault("the injected broker failure was not reported".into())),
        }
        let kept =
            ctx.state.account("demo")?.load_token()?.ok_or_else(|| crate::accounts::no_token("demo"))?;
        if kept.access_token != stored.access_token {
            return Err(Error::Fault("the stored token changed after a failed refresh".into()));
        }

        broker.state().faults = vec![Fault::Unavailable];
        let t = Instant::now();
        let healed = ctx.run(&acct, true).await?;
        step(
            7,
            &format!(
                "broker fails once more, the retry gets through: {}  [{} ms, warm cache]",
                report_line(&healed),
                t.elapsed().as_millis()
            ),
        );

        let t = Instant::now();
        let acct = ctx.resolve(&Target::Account("xts-desk".into())).await?;
        let report = ctx.run(&acct, false).await?;
        step(
            8,
            &format!(
                "XTS provider, unattended login: {}  [{} ms]",
                report_line(&report),
                t.elapsed().as_millis()
            ),
        );

        let acct = ctx.resolve(&Target::Account("upstox-desk".into())).await?;
        let opts = crate::login::Options {
            open_browser: false,
            timeout: std::time::Duration::from_secs(30),
            agent: Some(play_browser),
        };
        let t = Instant::now();
        let token = crate::login::login(&ctx, &acct, &opts).await?;
        step(
            9,
            &format!(
                "Upstox provider, browser login (the demo plays the browser; the listener checks `state`): \
                 expires {} at the 03:30 IST cut-off  [{} ms]",
                token.expires_at.map(crate::time::iso).unwrap_or_default(),
                t.elapsed().as_millis()
            ),
        );
        match ctx.run(&acct, true).await {
            Err(e @ Error::Interaction(_)) => step(
                10,
                &format!(
                    "Upstox has no refresh grant, so a run asks the phone (exit {}): {e}",
                    e.exit_code() as i32
                ),
            ),
            other => return Err(Error::Fault(format!("expected a phone approval request, got {other:?}"))),
        }
        let body =
            upstox.approve().ok_or_else(|| Error::Fault("no token request reached the broker".into()))?;
        let pushed = crate::webhook::push(&ctx, &acct, &body).await?;
        step(
            11,
            &format!(
                "approved on the phone: the broker pushes the token to the webhook, stored (expires {})",
                pushed.expires_at.map(crate::time::iso).unwrap_or_default()
            ),
        );
        let replay = crate::webhook::push(&ctx, &acct, &body).await;
        step(
            12,
            &format!(
                "the same push again is refused: {}",
                replay.err().map(|e| e.to_string()).unwrap_or_default()
            ),
        );

        step(13, "status:");
        println!("{}", status_table(&status_rows(&ctx, None)?));
        Ok(ExitCode::Ok)
    })
}

/// The browser's part in the Upstox login: open the dialog (the sandbox logs in at once and
/// redirects), then follow the redirect back to tokenhost's listener.
fn play_browser(url: &str) {
    use crate::sandbox::upstox::http;
    let (status, headers, _) = http("GET", url, b"");
    if let (302, Some(back)) = (status, headers.get("location")) {
        http("GET", back, b"");
    }
}
