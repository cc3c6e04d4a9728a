//! `cargo bench`: the CLI as cron runs it, against the example broker on 127.0.0.1.
//! Prints wall times (median, p95) and the peak RSS of one process per scenario, and the
//! sizes of the built components. Figures, not pass/fail: nothing here asserts a time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tokenhost::sandbox::ExampleBroker;

#[path = "../tests/e2e/xts_mock.rs"]
mod xts_mock;

const BIN: &str = env!("CARGO_BIN_EXE_tokenhost");
const FIXTURE: &str = env!("TOKENHOST_COMPONENT_FIXTURE");
const XTS: &str = env!("TOKENHOST_COMPONENT_XTS");

struct Sample {
    wall: Duration,
    max_rss_kib: i64,
}

/// Runs the CLI once and reports its wall time and peak RSS (from wait4).
fn run_once(state: &Path, env: &[(String, String)], args: &[&str]) -> Sample {
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
    assert!(r > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "tokenhost {args:?} failed");
    Sample { wall, max_rss_kib: usage.ru_maxrss }
}

fn report(name: &str, samples: &mut [Sample]) {
    samples.sort_by_key(|s| s.wall);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[samples.len() / 2].wall);
    let p95 = ms(samples[(samples.len() * 95 / 100).min(samples.len() - 1)].wall);
    let rss = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
    println!(
        "{name:<44} n={:<4} median {median:>7.2} ms   p95 {p95:>7.2} ms   peak RSS {:>5.1} MiB",
        samples.len(),
        rss as f64 / 1024.0
    );
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

    let logins = broker.state().logins;
    run_all(&dir);

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
    println!("example broker saw {logins} logins");
    let _ = std::fs::remove_dir_all(&dir);
}
