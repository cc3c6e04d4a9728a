//! `tokenhost schedule print|install|remove --target cron|schtasks|systemd|launchd`: exactly one
//! scheduler entry that runs this binary, with absolute paths and the state directory and config
//! passed explicitly, from the directory it was set up in (where `.env` is), its output going to
//! the log. Installing twice leaves one entry; `remove` takes it away.
//!
//! Task Scheduler gets its task as XML in UTF-16LE with a byte-order mark, the encoding the
//! file's declaration names (it refuses a UTF-8 file that says UTF-16); its command lines are
//! quoted by the rules Windows programs split them with. launchd gets a LaunchAgent property
//! list in `~/Library/LaunchAgents`.

use crate::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduler {
    /// A tagged line in the user's crontab.
    Cron,
    /// Windows Task Scheduler (a command line and an importable XML).
    Schtasks,
    /// A `.service` and `.timer` pair in the systemd user unit folder.
    Systemd,
    /// A macOS LaunchAgent (`~/Library/LaunchAgents/tokenhost.plist`).
    Launchd,
}

/// The Task Scheduler task and the launchd label: one per user.
pub const NAME: &str = "tokenhost";

/// The longest `/TR` value `schtasks /Create` takes; a longer command needs the XML.
const SCHTASKS_TR_MAX: usize = 261;

/// When the job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// At these times of day (`(hour, minute)`), local time.
    At(Vec<(u8, u8)>),
    /// Every this many minutes (a divisor of 60) or hours (a divisor of 24).
    Every { minutes: u32 },
}

/// The job and its timing.
#[derive(Debug, Clone)]
pub struct Job {
    /// This binary.
    pub exe: PathBuf,
    /// The state directory.
    pub state: PathBuf,
    /// The config file, if one is in use.
    pub config: Option<PathBuf>,
    /// Where the job starts (for `.env` and relative paths).
    pub dir: PathBuf,
    /// What `run` gets: an account, a provider file, or `--all`.
    pub target: String,
    /// When.
    pub when: When,
    /// Monday to Friday only.
    pub weekdays: bool,
}

/// Parses `09:00`.
pub fn parse_at(s: &str) -> Result<(u8, u8), String> {
    let (h, m) = s.split_once(':').ok_or("expected HH:MM, e.g. 09:00")?;
    match (h.parse::<u8>(), m.parse::<u8>()) {
        (Ok(h), Ok(m)) if h < 24 && m < 60 && m.to_string().len() <= 2 => Ok((h, m)),
        _ => Err(format!("`{s}` is not a time of day (HH:MM, 00:00 to 23:59)")),
    }
}

/// Parses `6h` or `30m` into minutes; the interval must divide an hour or a day evenly, as
/// every scheduler here can only repeat that way.
pub fn parse_every(s: &str) -> Result<u32, String> {
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u32 = n.parse().map_err(|_| format!("`{s}`: expected a number and h or m, e.g. 6h"))?;
    match unit {
        "h" if n > 0 && 24 % n == 0 => Ok(n * 60),
        "m" if n > 0 && 60 % n == 0 => Ok(n),
        "h" | "m" => Err(format!("`{s}`: the interval must divide a day (h) or an hour (m) evenly")),
        _ => Err(format!("`{s}`: expected a number and h or m, e.g. 6h")),
    }
}

