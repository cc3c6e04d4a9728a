//! `tokenhost schedule print|install|remove --target cron|schtasks|systemd`: exactly one
//! scheduler entry that runs this binary, with absolute paths and the state directory and config
//! passed explicitly, from the directory it was set up in (where `.env` is), its output going to
//! the log. Installing twice leaves one entry; `remove` takes it away.

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
}

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

    /// The `schtasks /Create` command line (for one daily or weekday time, or a repetition),
    /// and the task XML, which holds any number of triggers.
    pub fn schtasks(&self) -> (String, String) {
        let win_q = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
        let args = self.args().iter().map(|a| win_q(a)).collect::<Vec<_>>().join(" ");
        let tr = format!("{} {args}", win_q(&self.exe.display().to_string()));
        let days = if self.weekdays { "/SC WEEKLY /D MON,TUE,WED,THU,FRI" } else { "/SC DAILY" };
        let schedule = match &self.when {
            When::At(at) => format!("{days} /ST {:02}:{:02}", at[0].0, at[0].1),
            When::Every { minutes } if *minutes < 60 => format!("/SC MINUTE /MO {minutes}"),
            When::Every { minutes } => format!("/SC HOURLY /MO {}", minutes / 60),
        };
        let command = format!("schtasks /Create /F /TN tokenhost /TR {} {schedule}", win_q(&tr));
        let x = |s: &str| {
            s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
        };
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
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n\
             <Task version=\"1.2\" xmlns=\"http://schemas.microsoft.com/windows/2004/02/mit/task\">\n  \
             <RegistrationInfo><Description>tokenhost: refresh broker API tokens</Description></RegistrationInfo>\n  \
             <Triggers>\n{triggers}  </Triggers>\n  \
             <Settings><StartWhenAvailable>true</StartWhenAvailable><MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\
             <RunOnlyIfNetworkAvailable>true</RunOnlyIfNetworkAvailable></Settings>\n  \
             <Actions Context=\"Author\"><Exec><Command>{}</Command><Arguments>{}</Arguments>\
             <WorkingDirectory>{}</WorkingDirectory></Exec></Actions>\n</Task>\n",
            x(&self.exe.display().to_string()),
            x(&args),
            x(&self.dir.display().to_string())
        );
        (command, xml)
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
            format!(
                "REM one trigger, from a command line:\n{command}\n\nREM every trigger: save what follows as \
                 tokenhost.xml, then: schtasks /Create /F /TN tokenhost /XML tokenhost.xml\n{xml}"
            )
        }
    }
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
        Err(Error::Config(format!("schtasks {} failed ({status})", args[0])))
    }
}

fn schtasks_install(job: &Job) -> Result<String, Error> {
    if !cfg!(windows) {
        return Err(not_windows("install"));
    }
    // The XML declares UTF-16, as Task Scheduler exports it: little-endian with a BOM.
    let (_, xml) = job.schtasks();
    let path = job.state.join("tokenhost-task.xml");
    let bytes: Vec<u8> =
        std::iter::once(0xFEFF).chain(xml.encode_utf16()).flat_map(u16::to_le_bytes).collect();
    crate::store::write_atomic(&path, &bytes)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    schtasks(&["/Create", "/F", "/TN", "tokenhost", "/XML", &path.display().to_string()])?;
    Ok("installed the task `tokenhost` in Task Scheduler".into())
}

fn schtasks_remove() -> Result<String, Error> {
    if !cfg!(windows) {
        return Err(not_windows("remove"));
    }
    schtasks(&["/Delete", "/F", "/TN", "tokenhost"])?;
    Ok("removed the task `tokenhost` from Task Scheduler".into())
}

fn not_windows(what: &str) -> Error {
    Error::Config(format!(
        "`schedule {what} --target schtasks` works on Windows only; `tokenhost schedule print \
         --target schtasks` shows the command line and the XML to use there"
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
}
