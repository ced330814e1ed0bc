//! `myelin-admin`: administer a Myelin homeserver over its admin HTTP API.
//!
//! This file only parses arguments, runs the command and turns its error
//! into a message on stderr and an exit code (see `Error::exit_code`).

mod api;
mod cli;
mod client;
mod commands;
mod error;
mod output;
mod password;
mod shared_secret;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors exit with 2 and --help/--version with 0, from clap.
    let cli = cli::Cli::parse();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };

    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `myelin-admin user list | head` closed our stdout: nothing to report.
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
