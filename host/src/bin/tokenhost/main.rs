//! The `tokenhost` command: flags into plans ([`cli`]), plans run by the core service, outcomes
//! rendered by [`report`]; [`daemon`] and [`demo`] are two more users of the same core.

mod cli;
mod daemon;
mod demo;
mod report;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let verbose = args.global.verbose > 0;
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            report::error(&e, verbose);
            e.exit_code()
        }
    };
    std::process::ExitCode::from(code as u8)
}
