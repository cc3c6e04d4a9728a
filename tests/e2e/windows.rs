//! `tokenhost.exe` under Wine, as the Windows user from the Upstox guide runs it: the demo, an
//! XTS run from a CRLF `.env`, `get`, `status`, `check`, the Task Scheduler XML and the command
//! line in it run from `C:\Program Files`, the token file replaced while a reader holds it open,
//! the state files' ACL, the account lock across processes, and Ctrl-C for the daemon.
//!
//! `tests/windows/run.sh` cross-builds the `.exe`, starts Wine and runs these with
//! `--ignored`, setting `TOKENHOST_WINE` (the wine64 launcher), `TOKENHOST_WINE_EXE` (the
//! `.exe`, with the ProcessPrng shim beside it), `TOKENHOST_WINE_HELPER` (tests/windows/helper.c
//! built) and `WINEPREFIX`. Without them the tests fail: they never pass by doing nothing.
//! The brokers are the native stand-ins on 127.0.0.1. Every Wine process gets
//! [`WINE_PATIENCE`]; one that takes longer is killed and fails its test.
//!
//! Where Wine 8 does not model Windows (see the tests): it keeps no ACLs on files (it turns a
//! DACL into the Unix mode and answers with a DACL made from the mode), and its
//! `GenerateConsoleCtrlEvent` reaches no process in a console without a window; Ctrl-C comes as
//! on Windows from the terminal (Wine turns SIGINT into `CTRL_C_EVENT`).

use crate::support::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokenhost_sandbox::xts::{Api, XtsMock};

/// What the tests drive.
struct Wine {
    launcher: PathBuf,
    exe: PathBuf,
    helper: PathBuf,
    prefix: PathBuf,
}

fn wine() -> Wine {
    let var = |name: &str| {
        let v = std::env::var_os(name).filter(|v| !v.is_empty()).unwrap_or_else(|| {
            panic!("{name} is not set: these tests run under Wine from tests/windows/run.sh")
        });
        let p = PathBuf::from(v);
        assert!(p.exists(), "{name}={} does not exist", p.display());
        p
    };
    Wine {
        launcher: var("TOKENHOST_WINE"),
        exe: var("TOKENHOST_WINE_EXE"),
        helper: var("TOKENHOST_WINE_HELPER"),
        prefix: var("WINEPREFIX"),
    }
}

/// The Windows name of a Linux path (Wine maps drive Z: to /).
fn win(p: &Path) -> String {
    format!("Z:{}", std::path::absolute(p).unwrap().display().to_string().replace('/', "\\"))
}

impl Wine {
    /// `program ARGS` under Wine, set up as [`World::command`] sets up the native CLI (its
    /// folder and environment), with the state directory as a Windows path.
    fn command(&self, w: &World, program: &str, args: &[&str]) -> Command {
        let native = w.command(args);
        let mut c = Command::new(&self.launcher);
        c.arg(program).args(args).stdin(Stdio::null());
        if let Some(dir) = native.get_current_dir() {
            c.current_dir(dir);
        }
        for (k, v) in native.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.env("TOKENHOST_STATE_DIR", win(&w.state));
        c
    }

    /// `tokenhost.exe ARGS` to the end, recorded for the leak scans.
    fn run(&self, w: &World, args: &[&str]) -> Out {
        self.run_command(w, args, self.command(w, &self.exe.display().to_string(), args))
    }

    fn run_command(&self, w: &World, args: &[&str], c: Command) -> Out {
        let out = output(c);
        w.record(args, &out);
        Out::from(out)
    }

    /// The test helper (tests/windows/helper.c) under Wine.
    fn helper(&self, w: &World, args: &[&str]) -> Command {
        let mut c = self.command(w, &self.helper.display().to_string(), args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }
}

/// How long one Wine process may take (a first start in a busy prefix takes seconds).
const WINE_PATIENCE: Duration = Duration::from_secs(120);

/// Runs `c` to the end as `Command::output` does, killing it after [`WINE_PATIENCE`].
#[track_caller]
fn output(mut c: Command) -> std::process::Output {
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = Pipe::new(child.stdout.take().unwrap());
    let stderr = Pipe::new(child.stderr.take().unwrap());
    let status = wait_within(&mut child, WINE_PATIENCE, &format!("{c:?}"));
    std::process::Output { status, stdout: stdout.rest(), stderr: stderr.rest() }
}

/// A child's output pipe, read as it comes. Its end may not come when the child does: the
/// first Wine program of a session starts Wine's services (services.exe, winedevice.exe...),
/// which inherit its pipes and live on; so once the child has exited, what came is all.
struct Pipe(std::sync::mpsc::Receiver<Vec<u8>>);

impl Pipe {
    fn new(mut r: impl Read + Send + 'static) -> Pipe {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = r.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Pipe(rx)
    }

