//! The `quiver` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod decode;

/// quiver: a QUIC implementation (RFC 9000, 9001, 9002, 9221, 9369).
#[derive(Debug, Parser)]
#[command(name = "quiver", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode a UDP datagram given in hex: its coalesced packets, and for
    /// Initial packets the decrypted frames.
    Decode(decode::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => decode::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