/// `'path'` for a POSIX shell.
fn sh(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// One argument in double quotes for a Windows command line, so that the C runtime's rules
/// (which Rust's std and `CommandLineToArgvW` follow) split it back unchanged: a quote is
/// escaped with a backslash, and backslashes are doubled where they precede a quote (a path
/// ending in `\` included). Always quoted, so `cmd.exe` leaves `&`, `|`, `<` and `>` alone
/// in a command line of its own ([`cmd_line`] for one inside another).
pub fn windows_arg(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut backslashes = 0;
    for c in s.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
    out
}

/// `line` as typed at a `cmd.exe` prompt, so that the program gets it unchanged. cmd.exe has its
/// own quoting, before any program's: every `"` toggles it (it knows no `\"`), and outside it
/// `&`, `|`, `<`, `>` and `^` are its own. Those get a `^`, which cmd.exe removes, wherever
/// cmd.exe's count of quotes puts them outside: a nested command line (`/TR "\"C:\a & b\" ..."`)
/// has its quotes escaped for the program, which cmd.exe does not see. (`%NAME%` of a defined
/// variable is expanded at a prompt even in quotes, and has no escape there.)
pub fn cmd_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            '&' | '|' | '<' | '>' | '^' if !quoted => out.push('^'),
            _ => {}
        }
        out.push(c);
    }
    out
}

