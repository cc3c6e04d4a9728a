//! `cargo bench --bench wasmcloud`: the XTS provider refreshing on wasmCloud (`wash dev` from
//! tests/wasmcloud/install.sh, a nats-server from tests/fleet/install.sh, the XTS mock on
//! loopback). Prints, over several starts of the same generated workload with no token stored:
//! - `serverless wasmcloud` (the generator, whole process);
//! - `wash dev` start to the first token stored in the fleet store;
//! - the wash process's peak resident memory;
//! - for comparison, the same refresh by `tokenhost run --force` (whole process).
//!
//! Figures, not pass/fail: nothing here asserts a time.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokenhost_sandbox::xts::{Api, XtsMock};

const BIN: &str = env!("CARGO_BIN_EXE_tokenhost");
const XTS: &str = env!("TOKENHOST_COMPONENT_XTS");
const STARTS: usize = 7;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(name: &str, unit: &str, samples: &mut [f64]) {
    samples.sort_by(f64::total_cmp);
    let (min, median, max) = (samples[0], samples[samples.len() / 2], samples[samples.len() - 1]);
    println!("{name:<56} n={:<3} median {median:>8.1} {unit}  (min {min:.1}, max {max:.1})", samples.len());
}

/// Peak resident memory of process `pid`, MiB.
fn peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let wash = support::installed("tests/wasmcloud/install.sh");
    let dir = std::env::temp_dir().join(format!("tokenhost-bench-wasmcloud-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_nats, url) = support::nats(&dir);
    let mock = XtsMock::new();
    mock.app("bench-key", "bench-secret", "BENCH", Api::Interactive);
    let server = mock.serve();
    std::fs::write(
        dir.join("tokenhost.toml"),
        format!(
            "[store]\nurl = {url:?}\n[accounts.xts]\nprovider = {XTS:?}\n[accounts.xts.settings]\n\
             api-root = {:?}\napi-key = \"bench-key\"\napi-secret = \"bench-secret\"\n",
            server.url()
        ),
    )
    .unwrap();
    let tokenhost = |args: &[&str]| {
        let start = Instant::now();
        let out = Command::new(BIN)
            .args(args)
            .current_dir(&dir)
            .env("TOKENHOST_STATE_DIR", dir.join("state"))
            .output();
        let out = out.unwrap();
        assert!(out.status.success(), "tokenhost {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        start.elapsed()
    };
    let mut generate: Vec<f64> =
        (0..STARTS).map(|_| ms(tokenhost(&["serverless", "wasmcloud", "xts", "--out", "wc"]))).collect();
    report("serverless wasmcloud (generator, whole process)", "ms", &mut generate);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let kv = rt.block_on(async {
        let client = async_nats::connect(&url).await.unwrap();
        async_nats::jetstream::new(client).get_key_value("tokenhost").await.unwrap()
    });
    let stored = || rt.block_on(kv.get("accounts.xts.token")).unwrap().is_some();
    let (mut first_token, mut peak) = (Vec::new(), Vec::new());
    for _ in 0..STARTS {
        rt.block_on(kv.purge("accounts.xts.token")).unwrap();
        let start = Instant::now();
        let child = support::Stop(
            Command::new(&wash)
                .arg("-C")
                .arg(dir.join("wc"))
                .args(["dev", "--non-interactive"])
                .env("HOME", dir.join("home"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        while !stored() {
            assert!(start.elapsed() < Duration::from_secs(60), "no token from wasmCloud within 60 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        first_token.push(ms(start.elapsed()));
        // A few passes more, then the peak.
        std::thread::sleep(Duration::from_secs(3));
        peak.push(peak_mib(child.0.id()));
    }
    report("wash dev start to first stored token", "ms", &mut first_token);
    report("wash process, peak resident memory", "MiB", &mut peak);
    let mut direct: Vec<f64> = (0..STARTS).map(|_| ms(tokenhost(&["run", "xts", "--force"]))).collect();
    report("the same refresh: tokenhost run --force (whole process)", "ms", &mut direct);
    let _ = std::fs::remove_dir_all(&dir);
}
