//! The `trainwatch` binary: arguments in, library call, exit code out.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use trainwatch::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, cli::Command::Run) {
        // The service lives long: fewer arenas, and large blocks kept out
        // of them, keep less freed heap between runs. Set before any
        // thread starts, as a thread picks its arena at its first allocation.
        trainwatch::memory::limit_arenas();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            ExitCode::from(cli::EXIT_FAILED)
        }
    }
}

/// Sets up logging and runs the command.
async fn run(cli: Cli) -> ExitCode {
    if !matches!(cli.command, cli::Command::Run) {
        end_quietly_on_a_closed_pipe();
    }
    // The service logs each run and sync at info; a one-shot command prints
    // what it did itself, so by default it logs only what went wrong
    // (warnings: retries, names that fell back to ids).
    let default_level = match cli.command {
        cli::Command::Run => "warn,trainwatch=info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAINWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour codes only for a person at a terminal: in a pipe, a file or a
    // journal they are noise. NO_COLOR (https://no-color.org) turns them off.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
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

/// `trainwatch history | head` closes standard output early; Rust ignores
/// SIGPIPE, so the next `println!` would panic (exit 101 and a panic
/// message). A command-line tool should end quietly instead, as `cat` does:
/// the default action of SIGPIPE ends the process without a word. Not for
/// the service, which must outlive any one closed connection (its sockets
/// write with MSG_NOSIGNAL either way).
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: `signal` with SIG_DFL installs no handler code, so nothing can
    // run in signal context; it only changes what SIGPIPE does to the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