/// A program path for the start of a Windows command line: in quotes (no escapes apply there,
/// and a file name cannot hold a quote).
fn windows_program(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// Text for an XML element or attribute.
fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `text` as UTF-16LE with a byte-order mark: how Task Scheduler reads and writes task XML.
pub fn utf16le_with_bom(text: &str) -> Vec<u8> {
    std::iter::once(0xFEFF).chain(text.encode_utf16()).flat_map(u16::to_le_bytes).collect()
}

impl Job {
    /// The command's arguments after the binary.
    fn args(&self) -> Vec<String> {
        let mut a = vec!["--state-dir".to_string(), self.state.display().to_string()];
        if let Some(c) = &self.config {
            a.extend(["--config".to_string(), c.display().to_string()]);
        }
        a.push("run".into());
        a.push(self.target.clone());
        a.push("-q".into());
        a
    }

    fn log(&self) -> PathBuf {
        self.state.join("tokenhost.log")
    }

    /// The tag that marks our crontab lines (one schedule per state directory).
    fn tag(&self) -> String {
        format!("# tokenhost schedule ({})", self.state.display())
    }

    /// The crontab lines (one per distinct minute of `--at`, else one).
    pub fn cron(&self) -> String {
        let dow = if self.weekdays { "1-5" } else { "*" };
        let cmd = format!(
            "cd {} && {} {} >> {} 2>&1",
            sh(&self.dir),
            sh(&self.exe),
            self.args().iter().map(|a| sh(Path::new(a))).collect::<Vec<_>>().join(" "),
            sh(&self.log())
        );
        let mut times: Vec<(String, String)> = Vec::new();
        match &self.when {
            When::At(at) => {
                let mut minutes: Vec<u8> = at.iter().map(|t| t.1).collect();
                minutes.sort();
                minutes.dedup();
                for m in minutes {
                    let mut hours: Vec<u8> = at.iter().filter(|t| t.1 == m).map(|t| t.0).collect();
                    hours.sort();
                    hours.dedup();
                    times
                        .push((m.to_string(), hours.iter().map(u8::to_string).collect::<Vec<_>>().join(",")));
                }
            }
            When::Every { minutes } if *minutes < 60 => times.push((format!("*/{minutes}"), "*".into())),
            When::Every { minutes } => times.push(("0".into(), format!("*/{}", minutes / 60))),
        }
        times.iter().map(|(m, h)| format!("{m} {h} * * {dow} {cmd} {}\n", self.tag())).collect()
    }

    /// `tokenhost.service` and `tokenhost.timer`.
    pub fn systemd(&self) -> (String, String) {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%"));
        let exec = std::iter::once(self.exe.display().to_string())
            .chain(self.args())
            .map(|a| q(&a))
            .collect::<Vec<_>>()
            .join(" ");
        let service = format!(
            "[Unit]\nDescription=tokenhost: refresh broker API tokens\nWants=network-online.target\n\
             After=network-online.target\n\n[Service]\nType=oneshot\nWorkingDirectory={}\nExecStart={exec}\n\
             StandardOutput=append:{}\nStandardError=append:{}\n",
            self.dir.display(),
            self.log().display(),
            self.log().display()
        );
        let days = if self.weekdays { "Mon..Fri " } else { "" };
        let calendars: Vec<String> = match &self.when {
            When::At(at) => at.iter().map(|(h, m)| format!("{days}*-*-* {h:02}:{m:02}:00")).collect(),
            When::Every { minutes } if *minutes < 60 => vec![format!("{days}*-*-* *:00/{minutes}:00")],
            When::Every { minutes } => vec![format!("{days}*-*-* 00/{}:00:00", minutes / 60)],
        };
        let timer = format!(
            "[Unit]\nDescription=tokenhost: refresh broker API tokens on schedule\n\n[Timer]\n{}\
             Persistent=true\n\n[Install]\nWantedBy=timers.target\n",
            calendars.iter().map(|c| format!("OnCalendar={c}\n")).collect::<String>()
        );
        (service, timer)
    }

    /// The arguments after the program on a Windows command line, each quoted.
    pub fn windows_arguments(&self) -> String {
        self.args().iter().map(|a| windows_arg(a)).collect::<Vec<_>>().join(" ")
    }

    /// The `schtasks /Create` command line for `cmd.exe` (for one daily or weekday time, or a
    /// repetition), and the task XML, which holds any number of triggers.
    pub fn schtasks(&self) -> (String, String) {
        let args = self.windows_arguments();
        let tr = format!("{} {args}", windows_program(&self.exe));
        let days = if self.weekdays { "/SC WEEKLY /D MON,TUE,WED,THU,FRI" } else { "/SC DAILY" };
        let schedule = match &self.when {
            When::At(at) => format!("{days} /ST {:02}:{:02}", at[0].0, at[0].1),
            When::Every { minutes } if *minutes < 60 => format!("/SC MINUTE /MO {minutes}"),
            When::Every { minutes } => format!("/SC HOURLY /MO {}", minutes / 60),
        };
        let command =
            cmd_line(&format!("schtasks /Create /F /TN {NAME} /TR {} {schedule}", windows_arg(&tr)));
        let by_day = if self.weekdays {
            "<ScheduleByWeek><WeeksInterval>1</WeeksInterval><DaysOfWeek><Monday /><Tuesday />\
             <Wednesday /><Thursday /><Friday /></DaysOfWeek></ScheduleByWeek>"
        } else {
            "<ScheduleByDay><DaysInterval>1</DaysInterval></ScheduleByDay>"
        };
        let triggers: String = match &self.when {
            When::At(at) => at
                .iter()
                .map(|(h, m)| {
                    format!(
                        "    <CalendarTrigger><StartBoundary>2026-01-01T{h:02}:{m:02}:00</StartBoundary>\
                         {by_day}</CalendarTrigger>\n"
                    )
                })
                .collect(),
            When::Every { minutes } => format!(
                "    <CalendarTrigger><StartBoundary>2026-01-01T00:00:00</StartBoundary><Repetition>\
                 <Interval>PT{minutes}M</Interval><Duration>P1D</Duration></Repetition>{by_day}</CalendarTrigger>\n"
            ),
        };
        // No principal: the task runs as the person who registers it, while logged on (no
        // stored password). On battery too: a laptop's token expires all the same.
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n\
             <Task version=\"1.2\" xmlns=\"http://schemas.microsoft.com/windows/2004/02/mit/task\">\n  \
             <RegistrationInfo><Description>{}</Description></RegistrationInfo>\n  \
             <Triggers>\n{triggers}  </Triggers>\n  \
             <Settings><MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\
             <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>\
             <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries><StartWhenAvailable>true</StartWhenAvailable>\
             <RunOnlyIfNetworkAvailable>true</RunOnlyIfNetworkAvailable>\
             <ExecutionTimeLimit>PT1H</ExecutionTimeLimit></Settings>\n  \
             <Actions><Exec><Command>{}</Command><Arguments>{}</Arguments>\
             <WorkingDirectory>{}</WorkingDirectory></Exec></Actions>\n</Task>\n",
            xml_text(&format!("tokenhost: refresh broker API tokens (state: {})", self.state.display())),
            xml_text(&windows_program(&self.exe)),
            xml_text(&args),
            xml_text(&self.dir.display().to_string())
        );
        (command, xml)
    }

    /// The launchd LaunchAgent: the program and its arguments, the folder it starts in, the
    /// log, and a calendar entry per time and weekday (`--at`), or an interval (`--every`;
    /// with `--weekdays`, calendar entries instead, since an interval cannot skip weekends).
    pub fn launchd(&self) -> String {
        let string = |s: &str| format!("<string>{}</string>", xml_text(s));
        let program: String = std::iter::once(self.exe.display().to_string())
            .chain(self.args())
            .map(|a| format!("\t\t{}\n", string(&a)))
            .collect();
        let days: Vec<Option<u8>> = if self.weekdays { (1..=5).map(Some).collect() } else { vec![None] };
        let times: Vec<(Option<u8>, u8)> = match &self.when {
            When::At(at) => at.iter().map(|(h, m)| (Some(*h), *m)).collect(),
            When::Every { minutes } if *minutes < 60 => {
                (0..60).step_by(*minutes as usize).map(|m| (None, m as u8)).collect()
            }
            When::Every { minutes } => {
                (0..24).step_by(*minutes as usize / 60).map(|h| (Some(h as u8), 0)).collect()
            }
        };
        let when = match &self.when {
            When::Every { minutes } if !self.weekdays => {
                format!("\t<key>StartInterval</key>\n\t<integer>{}</integer>\n", minutes * 60)
            }
            _ => {
                let mut entries = String::new();
                for day in &days {
                    for (hour, minute) in &times {
                        entries.push_str("\t\t<dict>");
                        if let Some(h) = hour {
                            entries.push_str(&format!("<key>Hour</key><integer>{h}</integer>"));
                        }
                        entries.push_str(&format!("<key>Minute</key><integer>{minute}</integer>"));
                        if let Some(d) = day {
                            entries.push_str(&format!("<key>Weekday</key><integer>{d}</integer>"));
                        }
                        entries.push_str("</dict>\n");
                    }
                }
                format!("\t<key>StartCalendarInterval</key>\n\t<array>\n{entries}\t</array>\n")
            }
        };
        let log = self.log().display().to_string();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
             <plist version=\"1.0\">\n<dict>\n\
             \t<key>Label</key>\n\t{}\n\
             \t<key>ProgramArguments</key>\n\t<array>\n{program}\t</array>\n\
             \t<key>WorkingDirectory</key>\n\t{}\n\
             \t<key>StandardOutPath</key>\n\t{}\n\
             \t<key>StandardErrorPath</key>\n\t{}\n\
             {when}</dict>\n</plist>\n",
            string(NAME),
            string(&self.dir.display().to_string()),
            string(&log),
            string(&log),
        )
    }
}

