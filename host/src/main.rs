use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tokenhost::cli::Cli::parse();
    let code = match tokenhost::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let lead =
                if e.exit_code() == tokenhost::ExitCode::Interaction { "action needed" } else { "error" };
            eprintln!("{lead}: {e}");
            e.exit_code()
        }
    };
    std::process::ExitCode::from(code as u8)
}
