//! Every failure the host reports, by what the user should do about it, and the exit code
//! each leads to. The message says what happened and what to change; the cause (a wasmtime or
//! I/O error) is kept whole behind it, and `-v` prints the chain.

use std::fmt;

/// The process exit codes, as documented in the README and `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// Token fresh or refreshed.
    Ok = 0,
    /// Usage or configuration error.
    Config = 2,
    /// The broker refused the credentials.
    Rejected = 3,
    /// Transient failure (network, 5xx, broker garbage); the old token is kept.
    Transient = 4,
    /// A person has to act (browser login, phone approval).
    Interaction = 5,
    /// The provider component is invalid, trapped, hit a limit or broke a policy.
    Fault = 6,
}

/// Every failure the host reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong usage or configuration; the message says what to change.
    #[error("{0}")]
    Config(String),
    /// Credentials or token refused by the broker.
    #[error("rejected by the broker: {0}")]
    Rejected(String),
    /// Network, 5xx, timeout, unreadable answer: try again later.
    #[error("{message}{}", gave_up(*attempts))]
    Transient {
        /// What went wrong.
        message: String,
        /// Attempts made before giving up (1: not retried).
        attempts: u32,
    },
    /// A person has to act; `url` is where, if the provider knows.
    #[error("{message}{}", url.as_deref().map(|u| format!(": {u}")).unwrap_or_default())]
    Interaction {
        /// What to do.
        message: String,
        /// Where to do it.
        url: Option<String>,
    },
    /// The component is invalid, trapped, hit a limit or broke a policy.
    #[error("{message}")]
    Fault {
        /// What happened, naming the limit or rule.
        message: String,
        /// The runtime's own error, already free of secrets.
        #[source]
        cause: Option<Cause>,
    },
    /// Local I/O (state directory, files).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error (shown in the message, so not repeated as a cause).
        source: std::io::Error,
    },
}

fn gave_up(attempts: u32) -> String {
    if attempts > 1 { format!(" (gave up after {attempts} attempts)") } else { String::new() }
}

impl Error {
    /// The exit code this error leads to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) | Error::Io { .. } => ExitCode::Config,
            Error::Rejected(_) => ExitCode::Rejected,
            Error::Transient { .. } => ExitCode::Transient,
            Error::Interaction { .. } => ExitCode::Interaction,
            Error::Fault { .. } => ExitCode::Fault,
        }
    }

    /// Short machine-readable name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Rejected(_) => "rejected",
            Error::Transient { .. } => "transient",
            Error::Interaction { .. } => "interaction-required",
            Error::Fault { .. } => "fault",
            Error::Io { .. } => "io",
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Error {
        Error::Io { context: context.to_string(), source }
    }

    /// A transient failure, tried once.
    pub fn transient(message: impl Into<String>) -> Error {
        Error::Transient { message: message.into(), attempts: 1 }
    }

    /// A person has to act, with no address to give.
    pub fn interaction(message: impl Into<String>) -> Error {
        Error::Interaction { message: message.into(), url: None }
    }

    /// A component fault with no runtime error behind it.
    pub fn fault(message: impl Into<String>) -> Error {
        Error::Fault { message: message.into(), cause: None }
    }

    /// A component fault caused by `cause`, a runtime error whose text goes through `redact`.
    pub(crate) fn fault_from(
        message: impl Into<String>,
        cause: &wasmtime::Error,
        redact: impl Fn(&str) -> String,
    ) -> Error {
        Error::Fault { message: message.into(), cause: Cause::of(cause, redact) }
    }
}

/// A runtime error's chain, kept as text already stripped of secrets (the runtime's own error
/// may quote what the guest said).
#[derive(Debug)]
pub struct Cause {
    text: String,
    next: Option<Box<Cause>>,
}

impl Cause {
    fn of(e: &wasmtime::Error, redact: impl Fn(&str) -> String) -> Option<Cause> {
        let mut levels: Vec<String> = e.chain().map(|c| redact(&c.to_string())).collect();
        let mut next = None;
        while let Some(text) = levels.pop() {
            next = Some(Box::new(Cause { text, next }));
        }
        next.map(|b| *b)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.next.as_deref().map(|c| c as _)
    }
}
