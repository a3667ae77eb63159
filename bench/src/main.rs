//! quiver against quinn in one process on loopback: a bulk download on
//! one stream, the same spread over parallel streams, and sequential
//! handshakes. Both run the same small protocol (the one of `quiver perf`:
//! the client sends an 8-byte big-endian size and finishes, the server
//! answers with that many bytes), the same TLS (rustls with ring, one
//! self-signed certificate, no session resumption) and each its default
//! transport settings.
//!
//! `cargo run --release -p quiver-bench [-- --size 1GiB --streams 8 --handshakes 1000]`
//! (`--only quiver` or `--only quinn` and `--no-bulk` to profile one part).
//!
//! With `--impair delay=10ms,loss=5%,reorder=5% --size 4MB --runs 5
//! [--cc newreno,cubic,bbr]`, only a download through a seeded impairing relay
//! (`relay.rs`), every run and the medians (`impaired.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

mod impaired;
mod ports;
mod relay;

use impaired::Controller;
use relay::{Impairment, Relay};

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
const ALPN: &[u8] = b"perf";

/// quiver against quinn on loopback.
#[derive(Debug, Parser)]
struct Args {
    /// Bytes per bulk test (suffixes k, M, G, KB, MB, GB, KiB, MiB, GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    size: u64,
    /// Streams of the parallel test.
    #[arg(long, default_value_t = 8)]
    streams: u64,
    /// Sequential handshakes.
    #[arg(long, default_value_t = 1000)]
    handshakes: u64,
    /// Runs of each test per implementation; the best is reported.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Run only this implementation ("quiver" or "quinn"), e.g. to profile
    /// one side; the other's columns stay empty.
    #[arg(long)]
    only: Option<String>,
    /// Skip the bulk tests.
    #[arg(long)]
    no_bulk: bool,
    /// Skip the single-stream bulk test.
    #[arg(long)]
    no_single: bool,
    /// Also print each run's process CPU time (user + system) to stderr:
    /// steadier than wall time on a busy machine.
    #[arg(long)]
    cpu: bool,
    /// Run only a download of `--size` on one stream through a seeded
    /// impairing UDP relay, `--runs` times per stack, and print every run,
    /// the medians and their ratios: `delay=10ms,jitter=2ms,loss=5%,
    /// burst=1%:25%[:LOSS_IN_BAD],reorder=5%,reorder_delay=10ms,
    /// rate=50Mbit,queue=64KB` (each direction; any subset).
    #[arg(long, value_name = "SPEC", value_parser = Impairment::parse)]
    impair: Option<Impairment>,
    /// quiver's congestion controllers, comma-separated (`newreno`,
    /// `cubic`, `bbr`); each is a column of its own. Default: quiver's default.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = Controller::parse)]
    cc: Vec<Controller>,
    /// The relay's seed for the first run of `--impair` (run i: seed + i).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Key exchange groups quiver's client offers, comma-separated
    /// (`x25519mlkem768`, `x25519`, ...; default: quiver's default, the
    /// hybrid post-quantum group first). quinn's client (ring) offers
    /// X25519 (then P-256, P-384) either way.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    kx: Vec<quiver::KxGroup>,
    /// quiver's sender does not ask for fewer ACKs (no ACK_FREQUENCY,
    /// draft-ietf-quic-ack-frequency), for before/after comparisons. Each
    /// quiver bulk run prints the receiver's ACK packets to stderr.
    #[arg(long)]
    no_ack_frequency: bool,
}

/// `--no-ack-frequency`, for quiver's transport configurations.
static QUIVER_NO_ACK_FREQUENCY: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// `--kx`, for quiver's client configurations.
static QUIVER_KX: std::sync::OnceLock<Vec<quiver::KxGroup>> = std::sync::OnceLock::new();

fn parse_bytes(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{s:?}: not a size"))?;
    let unit: u64 = match suffix {
        "" => 1,
        "k" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("unknown unit {suffix:?}")),
    };
    n.checked_mul(unit).ok_or_else(|| "too large".to_owned())
}

struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    fn new() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("self-signed certificate");
        Self {
            cert: ck.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        }
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).expect("valid root");
        roots
    }
}

fn loopback() -> SocketAddr {
    ports::loopback()
}

