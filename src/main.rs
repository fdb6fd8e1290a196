//! The `trainwatch` binary: arguments in, library call, exit code out.

use std::process::ExitCode;

use clap::Parser;
use trainwatch::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAINWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,trainwatch=info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().init(),
    }
    // The clock is read here, once, and passed down.
    match cli::run(cli, chrono::Utc::now()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(cli::EXIT_FAILED)
        }
    }
}
