//! `cargo bench`: the CLI as cron runs it, against the example broker on 127.0.0.1.
//! Prints wall times (median, p95) and the peak RSS of one process per scenario, the sizes of
//! the built components, and tokenhost against the upstream wasmtime CLI doing the same work
//! (run alternately, as ratios of pairs). Figures, not pass/fail: nothing here asserts a time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tokenhost_sandbox::ExampleBroker;

use tokenhost_sandbox::{upstox as upstox_mock, xts as xts_mock};

const BIN: &str = env!("CARGO_BIN_EXE_tokenhost");
const FIXTURE: &str = env!("TOKENHOST_COMPONENT_FIXTURE");
const XTS: &str = env!("TOKENHOST_COMPONENT_XTS");
const UPSTOX: &str = env!("TOKENHOST_COMPONENT_UPSTOX");

struct Sample {
    wall: Duration,
    max_rss_kib: i64,
}

/// Runs the CLI once and reports its wall time and peak RSS (from wait4).
fn run_once(state: &Path, env: &[(String, String)], args: &[&str]) -> Sample {
    run_expecting(0, state, env, args)
}

/// Like [`run_once`], for a run that must exit with `code`.
fn run_expecting(code: i32, state: &Path, env: &[(String, String)], args: &[&str]) -> Sample {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("TOKENHOST_STATE_DIR", state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    // Reaped by wait4 below, which also gives the peak RSS that Child::wait would not.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn tokenhost");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `usage` and `status` are valid out-pointers.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert!(
        r > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == code,
        "tokenhost {args:?} failed"
    );
    Sample { wall, max_rss_kib: usage.ru_maxrss }
}

fn report(name: &str, samples: &mut [Sample]) {
    samples.sort_by_key(|s| s.wall);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[samples.len() / 2].wall);
    let p95 = ms(samples[(samples.len() * 95 / 100).min(samples.len() - 1)].wall);
    let rss = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
    let rss = if rss > 0 { format!("   peak RSS {:>5.1} MiB", rss as f64 / 1024.0) } else { String::new() };
    println!("{name:<48} n={:<4} median {median:>7.2} ms   p95 {p95:>7.2} ms{rss}", samples.len());
}

/// `run --all` over many XTS accounts on two loopback brokers: every account logs in (cold
/// state, then `--force` with a warm compile cache), then every token is fresh.
fn run_all(dir: &Path) {
    let roots = [xts_mock::XtsMock::new(), xts_mock::XtsMock::new()];
    let servers: Vec<_> = roots.iter().map(|m| m.serve()).collect();
    for n in [100, 1000] {
        let case = dir.join(format!("all-{n}"));
        let state = case.join("state");
        std::fs::create_dir_all(&case).unwrap();
        let mut toml = String::new();
        for i in 0..n {
            let (mock, server) = (&roots[i % 2], &servers[i % 2]);
            let secret = format!("secret-{n}-{i}");
            mock.app(&format!("key-{n}-{i}"), &secret, &format!("CL{i:04}"), xts_mock::Api::Interactive);
            toml.push_str(&format!(
                "[accounts.client-{i:04}]\nprovider = {XTS:?}\nenv_prefix = \"C{i:04}\"\n\
                 [accounts.client-{i:04}.settings]\napi-root = {:?}\napi-key = \"key-{n}-{i}\"\n\
                 api-secret = {secret:?}\n\n",
                server.url()
            ));
        }
        let cfg = case.join("tokenhost.toml");
        std::fs::write(&cfg, toml).unwrap();
        let cfg = cfg.to_str().unwrap();
        let before = roots[0].state().logins + roots[1].state().logins;
        let mut cold = vec![run_once(&state, &[], &["--config", cfg, "run", "--all"])];
        report(&format!("run --all, {n} accounts, empty state"), &mut cold);
        let mut forced: Vec<Sample> =
            (0..3).map(|_| run_once(&state, &[], &["--config", cfg, "run", "--all", "--force"])).collect();
        report(&format!("run --all --force, {n} accounts, warm cache"), &mut forced);
        let mut fresh: Vec<Sample> =
            (0..5).map(|_| run_once(&state, &[], &["--config", cfg, "run", "--all"])).collect();
        report(&format!("run --all, {n} accounts, all fresh"), &mut fresh);
        let logins = roots[0].state().logins + roots[1].state().logins - before;
        assert_eq!(logins, 4 * n, "every account logged in once per refreshing run");
    }
}