    /// What comes within `patience`, if anything.
    fn next(&self, patience: Duration) -> Option<Vec<u8>> {
        self.0.recv_timeout(patience).ok()
    }

    /// The rest, once the child has exited: up to the end, or to a second of silence.
    fn rest(&self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next(Duration::from_secs(1)) {
            all.extend(chunk);
        }
        all
    }

    /// Reads into `text` until it holds `line` as a whole line, failing after `patience`.
    #[track_caller]
    fn until_line(&self, text: &mut String, line: &str, patience: Duration) {
        let deadline = Instant::now() + patience;
        while !text.lines().any(|l| l == line) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
                None => panic!("no line `{line}` within {patience:?}:\n{text}"),
            }
        }
    }
}

/// Waits for `child`, killing it and failing after `patience`.
#[track_caller]
fn wait_within(child: &mut std::process::Child, patience: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {patience:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[track_caller]
fn assert_ascii(what: &str, text: &str) {
    let odd: Vec<char> = text.chars().filter(|c| !c.is_ascii()).collect();
    assert!(odd.is_empty(), "{what} prints non-ASCII {odd:?}, which cmd.exe code pages mangle:\n{text}");
}

#[test]
#[ignore = "run by tests/windows/run.sh under Wine"]
fn demo_runs_under_wine_and_prints_ascii_only() {
    let wine = wine();
    let w = World::new("win-demo");
    let out = wine.run(&w, &["demo"]);
    out.assert_code(0).assert_stdout_has("13. status:");
    assert_ascii("demo", &out.stdout);
    assert_ascii("demo", &out.stderr);
    for args in [&["--help"][..], &["run", "--help"], &["schedule", "--help"], &["get", "--help"]] {
        let out = wine.run(&w, args);
        out.assert_code(0);
        assert_ascii(&args.join(" "), &out.stdout);
    }
}

#[test]
#[ignore = "run by tests/windows/run.sh under Wine"]
fn xts_run_from_a_crlf_env_with_the_json_sink_then_get_status_and_check() {
    let wine = wine();
    let mut w = World::new("win-xts");
    for var in ["EXAMPLE_API_ROOT", "EXAMPLE_API_KEY", "EXAMPLE_API_SECRET"] {
        w.set_env(var, None);
    }
    let mock = XtsMock::new();
    let secret = format!("XtsSecret-{}", tokenhost_sandbox::nonce());
    let md_secret = format!("MdSecret-{}", tokenhost_sandbox::nonce());
    mock.app("appkey1", &secret, "AB1234", Api::Interactive);
    mock.app("mdkey1", &md_secret, "AB1234", Api::MarketData);
    let server = mock.serve();
    // As Notepad saves it: CRLF line ends.
    let env = format!(
        "# the old cron script's settings\nXTS_API_ROOT={}\nXTS_INTERACTIVE_API_KEY=appkey1\n\
         XTS_INTERACTIVE_API_SECRET={secret}\nXTS_API_SOURCE=WEBAPI\nXTS_USER_ID=AB1234\n\
         XTS_MARKET_DATA_KEY=mdkey1\nXTS_MARKET_DATA_SECRET={md_secret}\n",
        server.url()
    )
    .replace('\n', "\r\n");
    w.write(".env", &env);
    std::fs::copy(crate::xts::XTS, w.dir.join("xts.wasm")).unwrap();

    let out = wine.run(&w, &["run", "xts.wasm", "--sink", "json=xts_store_token.json"]);
    out.assert_code(0).assert_stdout_has("xts: refreshed (no token stored)");
    assert_eq!(mock.state().logins, 2, "interactive and market-data logins");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.account_dir("xts").join("token.json")).unwrap()).unwrap();
    let token = stored["access_token"].as_str().unwrap().to_string();
    assert_eq!(mock.state().sessions.get(&token).map(|s| s.1), Some(Api::Interactive));

    let old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.dir.join("xts_store_token.json")).unwrap()).unwrap();
    assert_eq!(old["token"], token.as_str());
    assert_eq!(old["userID"], "AB1234");

    let raw = wine.run(&w, &["get", "xts", "--format", "raw"]);
    assert_eq!(raw.assert_code(0).stdout, token, "the token alone, no newline into a pipe");
    let ps = wine.run(&w, &["get", "xts", "--format", "powershell"]);
    let lines: Vec<&str> = ps.assert_code(0).stdout.lines().collect();
    assert_eq!(lines[0], format!("$env:XTS_ACCESS_TOKEN = '{token}'"), "{}", ps.stdout);
    assert!(lines.iter().any(|l| l.starts_with("$env:XTS_FEED_TOKEN = '")), "{}", ps.stdout);
    assert!(lines.iter().all(|l| l.starts_with("$env:XTS_") && l.ends_with('\'')), "{}", ps.stdout);

    let status = wine.run(&w, &["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&status.assert_code(0).stdout).unwrap();
    let row = rows.as_array().and_then(|r| r.iter().find(|r| r["account"] == "xts")).expect("an xts row");
    assert_eq!(row["provider"], "xts", "{row}");
    assert_eq!(row["last_outcome"], "refreshed", "{row}");
    assert_eq!(row["state"], "fresh", "{row}");
    assert!(row["expires_at"].as_i64().is_some(), "{row}");

    wine.run(&w, &["check", "xts"]).assert_code(0).assert_stdout_has("xts: valid");
    wine.run(&w, &["run", "xts.wasm"]).assert_code(0).assert_stdout_has("xts: fresh");
    let tokens: Vec<String> = mock.state().sessions.keys().cloned().collect();
    w.assert_not_leaked(&[secret, md_secret], &tokens);
}

#[test]
#[ignore = "run by tests/windows/run.sh under Wine"]
fn a_reader_holding_the_token_file_open_sees_whole_tokens_while_forced_runs_replace_it() {
    let wine = wine();
    let w = World::new("win-reader");
    std::fs::copy(FIXTURE, w.dir.join("example.wasm")).unwrap();
    wine.run(&w, &["run", "example.wasm"]).assert_code(0);
    let first = w.stored()["access_token"].as_str().unwrap().to_string();

    // The premise: a reader's handle makes replacing the file fail (ERROR_SHARING_VIOLATION or
    // ERROR_ACCESS_DENIED; Wine 8 answers ERROR_ACCESS_DENIED, with or without FILE_SHARE_DELETE),
    // so the runs below succeed only by retrying.
    let probe = w.dir.join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    let out = output(wine.helper(&w, &["replace-open", &win(&probe)]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    eprintln!("replacing a file open for reading: {text}");
    let code =
        text.lines().find_map(|l| l.strip_prefix("no-share-delete ")).unwrap_or_else(|| panic!("{text}"));
    assert!(matches!(code, "5" | "32"), "replacing a file open for reading gave {code}, not a refusal");

    // The reader opens the file without FILE_SHARE_DELETE (as C's fopen and Python do), keeps it
    // open 40 ms at a time, and lets go for a moment between reads.
    let mut reader = wine.helper(&w, &["read", &win(&w.token_file()), "12", "40"]).spawn().unwrap();
    let pipe = Pipe::new(reader.stdout.take().unwrap());
    // The first read, before anything replaces the file.
    let mut text = String::new();
    let deadline = Instant::now() + WINE_PATIENCE;
    while !text.contains('\n') {
        match pipe.next(deadline.saturating_duration_since(Instant::now())) {
            Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
            None => panic!("the reader read nothing: {text}"),
        }
    }
    let mut refreshed = 0;
    let started = Instant::now();
    while refreshed < 4 && started.elapsed() < Duration::from_secs(8) {
        wine.run(&w, &["run", "--force", "example.wasm"])
            .assert_code(0)
            .assert_stdout_has("example: refreshed (forced)");
        refreshed += 1;
    }
    let status = wait_within(&mut reader, WINE_PATIENCE, "the reader");
    text.push_str(&String::from_utf8_lossy(&pipe.rest()));
    let seen: Vec<&str> = text.lines().collect();
    assert!(status.success(), "reader: {status}");
    assert_eq!(refreshed, 4, "four forced runs within 8 s");

    let issued = w.broker.state().live.clone();
    let mut tokens = Vec::new();
    let mut reads = 0;
    for line in &seen {
        if let Some(hex) = line.strip_prefix("data ") {
            let bytes: Vec<u8> =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("a torn token file ({e}): {:?}", String::from_utf8_lossy(&bytes)));
            tokens.push(v["access_token"].as_str().expect("a token").to_string());
        } else if let Some(code) = line.strip_prefix("fail ") {
            // 2 and 3: the file was missing for a moment, which a rename over it never allows.
            assert!(!matches!(code, "2" | "3"), "the reader found no token file: {seen:?}");
        } else if let Some(n) = line.strip_prefix("reads ") {
            reads = n.parse().unwrap();
        }
    }
    assert!(reads > 20, "{seen:?}");
    assert_eq!(tokens.first(), Some(&first));
    assert!(tokens.len() >= 2, "the reader saw the token change: {seen:?}");
    for t in &tokens {
        assert!(issued.contains(t), "every token read is one the broker issued");
    }
    assert_eq!(w.stored()["access_token"].as_str(), issued.last().map(String::as_str));
    w.assert_no_secret_leaked();
}

#[test]
#[ignore = "run by tests/windows/run.sh under Wine"]
fn state_files_are_readable_by_the_user_only() {
    let wine = wine();
    let w = World::new("win-acl");
    std::fs::copy(FIXTURE, w.dir.join("example.wasm")).unwrap();
    wine.run(&w, &["run", "example.wasm", "--sink", "json=example_token.json"]).assert_code(0);
    let paths = [
        w.state.clone(),
        w.state.join("accounts"),
        w.account_dir("example"),
        w.token_file(),
        w.account_dir("example").join("status.json"),
        w.dir.join("example_token.json"),
    ];
    // Controls, made as a program that sets no DACL makes them: others may read them.
    let (plain_file, plain_dir) = (w.dir.join("plain.txt"), w.dir.join("plain"));
    std::fs::write(&plain_file, "x").unwrap();
    std::fs::create_dir_all(&plain_dir).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plain_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&plain_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let names: Vec<String> = paths.iter().chain([&plain_file, &plain_dir]).map(|p| win(p)).collect();
    let mut args = vec!["acl"];
    args.extend(names.iter().map(String::as_str));
    let out = output(wine.helper(&w, &args));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    // What Windows (here: Wine) reports, for the record.
    eprintln!("{text}");
    let user = text.lines().find_map(|l| l.strip_prefix("user ")).expect("the user's SID").to_string();
    // Each entry of a path's DACL as (type, rights, trustee).
    let entries = |name: &str| -> Vec<(String, String, String)> {
        let sddl = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no ACL for {name}:\n{text}"));
        let dacl = sddl.split_once("D:").map(|(_, d)| d).unwrap_or_else(|| panic!("{name}: {sddl}"));
        let dacl = dacl.split_once("S:").map_or(dacl, |(d, _)| d);
        dacl.split('(')
            .skip(1)
            .map(|ace| {
                let f: Vec<&str> = ace.trim_end_matches(')').split(';').collect();
                assert_eq!(f.len(), 6, "{name}: an entry ({ace}) in {sddl}");
                (f[0].to_string(), f[2].to_string(), f[5].to_string())
            })
            .collect()
    };
    for name in &names[..paths.len()] {
        let aces = entries(name);
        assert!(
            aces.contains(&("A".into(), "FA".into(), user.clone())),
            "{name}: the user has full control: {aces:?}"
        );
        // Wine adds SYSTEM to every DACL it makes from a mode; Windows keeps the one we set.
        for (kind, _, trustee) in &aces {
            assert!(
                kind != "A" || trustee == &user || trustee == "SY",
                "{name}: {trustee} has access: {aces:?}"
            );
        }
    }
    for name in &names[paths.len()..] {
        let aces = entries(name);
        assert!(
            aces.iter().any(|(k, _, t)| k == "A" && t == "WD"),
            "{name}: the control lets everyone read: {aces:?}"
        );
    }
    // Wine keeps no ACLs on these files: it turns the DACL into the Unix mode (an entry for the
    // user gives the user and the group, whose SID is in the user's token, rwx), and answers
    // GetNamedSecurityInfo with a DACL made from the mode. Others get nothing.
    #[cfg(unix)]
    for p in &paths {
        assert_eq!(mode(p) & 0o007, 0, "{}: mode {:o}", p.display(), mode(p));
    }
}

#[test]
#[ignore = "run by tests/windows/run.sh under Wine"]
fn forced_runs_in_three_processes_take_the_account_lock_in_turn() {
    let wine = wine();
    let w = World::new("win-lock");
    std::fs::copy(FIXTURE, w.dir.join("example.wasm")).unwrap();
    wine.run(&w, &["run", "example.wasm"]).assert_code(0);
    w.broker.state().login_delay = Duration::from_millis(1500);
    w.broker.state().max_in_flight = 0;
    let before = w.broker.state().logins;
    let args = ["run", "--force", "example.wasm"];
    let commands: Vec<Command> =
        (0..3).map(|_| wine.command(&w, &wine.exe.display().to_string(), &args)).collect();
    let outputs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let runs: Vec<_> = commands.into_iter().map(|c| scope.spawn(move || output(c))).collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut refreshed = 0;
    for o in outputs {
        w.record(&args, &o);
        let out = Out::from(o);
        out.assert_code(0);
        if out.stdout.contains("refreshed (forced)") {
            refreshed += 1;
        } else {
            out.assert_stdout_has("refreshed by a concurrent run");
        }
    }
    let s = w.broker.state();
    assert_eq!(s.max_in_flight, 1, "two refreshes overlapped: the lock did not hold across processes");
    assert_eq!(s.logins - before, refreshed, "every login the broker saw is a refresh a run reported");
    assert!(refreshed >= 1);
    drop(s);
    w.assert_no_secret_leaked();
}

/// The task XML as Task Scheduler reads it: UTF-16LE after a byte-order mark.
fn utf16_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..2], &[0xFF, 0xFE], "{} starts with the UTF-16LE BOM", path.display());
    assert_eq!(bytes.len() % 2, 0);
    let units: Vec<u16> = bytes[2..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).unwrap()
}

