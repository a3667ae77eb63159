//! The `quiver` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod common;
mod decode;
mod demo;
mod files;
mod get;
mod get_h3;
mod get_hq;
mod perf;
mod save;
mod serve;
mod serve_fleet;
mod serve_h3;

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
    /// Serve files over HTTP/0.9 (ALPN hq-interop) and HTTP/3 (ALPN h3) on
    /// QUIC.
    Serve(serve::Args),
    /// Download files over HTTP/3 (ALPN h3) or HTTP/0.9 (ALPN hq-interop)
    /// on QUIC, one stream per URL.
    Get(get::Args),
    /// Throughput and handshake-rate benchmark (ALPN perf).
    Perf(perf::Args),
    /// A server and a client in this process on loopback: one transfer,
    /// with throughput, RTT and packet counts.
    Demo(demo::Args),
}

fn main() -> ExitCode {
    // Failures are one `error:` line, panics included.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error: {}{place}", one_line(&message));
    }));
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let result = match cli.command {
        Command::Decode(args) => decode::run(&args).map_err(|e| e.to_string()),
        Command::Serve(args) => block_on(serve::run(args)),
        Command::Get(args) => block_on(get::run(args)),
        Command::Perf(args) => block_on(perf::run(args)),
        Command::Demo(args) => block_on(demo::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs a network command on a multi-threaded tokio runtime.
fn block_on(f: impl Future<Output = anyhow::Result<()>>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(f).map_err(|e| e.to_string());
    runtime.shutdown_background();
    result
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
