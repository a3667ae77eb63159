//! `quiver demo`: a server and a client in one process on loopback, a
//! self-signed certificate, one download.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::anyhow;
use quiver::VarInt;

use crate::common;
use crate::perf::{self, PERF_ALPN};

/// Transfer between a server and a client in this process over loopback.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bytes to transfer (k, M, G, KiB, MiB, GiB suffixes).
    #[arg(long, value_name = "BYTES", default_value = "100M", value_parser = common::parse_bytes)]
    size: u64,
    /// Streams in parallel, sharing the bytes evenly.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    streams: u64,
}

/// Runs the demo and prints what it measured.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(10);
    let (identity, _, _) = common::self_signed()?;
    let config = common::server_config(
        identity,
        &[PERF_ALPN],
        false,
        common::transport(timeout, None),
        None,
    )?;
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let (server, addr) = common::bind_server(config, loopback)?;
    println!(
        "quiver demo: {} bytes over {} stream{} from a server to a client on {addr} (self-signed certificate)",
        args.size,
        args.streams,
        if args.streams == 1 { "" } else { "s" }
    );
    let server_task = tokio::spawn(async move {
        let incoming = server
            .accept()
            .await
            .ok_or_else(|| anyhow!("server closed"))?;
        let conn = incoming
            .await
            .map_err(|e| anyhow!("server: {}", common::describe_connection_error(&e)))?;
        perf::serve_connection(conn.clone()).await;
        anyhow::Ok((conn.stats(), server))
    });

    let client = common::bind_client(addr)?;
    let config = perf::client_config(false, timeout, None)?;
    let start = Instant::now();
    let conn = common::connect(&client, &config, addr, "localhost", timeout).await?;
    let handshake = start.elapsed();
    let t = perf::transfer(&conn, args.size, 0, args.streams).await?;
    let rtt = conn.rtt();
    let client_stats = conn.stats();
    conn.close(VarInt::from_u32(0), b"done");
    drop(conn);
    let (server_stats, server) = tokio::time::timeout(timeout, server_task)
        .await
        .map_err(|_| anyhow!("the server did not see the close"))?
        .map_err(|e| anyhow!("internal error: {e}"))??;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.wait_idle()).await;
    drop(server);

    let pct = |lost: u64, sent: u64| 100.0 * lost as f64 / sent.max(1) as f64;
    println!("handshake:  {:.2} ms", handshake.as_secs_f64() * 1e3);
    println!(
        "transfer:   {} bytes in {:.3} s = {}",
        t.download,
        t.seconds,
        common::throughput(t.download, t.seconds)
    );
    println!("rtt:        {:.3} ms (smoothed)", rtt.as_secs_f64() * 1e3);
    // Of the packets declared lost, how many were only late (acknowledged
    // after all, RFC 9002 §6.1 thresholds crossed by reordering).
    for (who, stats) in [("server", &server_stats), ("client", &client_stats)] {
        println!(
            "{who}:     {} packets sent, {} lost ({:.2}%), {} of them spurious",
            stats.packets_sent,
            stats.packets_lost,
            pct(stats.packets_lost, stats.packets_sent),
            stats.spurious_losses,
        );
    }
    Ok(())
}
