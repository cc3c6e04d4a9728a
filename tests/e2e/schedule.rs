//! `tokenhost schedule`: the generated entries, and installing and removing them against a
//! stand-in `crontab` and `systemctl` (so no test ever touches the machine's real ones); the
//! Task Scheduler XML and the launchd property list read back as documents, and Windows command
//! lines split back as Windows splits them.

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
    assert!(text.contains("--xml tokenhost.xml"), "{text}");
    #[cfg(not(windows))]
    w.run(&["schedule", "install", "--target", "schtasks", "--at", "09:00"])
        .assert_code(2)
        .assert_stderr_has("works on Windows only");
}

/// Splits a Windows command line as the Microsoft C runtime does (and `CommandLineToArgvW`,
/// and Rust's std on Windows): the program name up to the next quote or blank, with no
/// escapes; then blank-separated arguments, where `"` toggles quoting, `\"` is a quote, and
/// backslashes are literal unless they precede a quote (2n of them then give n).
fn split_windows(line: &str) -> Vec<String> {
    let mut chars = line.chars().peekable();
    let mut args = Vec::new();
    let mut program = String::new();
    if chars.peek() == Some(&'"') {
        chars.next();
        program.extend(chars.by_ref().take_while(|c| *c != '"'));
    } else {
        while let Some(c) = chars.next_if(|c| !matches!(c, ' ' | '\t')) {
            program.push(c);
        }
    }
    args.push(program);
    loop {
        while chars.next_if(|c| matches!(c, ' ' | '\t')).is_some() {}
        if chars.peek().is_none() {
            return args;
        }
        let (mut arg, mut quoted) = (String::new(), false);
        while let Some(&c) = chars.peek() {
            match c {
                '\\' => {
                    let mut n = 0;
                    while chars.next_if_eq(&'\\').is_some() {
                        n += 1;
                    }
                    if chars.peek() == Some(&'"') {
                        arg.extend(std::iter::repeat_n('\\', n / 2));
                        if n % 2 == 1 {
                            arg.push('"');
                            chars.next();
                        }
                    } else {
                        arg.extend(std::iter::repeat_n('\\', n));
                    }
                }
                '"' => {
                    chars.next();
                    if quoted && chars.peek() == Some(&'"') {
                        arg.push('"');
                        chars.next();
                    } else {
                        quoted = !quoted;
                    }
                }
                ' ' | '\t' if !quoted => break,
                _ => {
                    arg.push(c);
                    chars.next();
                }
            }
        }
        args.push(arg);
    }
}

/// What `cmd.exe` passes on of a command line typed at its prompt: every `"` toggles its
/// quoting; outside quotes a `^` makes the next character plain (and goes), and `&`, `|`, `<`
/// or `>` would end the command (a failure here).
fn through_cmd(line: &str) -> String {
    let (mut out, mut quoted) = (String::new(), false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '^' if !quoted => {
                out.extend(chars.next());
                continue;
            }
            '&' | '|' | '<' | '>' if !quoted => panic!("cmd.exe would take `{c}` for its own in {line}"),
            _ => {}
        }
        out.push(c);
    }
    out
}