/// Upstox's phone-approved flow: `run` sends the token request (exit 5), the mock approves,
/// and the push is POSTed to `serve-webhook`; the push's round trip is what the broker waits.
fn upstox_push(dir: &Path) {
    let state = dir.join("upstox-state");
    let mock = upstox_mock::UpstoxMock::new("bench-key", "bench-secret", "http://127.0.0.1:1/cb");
    let server = mock.serve();
    let env = vec![
        ("UPSTOX_API_ROOT".to_string(), server.url()),
        ("UPSTOX_API_KEY".to_string(), "bench-key".to_string()),
        ("UPSTOX_API_SECRET".to_string(), "bench-secret".to_string()),
        ("UPSTOX_REDIRECT_URI".to_string(), "http://127.0.0.1:1/cb".to_string()),
    ];
    let mut hook = Command::new(BIN);
    hook.args(["serve-webhook", UPSTOX, "--listen", "127.0.0.1:0"])
        .env("TOKENHOST_STATE_DIR", &state)
        .envs(env.iter().cloned())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut hook = hook.spawn().expect("serve-webhook");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(hook.stdout.as_mut().unwrap()), &mut line)
        .unwrap();
    let url =
        line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().replace("ACCOUNT", "upstox");
    let mut requests = Vec::new();
    let mut pushes = Vec::new();
    for _ in 0..30 {
        requests.push(run_expecting(5, &state, &env, &["run", "--force", UPSTOX]));
        let body = mock.approve().expect("a pending request");
        let start = Instant::now();
        let (status, _, _) = tokenhost_sandbox::http("POST", &url, &body);
        pushes.push(Sample { wall: start.elapsed(), max_rss_kib: 0 });
        assert_eq!(status, 200);
    }
    let _ = hook.kill();
    let _ = hook.wait();
    report("upstox run: token request sent (exit 5)", &mut requests);
    report("upstox push: POST to stored, 200 answered", &mut pushes);
}

/// The upstream wasmtime CLI, as the portability tests install it (cached; the first time
/// builds it, about 9 minutes), or `None` when it cannot be had.
fn wasmtime_cli() -> Option<std::path::PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/portable/install.sh");
    let out = Command::new("bash").arg(script).stderr(std::process::Stdio::inherit()).output().ok()?;
    let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last()?.trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// The wall time of one run of `cmd`, which must succeed.
fn timed(cmd: &mut Command) -> Duration {
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let start = Instant::now();
    let status = cmd.status().expect("spawn");
    let wall = start.elapsed();
    assert!(status.success(), "{cmd:?} failed");
    wall
}

/// `pairs` runs of `a` and `b` in turn (after one of each to warm up): each one's median, and
/// the median (and spread) of the ratios a/b pair by pair, which hold when the machine's speed
/// drifts.
fn versus(name: &str, pairs: usize, mut a: impl FnMut() -> Duration, mut b: impl FnMut() -> Duration) {
    a();
    b();
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..pairs {
        let (x, y) = (a(), b());
        ratios.push(x.as_secs_f64() / y.as_secs_f64());
        ta.push(x);
        tb.push(y);
    }
    ta.sort();
    tb.sort();
    ratios.sort_by(f64::total_cmp);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<60} tokenhost {:>6.2} ms   wasmtime {:>6.2} ms   ratio {:.2}x ({:.2}-{:.2}, n={pairs})",
        ms(ta[pairs / 2]),
        ms(tb[pairs / 2]),
        ratios[pairs / 2],
        ratios[pairs / 10],
        ratios[pairs * 9 / 10],
    );
}