#[test]
#[ignore = "run by tests/windows/run.sh under Wine"]
fn task_scheduler_xml_from_program_files_runs_and_installs_only_our_task() {
    let wine = wine();
    let w = World::new("win-schtasks");
    // Installed where Windows programs go, for a user whose name has a space.
    let install = wine.prefix.join("drive_c/Program Files/tokenhost");
    std::fs::create_dir_all(&install).unwrap();
    for file in ["tokenhost.exe", "bcryptprimitives.dll"] {
        std::fs::copy(wine.exe.with_file_name(file), install.join(file)).unwrap();
    }
    let exe = r"C:\Program Files\tokenhost\tokenhost.exe";
    let state = r"C:\users\John Smith\AppData\Local\tokenhost";
    let state_unix = wine.prefix.join("drive_c/users/John Smith/AppData/Local/tokenhost");
    let _ = std::fs::remove_dir_all(&state_unix);
    std::fs::copy(FIXTURE, w.dir.join("my provider.wasm")).unwrap();
    let tokenhost = |w: &World, args: &[&str]| {
        let mut c = wine.command(w, exe, args);
        c.env("TOKENHOST_STATE_DIR", state);
        wine.run_command(w, args, c)
    };

    let print = ["schedule", "print", "--target", "schtasks", "--at", "09:00", "--at", "15:30"];
    let args = [&print[..], &["--weekdays", "--run", "my provider.wasm", "--xml", "task.xml"]].concat();
    tokenhost(&w, &args)
        .assert_code(0)
        .assert_stdout_has(r#"wrote task.xml; next: schtasks /Create /F /TN tokenhost /XML "task.xml""#);
    let xml = utf16_file(&w.dir.join("task.xml"));
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-16\"?>"), "{xml}");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let task = doc.root_element();
    assert_eq!(task.tag_name().name(), "Task");
    let triggers: Vec<_> = task.descendants().filter(|n| n.has_tag_name("CalendarTrigger")).collect();
    assert_eq!(triggers.len(), 2, "{xml}");
    let text = |name: &str| {
        task.descendants()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(text("Command"), format!("\"{exe}\""));
    assert_eq!(text("WorkingDirectory"), win(&w.dir));

    // Task Scheduler starts `Command Arguments` with CreateProcess in the working directory:
    // so does the helper, and the program's own command-line parsing must get the paths back.
    std::fs::write(
        w.dir.join("task.cmd.txt"),
        format!("{}\n{} {}\n", text("WorkingDirectory"), text("Command"), text("Arguments")),
    )
    .unwrap();
    let spawn = ["spawn", "task.cmd.txt"];
    let out = output(wine.helper(&w, &spawn));
    w.record(&spawn, &out);
    assert!(out.status.success(), "the task's command line failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(state_unix.join("accounts/example/token.json").is_file(), "the task stored the token in {state}");

    // install and remove: Wine's Task Scheduler keeps each task as a file in system32 (UTF-8,
    // written from what it parsed: the description and settings; Wine 8 drops the triggers and
    // actions, and runs no tasks). It reads UTF-16 with a BOM, and refuses UTF-16 without one.
    let system32 = wine.prefix.join("drive_c/windows/system32");
    let tasks = std::fs::read_dir(&system32)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.eq_ignore_ascii_case("tasks")))
        .unwrap_or_else(|| system32.join("tasks"));
    let schtasks = |args: &[&str]| output(wine.command(&w, "schtasks", args));
    schtasks(&["/Delete", "/F", "/TN", "someone-else"]);
    let other = schtasks(&["/Create", "/TN", "someone-else", "/XML", &win(&w.dir.join("task.xml"))]);
    assert!(
        other.status.success() && tasks.join("someone-else").is_file(),
        "another program's task: {}{}",
        String::from_utf8_lossy(&other.stdout),
        String::from_utf8_lossy(&other.stderr)
    );
    let install = [
        "schedule",
        "install",
        "--target",
        "schtasks",
        "--at",
        "09:00",
        "--weekdays",
        "--run",
        "my provider.wasm",
    ];
    tokenhost(&w, &install).assert_code(0).assert_stdout_has("installed the task `tokenhost`");
    let registered = std::fs::read_to_string(tasks.join("tokenhost")).expect("Task Scheduler took the XML");
    assert!(registered.contains(&format!("(state: {state})</Description>")), "{registered}");
    assert!(
        registered.contains("<DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>"),
        "{registered}"
    );
    let written = utf16_file(&state_unix.join("tokenhost-task.xml"));
    assert!(
        written.contains(r#"<Command>&quot;C:\Program Files\tokenhost\tokenhost.exe&quot;</Command>"#),
        "{written}"
    );
    tokenhost(&w, &["schedule", "install", "--target", "schtasks", "--every", "6h", "--run", "x"])
        .assert_code(0);
    tokenhost(&w, &["schedule", "remove", "--target", "schtasks"]).assert_code(0);
    assert!(!tasks.join("tokenhost").exists(), "ours is gone");
    assert!(tasks.join("someone-else").is_file(), "remove deletes only ours");
    assert!(schtasks(&["/Delete", "/F", "/TN", "someone-else"]).status.success());
    w.assert_no_secret_leaked();
}

