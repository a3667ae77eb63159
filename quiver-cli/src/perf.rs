//! `quiver perf`: bulk transfer and handshake rate over a small protocol
//! on ALPN `perf`. On each bidirectional stream the client sends the
//! number of bytes it wants (8 bytes, big-endian), then its upload bytes,
//! and finishes; the server reads to the end, then sends that many bytes
//! and finishes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{anyhow, bail};
use quiver::{Connection, ConnectionStats, CountingSessionStore, RecvStream, SendStream, VarInt};
use tokio::io::AsyncReadExt as _;
use tokio::task::JoinSet;

use crate::common;

/// The application protocol of `quiver perf`.
pub const PERF_ALPN: &[u8] = b"perf";

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Throughput and handshake-rate benchmark (ALPN perf).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Answer perf clients.
    Server(ServerArgs),
    /// Measure against a perf server; prints one JSON line.
    Client(ClientArgs),
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: SocketAddr,
    /// Certificate chain (PEM); default: a fresh self-signed one.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// Log TLS secrets to the file named by SSLKEYLOGFILE.
    #[arg(long)]
    keylog: bool,
    /// Congestion controller of the data this server sends (default:
    /// quiver's default).
    #[arg(long, value_enum)]
    cc: Option<common::Cc>,
    #[command(flatten)]
    qlog: common::QlogArgs,
}

#[derive(Debug, clap::Args)]
struct ClientArgs {
    /// The server, `HOST:PORT`.
    #[arg(long, value_name = "ADDR")]
    connect: String,
    /// Bytes to download in total (k, M, G, KiB, MiB, GiB suffixes).
    #[arg(long, value_name = "BYTES", default_value = "100M", value_parser = common::parse_bytes)]
    download: u64,
    /// Bytes to upload in total.
    #[arg(long, value_name = "BYTES", default_value = "0", value_parser = common::parse_bytes)]
    upload: u64,
    /// Streams in parallel, sharing the bytes evenly.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    streams: u64,
    /// Instead of a transfer, this many handshakes one after the other:
    /// full ones (the client keeps no session tickets), or with `--resume`
    /// resumed ones.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    handshakes: Option<u64>,
    /// With `--handshakes N`: one full handshake first, then N that resume
    /// a session (RFC 9001 §4.5). Each connection waits for its session
    /// ticket before it closes; `seconds` counts only the N handshakes
    /// (connect to established), not those waits.
    #[arg(long, requires = "handshakes")]
    resume: bool,
    /// Server name to send (the certificate is not verified).
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    server_name: String,
    /// Seconds to wait for a handshake or a silent server.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
    /// Log TLS secrets to the file named by SSLKEYLOGFILE.
    #[arg(long)]
    keylog: bool,
    /// Congestion controller of the data this client sends (default:
    /// quiver's default).
    #[arg(long, value_enum)]
    cc: Option<common::Cc>,
    #[command(flatten)]
    qlog: common::QlogArgs,
}

/// Runs `quiver perf server` or `quiver perf client`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Server(a) => server(a).await,
        Command::Client(a) => client(a).await,
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let (identity, _) = crate::serve::identity(args.cert.as_deref(), args.key.as_deref())?;
    let config = common::server_config(
        identity,
        &[PERF_ALPN],
        args.keylog,
        args.qlog
            .apply(common::with_cc(quiver::TransportConfig::default(), args.cc))?,
        None,
    )?;
    let (endpoint, local) = common::bind_server(config, args.listen)?;
    println!("perf server listening on {local}");
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(incoming) = incoming else { break };
        tokio::spawn(async move {
            if let Ok(conn) = incoming.await {
                serve_connection(conn).await;
            }
        });
    }
    endpoint.close(VarInt::from_u32(0), b"server shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    Ok(())
}

/// Answers the perf streams of `conn` until it closes.
pub async fn serve_connection(conn: Connection) {
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(serve_stream(send, recv));
    }
}

async fn serve_stream(mut send: SendStream, mut recv: RecvStream) -> anyhow::Result<()> {
    let mut header = [0u8; 8];
    recv.read_exact(&mut header).await?;
    let size = u64::from_be_bytes(header);
    let mut buf = vec![0u8; 64 * 1024];
    while recv.read(&mut buf).await?.is_some() {}
    send_zeros(&mut send, size).await?;
    send.finish()?;
    Ok(())
}

async fn send_zeros(send: &mut SendStream, mut n: u64) -> anyhow::Result<()> {
    while n > 0 {
        let chunk = n.min(ZEROS.len() as u64) as usize;
        let written = send.write(&ZEROS[..chunk]).await?;
        n -= written as u64;
    }
    Ok(())
}

/// Client settings for perf: any certificate is accepted.
pub fn client_config(
    keylog: bool,
    timeout: Duration,
    cc: Option<common::Cc>,
) -> anyhow::Result<quiver::ClientConfig> {
    client_builder(keylog, timeout, cc)
        .build()
        .map_err(|e| anyhow!("TLS configuration: {e}"))
}

/// The settings of [`client_config`], to adjust before building.
fn client_builder(
    keylog: bool,
    timeout: Duration,
    cc: Option<common::Cc>,
) -> quiver::ClientConfigBuilder {
    quiver::ClientConfig::insecure()
        .alpn_protocols(&[PERF_ALPN])
        .keylog(keylog)
        .transport(common::transport(timeout, cc))
}

