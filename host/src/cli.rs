//! The command line: flags parsed by clap, then one function per command. Results go to
//! stdout; diagnostics to stderr and the log file.

use crate::accounts::{Context, Outcome, Report, Target};
use crate::settings::Config;
use crate::store::{StateDir, StoredToken};
use crate::{Error, ExitCode, time};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

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
    /// State directory (tokens, logs, cache) [default: $XDG_STATE_HOME/tokenhost]
    #[arg(long, global = true, env = "TOKENHOST_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Config file [default: ./tokenhost.toml if present; env TOKENHOST_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More diagnostics on stderr (-v info, -vv debug)
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
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// Also copy the token to KIND=PATH: json=FILE (the old XTS shape), dotenv=FILE[:VAR]
        /// (rewrites one line), raw=FILE (the token alone). Repeatable
        #[arg(long, value_name = "KIND=PATH", value_parser = crate::sinks::Sink::parse)]
        sink: Vec<crate::sinks::Sink>,
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
        /// raw: the token alone; json: token and details; env: NAME=value lines
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
        /// Also copy the token to KIND=PATH, as with `run`. Repeatable
        #[arg(long, value_name = "KIND=PATH", value_parser = crate::sinks::Sink::parse)]
        sink: Vec<crate::sinks::Sink>,
    },
    /// Receive tokens brokers push to a webhook (POST /push/ACCOUNT)
    ServeWebhook {
        /// Accounts to accept pushes for (default: every configured account, else every
        /// account that has run from a provider file)
        accounts: Vec<String>,
        /// ip:port to listen on [default: [webhook] listen in the config, else 127.0.0.1:8977]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Also copy each token to KIND=PATH, as with `run`. Repeatable
        #[arg(long, value_name = "KIND=PATH", value_parser = crate::sinks::Sink::parse)]
        sink: Vec<crate::sinks::Sink>,
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
        /// Also copy each token to KIND=PATH, as with `run`. Repeatable
        #[arg(long, value_name = "KIND=PATH", value_parser = crate::sinks::Sink::parse)]
        sink: Vec<crate::sinks::Sink>,
    },
    /// Print, install or remove the scheduler entry that runs `tokenhost run` unattended
    Schedule {
        /// print, install or remove
        #[arg(value_enum)]
        action: ScheduleAction,
        /// cron (a tagged crontab line), schtasks (Windows) or systemd (user timer)
        #[arg(long, value_enum)]
        target: crate::schedule::Scheduler,
        /// Run at this local time, HH:MM (repeatable)
        #[arg(long, value_name = "HH:MM", value_parser = crate::schedule::parse_at)]
        at: Vec<(u8, u8)>,
        /// Run this often: 6h, 30m (dividing a day or an hour evenly)
        #[arg(long, value_name = "INTERVAL", value_parser = crate::schedule::parse_every, conflicts_with = "at")]
        every: Option<u32>,
        /// Monday to Friday only
        #[arg(long)]
        weekdays: bool,
        /// What to run: an account or a provider file [default: --all, with accounts configured]
        #[arg(long, value_name = "TARGET")]
        run: Option<String>,
    },
    /// Revoke the token at the broker and forget it
    Logout {
        /// Account (or provider component)
        account: String,
    },
    /// Describe a provider component: version, settings, hosts, hash
    Inspect {
        /// The component
        provider: PathBuf,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// A full cycle against a built-in sandbox broker on 127.0.0.1
    Demo,
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

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `get --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The token alone.
    Raw,
    /// A JSON object.
    Json,
    /// `NAME=value` lines.
    Env,
}

/// Events with this target go to the log file only (stderr already shows them once).
const LOG_FILE_ONLY: &str = "tokenhost::logfile";

/// Runs the parsed command line; the error is logged to the log file, for the caller to print.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    let name = cli.command.name();
    run_inner(cli).inspect_err(|e| tracing::error!(target: LOG_FILE_ONLY, "`{name}` failed: {e}"))
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Run { .. } => "run",
            Command::Status { .. } => "status",
            Command::Check { .. } => "check",
            Command::Get { .. } => "get",
            Command::Logout { .. } => "logout",
            Command::Daemon { .. } => "daemon",
            Command::Schedule { .. } => "schedule",
            Command::Login { .. } => "login",
            Command::ServeWebhook { .. } => "serve-webhook",
            Command::Inspect { .. } => "inspect",
            Command::Demo => "demo",
        }
    }
}

fn run_inner(cli: Cli) -> Result<ExitCode, Error> {
    let state_path = cli.state_dir.clone().unwrap_or_else(StateDir::default_path);
    if let Command::Demo = cli.command {
        // The demo's own lines say what happened; its expected failures need no warnings.
        let quiet = Cli { quiet: cli.verbose == 0, ..cli };
        init_logging(&quiet, None, &Default::default());
        return crate::demo::run();
    }
    let state = StateDir::open(&state_path)?;
    let config = Config::load(cli.config.as_deref());
    let log_config = config.as_ref().map(|c| c.file.log.clone()).unwrap_or_default();
    init_logging(&cli, Some(&state), &log_config);
    let config = config?;
    let mut ctx = Context::new(state, config);
    if let Command::Run { sink, .. }
    | Command::Login { sink, .. }
    | Command::ServeWebhook { sink, .. }
    | Command::Daemon { sink, .. } = &cli.command
    {
        ctx.extra_sinks = sink.clone();
    }
    if let Command::Run { attempts: Some(n), .. } = &cli.command {
        ctx.config.file.retry.attempts = Some(*n);
        for account in ctx.config.file.accounts.values_mut() {
            account.retry.attempts = Some(*n);
        }
    }
    ctx.metrics_file = cli.metrics_file.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    if let Command::Daemon { accounts, listen, metrics_listen, tick_ms, .. } = cli.command {
        let listen = listen.or_else(|| ctx.config.file.webhook.listen.clone());
        let metrics_listen = metrics_listen.or_else(|| ctx.config.file.metrics.listen.clone());
        let opts = crate::daemon::Options {
            listen,
            metrics_listen,
            tick: std::time::Duration::from_millis(tick_ms),
        };
        let config_path = ctx.config.path.clone();
        let state = ctx.state.clone();
        let select = move |config: &Config| crate::accounts::default_names(config, &state, &accounts);
        return rt.block_on(crate::daemon::run(
            ctx,
            opts,
            move || Config::load(config_path.as_deref()),
            select,
        ));
    }
    let result = rt.block_on(async {
        match cli.command {
            Command::Run { target, all, force, jobs, .. } => run_cmd(&ctx, target, all, force, jobs).await,
            Command::Status { account, json } => status_cmd(&ctx, account, json),
            Command::Check { account } => check_cmd(&ctx, &account).await,
            Command::Get { account, format } => get_cmd(&ctx, &account, format),
            Command::Logout { account } => {
                let acct = ctx.resolve(&Target::parse(&account)).await?;
                ctx.logout(&acct).await?;
                out(&format!("{}: logged out, token forgotten", acct.name));
                Ok(ExitCode::Ok)
            }
            Command::Login { account, no_browser, timeout, .. } => {
                let acct = ctx.resolve(&Target::parse(&account)).await?;
                let opts = crate::login::Options {
                    open_browser: !no_browser,
                    timeout: std::time::Duration::from_secs(timeout),
                    agent: None,
                };
                let token = crate::login::login(&ctx, &acct, &opts).await?;
                out(&format!("{}: logged in, {}", acct.name, describe_expiry(token.expires_at)));
                Ok(ExitCode::Ok)
            }
            Command::ServeWebhook { accounts, listen, .. } => serve_webhook_cmd(&ctx, accounts, listen).await,
            Command::Schedule { action, target, at, every, weekdays, run } => {
                schedule_cmd(&ctx, &state_path, action, target, at, every, weekdays, run)
            }
            Command::Inspect { provider, json } => inspect_cmd(&ctx, &provider, json).await,
            Command::Demo | Command::Daemon { .. } => unreachable!("handled above"),
        }
    });
    ctx.write_metrics();
    result
}

fn init_logging(cli: &Cli, state: Option<&StateDir>, config: &crate::logfile::LogConfig) {
    use tracing_subscriber::filter::{FilterFn, LevelFilter};
    use tracing_subscriber::prelude::*;
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    };
    // wasmtime-wasi-http warns about every broken connection; the provider reports it.
    let ours = |m: &tracing::Metadata<'_>| !m.target().starts_with("wasmtime_wasi_http");
    let to_stderr = FilterFn::new(move |m| m.target() != LOG_FILE_ONLY && ours(m));
    let json = cli.log_format == LogFormat::Json;
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!json && std::io::stderr().is_terminal());
    let stderr = if json { stderr.json().flatten_event(true).boxed() } else { stderr.without_time().boxed() };
    let file = state.and_then(|s| match crate::logfile::LogFile::open(&s.log_path(), config) {
        Ok(f) => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::sync::Mutex::new(f))
                .with_target(false)
                .with_ansi(false);
            let layer = if json { layer.json().flatten_event(true).boxed() } else { layer.boxed() };
            Some(layer.with_filter(LevelFilter::INFO).with_filter(FilterFn::new(ours)))
        }
        Err(e) => {
            eprintln!("warning: cannot open the log file {}: {e}", s.log_path().display());
            None
        }
    });
    let _ = tracing_subscriber::registry()
        .with(stderr.with_filter(level).with_filter(to_stderr))
        .with(file)
        .try_init();
}

/// Prints a result line; a closed stdout is not an error.
pub(crate) fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
}

fn describe_expiry(expires_at: Option<i64>) -> String {
    match expires_at {
        Some(e) => format!("expires {} ({})", time::iso(e), time::relative(e, time::now())),
        None => "expiry unknown".into(),
    }
}

/// The one line `run` prints for an account.
pub fn report_line(r: &Report) -> String {
    let what = match &r.outcome {
        Outcome::Fresh => "fresh".to_string(),
        Outcome::Refreshed(reason) => format!("refreshed ({reason})"),
        Outcome::RefreshedElsewhere => "refreshed by a concurrent run".to_string(),
    };
    format!("{}: {what}, {}", r.account, describe_expiry(r.expires_at))
}

async fn run_cmd(
    ctx: &Context,
    target: Option<String>,
    all: bool,
    force: bool,
    jobs: u16,
) -> Result<ExitCode, Error> {
    if !all {
        let target = Target::parse(target.as_deref().unwrap_or_default());
        let account = ctx.resolve(&target).await?;
        let report = ctx.run(&account, force).await?;
        out(&report_line(&report));
        return Ok(ExitCode::Ok);
    }
    let names = ctx.config.account_names();
    if names.is_empty() {
        return Err(Error::Config("`--all` needs accounts in tokenhost.toml, and there are none".into()));
    }
    // Accounts run concurrently on this thread: while one waits on its broker, others
    // compute. One failing account never stops the others.
    use futures::stream::StreamExt;
    let mut results: Vec<(String, Result<Report, Error>)> = futures::stream::iter(names.iter())
        .map(|name| async move {
            let result = match ctx.config.account(name) {
                Ok(account) => ctx.run(&account, force).await,
                Err(e) => Err(e),
            };
            (name.clone(), result)
        })
        .buffer_unordered(jobs as usize)
        .collect()
        .await;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut worst = ExitCode::Ok;
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for (name, result) in &results {
        match result {
            Ok(r) => {
                out(&report_line(r));
                *counts
                    .entry(if r.outcome == Outcome::Fresh { "fresh" } else { "refreshed" })
                    .or_default() += 1;
            }
            Err(e) => {
                tracing::error!(target: LOG_FILE_ONLY, account = %name, "refresh failed: {e}");
                out(&format!("{name}: failed ({}): {e}", e.kind()));
                worst = worst.max(e.exit_code());
                *counts.entry(e.kind()).or_default() += 1;
            }
        }
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    out(&format!("{} accounts: {}", results.len(), summary.join(", ")));
    Ok(worst)
}

/// One row of `status`.
#[derive(Debug, serde::Serialize)]
pub struct StatusRow {
    /// Account name.
    pub account: String,
    /// Provider name, when known.
    pub provider: Option<String>,
    /// `fresh`, `expiring`, `expired` or `missing`.
    pub state: &'static str,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Seconds until expiry (negative: ago).
    pub expires_in_secs: Option<i64>,
    /// Where the expiry came from.
    pub expiry_source: Option<String>,
    /// Unix seconds.
    pub refreshed_at: Option<i64>,
    /// The broker's user id.
    pub user_id: Option<String>,
    /// `refreshed` or the kind of the last failure.
    pub last_outcome: Option<String>,
    /// Unix seconds.
    pub last_attempt: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

fn status_row(ctx: &Context, name: &str) -> Result<StatusRow, Error> {
    let dir = ctx.state.account(name)?;
    let token: Option<StoredToken> = dir.load_token()?;
    let status = dir.load_status();
    let now = time::now();
    let ahead = ctx.config.file.accounts.get(name).and_then(|a| a.refresh_ahead_secs);
    let state = match (&token, crate::policy::due(token.as_ref(), ahead, now)) {
        (None, _) => "missing",
        (Some(_), None) => "fresh",
        (Some(_), Some(crate::policy::Reason::Expiring)) => "expiring",
        (Some(_), Some(_)) => "expired",
    };
    Ok(StatusRow {
        account: name.to_string(),
        provider: token.as_ref().map(|t| t.provider.clone()).or(status.provider.clone()),
        state,
        expires_at: token.as_ref().and_then(|t| t.expires_at),
        expires_in_secs: token.as_ref().and_then(|t| t.remaining(now)),
        expiry_source: token.as_ref().map(|t| t.expiry_source.clone()),
        refreshed_at: token.as_ref().map(|t| t.refreshed_at),
        user_id: token.as_ref().and_then(|t| t.user_id.clone()),
        last_outcome: status.last_outcome,
        last_attempt: status.last_attempt,
        last_error: status.last_error,
        consecutive_failures: status.consecutive_failures,
    })
}

/// The status rows of `account`, or of every known account.
pub fn status_rows(ctx: &Context, account: Option<&str>) -> Result<Vec<StatusRow>, Error> {
    let mut names = match account {
        Some(a) => vec![a.to_string()],
        None => {
            let mut n = ctx.state.accounts();
            n.extend(ctx.config.account_names());
            n
        }
    };
    names.sort();
    names.dedup();
    names.iter().map(|n| status_row(ctx, n)).collect()
}

fn status_cmd(ctx: &Context, account: Option<String>, json: bool) -> Result<ExitCode, Error> {
    let rows = status_rows(ctx, account.as_deref())?;
    if json {
        out(&serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(ExitCode::Ok);
    }
    if rows.is_empty() {
        out("no accounts yet: `tokenhost run provider.wasm` stores the first token");
        return Ok(ExitCode::Ok);
    }
    out(&status_table(&rows));
    Ok(ExitCode::Ok)
}

/// `status` as a table for people.
pub fn status_table(rows: &[StatusRow]) -> String {
    let now = time::now();
    let mut table =
        vec![["ACCOUNT", "PROVIDER", "STATE", "EXPIRES", "LAST OUTCOME"].map(String::from).to_vec()];
    for r in rows {
        let expires = r
            .expires_at
            .map(|e| format!("{} ({})", time::iso(e), time::relative(e, now)))
            .unwrap_or("-".into());
        let last = match (&r.last_outcome, r.last_attempt) {
            (Some(o), Some(at)) => format!("{o} {}", time::relative(at, now)),
            _ => "-".into(),
        };
        table.push(vec![
            r.account.clone(),
            r.provider.clone().unwrap_or("-".into()),
            r.state.into(),
            expires,
            last,
        ]);
    }
    let widths: Vec<usize> =
        (0..5).map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0)).collect();
    table
        .iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[allow(clippy::too_many_arguments)]
fn schedule_cmd(
    ctx: &Context,
    state_path: &std::path::Path,
    action: ScheduleAction,
    scheduler: crate::schedule::Scheduler,
    at: Vec<(u8, u8)>,
    every: Option<u32>,
    weekdays: bool,
    run: Option<String>,
) -> Result<ExitCode, Error> {
    use crate::schedule::{Job, When};
    let abs = |p: &std::path::Path| {
        std::path::absolute(p).map_err(|e| Error::io(format!("resolving {}", p.display()), e))
    };
    let when = match (at.is_empty(), every) {
        (false, _) => When::At(at),
        (true, Some(minutes)) => When::Every { minutes },
        (true, None) if action == ScheduleAction::Remove => When::Every { minutes: 60 },
        (true, None) => {
            return Err(Error::Config("say when: --at 09:00 (repeatable) or --every 6h".into()));
        }
    };
    let target = match run {
        Some(t) if matches!(Target::parse(&t), Target::File(_)) => {
            abs(std::path::Path::new(&t))?.display().to_string()
        }
        Some(t) => t,
        None if !ctx.config.account_names().is_empty() => "--all".into(),
        None if action == ScheduleAction::Remove => "--all".into(),
        None => {
            return Err(Error::Config(
                "say what to run: --run ACCOUNT or --run path/to/provider.wasm (or configure accounts in tokenhost.toml for --all)"
                    .into(),
            ));
        }
    };
    let job = Job {
        exe: std::env::current_exe().map_err(|e| Error::io("finding this program's path", e))?,
        state: abs(state_path)?,
        config: ctx.config.path.as_deref().map(abs).transpose()?,
        dir: std::env::current_dir().map_err(|e| Error::io("reading the working directory", e))?,
        target,
        when,
        weekdays,
    };
    let text = match action {
        ScheduleAction::Print => crate::schedule::print(&job, scheduler),
        ScheduleAction::Install => crate::schedule::install(&job, scheduler)?,
        ScheduleAction::Remove => crate::schedule::remove(&job, scheduler)?,
    };
    out(text.trim_end());
    Ok(ExitCode::Ok)
}

async fn serve_webhook_cmd(
    ctx: &Context,
    names: Vec<String>,
    listen: Option<String>,
) -> Result<ExitCode, Error> {
    let names = crate::accounts::default_names(&ctx.config, &ctx.state, &names);
    if names.is_empty() {
        return Err(Error::Config(
            "no accounts to receive pushes for: name them, configure them in tokenhost.toml, or run a provider file once"
                .into(),
        ));
    }
    let mut accounts = Vec::new();
    for name in &names {
        accounts.push(ctx.resolve(&Target::parse(name)).await?);
    }
    let listen = listen
        .or_else(|| ctx.config.file.webhook.listen.clone())
        .unwrap_or_else(|| crate::webhook::DEFAULT_LISTEN.into());
    let names = accounts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ");
    crate::webhook::serve(ctx, &listen, accounts, |addr| {
        out(&format!("receiving pushes on http://{addr}/push/ACCOUNT for {names}"));
    })
    .await?;
    Ok(ExitCode::Ok)
}

async fn check_cmd(ctx: &Context, account: &str) -> Result<ExitCode, Error> {
    let acct = ctx.resolve(&Target::parse(account)).await?;
    match ctx.check(&acct).await {
        Ok(t) => {
            out(&format!("{}: valid, {}", acct.name, describe_expiry(t.expires_at)));
            Ok(ExitCode::Ok)
        }
        Err(Error::Rejected(m)) => {
            out(&format!("{}: invalid ({m})", acct.name));
            Ok(ExitCode::Rejected)
        }
        Err(e) => Err(e),
    }
}

fn get_cmd(ctx: &Context, account: &str, format: Format) -> Result<ExitCode, Error> {
    let dir = ctx.state.account(account)?;
    let token = dir.load_token()?.ok_or_else(|| crate::accounts::no_token(account))?;
    let now = time::now();
    if token.expires_at.is_some_and(|e| e <= now) {
        return Err(Error::Config(format!(
            "the token of `{account}` expired at {}: run `tokenhost run {account}`",
            time::iso(token.expires_at.unwrap_or(now))
        )));
    }
    let mut o = std::io::stdout().lock();
    let text = match format {
        Format::Raw => {
            let nl = if std::io::stdout().is_terminal() { "\n" } else { "" };
            format!("{}{nl}", token.access_token.expose())
        }
        Format::Json => {
            let extras: serde_json::Map<String, serde_json::Value> =
                token.extras.iter().map(|e| (e.name.clone(), e.value.expose().into())).collect();
            let v = serde_json::json!({
                "account": token.account,
                "provider": token.provider,
                "access_token": token.access_token.expose(),
                "expires_at": token.expires_at,
                "issued_at": token.issued_at,
                "user_id": token.user_id,
                "refreshed_at": token.refreshed_at,
                "extras": extras,
            });
            format!("{v}\n")
        }
        Format::Env => {
            let prefix = account.to_ascii_uppercase().replace(['-', '.'], "_");
            let mut s = format!("{prefix}_ACCESS_TOKEN={}\n", token.access_token.expose());
            for e in &token.extras {
                s.push_str(&format!(
                    "{}={}\n",
                    crate::settings::env_var_name(&prefix, &e.name),
                    e.value.expose()
                ));
            }
            s
        }
    };
    let _ = o.write_all(text.as_bytes());
    Ok(ExitCode::Ok)
}

async fn inspect_cmd(ctx: &Context, path: &std::path::Path, json: bool) -> Result<ExitCode, Error> {
    let (host, linker) = ctx.runtime()?;
    let loaded = host.load(path)?;
    let grants = crate::provider::Grants {
        account: "inspect".into(),
        allow_hosts: Some(Vec::new()),
        allow_plain_http: false,
        kv_path: std::env::temp_dir().join("tokenhost-inspect-unused"),
        limits: crate::provider::Limits::default(),
    };
    let p =
        crate::provider::Provider::start(host, linker, &loaded, &grants, |_| Ok(Default::default())).await?;
    let info = p.info();
    let prefix = info.name.to_ascii_uppercase().replace(['-', '.'], "_");
    // Required settings as placeholders; optional ones are named after the command.
    let mut cmd = String::from("wasmtime run -S http -S config -S keyvalue");
    for s in info.settings.iter().filter(|s| s.required) {
        cmd.push_str(&format!(" -S config-var={}=<{}>", s.name, s.name));
    }
    cmd.push_str(&format!(" --invoke 'refresh(none)' '{}'", path.display()));
    let optional: Vec<&str> = info.settings.iter().filter(|s| !s.required).map(|s| s.name.as_str()).collect();
    if json {
        let settings: Vec<_> = info
            .settings
            .iter()
            .map(|s| {
                serde_json::json!({"name": s.name, "secret": s.secret, "required": s.required,
                "description": s.description, "env": crate::settings::env_var_name(&prefix, &s.name)})
            })
            .collect();
        let v = serde_json::json!({
            "world": "tokenhost:provider/token-provider",
            "export": crate::engine::PROVIDER_EXPORT,
            "name": info.name, "version": info.version, "api_version": info.api_version,
            "sha256": loaded.sha256, "size": loaded.size, "settings": settings, "hosts": info.hosts,
            "daily_cutoff": info.daily_cutoff.map(|c| serde_json::json!({"hour": c.hour, "minute": c.minute, "utc_offset_minutes": c.utc_offset_minutes})),
            "refresh_ahead_secs": info.refresh_ahead_secs,
            "wasmtime_command": cmd,
            "wasmtime_optional_settings": optional,
        });
        out(&serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::Ok);
    }
    let mut lines = vec![
        format!("provider     {} {}", info.name, info.version),
        format!("exports      {} (api {})", crate::engine::PROVIDER_EXPORT, info.api_version),
        format!("sha256       {}", loaded.sha256),
        format!("size         {} bytes", loaded.size),
        format!(
            "hosts        {}",
            if info.hosts.is_empty() { "(from settings)".into() } else { info.hosts.join(", ") }
        ),
        format!(
            "cut-off      {}",
            info.daily_cutoff
                .map(|c| format!(
                    "{:02}:{:02} at UTC{:+}:{:02}",
                    c.hour,
                    c.minute,
                    c.utc_offset_minutes / 60,
                    c.utc_offset_minutes.abs() % 60
                ))
                .unwrap_or("none".into())
        ),
        format!("refresh      {} s before expiry", info.refresh_ahead_secs),
        "settings".to_string(),
    ];
    for s in &info.settings {
        let flags = [Some(if s.required { "required" } else { "optional" }), s.secret.then_some("secret")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(format!(
            "  {:<22} {:<28} {} [{}]",
            s.name,
            crate::settings::env_var_name(&prefix, &s.name),
            s.description,
            flags
        ));
    }
    lines.push(format!("without tokenhost:\n  {cmd}"));
    if !optional.is_empty() {
        lines.push(format!("  (optional: add -S config-var=KEY=VALUE for {})", optional.join(", ")));
    }
    out(&lines.join("\n"));
    Ok(ExitCode::Ok)
}
