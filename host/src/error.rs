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

/// Every failure the host reports, by what the user should do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong usage or configuration; the message says what to change.
    #[error("{0}")]
    Config(String),
    /// Credentials or token refused by the broker.
    #[error("rejected by the broker: {0}")]
    Rejected(String),
    /// Network, 5xx, timeout, unreadable answer: try again later.
    #[error("{0}")]
    Transient(String),
    /// A person has to act.
    #[error("{0}")]
    Interaction(String),
    /// The component is invalid, trapped, hit a limit or broke a policy.
    #[error("{0}")]
    Fault(String),
    /// Local I/O (state directory, files).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// The exit code this error leads to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) | Error::Io { .. } => ExitCode::Config,
            Error::Rejected(_) => ExitCode::Rejected,
            Error::Transient(_) => ExitCode::Transient,
            Error::Interaction(_) => ExitCode::Interaction,
            Error::Fault(_) => ExitCode::Fault,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Error {
        Error::Io { context: context.to_string(), source }
    }

    /// Short machine-readable name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Rejected(_) => "rejected",
            Error::Transient(_) => "transient",
            Error::Interaction(_) => "interaction-required",
            Error::Fault(_) => "fault",
            Error::Io { .. } => "io",
        }
    }
}