/// With `path` (an impairment and a seed), starts a relay towards `*addr`
/// and points `*addr` at it; the relay runs until dropped.
async fn via(
    addr: &mut SocketAddr,
    path: Option<(&Impairment, u64)>,
) -> anyhow::Result<Option<Relay>> {
    let Some((imp, seed)) = path else {
        return Ok(None);
    };
    let relay = Relay::start(*addr, imp, seed).await?;
    *addr = relay.addr();
    Ok(Some(relay))
}

/// The quiver side.
mod quiver_side {
    use super::*;
    use quiver::{Connection, Endpoint, VarInt};
    use tokio::io::AsyncReadExt as _;

    pub struct Pair {
        pub server: Endpoint,
        pub client: Endpoint,
        pub addr: SocketAddr,
    }

    /// `cc`: the congestion controller of both ends (`None`: the default).
    pub fn pair(id: &Identity, cc: Option<&Controller>) -> anyhow::Result<Pair> {
        let mut transport = quiver::TransportConfig::default();
        if let Some(cc) = cc {
            transport.congestion = cc.factory();
        }
        transport.ack_frequency =
            !QUIVER_NO_ACK_FREQUENCY.load(std::sync::atomic::Ordering::Relaxed);
        let server_config =
            quiver::ServerConfig::with_single_cert(vec![id.cert.clone()], id.key.clone_key())
                .alpn_protocols(&[ALPN])
                .transport(transport.clone())
                .build()?;
        let server = Endpoint::server(server_config, loopback())?;
        let mut client = Endpoint::client(loopback())?;
        let mut client_config = quiver::ClientConfig::with_root_certificates(id.roots())
            .alpn_protocols(&[ALPN])
            .transport(transport)
            // Full handshakes, as quinn's side runs them.
            .resumption(false);
        if let Some(groups) = QUIVER_KX.get().filter(|g| !g.is_empty()) {
            client_config = client_config.kx_groups(groups);
        }
        client.set_default_client_config(client_config.build()?);
        let addr = server.local_addr()?;
        let accept = server.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accept.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        tokio::spawn(async move {
                            let mut header = [0u8; 8];
                            recv.read_exact(&mut header).await?;
                            let mut left = u64::from_be_bytes(header);
                            while left > 0 {
                                let n = left.min(ZEROS.len() as u64) as usize;
                                left -= send.write(&ZEROS[..n]).await? as u64;
                            }
                            send.finish()?;
                            anyhow::Ok(())
                        });
                    }
                });
            }
        });
        Ok(Pair {
            server,
            client,
            addr,
        })
    }

    async fn connect(p: &Pair) -> anyhow::Result<Connection> {
        Ok(p.client.connect(p.addr, "localhost")?.await?)
    }

    /// Seconds to download `size` bytes over `streams` streams, through an
    /// impairing relay if `path` is given.
    pub async fn bulk(
        id: &Identity,
        size: u64,
        streams: u64,
        cc: Option<&Controller>,
        path: Option<(&Impairment, u64)>,
    ) -> anyhow::Result<f64> {
        let mut p = pair(id, cc)?;
        let relay = via(&mut p.addr, path).await?;
        let conn = connect(&p).await?;
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..streams {
            let want = size / streams + u64::from(i < size % streams);
            let conn = conn.clone();
            tasks.spawn(async move {
                let (mut send, mut recv) = conn.open_bi().await?;
                send.write_all(&want.to_be_bytes()).await?;
                send.finish()?;
                let mut buf = vec![0u8; 256 * 1024];
                let mut got = 0u64;
                while let Some(n) = recv.read(&mut buf).await? {
                    got += n as u64;
                }
                if got != want {
                    bail!("quiver: got {got} of {want} bytes");
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        let seconds = start.elapsed().as_secs_f64();
        if let Some(r) = &relay {
            eprintln!("  relay: {}", r.counters().summary());
        }
        let stats = conn.stats();
        eprintln!(
            "  quiver receiver: {} ACK packets for {} packets received",
            stats.ack_packets_sent, stats.datagrams_received
        );
        conn.close(VarInt::from_u32(0), b"");
        p.server.close(VarInt::from_u32(0), b"");
        Ok(seconds)
    }

    /// Seconds for `n` handshakes one after the other.
    pub async fn handshakes(id: &Identity, n: u64) -> anyhow::Result<f64> {
        let p = pair(id, None)?;
        let start = Instant::now();
        for _ in 0..n {
            let conn = connect(&p).await?;
            conn.close(VarInt::from_u32(0), b"");
        }
        let seconds = start.elapsed().as_secs_f64();
        p.server.close(VarInt::from_u32(0), b"");
        Ok(seconds)
    }
}

/// The quinn side.
mod quinn_side {
    use super::*;
    use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
    use quinn::{Connection, Endpoint};

    pub struct Pair {
        pub server: Endpoint,
        pub client: Endpoint,
        pub addr: SocketAddr,
    }

    /// With `fixed_mtu`, quinn sends 1200-byte datagrams throughout, as
    /// quiver (which has no path MTU discovery yet) does.
    pub fn pair(id: &Identity, fixed_mtu: bool) -> anyhow::Result<Pair> {
        let mut transport = quinn::TransportConfig::default();
        if fixed_mtu {
            transport.initial_mtu(1200).mtu_discovery_config(None);
        }
        let transport = Arc::new(transport);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![id.cert.clone()], id.key.clone_key())?;
        server_tls.alpn_protocols = vec![ALPN.to_vec()];
        let mut server_config =
            quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server_tls)?));
        server_config.transport_config(transport.clone());
        let server = Endpoint::server(server_config, loopback())?;
        let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(id.roots())
            .with_no_client_auth();
        client_tls.alpn_protocols = vec![ALPN.to_vec()];
        // Full handshakes, as quiver's client does for now.
        client_tls.resumption = rustls::client::Resumption::disabled();
        let mut client = Endpoint::client(loopback())?;
        let mut client_config =
            quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client_tls)?));
        client_config.transport_config(transport);
        client.set_default_client_config(client_config);
        let addr = server.local_addr()?;
        let accept = server.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accept.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        tokio::spawn(async move {
                            let mut header = [0u8; 8];
                            recv.read_exact(&mut header).await?;
                            let mut left = u64::from_be_bytes(header);
                            while left > 0 {
                                let n = left.min(ZEROS.len() as u64) as usize;
                                left -= send.write(&ZEROS[..n]).await? as u64;
                            }
                            send.finish()?;
                            anyhow::Ok(())
                        });
                    }
                });
            }
        });
        Ok(Pair {
            server,
            client,
            addr,
        })
    }

    async fn connect(p: &Pair) -> anyhow::Result<Connection> {
        Ok(p.client.connect(p.addr, "localhost")?.await?)
    }

    /// Seconds to download `size` bytes over `streams` streams, through an
    /// impairing relay if `path` is given.
    pub async fn bulk(
        id: &Identity,
        size: u64,
        streams: u64,
        fixed_mtu: bool,
        path: Option<(&Impairment, u64)>,
    ) -> anyhow::Result<f64> {
        let mut p = pair(id, fixed_mtu)?;
        let relay = via(&mut p.addr, path).await?;
        let conn = connect(&p).await?;
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..streams {
            let want = size / streams + u64::from(i < size % streams);
            let conn = conn.clone();
            tasks.spawn(async move {
                let (mut send, mut recv) = conn.open_bi().await?;
                send.write_all(&want.to_be_bytes()).await?;
                send.finish()?;
                let mut buf = vec![0u8; 256 * 1024];
                let mut got = 0u64;
                while let Some(n) = recv.read(&mut buf).await? {
                    got += n as u64;
                }
                if got != want {
                    bail!("quinn: got {got} of {want} bytes");
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        let seconds = start.elapsed().as_secs_f64();
        if let Some(r) = &relay {
            eprintln!("  relay: {}", r.counters().summary());
        }
        conn.close(0u32.into(), b"");
        p.server.close(0u32.into(), b"");
        Ok(seconds)
    }

    /// Seconds for `n` handshakes one after the other.
    pub async fn handshakes(id: &Identity, n: u64) -> anyhow::Result<f64> {
        let p = pair(id, false)?;
        let start = Instant::now();
        for _ in 0..n {
            let conn = connect(&p).await?;
            conn.close(0u32.into(), b"");
        }
        let seconds = start.elapsed().as_secs_f64();
        p.server.close(0u32.into(), b"");
        Ok(seconds)
    }
}

/// The best (shortest) of `runs` timings.
async fn best<F, Fut>(runs: u32, mut f: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<f64>>,
{
    let mut best = f64::INFINITY;
    for _ in 0..runs.max(1) {
        let cpu = cpu_seconds();
        let t = tokio::time::timeout(Duration::from_secs(600), f())
            .await
            .map_err(|_| anyhow!("a run took over 10 minutes"))??;
        if PRINT_CPU.load(std::sync::atomic::Ordering::Relaxed) {
            if let (Some(a), Some(b)) = (cpu, cpu_seconds()) {
                eprintln!("  run: {t:.3} s wall, {:.3} s CPU", b - a);
            }
        }
        best = best.min(t);
        // Let the closes drain before the next run.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(best)
}

static PRINT_CPU: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The process's CPU time so far (Linux: utime + stime of /proc/self/stat,
/// in clock ticks of 10 ms).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn gbits(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 * 8.0 / seconds / 1e9
}

fn size_name(bytes: u64) -> String {
    if bytes % (1 << 30) == 0 {
        format!("{} GiB", bytes >> 30)
    } else if bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes % 1_000_000 == 0 {
        format!("{} MB", bytes / 1_000_000)
    } else {
        format!("{bytes} bytes")
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let id = Identity::new();
    PRINT_CPU.store(args.cpu, std::sync::atomic::Ordering::Relaxed);
    QUIVER_NO_ACK_FREQUENCY.store(args.no_ack_frequency, std::sync::atomic::Ordering::Relaxed);
    if let Some(impairment) = &args.impair {
        let plan = impaired::Plan {
            impairment,
            size: args.size,
            runs: args.runs,
            seed: args.seed,
            controllers: &args.cc,
            quiver: args.only.as_deref().is_none_or(|o| o == "quiver"),
            quinn: args.only.as_deref().is_none_or(|o| o == "quinn"),
        };
        return impaired::run(&id, &plan).await;
    }
    let cc = args.cc.first();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "loopback, one process, {cpus} CPUs ({}), quinn 0.11.12, best of {} run(s)",
        cpu_model(),
        args.runs.max(1)
    );
    println!();
    println!("| test | quiver | quinn | quiver/quinn | quinn, 1200-byte datagrams | quiver/that |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let size = args.size;
    let quiver = args.only.as_deref().is_none_or(|o| o == "quiver");
    let quinn = args.only.as_deref().is_none_or(|o| o == "quinn");
    let bulk_rows = [
        (format!("1 stream, {} download", size_name(size)), 1),
        (
            format!("{} streams, {} in total", args.streams, size_name(size)),
            args.streams,
        ),
    ];
    for (name, streams) in bulk_rows {
        if args.no_bulk || (args.no_single && streams == 1) {
            continue;
        }
        // A skipped implementation's time is NaN.
        let mut q = f64::NAN;
        let mut n = f64::NAN;
        let mut f = f64::NAN;
        if quiver {
            q = best(args.runs, || {
                quiver_side::bulk(&id, size, streams, cc, None)
            })
            .await
            .context("quiver bulk")?;
        }
        if quinn {
            n = best(args.runs, || {
                quinn_side::bulk(&id, size, streams, false, None)
            })
            .await
            .context("quinn bulk")?;
            f = best(args.runs, || {
                quinn_side::bulk(&id, size, streams, true, None)
            })
            .await
            .context("quinn bulk, fixed MTU")?;
        }
        println!(
            "| {name} | {:.2} Gbit/s | {:.2} Gbit/s | {:.2} | {:.2} Gbit/s | {:.2} |",
            gbits(size, q),
            gbits(size, n),
            n / q,
            gbits(size, f),
            f / q
        );
    }
    let hs = args.handshakes;
    if hs > 0 {
        let mut q = f64::NAN;
        let mut n = f64::NAN;
        if quiver {
            q = best(args.runs, || quiver_side::handshakes(&id, hs))
                .await
                .context("quiver handshakes")?;
        }
        if quinn {
            n = best(args.runs, || quinn_side::handshakes(&id, hs))
                .await
                .context("quinn handshakes")?;
        }
        println!(
            "| {hs} sequential handshakes | {:.0} /s | {:.0} /s | {:.2} | | |",
            hs as f64 / q,
            hs as f64 / n,
            n / q
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _ = QUIVER_KX.set(args.kx.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
