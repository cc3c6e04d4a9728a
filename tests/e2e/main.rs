//! End-to-end tests: the `tokenhost` binary driven as a user drives it, against mock
//! brokers on 127.0.0.1, with real components built from `components/`.

mod daemon;
mod host;
mod portable;
mod schedule;
mod support;
mod upstox;
mod xts;
