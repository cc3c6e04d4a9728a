//! `tokenhost schedule`: the generated entries, and installing and removing them against a
//! stand-in `crontab` and `systemctl` (so no test ever touches the machine's real ones).

use crate::support::*;
use std::path::Path;

/// A folder of fake `crontab` and `systemctl` put first on PATH: the crontab lives in a file,
/// systemctl calls are recorded.
fn fakes(w: &mut World) {
    let bin = w.dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let tab = w.dir.join("crontab.txt");
    let calls = w.dir.join("systemctl.calls");
    let script = |name: &str, body: String| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    };
    script(
        "crontab",
        format!(
            "case \"$1\" in\n  -l) [ -f '{t}' ] || {{ echo 'no crontab for user' >&2; exit 1; }}; cat '{t}';;\n  \
             -) cat > '{t}';;\n  *) exit 2;;\nesac",
            t = tab.display()
        ),
    );
    script("systemctl", format!("echo \"$@\" >> '{}'", calls.display()));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    w.set_env("PATH", Some(&path));
    let (home, xdg) = (w.dir.display().to_string(), w.dir.join("xdg").display().to_string());
    w.set_env("HOME", Some(&home));
    w.set_env("XDG_CONFIG_HOME", Some(&xdg));
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn cron_entries_install_once_and_remove_cleanly() {
    let mut w = World::new("schedule-cron");
    fakes(&mut w);
    let tab = w.dir.join("crontab.txt");
    std::fs::write(&tab, "# my own jobs\n15 3 * * * /usr/bin/backup\n").unwrap();
    std::fs::copy(FIXTURE, w.dir.join("example.wasm")).unwrap();
    let args =
        ["schedule", "install", "--target", "cron", "--at", "09:00", "--weekdays", "--run", "example.wasm"];
    w.run(&args).assert_code(0).assert_stdout_has("installed in the crontab");
    w.run(&args).assert_code(0);
    let text = read(&tab);
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("# tokenhost schedule")).collect();
    assert_eq!(ours.len(), 1, "installing twice leaves one line:\n{text}");
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_tokenhost")).unwrap();
    let state = std::path::absolute(&w.state).unwrap();
    let line = ours[0];
    assert!(line.starts_with("0 9 * * 1-5 cd "), "{line}");
    for part in [
        format!("'{}'", exe.display()),
        format!("'--state-dir' '{}'", state.display()),
        format!("'run' '{}'", std::path::absolute(w.dir.join("example.wasm")).unwrap().display()),
        format!(">> '{}' 2>&1", state.join("tokenhost.log").display()),
    ] {
        assert!(line.contains(&part), "{part} missing in {line}");
    }
    assert!(text.starts_with("# my own jobs\n15 3 * * * /usr/bin/backup\n"), "{text}");

    // The line works: run by a shell as cron would, it refreshes and logs.
    let cmd = line.split_once(" 1-5 ").unwrap().1;
    let key = w.broker.state().key.clone();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("EXAMPLE_API_ROOT", w.server.url())
        .env("EXAMPLE_API_KEY", key)
        .env("EXAMPLE_API_SECRET", &w.secret)
        .status()
        .unwrap();
    let log = read(&w.state.join("tokenhost.log"));
    assert!(status.success() && log.contains("example: refreshed"), "{log}");

    w.run(&["schedule", "remove", "--target", "cron"]).assert_code(0);
    assert_eq!(read(&tab), "# my own jobs\n15 3 * * * /usr/bin/backup\n");
    // Saying neither when nor what is an error that says how.
    w.run(&["schedule", "print", "--target", "cron", "--run", "x"])
        .assert_code(2)
        .assert_stderr_has("--at 09:00");
    w.run(&["schedule", "print", "--target", "cron", "--every", "7h", "--run", "x"]).assert_code(2);
    w.assert_no_secret_leaked();
}

#[test]
fn systemd_and_schtasks_entries() {
    let mut w = World::new("schedule-systemd");
    fakes(&mut w);
    w.write("tokenhost.toml", &format!("[accounts.desk]\nprovider = {FIXTURE:?}\n"));
    let out = w.run(&["schedule", "install", "--target", "systemd", "--every", "6h", "--weekdays"]);
    out.assert_code(0).assert_stdout_has("installed and started tokenhost.timer");
    let units = w.dir.join("xdg/systemd/user");
    let service = read(&units.join("tokenhost.service"));
    let timer = read(&units.join("tokenhost.timer"));
    let config = std::path::absolute(w.dir.join("tokenhost.toml")).unwrap();
    assert!(
        service.contains(&format!("\"--config\" \"{}\" \"run\" \"--all\" \"-q\"", config.display())),
        "{service}"
    );
    assert!(service.contains(&format!("WorkingDirectory={}", w.dir.display())), "{service}");
    assert!(service.contains("Type=oneshot") && service.contains("StandardError=append:"), "{service}");
    assert!(
        timer.contains("OnCalendar=Mon..Fri *-*-* 00/6:00:00\n") && timer.contains("Persistent=true"),
        "{timer}"
    );
    assert_eq!(
        read(&w.dir.join("systemctl.calls")),
        "--user daemon-reload\n--user enable --now tokenhost.timer\n"
    );
    w.run(&["schedule", "remove", "--target", "systemd"]).assert_code(0);
    assert!(!units.join("tokenhost.timer").exists() && !units.join("tokenhost.service").exists());

    let out = w.run(&["schedule", "print", "--target", "schtasks", "--at", "09:00", "--at", "15:30"]);
    let text = &out.assert_code(0).stdout;
    assert!(text.contains("schtasks /Create /F /TN tokenhost /TR "), "{text}");
    assert!(text.contains("/SC DAILY /ST 09:00"), "{text}");
    assert_eq!(text.matches("<CalendarTrigger>").count(), 2, "{text}");
    assert!(text.contains("<StartBoundary>2026-01-01T15:30:00</StartBoundary>"), "{text}");
    assert!(text.contains("<Arguments>&quot;--state-dir&quot;"), "{text}");
    #[cfg(not(windows))]
    w.run(&["schedule", "install", "--target", "schtasks", "--at", "09:00"])
        .assert_code(2)
        .assert_stderr_has("works on Windows only");
}
