//! tokenhost: keeps broker API tokens fresh by running sandboxed WebAssembly provider
//! components. The host speaks of providers (a `.wasm` component exporting
//! `tokenhost:provider/provider`), accounts (a provider plus its settings) and tokens; broker
//! names live only in the components.
//!
//! Layers go one way. The `tokenhost` binary (`src/bin/tokenhost`) turns flags into plans,
//! hands them to the core and renders what comes back; this library is the core and never
//! prints:
//!
//! - [`plan`]: each account resolved once from [`settings`] (the config file and `.env`) into
//!   a [`plan::Plan`];
//! - [`service`]: runs plans (refresh, check, logout, push; [`login`] for browser logins) and
//!   returns typed outcomes, each account on its own task;
//! - [`policy`]: the rules (expiry, when a refresh is due, backoff, replayed pushes, hot swaps);
//! - [`provider`] runs one component under limits, with one module per capability under
//!   `caps` (HTTP, settings, key-value, logs); [`engine`] loads, checks and caches components;
//! - [`store`] keeps tokens on disk, [`fleet`] in a store shared by several hosts; [`sinks`] copies them where other programs read them;
//!   [`notify`], [`metrics`] and [`logfile`] tell people, [`remind`] when a person must log in; [`listener`] is the one HTTP
//!   listener (pushes, metrics, login callbacks); [`schedule`] writes scheduler entries, [`serverless`]
//!   a wasmCloud workload.

mod accounts;
mod bindings;
mod caps;
pub mod engine;
mod error;
pub mod fleet;
pub mod listener;
pub mod logfile;
pub mod login;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod provider;
pub mod remind;
pub mod schedule;
pub mod secret;
pub mod serverless;
pub mod service;
pub mod settings;
pub mod sinks;
pub mod store;
pub mod time;
mod winfs;

pub use error::{Cause, Error, ExitCode};

/// Runs blocking work (fsyncs, renames, compiles, a person typing) so that a multi-threaded
/// runtime moves its other tasks to another thread meanwhile; on a single-threaded one there is
/// nothing else to move.
pub(crate) fn off_thread<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
