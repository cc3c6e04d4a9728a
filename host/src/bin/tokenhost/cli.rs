//! The command line: clap flags, validated into plans, handed to the core service, the
//! outcomes rendered by [`crate::report`]. Results go to stdout; diagnostics to stderr and the
//! log file.

use crate::report::{self, Format, out};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokenhost::login::LoginUi;
use tokenhost::notify::Notifier;
use tokenhost::plan::{Planner, Target};
use tokenhost::schedule::{Job, Scheduler, When};
use tokenhost::service::Service;
use tokenhost::settings::Config;
use tokenhost::sinks::Sink;
use tokenhost::store::StateDir;
use tokenhost::{Error, ExitCode, time};

const EXIT_CODES: &str = "\
Exit codes:
  0  ok: token fresh or refreshed
  2  usage or configuration error
  3  credentials rejected by the broker
  4  transient failure (network, 5xx, unreadable answer); the old token is kept
  5  a person has to act (browser login, phone approval)
  6  provider component fault (invalid component, trap, limit, denied host)";

/// Keeps broker API tokens fresh, unattended, with each broker's login logic in a sandboxed
/// WebAssembly component.
#[derive(Debug, Parser)]
#[command(name = "tokenhost", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// State directory (tokens, logs, cache) [default: $XDG_STATE_HOME/tokenhost]
    #[arg(long, global = true, env = "TOKENHOST_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Config file [default: ./tokenhost.toml if present; env TOKENHOST_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More diagnostics on stderr (-v info and error causes, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines as text, or as one JSON object per line for log shippers
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// After the command, write a Prometheus text file of every account's state here
    #[arg(long, global = true, env = "TOKENHOST_METRICS_FILE", value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// A fleet store shared by several hosts, nats://HOST:4222 (tls:// for TLS) [default:
    /// [store] url in the config; credentials only from the environment or a creds file]
    #[arg(long, global = true, env = "TOKENHOST_STORE", value_name = "URL")]
    pub store: Option<String>,
}

/// `--sink`, for every command that stores tokens.
#[derive(Debug, Clone, Default, Args)]
pub struct SinkArgs {
    /// Also copy the token to KIND=PATH: json=FILE (the old XTS shape), dotenv=FILE[:VAR]
    /// (rewrites one line), raw=FILE (the token alone). Repeatable
    #[arg(long = "sink", value_name = "KIND=PATH", value_parser = Sink::parse)]
    pub sinks: Vec<Sink>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A full cycle against a built-in sandbox broker on 127.0.0.1
    Demo,
    #[command(flatten)]
    Stateful(Stateful),
}

