//! End-to-end tests: the `tokenhost` binary driven as a user drives it, against mock
//! brokers on 127.0.0.1, with real components built from `components/`.

mod angelone;
mod daemon;
mod dhan;
mod fivepaisa;
mod groww;
mod host;
mod kotakneo;
mod portable;
mod schedule;
mod support;
mod totp_fleet;
mod upstox;
mod xts;
