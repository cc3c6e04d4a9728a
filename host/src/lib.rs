//! tokenhost: keeps broker API tokens fresh by running sandboxed WebAssembly provider
//! components.
//!
//! The host speaks of providers (a `.wasm` component exporting `tokenhost:provider/provider`),
//! accounts (a provider plus its settings) and tokens. Broker names live only in the
//! components. Layout: [`engine`] loads and checks components, [`caps`] holds one module per
//! capability granted to a component, [`provider`] runs calls under limits, [`store`] keeps
//! tokens on disk, [`policy`] decides when to refresh, [`settings`] resolves configuration.

pub mod accounts;
mod bindings;
pub mod caps;
pub mod cli;
pub mod daemon;
mod demo;
pub mod engine;
mod error;
pub mod logfile;
pub mod login;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod provider;
pub mod sandbox;
pub mod schedule;
pub mod secret;
pub mod serve;
pub mod settings;
pub mod sinks;
pub mod store;
pub mod time;
pub mod webhook;

pub use error::{Error, ExitCode};