/// The result of [`transfer`].
#[derive(Debug)]
pub struct Transfer {
    pub download: u64,
    pub upload: u64,
    pub seconds: f64,
}

/// Downloads `download` and uploads `upload` bytes over `streams` streams
/// at once, sharing them evenly.
pub async fn transfer(
    conn: &Connection,
    download: u64,
    upload: u64,
    streams: u64,
) -> anyhow::Result<Transfer> {
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..streams {
        let share = |total: u64| total / streams + u64::from(i < total % streams);
        let (down, up) = (share(download), share(upload));
        let conn = conn.clone();
        tasks.spawn(async move {
            let (mut send, mut recv) = conn
                .open_bi()
                .await
                .map_err(|e| anyhow!(common::describe_connection_error(&e)))?;
            send.write_all(&down.to_be_bytes())
                .await
                .map_err(|e| anyhow!(common::describe_write_error("perf", &e)))?;
            send_zeros(&mut send, up).await?;
            send.finish()?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            loop {
                match recv.read(&mut buf).await {
                    Ok(Some(n)) => got += n as u64,
                    Ok(None) => break,
                    Err(e) => bail!(common::describe_read_error("perf", &e)),
                }
            }
            if got != down {
                bail!("the server sent {got} bytes instead of {down}");
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| anyhow!("internal error: {e}"))??;
    }
    Ok(Transfer {
        download,
        upload,
        seconds: start.elapsed().as_secs_f64(),
    })
}

async fn client(args: ClientArgs) -> anyhow::Result<()> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let (host, port) = args
        .connect
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .ok_or_else(|| anyhow!("--connect {:?}: expected HOST:PORT", args.connect))?;
    let addr = common::resolve(host, port, timeout).await?;
    let mut config = client_config(args.keylog, timeout, args.cc)?;
    if let Some(factory) = args.qlog.factory()? {
        let mut transport = (*config.proto().transport).clone();
        transport.qlog = Some(factory);
        config.set_transport_config(transport);
    }
    let endpoint = common::bind_client(addr)?;
    if let Some(n) = args.handshakes {
        return handshakes(&args, &endpoint, addr, timeout, n).await;
    }
    let conn = common::connect(&endpoint, &config, addr, &args.server_name, timeout).await?;
    let t = transfer(&conn, args.download, args.upload, args.streams).await?;
    let stats = conn.stats();
    let rtt = conn.rtt();
    conn.close(VarInt::from_u32(0), b"");
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    println!("{}", json_line(&t, args.streams, rtt, &stats));
    Ok(())
}

/// `--handshakes N`: N full handshakes one after the other, or with
/// `--resume` a full one and then N resumed ones.
async fn handshakes(
    args: &ClientArgs,
    endpoint: &quiver::Endpoint,
    addr: SocketAddr,
    timeout: Duration,
    n: u64,
) -> anyhow::Result<()> {
    let builder = client_builder(args.keylog, timeout, args.cc);
    let store = args.resume.then(|| CountingSessionStore::new(32));
    let builder = match &store {
        Some(store) => builder.session_store(store.clone()),
        None => builder.resumption(false),
    };
    let config = builder
        .build()
        .map_err(|e| anyhow!("TLS configuration: {e}"))?;
    let connect = || common::connect(endpoint, &config, addr, &args.server_name, timeout);
    let mut seconds = 0.0;
    let mut resumed = 0u64;
    if let Some(store) = &store {
        // The full handshake that provides the first ticket, untimed.
        let conn = connect().await?;
        let got = store.wait_beyond(0, timeout).await;
        conn.close(VarInt::from_u32(0), b"");
        if !got {
            bail!("the server sent no session ticket");
        }
    }
    let start = Instant::now();
    for _ in 0..n {
        let seen = store.as_ref().map(|s| s.received());
        let begin = Instant::now();
        let conn = connect().await?;
        seconds += begin.elapsed().as_secs_f64();
        resumed += u64::from(conn.is_resumed());
        if let (Some(store), Some(seen)) = (&store, seen) {
            // A ticket for the next connection (each is single use).
            store.wait_beyond(seen, timeout).await;
        }
        conn.close(VarInt::from_u32(0), b"");
    }
    if store.is_none() {
        seconds = start.elapsed().as_secs_f64();
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    println!(
        "{{\"mode\":\"handshakes\",\"handshakes\":{n},\"resumed\":{resumed},\"bytes\":0,\"seconds\":{seconds:.6},\"handshakes_per_second\":{:.1}}}",
        n as f64 / seconds
    );
    Ok(())
}

fn json_line(t: &Transfer, streams: u64, rtt: Duration, stats: &ConnectionStats) -> String {
    let bytes = t.download + t.upload;
    format!(
        "{{\"mode\":\"bulk\",\"bytes\":{bytes},\"download\":{},\"upload\":{},\"streams\":{streams},\"seconds\":{:.6},\"bits_per_second\":{:.0},\"rtt_ms\":{:.3},\"packets_sent\":{},\"packets_lost\":{}}}",
        t.download,
        t.upload,
        t.seconds,
        bytes as f64 * 8.0 / t.seconds.max(1e-9),
        rtt.as_secs_f64() * 1e3,
        stats.packets_sent,
        stats.packets_lost
    )
}
