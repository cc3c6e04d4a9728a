use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tokenhost::cli::Cli::parse();
    let code = match tokenhost::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::ExitCode::from(code as u8)
}