#[test]
fn windows_command_lines_split_back_as_windows_splits_them() {
    // The C runtime's documented examples.
    assert_eq!(split_windows(r#"p "a b c" d e"#), ["p", "a b c", "d", "e"]);
    assert_eq!(split_windows(r#"p "ab\"c" "\\" d"#), ["p", r#"ab"c"#, r"\", "d"]);
    assert_eq!(split_windows(r#"p a\\\b d"e f"g h"#), ["p", r"a\\\b", "de fg", "h"]);
    assert_eq!(split_windows(r#"p a\\\"b c d"#), ["p", r#"a\"b"#, "c", "d"]);
    assert_eq!(split_windows(r#"p a\\\\"b c" d e"#), ["p", r"a\\b c", "d", "e"]);
    assert_eq!(split_windows(r#""C:\Program Files\x.exe" -q"#), [r"C:\Program Files\x.exe", "-q"]);
    for arg in [r"C:\Users\John Smith\state\", r#"say "hi""#, r"a\\", "", " ", r#"\""#, "tab\there"] {
        let quoted = tokenhost::schedule::windows_arg(arg);
        assert_eq!(split_windows(&format!("p {quoted} next")), ["p", arg, "next"], "{quoted}");
        // Nested, as schtasks /TR holds a command line: cmd.exe sees other quotes then.
        let nested = tokenhost::schedule::cmd_line(&format!(
            "schtasks /TR {} /ST 09:00",
            tokenhost::schedule::windows_arg(&format!("p.exe {quoted}"))
        ));
        let outer = split_windows(&through_cmd(&nested));
        assert_eq!(outer, ["schtasks", "/TR", &format!("p.exe {quoted}"), "/ST", "09:00"], "{nested}");
        assert_eq!(split_windows(&outer[2]), ["p.exe", arg], "{nested}");
    }
    for arg in ["a & b", "a|b", "<in>", "x^y", "&&", "\"&\""] {
        let quoted = tokenhost::schedule::windows_arg(arg);
        let nested = tokenhost::schedule::cmd_line(&format!(
            "schtasks /TR {}",
            tokenhost::schedule::windows_arg(&format!("p.exe {quoted}"))
        ));
        let outer = split_windows(&through_cmd(&nested));
        assert_eq!(split_windows(&outer[2]), ["p.exe", arg], "{nested}");
    }
}

/// A job as a Windows user sets it up: installed under Program Files, a profile with a space,
/// a state folder given with a trailing backslash.
fn windows_job(when: tokenhost::schedule::When, weekdays: bool) -> tokenhost::schedule::Job {
    tokenhost::schedule::Job {
        exe: r"C:\Program Files\tokenhost\tokenhost.exe".into(),
        state: r"C:\Users\John Smith\AppData\Local\tokenhost state\".into(),
        config: Some(r"C:\Users\John Smith\My Trading\tokenhost.toml".into()),
        dir: r"C:\Users\John Smith\My Trading".into(),
        target: r"C:\Users\John Smith\My Trading\upstox & co.wasm".into(),
        when,
        weekdays,
    }
}

#[test]
fn paths_with_spaces_round_trip_through_the_schtasks_command_line_and_the_xml() {
    let job = windows_job(tokenhost::schedule::When::At(vec![(9, 0)]), true);
    let expected = [
        r"C:\Program Files\tokenhost\tokenhost.exe",
        "--state-dir",
        r"C:\Users\John Smith\AppData\Local\tokenhost state\",
        "--config",
        r"C:\Users\John Smith\My Trading\tokenhost.toml",
        "run",
        r"C:\Users\John Smith\My Trading\upstox & co.wasm",
        "-q",
    ];
    let (command, xml) = job.schtasks();
    // cmd.exe reads the line first, then schtasks.exe splits what cmd.exe passed on, then Task
    // Scheduler starts the /TR value.
    let outer = split_windows(&through_cmd(&command));
    assert_eq!(outer[..6], ["schtasks", "/Create", "/F", "/TN", "tokenhost", "/TR"], "{command}");
    assert_eq!(outer[7..], ["/SC", "WEEKLY", "/D", "MON,TUE,WED,THU,FRI", "/ST", "09:00"], "{command}");
    assert_eq!(split_windows(&outer[6]), expected, "{command}");

    let doc = roxmltree::Document::parse(&xml).unwrap();
    let text = |name: &str| doc.descendants().find(|n| n.has_tag_name(name)).and_then(|n| n.text()).unwrap();
    assert_eq!(split_windows(&format!("{} {}", text("Command"), text("Arguments"))), expected, "{xml}");
    assert_eq!(text("WorkingDirectory"), r"C:\Users\John Smith\My Trading");
}

/// The task XML as Task Scheduler reads it from `file`: UTF-16LE after a byte-order mark,
/// declaring UTF-16.
fn task_xml(file: &Path) -> String {
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(bytes[..2], [0xFF, 0xFE], "the UTF-16LE byte-order mark");
    assert_eq!(bytes.len() % 2, 0);
    let units: Vec<u16> = bytes[2..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let xml = String::from_utf16(&units).expect("UTF-16LE");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n"), "{xml}");
    xml
}

const TASK_NS: &str = "http://schemas.microsoft.com/windows/2004/02/mit/task";

#[test]
fn schtasks_xml_file_is_utf16le_with_a_bom_and_holds_every_trigger() {
    let w = World::new("schedule-xml");
    std::fs::copy(FIXTURE, w.dir.join("example.wasm")).unwrap();
    let xml_at = |args: &[&str]| {
        let mut all = vec!["schedule", "print", "--target", "schtasks", "--run", "example.wasm"];
        all.extend(args);
        all.extend(["--xml", "task.xml"]);
        w.run(&all)
            .assert_code(0)
            .assert_stdout_has("wrote task.xml; next: schtasks /Create /F /TN tokenhost /XML");
        task_xml(&w.dir.join("task.xml"))
    };

    let xml = xml_at(&["--at", "09:00", "--at", "15:30", "--weekdays"]);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let task = doc.root_element();
    assert!(task.has_tag_name((TASK_NS, "Task")), "the Task Scheduler schema's root element");
    assert_eq!(task.attribute("version"), Some("1.2"));
    let triggers: Vec<_> = task
        .children()
        .find(|n| n.has_tag_name((TASK_NS, "Triggers")))
        .unwrap()
        .children()
        .filter(|n| n.is_element())
        .collect();
    assert_eq!(triggers.len(), 2, "{xml}");
    fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
        n.children().find(|c| c.has_tag_name((TASK_NS, name)))
    }
    for (trigger, at) in triggers.iter().zip(["09:00", "15:30"]) {
        assert!(trigger.has_tag_name((TASK_NS, "CalendarTrigger")));
        assert_eq!(
            child(*trigger, "StartBoundary").and_then(|n| n.text()),
            Some(&*format!("2026-01-01T{at}:00"))
        );
        let week = child(*trigger, "ScheduleByWeek").expect("weekly, on weekdays");
        assert_eq!(child(week, "WeeksInterval").and_then(|n| n.text()), Some("1"));
        let days: Vec<&str> = child(week, "DaysOfWeek")
            .unwrap()
            .children()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name())
            .collect();
        assert_eq!(days, ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]);
        assert!(child(*trigger, "Repetition").is_none());
    }
    let exec = task.descendants().find(|n| n.has_tag_name((TASK_NS, "Exec"))).unwrap();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_tokenhost")).unwrap();
    assert_eq!(child(exec, "Command").and_then(|n| n.text()), Some(&*format!("\"{}\"", exe.display())));
    let args = split_windows(&format!("p {}", child(exec, "Arguments").and_then(|n| n.text()).unwrap()));
    let state = std::path::absolute(&w.state).unwrap();
    let provider = std::path::absolute(w.dir.join("example.wasm")).unwrap();
    assert_eq!(
        args[1..],
        ["--state-dir", &state.display().to_string(), "run", &provider.display().to_string(), "-q"]
    );
    assert_eq!(child(exec, "WorkingDirectory").and_then(|n| n.text()), Some(&*w.dir.display().to_string()));
    let settings = child(task, "Settings").unwrap();
    assert_eq!(child(settings, "DisallowStartIfOnBatteries").and_then(|n| n.text()), Some("false"));

    for (every, interval, by_day) in [("30m", "PT30M", true), ("6h", "PT360M", true), ("1h", "PT60M", false)]
    {
        let mut args = vec!["--every", every];
        if !by_day {
            args.push("--weekdays");
        }
        let xml = xml_at(&args);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let triggers: Vec<_> =
            doc.descendants().filter(|n| n.has_tag_name((TASK_NS, "CalendarTrigger"))).collect();
        assert_eq!(triggers.len(), 1, "{xml}");
        let repetition = child(triggers[0], "Repetition").expect("a repetition");
        assert_eq!(child(repetition, "Interval").and_then(|n| n.text()), Some(interval));
        assert_eq!(child(repetition, "Duration").and_then(|n| n.text()), Some("P1D"));
        assert_eq!(child(triggers[0], "ScheduleByDay").is_some(), by_day, "{xml}");
        assert_eq!(child(triggers[0], "ScheduleByWeek").is_some(), !by_day, "{xml}");
    }
    w.run(&["schedule", "print", "--target", "cron", "--at", "09:00", "--run", "x", "--xml", "c.xml"])
        .assert_code(2)
        .assert_stderr_has("--xml FILE is for --target schtasks");
    w.run(&["schedule", "install", "--target", "schtasks", "--at", "09:00", "--run", "x", "--xml", "c.xml"])
        .assert_code(2)
        .assert_stderr_has("--xml FILE goes with `schedule print`");
}

#[test]
fn launchd_plist_holds_every_trigger_absolute_paths_and_the_log() {
    let mut w = World::new("schedule-launchd");
    fakes(&mut w);
    std::fs::copy(FIXTURE, w.dir.join("example.wasm")).unwrap();
    let plist_for = |args: &[&str]| {
        let mut all = vec!["schedule", "print", "--target", "launchd", "--run", "example.wasm"];
        all.extend(args);
        all.extend(["--xml", "tokenhost.plist"]);
        w.run(&all).assert_code(0).assert_stdout_has("wrote tokenhost.plist");
        let value = plist::Value::from_file(w.dir.join("tokenhost.plist")).expect("a property list");
        value.into_dictionary().expect("a dictionary at the top")
    };
    let calendar = |d: &plist::Dictionary| -> Vec<(Option<u64>, Option<u64>, Option<u64>)> {
        d.get("StartCalendarInterval")
            .and_then(|v| v.as_array())
            .expect("StartCalendarInterval entries")
            .iter()
            .map(|e| {
                let e = e.as_dictionary().expect("each entry a dictionary");
                let get = |k: &str| e.get(k).map(|v| v.as_unsigned_integer().expect("an integer"));
                assert!(e.keys().all(|k| ["Hour", "Minute", "Weekday"].contains(&k.as_str())), "{e:?}");
                (get("Weekday"), get("Hour"), get("Minute"))
            })
            .collect()
    };

    let d = plist_for(&["--at", "09:00", "--at", "15:30", "--weekdays"]);
    assert_eq!(d.get("Label").and_then(|v| v.as_string()), Some("tokenhost"));
    let program: Vec<&str> = d
        .get("ProgramArguments")
        .and_then(|v| v.as_array())
        .expect("ProgramArguments")
        .iter()
        .map(|v| v.as_string().expect("strings"))
        .collect();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_tokenhost")).unwrap();
    let state = std::path::absolute(&w.state).unwrap();
    let provider = std::path::absolute(w.dir.join("example.wasm")).unwrap();
    assert_eq!(
        program,
        [
            &*exe.display().to_string(),
            "--state-dir",
            &*state.display().to_string(),
            "run",
            &*provider.display().to_string(),
            "-q"
        ]
    );
    assert!(program.iter().filter(|a| a.contains('/')).all(|a| a.starts_with('/')), "absolute paths");
    let string = |k: &str| d.get(k).and_then(|v| v.as_string()).map(str::to_string);
    assert_eq!(string("WorkingDirectory"), Some(w.dir.display().to_string()));
    let log = state.join("tokenhost.log").display().to_string();
    assert_eq!(string("StandardOutPath"), Some(log.clone()));
    assert_eq!(string("StandardErrorPath"), Some(log));
    assert!(d.get("StartInterval").is_none());
    let mut expected = Vec::new();
    for day in 1..=5 {
        expected.extend([(Some(day), Some(9), Some(0)), (Some(day), Some(15), Some(30))]);
    }
    assert_eq!(calendar(&d), expected, "each --at on each weekday");

    let d = plist_for(&["--at", "09:15"]);
    assert_eq!(calendar(&d), [(None, Some(9), Some(15))], "every day: no Weekday");

    let d = plist_for(&["--every", "6h"]);
    assert_eq!(d.get("StartInterval").and_then(|v| v.as_unsigned_integer()), Some(21600));
    assert!(d.get("StartCalendarInterval").is_none());

    // An interval cannot skip weekends: on weekdays it becomes calendar entries.
    let d = plist_for(&["--every", "30m", "--weekdays"]);
    assert!(d.get("StartInterval").is_none());
    let mut expected = Vec::new();
    for day in 1..=5 {
        expected.extend([(Some(day), None, Some(0)), (Some(day), None, Some(30))]);
    }
    assert_eq!(calendar(&d), expected);
    let d = plist_for(&["--every", "12h", "--weekdays"]);
    assert_eq!(calendar(&d).len(), 10);
    assert!(calendar(&d).contains(&(Some(3), Some(12), Some(0))));

    // What `print` shows is a property list too, naming where it goes.
    let out = w.run(&["schedule", "print", "--target", "launchd", "--at", "09:00", "--run", "example.wasm"]);
    let text = &out.assert_code(0).stdout;
    assert!(text.contains(&format!("{}/Library/LaunchAgents/tokenhost.plist", w.dir.display())), "{text}");
    plist::Value::from_reader_xml(text.as_bytes()).expect("print shows a property list");
    #[cfg(not(target_os = "macos"))]
    w.run(&["schedule", "install", "--target", "launchd", "--at", "09:00", "--run", "example.wasm"])
        .assert_code(2)
        .assert_stderr_has("works on macOS only");
}

#[test]
fn get_prints_powershell_assignments() {
    let w = World::new("get-powershell");
    w.run(&["run", FIXTURE]).assert_code(0);
    let token = w.stored()["access_token"].as_str().unwrap().to_string();
    let out = w.run(&["get", "example", "--format", "powershell"]);
    let text = &out.assert_code(0).stdout;
    assert!(text.starts_with(&format!("$env:EXAMPLE_ACCESS_TOKEN = '{token}'\n")), "{text}");
    for line in text.lines() {
        let (name, value) = line.split_once(" = ").expect("an assignment");
        assert!(name.starts_with("$env:EXAMPLE_"), "{line}");
        assert!(value.starts_with('\'') && value.ends_with('\'') && value.len() >= 2, "{line}");
        assert_eq!(value[1..value.len() - 1].replace("''", "").matches('\'').count(), 0, "{line}");
    }
}