/// The commands that work on the state directory and the configuration.
#[derive(Debug, Subcommand)]
pub enum Stateful {
    /// Refresh a token if it needs it (the cron entry point)
    #[command(after_help = EXIT_CODES)]
    Run {
        /// A provider component (`provider.wasm`) or a configured account
        #[arg(required_unless_present = "all")]
        target: Option<String>,
        /// Every account in the config file
        #[arg(long, conflicts_with = "target")]
        all: bool,
        /// Refresh even if the token looks fresh
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        sinks: SinkArgs,
        /// Attempts for a transient failure, the first included (overrides `[retry] attempts`;
        /// 1 = no retry)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
        attempts: Option<u32>,
        /// With --all: how many accounts refresh at once
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: u16,
    },
    /// What is stored, when it expires, the last outcome
    Status {
        /// One account (default: all)
        account: Option<String>,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Ask the broker whether the stored token works
    #[command(after_help = EXIT_CODES)]
    Check {
        /// Account (or provider component)
        account: String,
    },
    /// Print the stored token for another program
    Get {
        /// Account name
        account: String,
        /// raw: the token alone; json: token and details; env: NAME=value lines; powershell:
        /// $env:NAME = 'value' lines
        #[arg(long, value_enum, default_value_t = Format::Raw)]
        format: Format,
    },
    /// Log in through the broker's web page (for brokers that need a person)
    #[command(after_help = EXIT_CODES)]
    Login {
        /// Account (or provider component)
        account: String,
        /// Print the address instead of opening a browser
        #[arg(long)]
        no_browser: bool,
        /// Give up after this many seconds without a login
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        timeout: u64,
        #[command(flatten)]
        sinks: SinkArgs,
    },
    /// Receive tokens brokers push to a webhook (POST /push/ACCOUNT)
    ServeWebhook {
        /// Accounts to accept pushes for (default: every configured account, else every
        /// account that has run from a provider file)
        accounts: Vec<String>,
        /// ip:port to listen on [default: [webhook] listen in the config, else 127.0.0.1:8977]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        #[command(flatten)]
        sinks: SinkArgs,
    },
    /// Run in the background: refresh ahead of expiry, take pushes, swap changed components
    Daemon {
        /// Accounts to look after (default: every configured account, else every account that
        /// has run from a provider file)
        accounts: Vec<String>,
        /// Receive pushes on this ip:port [default: [webhook] listen in the config, else none]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Serve GET /metrics on this ip:port [default: [metrics] listen in the config, else none]
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<String>,
        /// How often component files and expiries are looked at, milliseconds
        #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(50..=60_000))]
        tick_ms: u64,
        #[command(flatten)]
        sinks: SinkArgs,
    },
    /// Print a JSON line for every new token stored (from any host of a fleet store), for
    /// scripts; runs until interrupted
    Watch {
        /// Only this account
        account: Option<String>,
    },
    /// Print, install or remove the scheduler entry that runs `tokenhost run` unattended
    Schedule(ScheduleArgs),
    /// Revoke the token at the broker and forget it
    Logout {
        /// Account (or provider component)
        account: String,
    },
    /// Write the files that run an account on a serverless WebAssembly platform (wasmCloud:
    /// `wash dev` locally, a WorkloadDeployment on a cluster), storing its tokens in the fleet
    /// store
    Serverless {
        /// The platform
        #[arg(value_enum)]
        platform: Platform,
        /// Account
        account: String,
        /// Folder to write [default: wasmcloud-ACCOUNT]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Seconds between the scheduler's passes
        #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..=86_400))]
        tick_secs: u32,
        /// Registry the cluster pulls the two components from
        #[arg(long, default_value = "localhost:5000/tokenhost", value_name = "REGISTRY")]
        registry: String,
    },
    /// Describe a provider component: version, settings, hosts, hash
    Inspect {
        /// The component
        provider: PathBuf,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
}

/// `schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// print, install or remove
    #[arg(value_enum)]
    action: ScheduleAction,
    /// cron (a tagged crontab line), schtasks (Windows Task Scheduler), systemd (user timer) or
    /// launchd (a macOS LaunchAgent)
    #[arg(long, value_enum)]
    target: Scheduler,
    /// Run at this local time, HH:MM (repeatable)
    #[arg(long, value_name = "HH:MM", value_parser = tokenhost::schedule::parse_at)]
    at: Vec<(u8, u8)>,
    /// Run this often: 6h, 30m (dividing a day or an hour evenly)
    #[arg(long, value_name = "INTERVAL", value_parser = tokenhost::schedule::parse_every, conflicts_with = "at")]
    every: Option<u32>,
    /// Monday to Friday only
    #[arg(long)]
    weekdays: bool,
    /// What to run: an account or a provider file [default: --all, with accounts configured]
    #[arg(long, value_name = "TARGET")]
    run: Option<String>,
    /// With print: also write the task XML (schtasks, UTF-16 as Task Scheduler reads it) or the
    /// plist (launchd) to FILE
    #[arg(long, value_name = "FILE")]
    xml: Option<PathBuf>,
}

/// `schedule` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleAction {
    /// Show the entry.
    Print,
    /// Install it (replacing an earlier one).
    Install,
    /// Remove it.
    Remove,
}

/// `serverless` platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Platform {
    /// wasmCloud 2 (`wash dev`, the Kubernetes operator).
    Wasmcloud,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Stateful {
    fn name(&self) -> &'static str {
        match self {
            Stateful::Run { .. } => "run",
            Stateful::Status { .. } => "status",
            Stateful::Check { .. } => "check",
            Stateful::Get { .. } => "get",
            Stateful::Logout { .. } => "logout",
            Stateful::Daemon { .. } => "daemon",
            Stateful::Schedule(_) => "schedule",
            Stateful::Watch { .. } => "watch",
            Stateful::Login { .. } => "login",
            Stateful::ServeWebhook { .. } => "serve-webhook",
            Stateful::Inspect { .. } => "inspect",
            Stateful::Serverless { .. } => "serverless",
        }
    }

    /// The plans' sinks and attempts, from the flags.
    fn planner(&self, config: Config, state: StateDir) -> Planner {
        let (sinks, attempts) = match self {
            Stateful::Run { sinks, attempts, .. } => (sinks.sinks.clone(), *attempts),
            Stateful::Login { sinks, .. }
            | Stateful::ServeWebhook { sinks, .. }
            | Stateful::Daemon { sinks, .. } => (sinks.sinks.clone(), None),
            _ => (Vec::new(), None),
        };
        Planner::new(config, state).with_sinks(sinks).with_attempts(attempts)
    }
}

