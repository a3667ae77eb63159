//! quiver against quinn in one process on loopback: a bulk download on
//! one stream, the same spread over parallel streams, and sequential
//! handshakes. Both run the same small protocol (the one of `quiver perf`:
//! the client sends an 8-byte big-endian size and finishes, the server
//! answers with that many bytes), the same TLS (rustls with ring, one
//! self-signed certificate, no session resumption unless `--resume`) and
//! each its default transport settings.
//!
//! `--resume` makes the handshakes resumed ones on both sides: each
//! client keeps tickets in a counting store (`quiver::CountingSessionStore`), one untimed
//! full handshake provides the first ticket, and every connection is
//! closed only once a ticket for the next one arrived (untimed). Only the
//! time of the handshakes themselves (`connect` to established) is
//! counted, in both modes.
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
mod tickets;

use impaired::Controller;
use quiver::CountingSessionStore;
use relay::{Impairment, Relay};
use tickets::{ServerSessions, ticket_after};

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
    /// The handshakes resume a session (both stacks): one full handshake
    /// first (untimed), then `--handshakes` resumed ones, each checked.
    #[arg(long)]
    resume: bool,
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
    /// Cipher suites both clients offer, in this order, comma-separated
    /// (`aes128gcm`, `aes256gcm`, `chacha20`); the servers follow the
    /// client's order. Default: each stack's default (quiver's
    /// TLS_AES_128_GCM_SHA256 first, as browsers; quinn's rustls's ring
    /// order, TLS_AES_256_GCM_SHA384 first).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    suites: Vec<quiver::CipherSuite>,
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

/// `--suites`, for both stacks' client configurations.
static SUITES: std::sync::OnceLock<Vec<quiver::CipherSuite>> = std::sync::OnceLock::new();

