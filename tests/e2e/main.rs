//! End-to-end tests: the `tokenhost` binary driven as a user drives it, against mock
//! brokers on 127.0.0.1, with real components built from `components/`.

mod aliceblue;
mod angelone;
mod breeze;
mod daemon;
mod dhan;
mod fivepaisa;
mod fleet;
mod fyers;
mod groww;
mod host;
mod kotakneo;
mod portable;
mod remind;
mod schedule;
mod shoonya;
mod support;
mod totp_fleet;
mod upstox;
mod wasmcloud;
mod windows;
mod xts;
mod zerodha;