/// The systemd user unit folder.
fn unit_dir() -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config"));
    config.join("systemd/user")
}

/// Where the LaunchAgent goes.
fn launch_agent() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join("Library/LaunchAgents")
        .join(format!("{NAME}.plist"))
}

/// What `print` shows.
pub fn print(job: &Job, target: Scheduler) -> String {
    match target {
        Scheduler::Cron => job.cron(),
        Scheduler::Systemd => {
            let (service, timer) = job.systemd();
            let dir = unit_dir();
            format!(
                "# {}\n{service}\n# {}\n{timer}",
                dir.join("tokenhost.service").display(),
                dir.join("tokenhost.timer").display()
            )
        }
        Scheduler::Schtasks => {
            let (command, xml) = job.schtasks();
            let tr = format!("{} {}", windows_program(&job.exe), job.windows_arguments());
            let warning = if tr.chars().count() > SCHTASKS_TR_MAX {
                format!(
                    "REM this command is {} characters, over the {SCHTASKS_TR_MAX} schtasks /TR takes: use the XML\n",
                    tr.chars().count()
                )
            } else {
                String::new()
            };
            format!(
                "REM one trigger, from a command line (cmd.exe):\n{warning}{command}\n\n\
                 REM every trigger: write the task XML as Task Scheduler reads it (UTF-16) with\n\
                 REM   tokenhost schedule print --target schtasks ... --xml tokenhost.xml\n\
                 REM then: schtasks /Create /F /TN {NAME} /XML tokenhost.xml\n{xml}"
            )
        }
        Scheduler::Launchd => job.launchd().replacen(
            "<plist version",
            &format!(
                "<!-- {}: `install --target launchd` puts it there; `--xml FILE` writes it to a file -->\n<plist version",
                launch_agent().display()
            ),
            1,
        ),
    }
}