/// `--suites`, when given.
fn suites() -> Option<&'static [quiver::CipherSuite]> {
    SUITES.get().map(Vec::as_slice).filter(|s| !s.is_empty())
}

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

    /// Runs its closure when dropped.
    struct Defer<F: FnMut()>(F);
    impl<F: FnMut()> Drop for Defer<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }

    /// With `QUIVER_BENCH_SENDER_STATS` set, prints the serving (sending)
    /// connection's loss-recovery counters to stderr when it ends.
    fn sender_report(conn: &Connection) {
        if std::env::var_os("QUIVER_BENCH_SENDER_STATS").is_none() {
            return;
        }
        let s = conn.stats();
        eprintln!(
            "  quiver sender: {} packets, {} lost ({} spurious, {} undos), {} probe timeouts, \
             {} persistent congestion",
            s.packets_sent,
            s.packets_lost,
            s.spurious_losses,
            s.congestion_undos,
            s.probe_timeouts,
            s.persistent_congestion
        );
    }

    /// `cc`: the congestion controller of both ends (`None`: the default).
    /// `tickets`: the client resumes sessions, keeping tickets there.
    pub fn pair(
        id: &Identity,
        cc: Option<&Controller>,
        tickets: Option<Arc<CountingSessionStore>>,
    ) -> anyhow::Result<Pair> {
        let mut transport = quiver::TransportConfig::default();
        if let Some(cc) = cc {
            transport.congestion = cc.factory();
        }
        transport.ack_frequency =
            !QUIVER_NO_ACK_FREQUENCY.load(std::sync::atomic::Ordering::Relaxed);
        // QLOGDIR: qlog of quiver's connections, both ends, for diagnosis.
        if let Some(qlog) = quiver::qlog::QlogDir::from_env().transpose()? {
            transport.qlog = Some(Arc::new(qlog));
        }
        let server_config =
            quiver::ServerConfig::with_single_cert(vec![id.cert.clone()], id.key.clone_key())
                .alpn_protocols(&[ALPN])
                .transport(transport.clone())
                .build()?;
        let server = Endpoint::server(server_config, loopback())?;
        let mut client = Endpoint::client(loopback())?;
        let mut client_config = quiver::ClientConfig::with_root_certificates(id.roots())
            .alpn_protocols(&[ALPN])
            .transport(transport);
        client_config = match tickets {
            Some(store) => client_config.session_store(store),
            // Full handshakes, as quinn's side runs them.
            None => client_config.resumption(false),
        };
        if let Some(groups) = QUIVER_KX.get().filter(|g| !g.is_empty()) {
            client_config = client_config.kx_groups(groups);
        }
        if let Some(suites) = suites() {
            client_config = client_config.cipher_suites(suites);
        }
        client.set_default_client_config(client_config.build()?);
        let addr = server.local_addr()?;
        let accept = server.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accept.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    let stats_conn = conn.clone();
                    let _report = Defer(move || sender_report(&stats_conn));
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
        let mut p = pair(id, cc, None)?;
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

    /// Seconds spent in `n` handshakes one after the other (resumed ones
    /// with `resume`, after an untimed full one).
    pub async fn handshakes(id: &Identity, n: u64, resume: bool) -> anyhow::Result<f64> {
        let tickets = resume.then(tickets::client_store);
        let p = pair(id, None, tickets.clone())?;
        if let Some(store) = &tickets {
            let conn = connect(&p).await?;
            ticket_after(store, 0).await?;
            conn.close(VarInt::from_u32(0), b"");
        }
        let mut seconds = 0.0;
        for _ in 0..n {
            let seen = tickets.as_ref().map(|s| s.received());
            let start = Instant::now();
            let conn = connect(&p).await?;
            seconds += start.elapsed().as_secs_f64();
            if let (Some(store), Some(seen)) = (&tickets, seen) {
                if !conn.is_resumed() {
                    bail!("quiver: a handshake did not resume");
                }
                ticket_after(store, seen).await?;
            }
            conn.close(VarInt::from_u32(0), b"");
        }
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
    /// quiver (which has no path MTU discovery yet) does. With `resume`,
    /// the client keeps tickets in `.0` and the server counts resumed
    /// sessions in `.1`.
    pub fn pair(
        id: &Identity,
        fixed_mtu: bool,
        resume: Option<(Arc<CountingSessionStore>, Arc<ServerSessions>)>,
    ) -> anyhow::Result<Pair> {
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
        if let Some((_, sessions)) = &resume {
            server_tls.session_storage = sessions.clone();
        }
        let mut server_config =
            quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server_tls)?));
        server_config.transport_config(transport.clone());
        let server = Endpoint::server(server_config, loopback())?;
        let mut client_provider = (*provider).clone();
        if let Some(suites) = suites() {
            client_provider.cipher_suites = suites
                .iter()
                .map(|s| rustls::SupportedCipherSuite::Tls13(s.tls13()))
                .collect();
        }
        let mut client_tls = rustls::ClientConfig::builder_with_provider(Arc::new(client_provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(id.roots())
            .with_no_client_auth();
        client_tls.alpn_protocols = vec![ALPN.to_vec()];
        client_tls.resumption = match resume {
            Some((store, _)) => rustls::client::Resumption::store(store),
            // Full handshakes, as quiver's side runs them.
            None => rustls::client::Resumption::disabled(),
        };
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
        let mut p = pair(id, fixed_mtu, None)?;
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

    /// Seconds spent in `n` handshakes one after the other (resumed ones
    /// with `resume`, after an untimed full one).
    pub async fn handshakes(id: &Identity, n: u64, resume: bool) -> anyhow::Result<f64> {
        let stores = resume.then(|| (tickets::client_store(), ServerSessions::new()));
        let p = pair(id, false, stores.clone())?;
        if let Some((store, _)) = &stores {
            let conn = connect(&p).await?;
            ticket_after(store, 0).await?;
            conn.close(0u32.into(), b"");
        }
        let mut seconds = 0.0;
        for _ in 0..n {
            let seen = stores.as_ref().map(|(s, _)| s.received());
            let start = Instant::now();
            let conn = connect(&p).await?;
            seconds += start.elapsed().as_secs_f64();
            if let (Some((store, _)), Some(seen)) = (&stores, seen) {
                ticket_after(store, seen).await?;
            }
            conn.close(0u32.into(), b"");
        }
        if let Some((_, sessions)) = &stores {
            let resumed = sessions.resumed() as u64;
            if resumed != n {
                bail!("quinn: {resumed} of {n} handshakes resumed");
            }
        }
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

/// The process's CPU time so far, user + system (`getrusage`).
fn cpu_seconds() -> Option<f64> {
    // SAFETY: `getrusage` only writes the `rusage` it is given, which is
    // plain data that may start zeroed.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return None;
        }
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime))
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
        "loopback, one process, {cpus} CPUs ({}), quinn 0.11.12, best of {} run(s) \
         (handshakes: median, the stacks taking turns)",
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
        // The stacks take turns, so a change in the machine's load hits
        // both; each run is printed (wall rate, and the process's CPU time
        // per handshake, steadier on a busy machine) and the medians
        // compared.
        let mut q = (Vec::new(), Vec::new());
        let mut n = (Vec::new(), Vec::new());
        for run in 0..args.runs.max(1) {
            if quiver {
                let cpu = cpu_seconds();
                let t = quiver_side::handshakes(&id, hs, args.resume)
                    .await
                    .context("quiver handshakes")?;
                record(&mut q, run, "quiver", hs, t, cpu);
            }
            if quinn {
                let cpu = cpu_seconds();
                let t = quinn_side::handshakes(&id, hs, args.resume)
                    .await
                    .context("quinn handshakes")?;
                record(&mut n, run, "quinn", hs, t, cpu);
            }
            // Let the closes drain before the next run.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let kind = if args.resume { "resumed " } else { "" };
        let (qw, nw) = (median(&mut q.0), median(&mut n.0));
        println!(
            "| {hs} sequential {kind}handshakes (median) | {:.0} /s | {:.0} /s | {:.2} | | |",
            hs as f64 / qw,
            hs as f64 / nw,
            nw / qw
        );
        let (qc, nc) = (median(&mut q.1), median(&mut n.1));
        println!(
            "| CPU per {kind}handshake, both ends (median) | {:.0} µs | {:.0} µs | {:.2} | | |",
            qc * 1e6 / hs as f64,
            nc * 1e6 / hs as f64,
            nc / qc
        );
    }
    Ok(())
}

/// Prints and keeps one handshake run: `seconds` of handshakes, and the
/// CPU time since `cpu` (the whole run, untimed parts included).
fn record(
    into: &mut (Vec<f64>, Vec<f64>),
    run: u32,
    stack: &str,
    hs: u64,
    seconds: f64,
    cpu: Option<f64>,
) {
    let cpu = cpu.zip(cpu_seconds()).map_or(f64::NAN, |(a, b)| b - a);
    eprintln!(
        "  handshakes run {run}: {stack} {:.0} /s, {:.0} µs CPU per handshake",
        hs as f64 / seconds,
        cpu * 1e6 / hs as f64
    );
    into.0.push(seconds);
    into.1.push(cpu);
}

/// The median of `times` (NaN when empty).
fn median(times: &mut [f64]) -> f64 {
    if times.is_empty() {
        return f64::NAN;
    }
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    if times.len() % 2 == 1 {
        times[mid]
    } else {
        (times[mid - 1] + times[mid]) / 2.0
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _ = QUIVER_KX.set(args.kx.clone());
    let _ = SUITES.set(args.suites.clone());
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