/// Events with this target go to the log file only (stderr already shows them once).
const LOG_FILE_ONLY: &str = "tokenhost::logfile";

/// Runs the parsed command line; a failure is logged to the log file, for `main` to print.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    let g = &cli.global;
    let command = match cli.command {
        Command::Demo => {
            // The demo's own lines say what happened; its expected failures need no warnings.
            init_logging(g, g.verbose == 0, None, &Default::default());
            return runtime(true)?.block_on(crate::demo::run());
        }
        Command::Stateful(c) => c,
    };
    let name = command.name();
    let state = StateDir::open(g.state_dir.clone().unwrap_or_else(StateDir::default_path))?;
    let config = Config::load(g.config.as_deref());
    let log = config.as_ref().map(|c| c.file.log.clone()).unwrap_or_default();
    init_logging(g, g.quiet, Some(&state), &log);
    let result = config.and_then(|config| {
        let planner = command.planner(config, state.clone());
        let config = planner.config();
        let notifier = Notifier::new(&config.file.notify, |v| config.lookup(v));
        let fleet =
            tokenhost::fleet::Fleet::new(&config.file.store, g.store.as_deref(), |v| config.lookup(v))?;
        let service = Arc::new(Service::new(state, notifier, g.metrics_file.clone()).with_fleet(fleet));
        let many = matches!(
            command,
            Stateful::Run { target: None, .. }
                | Stateful::Daemon { .. }
                | Stateful::ServeWebhook { .. }
                | Stateful::Watch { .. }
        );
        let rt = runtime(many)?;
        let result = rt.block_on(dispatch(&service, planner, command, g));
        service.write_metrics();
        service.settle();
        // The process ends next and its memory goes back at once: not dropping the engine,
        // the linker and the runtime piece by piece saves 7% of a refresh's instructions.
        std::mem::forget(rt);
        std::mem::forget(service);
        result
    });
    result.inspect_err(|e| tracing::error!(target: LOG_FILE_ONLY, "`{name}` failed: {e}"))
}

/// The async runtime: threads for commands that serve many accounts at once (so one account
/// never holds up another), one thread for a single account's command (measured: 0.15 ms less
/// of a 2 ms fresh run).
fn runtime(many_accounts: bool) -> Result<tokio::runtime::Runtime, Error> {
    let mut builder = if many_accounts {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|e| Error::io("starting the async runtime", e))
}