/// `print --xml FILE`: writes the task XML (UTF-16LE with a byte-order mark) or the
/// LaunchAgent (UTF-8) to `file`; returns what to tell the person.
pub fn write_file(job: &Job, target: Scheduler, file: &Path) -> Result<String, Error> {
    let (bytes, next) = match target {
        Scheduler::Schtasks => (
            utf16le_with_bom(&job.schtasks().1),
            format!("schtasks /Create /F /TN {NAME} /XML {}", windows_arg(&file.display().to_string())),
        ),
        Scheduler::Launchd => (
            job.launchd().into_bytes(),
            format!(
                "copy it to {} and load it with `tokenhost schedule install --target launchd`",
                launch_agent().display()
            ),
        ),
        Scheduler::Cron | Scheduler::Systemd => {
            return Err(Error::Config(
                "--xml FILE is for --target schtasks (the task XML) and --target launchd (the plist)".into(),
            ));
        }
    };
    crate::store::write_atomic(file, &bytes)
        .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
    Ok(format!("wrote {}; next: {next}", file.display()))
}

fn crontab_lines(tag: &str) -> Result<Vec<String>, Error> {
    let out = Command::new("crontab").arg("-l").output().map_err(|e| Error::io("running `crontab -l`", e))?;
    // `crontab -l` fails when the user has no crontab yet: that is an empty one.
    let text =
        if out.status.success() { String::from_utf8_lossy(&out.stdout).into_owned() } else { String::new() };
    Ok(text.lines().filter(|l| !l.ends_with(tag)).map(str::to_string).collect())
}

fn set_crontab(lines: &[String]) -> Result<(), Error> {
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("running `crontab -`", e))?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    child
        .stdin
        .take()
        .map(|mut s| s.write_all(text.as_bytes()))
        .transpose()
        .map_err(|e| Error::io("writing the crontab", e))?;
    let status = child.wait().map_err(|e| Error::io("running `crontab -`", e))?;
    if !status.success() {
        return Err(Error::Config(format!("`crontab -` refused the new crontab ({status})")));
    }
    Ok(())
}

/// Installs the entry (replacing ours, if any); returns what to tell the person.
pub fn install(job: &Job, target: Scheduler) -> Result<String, Error> {
    match target {
        Scheduler::Cron => {
            let mut lines = crontab_lines(&job.tag())?;
            lines.extend(job.cron().lines().map(str::to_string));
            set_crontab(&lines)?;
            Ok(format!("installed in the crontab:\n{}", job.cron().trim_end()))
        }
        Scheduler::Systemd => {
            let dir = unit_dir();
            crate::store::create_private_dir(&dir)?;
            let (service, timer) = job.systemd();
            for (name, text) in [("tokenhost.service", service), ("tokenhost.timer", timer)] {
                crate::store::write_atomic(&dir.join(name), text.as_bytes())
                    .map_err(|e| Error::io(format!("writing {}", dir.join(name).display()), e))?;
            }
            let enabled = systemctl(&["daemon-reload"]) && systemctl(&["enable", "--now", "tokenhost.timer"]);
            Ok(if enabled {
                format!("installed and started tokenhost.timer ({})", dir.display())
            } else {
                format!(
                    "wrote {}/tokenhost.{{service,timer}}; systemctl --user is not available here, so run:\n  \
                     systemctl --user daemon-reload && systemctl --user enable --now tokenhost.timer",
                    dir.display()
                )
            })
        }
        Scheduler::Schtasks => schtasks_install(job),
        Scheduler::Launchd => launchd_install(job),
    }
}