/// Ctrl-C as Wine delivers it: the terminal's SIGINT becomes `CTRL_C_EVENT` on a new thread of
/// the process, calling its console handlers as Windows does. (Wine 8's
/// `GenerateConsoleCtrlEvent` is no way in: from a console without a window it returns success
/// for `CTRL_C_EVENT` and the event reaches no one, and it fails for `CTRL_BREAK_EVENT`; a
/// closing console window and a shutdown it does not model at all.)
#[cfg(unix)]
#[test]
#[ignore = "run by tests/windows/run.sh under Wine"]
fn the_daemon_stops_cleanly_on_ctrl_c() {
    let wine = wine();
    let w = World::new("win-daemon");
    std::fs::copy(FIXTURE, w.dir.join("example.wasm")).unwrap();
    wine.run(&w, &["run", "example.wasm"]).assert_code(0);
    let args = ["daemon", "example.wasm"];
    let mut child = wine
        .command(&w, &wine.exe.display().to_string(), &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, stderr) = (Pipe::new(child.stdout.take().unwrap()), Pipe::new(child.stderr.take().unwrap()));
    let mut text = String::new();
    stdout.until_line(&mut text, "daemon: 1 account(s): example", WINE_PATIENCE);
    // The token is fresh: the daemon is waiting, with nothing in flight.
    std::thread::sleep(Duration::from_millis(500));
    assert!(signal(&child, libc::SIGINT), "the daemon under Wine was not there to stop");
    let status = wait_within(&mut child, Duration::from_secs(30), "the daemon after Ctrl-C");
    text.push_str(&String::from_utf8_lossy(&stdout.rest()));
    let errors = String::from_utf8_lossy(&stderr.rest()).into_owned();
    w.record(
        &args,
        &std::process::Output {
            status,
            stdout: text.clone().into_bytes(),
            stderr: errors.clone().into_bytes(),
        },
    );
    assert_eq!(status.code(), Some(0), "{text}{errors}");
    assert!(text.ends_with("daemon: stopped\n"), "{text}{errors}");
    w.assert_no_secret_leaked();
}