async fn dispatch(
    service: &Arc<Service>,
    planner: Planner,
    command: Stateful,
    global: &Global,
) -> Result<ExitCode, Error> {
    match command {
        Stateful::Run { target: Some(target), force, .. } => {
            let plan = service.resolve(&planner, &target).await?;
            out(&report::line(&service.run(&plan, force).await?));
            Ok(ExitCode::Ok)
        }
        Stateful::Run { target: None, force, jobs, .. } => run_all(service, &planner, force, jobs).await,
        Stateful::Status { account, json } => {
            let rows = service.status(&planner, account.as_deref()).await?;
            out(&if json { report::status_json(&rows) } else { report::status_table(&rows) });
            Ok(ExitCode::Ok)
        }
        Stateful::Check { account } => {
            let plan = service.resolve(&planner, &account).await?;
            match service.check(&plan).await {
                Ok(t) => {
                    out(&format!("{}: valid, {}", plan.account, report::expiry(t.expires_at)));
                    Ok(ExitCode::Ok)
                }
                Err(Error::Rejected(m)) => {
                    out(&format!("{}: invalid ({m})", plan.account));
                    Ok(ExitCode::Rejected)
                }
                Err(e) => Err(e),
            }
        }
        Stateful::Get { account, format } => {
            let (token, note) = service.token(&account).await?;
            if let Some(note) = note {
                report::warn(&note);
            }
            report::raw(&report::token(&token, format, &planner.env_prefix(&account, &token.provider)));
            Ok(ExitCode::Ok)
        }
        Stateful::Logout { account } => {
            let plan = service.resolve(&planner, &account).await?;
            service.logout(&plan).await?;
            out(&format!("{}: logged out, token forgotten", plan.account));
            Ok(ExitCode::Ok)
        }
        Stateful::Login { account, no_browser, timeout, .. } => {
            let plan = service.resolve(&planner, &account).await?;
            let ui = Terminal { open_browser: !no_browser };
            let outcome = tokenhost::login::login(service, &plan, Duration::from_secs(timeout), &ui).await?;
            out(&report::line(&outcome));
            Ok(ExitCode::Ok)
        }
        Stateful::ServeWebhook { accounts, listen, .. } => {
            let listen = listen
                .or_else(|| planner.config().file.webhook.listen.clone())
                .unwrap_or_else(|| crate::daemon::DEFAULT_LISTEN.into());
            crate::daemon::serve_webhook(service.clone(), &planner, &accounts, &listen).await
        }
        Stateful::Daemon { accounts, listen, metrics_listen, tick_ms, .. } => {
            let opts = crate::daemon::Options {
                listen: listen.or_else(|| planner.config().file.webhook.listen.clone()),
                metrics_listen: metrics_listen.or_else(|| planner.config().file.metrics.listen.clone()),
                tick: Duration::from_millis(tick_ms),
            };
            let config_path = global.config.clone();
            crate::daemon::run(service.clone(), planner, accounts, opts, move |old: &Planner| {
                let config = Config::load(config_path.as_deref())?;
                Ok(old.reconfigured(config))
            })
            .await
        }
        Stateful::Schedule(args) => schedule(&planner, global, args),
        Stateful::Watch { account } => crate::daemon::watch(service, account.as_deref()).await,
        Stateful::Serverless { platform: Platform::Wasmcloud, account, out: dir, tick_secs, registry } => {
            let Some(fleet) = service.fleet() else {
                return Err(Error::Config(
                    "a wasmCloud workload stores its tokens in the fleet store: set [store] url in \
                     tokenhost.toml or pass --store nats://HOST:4222"
                        .into(),
                ));
            };
            let plan = service.resolve(&planner, &account).await?;
            let deployment = service.deployment(&plan).await?;
            let dir = dir.unwrap_or_else(|| PathBuf::from(format!("wasmcloud-{}", plan.account)));
            let workload = tokenhost::serverless::Workload {
                account: &plan.account,
                provider: &plan.provider,
                deployment: &deployment,
                store_url: fleet.url(),
                bucket: fleet.bucket(),
                tick_secs,
                registry: &registry,
            };
            let written = tokenhost::serverless::wasmcloud(&dir, &workload)?;
            out(&report::serverless(&written, &plan.account, fleet.url()));
            Ok(ExitCode::Ok)
        }
        Stateful::Inspect { provider, json } => {
            let inspection = service.inspect(&provider).await?;
            out(&report::inspection(&inspection, &provider, json));
            Ok(ExitCode::Ok)
        }
    }
}

async fn run_all(
    service: &Arc<Service>,
    planner: &Planner,
    force: bool,
    jobs: u16,
) -> Result<ExitCode, Error> {
    let names = planner.config().account_names();
    if names.is_empty() {
        return Err(Error::Config("`--all` needs accounts in tokenhost.toml, and there are none".into()));
    }
    let plans = names.into_iter().map(|n| (n.clone(), planner.plan(&n))).collect();
    let results = service.run_all(plans, force, jobs as usize).await;
    let mut worst = ExitCode::Ok;
    for (name, result) in &results {
        match result {
            Ok(o) => out(&report::line(o)),
            Err(e) => {
                tracing::error!(target: LOG_FILE_ONLY, account = %name, "refresh failed: {e}");
                out(&report::failure(name, e));
                worst = worst.max(e.exit_code());
            }
        }
    }
    out(&report::summary(&results));
    Ok(worst)
}