/// Removes the entry; returns what to tell the person.
pub fn remove(job: &Job, target: Scheduler) -> Result<String, Error> {
    match target {
        Scheduler::Cron => {
            let lines = crontab_lines(&job.tag())?;
            set_crontab(&lines)?;
            Ok("removed from the crontab".into())
        }
        Scheduler::Systemd => {
            systemctl(&["disable", "--now", "tokenhost.timer"]);
            let dir = unit_dir();
            for name in ["tokenhost.timer", "tokenhost.service"] {
                match std::fs::remove_file(dir.join(name)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Error::io(format!("removing {}", dir.join(name).display()), e));
                    }
                    _ => {}
                }
            }
            systemctl(&["daemon-reload"]);
            Ok(format!("removed tokenhost.timer and tokenhost.service from {}", dir.display()))
        }
        Scheduler::Schtasks => schtasks_remove(),
        Scheduler::Launchd => launchd_remove(),
    }
}

fn systemctl(args: &[&str]) -> bool {
    Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn schtasks(args: &[&str]) -> Result<(), Error> {
    let status =
        Command::new("schtasks").args(args).status().map_err(|e| Error::io("running schtasks", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Config(format!("`schtasks {}` failed ({status})", args.join(" "))))
    }
}

/// Writes the task XML (UTF-16LE with a BOM, as its declaration says) to the state directory
/// and creates the task `tokenhost` from it, replacing ours; no other task is touched.
fn schtasks_install(job: &Job) -> Result<String, Error> {
    if !cfg!(windows) {
        return Err(not_here("install", "schtasks", "Windows"));
    }
    let path = job.state.join("tokenhost-task.xml");
    crate::store::write_atomic(&path, &utf16le_with_bom(&job.schtasks().1))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    schtasks(&["/Create", "/F", "/TN", NAME, "/XML", &path.display().to_string()])?;
    Ok(format!("installed the task `{NAME}` in Task Scheduler (from {})", path.display()))
}

/// Deletes the task `tokenhost`, and only it.
fn schtasks_remove() -> Result<String, Error> {
    if !cfg!(windows) {
        return Err(not_here("remove", "schtasks", "Windows"));
    }
    schtasks(&["/Delete", "/F", "/TN", NAME])?;
    Ok(format!("removed the task `{NAME}` from Task Scheduler"))
}

/// `gui/<uid>`: the logged-in user's launchd domain.
#[cfg(unix)]
fn launchd_domain() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    format!("gui/{}", unsafe { libc::getuid() })
}

/// launchd is macOS's; elsewhere this only keeps the code compiling (and checked).
#[cfg(not(unix))]
fn launchd_domain() -> String {
    "gui/0".into()
}

/// `launchctl ARGS`, its exit status and what it said.
fn launchctl(args: &[&str]) -> Result<(bool, String), Error> {
    let out = Command::new("launchctl").args(args).output().map_err(|e| Error::io("running launchctl", e))?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), said.trim().to_string()))
}