/// The same component against the same broker under tokenhost and under `wasmtime run`.
fn versus_wasmtime(dir: &Path, env: &[(String, String)]) {
    let Some(wasmtime) = wasmtime_cli() else {
        println!("tokenhost against the wasmtime CLI: skipped (tests/portable/install.sh failed)");
        return;
    };
    let state = dir.join("versus-state");
    let ours = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args).env("TOKENHOST_STATE_DIR", &state).envs(env.iter().cloned());
        c
    };
    timed(&mut ours(&["run", FIXTURE]));
    versus(
        "token fresh: `run` vs `--invoke 'describe()'`",
        100,
        || timed(&mut ours(&["run", FIXTURE])),
        || {
            timed(
                Command::new(&wasmtime).args(["run", "-S", "http", "-S", "config", "-S", "keyvalue"]).args([
                    "--invoke",
                    "describe()",
                    FIXTURE,
                ]),
            )
        },
    );
    let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let settings = [
        format!("config-var=api-root={}", var("EXAMPLE_API_ROOT")),
        format!("config-var=api-key={}", var("EXAMPLE_API_KEY")),
        format!("config-var=api-secret={}", var("EXAMPLE_API_SECRET")),
    ];
    versus(
        "refresh: `run --force` vs `--invoke 'refresh(none)'`",
        60,
        || timed(&mut ours(&["run", "--force", FIXTURE])),
        || {
            let mut c = Command::new(&wasmtime);
            c.args(["run", "-S", "http", "-S", "config", "-S", "keyvalue"]);
            for s in &settings {
                c.args(["-S", s]);
            }
            timed(c.args(["--invoke", "refresh(none)", FIXTURE]))
        },
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tokenhost-bench-{}", std::process::id()));
    let state = dir.join("state");
    let broker = ExampleBroker::new("bench-key", "bench-secret", 8 * 3600);
    let server = broker.serve().expect("broker");
    let env = vec![
        ("EXAMPLE_API_ROOT".to_string(), server.url()),
        ("EXAMPLE_API_KEY".to_string(), "bench-key".to_string()),
        ("EXAMPLE_API_SECRET".to_string(), "bench-secret".to_string()),
    ];

    let mut cold: Vec<Sample> = (0..5)
        .map(|_| {
            let _ = std::fs::remove_dir_all(&dir);
            run_once(&state, &env, &["run", FIXTURE])
        })
        .collect();
    report("run, first ever (cold compile cache)", &mut cold);

    let mut warm: Vec<Sample> =
        (0..50).map(|_| run_once(&state, &env, &["run", "--force", FIXTURE])).collect();
    report("run --force, refresh (warm compile cache)", &mut warm);

    let mut fresh: Vec<Sample> = (0..200).map(|_| run_once(&state, &env, &["run", FIXTURE])).collect();
    report("run, token fresh (by provider file)", &mut fresh);

    std::fs::write(dir.join("tokenhost.toml"), format!("[accounts.example]\nprovider = {FIXTURE:?}\n"))
        .unwrap();
    let cfg = dir.join("tokenhost.toml");
    let cfg = cfg.to_str().unwrap();
    let mut by_name: Vec<Sample> =
        (0..200).map(|_| run_once(&state, &env, &["--config", cfg, "run", "example"])).collect();
    report("run, token fresh (by account name)", &mut by_name);

    versus_wasmtime(&dir, &env);
    let logins = broker.state().logins;
    run_all(&dir);
    upstox_push(&dir);

    let out = Path::new(FIXTURE).parent().unwrap();
    for entry in std::fs::read_dir(out).unwrap().flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "wasm") {
            println!(
                "component {:<32} {:>7.1} KiB",
                p.file_name().unwrap().to_string_lossy(),
                entry.metadata().unwrap().len() as f64 / 1024.0
            );
        }
    }
    let bin = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    println!("binary tokenhost (as installed)           {:>7.1} MiB", bin as f64 / (1 << 20) as f64);
    println!("example broker saw {logins} logins");
    let _ = std::fs::remove_dir_all(&dir);
}