fn schedule(planner: &Planner, global: &Global, a: ScheduleArgs) -> Result<ExitCode, Error> {
    let abs =
        |p: &Path| std::path::absolute(p).map_err(|e| Error::io(format!("resolving {}", p.display()), e));
    let remove = a.action == ScheduleAction::Remove;
    let when = match (a.at.is_empty(), a.every) {
        (false, _) => When::At(a.at),
        (true, Some(minutes)) => When::Every { minutes },
        (true, None) if remove => When::Every { minutes: 60 },
        (true, None) => return Err(Error::Config("say when: --at 09:00 (repeatable) or --every 6h".into())),
    };
    let configured = !planner.config().account_names().is_empty();
    let target = match a.run {
        Some(t) if matches!(Target::parse(&t), Target::File(_)) => abs(Path::new(&t))?.display().to_string(),
        Some(t) => t,
        None if configured || remove => "--all".into(),
        None => {
            return Err(Error::Config(
                "say what to run: --run ACCOUNT or --run path/to/provider.wasm (or configure accounts in tokenhost.toml for --all)"
                    .into(),
            ));
        }
    };
    let state = global.state_dir.clone().unwrap_or_else(StateDir::default_path);
    let job = Job {
        exe: std::env::current_exe().map_err(|e| Error::io("finding this program's path", e))?,
        state: abs(&state)?,
        config: planner.config().path.as_deref().map(abs).transpose()?,
        dir: std::env::current_dir().map_err(|e| Error::io("reading the working directory", e))?,
        target,
        when,
        weekdays: a.weekdays,
    };
    if let Some(file) = &a.xml {
        if a.action != ScheduleAction::Print {
            return Err(Error::Config("--xml FILE goes with `schedule print`".into()));
        }
        out(&tokenhost::schedule::write_file(&job, a.target, file)?);
        return Ok(ExitCode::Ok);
    }
    let text = match a.action {
        ScheduleAction::Print => tokenhost::schedule::print(&job, a.target),
        ScheduleAction::Install => tokenhost::schedule::install(&job, a.target)?,
        ScheduleAction::Remove => tokenhost::schedule::remove(&job, a.target)?,
    };
    out(text.trim_end());
    Ok(ExitCode::Ok)
}

/// A person at a terminal: the address on stderr (and in a browser, if asked), a pasted
/// address read from stdin.
struct Terminal {
    open_browser: bool,
}

impl LoginUi for Terminal {
    fn show(&self, url: &str, provider: &str, waiting_for: &str, timeout: Duration) {
        let opened = self.open_browser && open_browser(url);
        let lead =
            if opened { "Log in in the browser that opened, or open" } else { "Open this address to log in" };
        eprintln!("{lead} ({provider}):\n\n  {url}\n");
        eprintln!("Waiting for {waiting_for} (up to {})...", time::span(timeout.as_secs() as i64));
    }

    fn paste(&self, redirect: &str) -> std::io::Result<String> {
        eprintln!(
            "{redirect} is not a loopback http:// address, so tokenhost cannot catch the redirect.\n\
             After logging in, paste the whole address the browser was sent to, then press Enter:"
        );
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)?;
        Ok(line)
    }
}

fn open_browser(url: &str) -> bool {
    let mut cmd = if cfg!(target_os = "windows") {
        let mut c = std::process::Command::new("rundll32");
        c.args(["url.dll,FileProtocolHandler", url]);
        c
    } else if cfg!(target_os = "macos") {
        let mut c = std::process::Command::new("open");
        c.arg(url);
        c
    } else {
        let mut c = std::process::Command::new("xdg-open");
        c.arg(url);
        c
    };
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

fn init_logging(g: &Global, quiet: bool, state: Option<&StateDir>, config: &tokenhost::logfile::LogConfig) {
    use tracing_subscriber::filter::{FilterFn, LevelFilter};
    use tracing_subscriber::prelude::*;
    let level = match (quiet, g.verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    };
    // wasmtime-wasi-http warns about every broken connection; the provider reports it.
    let ours = |m: &tracing::Metadata<'_>| !m.target().starts_with("wasmtime_wasi_http");
    let to_stderr = FilterFn::new(move |m| m.target() != LOG_FILE_ONLY && ours(m));
    let json = g.log_format == LogFormat::Json;
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!json && std::io::stderr().is_terminal());
    let stderr = if json { stderr.json().flatten_event(true).boxed() } else { stderr.without_time().boxed() };
    let file = state.map(|s| {
        let f = tokenhost::logfile::LogFile::new(&s.log_path(), config);
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::sync::Mutex::new(f))
            .with_target(false)
            .with_ansi(false);
        let layer = if json { layer.json().flatten_event(true).boxed() } else { layer.boxed() };
        layer.with_filter(LevelFilter::INFO).with_filter(FilterFn::new(ours))
    });
    let _ = tracing_subscriber::registry()
        .with(stderr.with_filter(level).with_filter(to_stderr))
        .with(file)
        .try_init();
}