/// Writes the LaunchAgent and loads it (`launchctl bootstrap`), first unloading ours if it
/// was loaded.
fn launchd_install(job: &Job) -> Result<String, Error> {
    if !cfg!(target_os = "macos") {
        return Err(not_here("install", "launchd", "macOS"));
    }
    let plist = launch_agent();
    if let Some(dir) = plist.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let domain = launchd_domain();
    // Not loaded yet is fine: bootout only makes room for the new one.
    launchctl(&["bootout", &format!("{domain}/{NAME}")])?;
    crate::store::write_atomic(&plist, job.launchd().as_bytes())
        .map_err(|e| Error::io(format!("writing {}", plist.display()), e))?;
    // A bootout still under way makes bootstrap fail for a moment ("5: Input/output error").
    let mut tries = 0;
    let (ok, said) = loop {
        let (ok, said) = launchctl(&["bootstrap", &domain, &plist.display().to_string()])?;
        tries += 1;
        if ok || tries == 5 {
            break (ok, said);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    if !ok {
        return Err(Error::Config(format!(
            "`launchctl bootstrap {domain} {}` failed: {said}",
            plist.display()
        )));
    }
    Ok(format!("installed and loaded {} ({domain}/{NAME})", plist.display()))
}

/// Unloads ours (`launchctl bootout`) and deletes its file.
fn launchd_remove() -> Result<String, Error> {
    if !cfg!(target_os = "macos") {
        return Err(not_here("remove", "launchd", "macOS"));
    }
    let domain = launchd_domain();
    launchctl(&["bootout", &format!("{domain}/{NAME}")])?;
    let plist = launch_agent();
    match std::fs::remove_file(&plist) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("removing {}", plist.display()), e));
        }
        _ => {}
    }
    Ok(format!("unloaded {domain}/{NAME} and removed {}", plist.display()))
}

fn not_here(what: &str, target: &str, system: &str) -> Error {
    Error::Config(format!(
        "`schedule {what} --target {target}` works on {system} only; `tokenhost schedule print \
         --target {target}` shows what to use there (`--xml FILE` writes it to a file)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_intervals_parse_or_say_why_not() {
        assert_eq!(parse_at("09:00"), Ok((9, 0)));
        assert_eq!(parse_at("23:59"), Ok((23, 59)));
        assert!(parse_at("24:00").is_err() && parse_at("9").is_err() && parse_at("09:60").is_err());
        assert_eq!(parse_every("6h"), Ok(360));
        assert_eq!(parse_every("30m"), Ok(30));
        assert!(parse_every("7h").unwrap_err().contains("evenly"));
        assert!(parse_every("6x").is_err() && parse_every("h").is_err() && parse_every("0h").is_err());
    }

    #[test]
    fn task_xml_bytes_are_utf16le_after_a_bom() {
        assert_eq!(utf16le_with_bom("<a\u{e9}/>"), [0xFF, 0xFE, b'<', 0, b'a', 0, 0xE9, 0, b'/', 0, b'>', 0]);
        assert_eq!(utf16le_with_bom("\u{1F600}")[2..], [0x3D, 0xD8, 0x00, 0xDE], "a surrogate pair");
    }

    #[test]
    fn windows_quoting_for_programs_and_for_cmd_exe() {
        assert_eq!(windows_arg(r"C:\Program Files\x"), r#""C:\Program Files\x""#);
        assert_eq!(windows_arg(r"C:\dir\"), r#""C:\dir\\""#, "a trailing backslash doubled before the quote");
        assert_eq!(windows_arg(r#"a\"b"#), r#""a\\\"b""#);
        assert_eq!(windows_arg(""), r#""""#);
        // Inside cmd.exe's quotes nothing changes; outside, its characters get a caret.
        assert_eq!(cmd_line(r#"x "a & b" c&d"#), r#"x "a & b" c^&d"#);
        assert_eq!(cmd_line(r#"/TR "\"a & b\" c""#), r#"/TR "\"a ^& b\" c""#);
        assert_eq!(cmd_line("a|b<c>d^e"), "a^|b^<c^>d^^e");
    }
}
