//! HTTP/3 over quiver (`quiver-h3`) against HTTP/3 over quinn (`h3-quinn`),
//! side by side in one process on loopback (issue 12): the same `h3` crate
//! (0.0.8) drives both, the same self-signed certificate, rustls with
//! ring and each stack's default transport settings.
//!
//! Workloads, each on one fresh connection (handshake excluded from the
//! time; the h3 SETTINGS exchange too):
//!
//! - **large**: one `GET` answered with a 100 MB body (`--size`);
//! - **small**: 1,000 `GET`s (`--requests`) answered with 1 KB bodies
//!   (`--body`), `--concurrency` 10 at a time on the one connection (10
//!   tasks, each sending its share one after the other).
//!
//! Every run alternates the stacks (quiver, then quinn) and prints its
//! wall time and the process's CPU time (`getrusage`, user + system, both
//! ends of the connection since they share the process; unlike the wall
//! time it includes the handshake and the endpoints' set-up and close); at
//! the end the medians and quinn's median over quiver's (above 1: quiver
//! is faster).
//!
//! `cargo run --release -p quiver-bench --bin h3 [-- --runs 5 --size 100MB --requests 1000]`

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use bytes::{Buf as _, Bytes};
use clap::Parser;
use h3::quic;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

mod server;

/// HTTP/3 over quiver against HTTP/3 over quinn, on loopback.
#[derive(Debug, Parser)]
struct Args {
    /// Body of the large response, in bytes (suffixes k, M, MB, MiB).
    #[arg(long, default_value = "100MB", value_parser = parse_bytes)]
    size: u64,
    /// Requests of the small-request workload.
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Body of each small response, in bytes.
    #[arg(long, default_value = "1KB", value_parser = parse_bytes)]
    body: u64,
    /// Small requests in flight at once (on one connection).
    #[arg(long, default_value_t = 10)]
    concurrency: u64,
    /// Runs of each workload per stack; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Run only this stack ("quiver" or "quinn").
    #[arg(long)]
    only: Option<String>,
    /// Skip the large response.
    #[arg(long)]
    no_large: bool,
    /// Skip the small requests.
    #[arg(long)]
    no_small: bool,
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{s:?}: not a size"))?;
    let unit: u64 = match suffix {
        "" => 1,
        "k" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        _ => return Err(format!("unknown unit {suffix:?}")),
    };
    n.checked_mul(unit).ok_or_else(|| "too large".to_owned())
}

/// One self-signed certificate for "localhost", shared by both stacks.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    fn new() -> anyhow::Result<Self> {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
        Ok(Self {
            cert: ck.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        })
    }

    fn roots(&self) -> anyhow::Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone())?;
        Ok(roots)
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The two stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Quiver,
    Quinn,
}

/// A workload.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// One response of this many bytes.
    Large(u64),
    /// `requests` responses of `body` bytes, `concurrency` at a time.
    Small {
        requests: u64,
        body: u64,
        concurrency: u64,
    },
}

/// Runs `work` on a fresh client connection over `conn`'s stack; returns
/// the seconds from the first request to the last byte.
async fn drive<C>(conn: C, work: Work) -> anyhow::Result<f64>
where
    C: quic::Connection<Bytes> + Send + 'static,
    C::OpenStreams: Clone + Send + 'static,
    C::RecvStream: Send,
    C::SendStream: Send,
    C::BidiStream: Send,
    <C::OpenStreams as quic::OpenStreams<Bytes>>::BidiStream: Send,
{
    let (mut driver, send) = h3::client::new(conn).await.context("h3 client handshake")?;
    let driver = tokio::spawn(async move { poll_fn(|cx| driver.poll_close(cx)).await });
    let start = Instant::now();
    match work {
        Work::Large(size) => {
            let mut send = send;
            let got = get(&mut send, size).await?;
            if got != size {
                bail!("got {got} of {size} bytes");
            }
        }
        Work::Small {
            requests,
            body,
            concurrency,
        } => {
            let mut tasks = tokio::task::JoinSet::new();
            let concurrency = concurrency.clamp(1, requests.max(1));
            for i in 0..concurrency {
                let share = requests / concurrency + u64::from(i < requests % concurrency);
                let mut send = send.clone();
                tasks.spawn(async move {
                    for _ in 0..share {
                        let got = get(&mut send, body).await?;
                        if got != body {
                            bail!("got {got} of {body} bytes");
                        }
                    }
                    anyhow::Ok(())
                });
            }
            drop(send);
            while let Some(r) = tasks.join_next().await {
                r??;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // The last request sender is gone: h3 closes with H3_NO_ERROR.
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    Ok(seconds)
}

/// `GET /size/N`; returns the body's length.
async fn get<O>(send: &mut h3::client::SendRequest<O, Bytes>, size: u64) -> anyhow::Result<u64>
where
    O: quic::OpenStreams<Bytes>,
{
    let request = http::Request::get(format!("https://localhost/size/{size}")).body(())?;
    let mut stream = send.send_request(request).await?;
    match stream.finish().await {
        // A server whose response is complete may stop reading the request
        // (RFC 9114 §4.1.2: with H3_NO_ERROR; quinn's server uses 0), and
        // h3's first `finish` writes a grease frame that meets the stop:
        // the response still stands.
        Ok(()) | Err(h3::error::StreamError::RemoteTerminate { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let response = stream.recv_response().await?;
    if response.status() != http::StatusCode::OK {
        bail!("HTTP {}", response.status());
    }
    let mut got = 0u64;
    while let Some(chunk) = stream.recv_data().await? {
        got += chunk.remaining() as u64;
    }
    Ok(got)
}

/// quiver: a server and a client endpoint, one connection, `work`.
async fn run_quiver(id: &Identity, work: Work) -> anyhow::Result<f64> {
    let server_config =
        quiver::ServerConfig::with_single_cert(vec![id.cert.clone()], id.key.clone_key())
            .alpn_protocols(&[quiver_h3::ALPN])
            .build()?;
    let server = quiver::Endpoint::server(server_config, loopback())?;
    let mut client = quiver::Endpoint::client(loopback())?;
    client.set_default_client_config(
        quiver::ClientConfig::with_root_certificates(id.roots()?)
            .alpn_protocols(&[quiver_h3::ALPN])
            .build()?,
    );
    let accept = server.clone();
    let serving = tokio::spawn(async move {
        let conn = accept.accept().await.context("no incoming")?.await?;
        server::serve(quiver_h3::Connection::new(conn)).await
    });
    let conn = client.connect(server.local_addr()?, "localhost")?.await?;
    let seconds = drive(quiver_h3::Connection::new(conn), work).await?;
    serving.await??;
    client.wait_idle().await;
    server.close(quiver::VarInt::from_u32(0), b"");
    Ok(seconds)
}

/// quinn: the same with h3-quinn.
async fn run_quinn(id: &Identity, work: Work) -> anyhow::Result<f64> {
    use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())?;
    server_tls.alpn_protocols = vec![quiver_h3::ALPN.to_vec()];
    let server_config =
        quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server_tls)?));
    let server = quinn::Endpoint::server(server_config, loopback())?;
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(id.roots()?)
        .with_no_client_auth();
    client_tls.alpn_protocols = vec![quiver_h3::ALPN.to_vec()];
    let mut client = quinn::Endpoint::client(loopback())?;
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(client_tls)?,
    )));
    let accept = server.clone();
    let serving = tokio::spawn(async move {
        let conn = accept.accept().await.context("no incoming")?.await?;
        server::serve(h3_quinn::Connection::new(conn)).await
    });
    let conn = client.connect(server.local_addr()?, "localhost")?.await?;
    let seconds = drive(h3_quinn::Connection::new(conn), work).await?;
    serving.await??;
    client.wait_idle().await;
    server.close(0u32.into(), b"");
    Ok(seconds)
}

/// The process's CPU time so far, user + system (`getrusage`).
fn cpu_seconds() -> f64 {
    // SAFETY: `getrusage` only writes the `rusage` it is given, which is
    // plain data that may start zeroed.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return f64::NAN;
        }
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Wall and CPU seconds of every run of one stack on one workload.
#[derive(Debug, Default)]
struct Runs {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

async fn one(id: &Identity, stack: Stack, work: Work) -> anyhow::Result<(f64, f64)> {
    let cpu = cpu_seconds();
    let run = async {
        match stack {
            Stack::Quiver => run_quiver(id, work).await,
            Stack::Quinn => run_quinn(id, work).await,
        }
    };
    let wall = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .map_err(|_| anyhow!("{stack:?}: a run took over 5 minutes"))?
        .with_context(|| format!("{stack:?}"))?;
    let cpu = cpu_seconds() - cpu;
    // Let the closes drain before the next run.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok((wall, cpu))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let id = Identity::new()?;
    let stacks: Vec<Stack> = [Stack::Quiver, Stack::Quinn]
        .into_iter()
        .filter(|s| match args.only.as_deref() {
            Some("quiver") => *s == Stack::Quiver,
            Some("quinn") => *s == Stack::Quinn,
            _ => true,
        })
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "HTTP/3 on loopback, one process, {cpus} CPUs, h3 0.0.8: quiver-h3 vs h3-quinn 0.0.10 (quinn 0.11.12), {} run(s)",
        args.runs.max(1)
    );
    let mut workloads = Vec::new();
    if !args.no_large {
        workloads.push((
            format!("1 response of {} bytes", args.size),
            Work::Large(args.size),
        ));
    }
    if !args.no_small {
        workloads.push((
            format!(
                "{} requests of {} bytes, {} at a time on one connection",
                args.requests, args.body, args.concurrency
            ),
            Work::Small {
                requests: args.requests,
                body: args.body,
                concurrency: args.concurrency,
            },
        ));
    }
    let mut rows = Vec::new();
    for (name, work) in workloads {
        println!("\n{name}:");
        let mut results: Vec<(Stack, Runs)> =
            stacks.iter().map(|s| (*s, Runs::default())).collect();
        for i in 0..args.runs.max(1) {
            for (stack, runs) in &mut results {
                let (wall, cpu) = one(&id, *stack, work).await?;
                println!(
                    "  run {}: {stack:?}: {wall:.3} s wall, {cpu:.3} s CPU",
                    i + 1
                );
                runs.wall.push(wall);
                runs.cpu.push(cpu);
            }
        }
        let med = |s: Stack, cpu: bool| {
            let mut v = results
                .iter()
                .find(|(r, _)| *r == s)
                .map(|(_, r)| if cpu { r.cpu.clone() } else { r.wall.clone() })
                .unwrap_or_default();
            median(&mut v)
        };
        let best = |s: Stack| {
            results
                .iter()
                .find(|(r, _)| *r == s)
                .map_or(f64::NAN, |(_, r)| {
                    r.wall.iter().copied().fold(f64::INFINITY, f64::min)
                })
        };
        rows.push((
            name,
            [
                med(Stack::Quiver, false),
                med(Stack::Quinn, false),
                med(Stack::Quiver, true),
                med(Stack::Quinn, true),
                best(Stack::Quiver),
                best(Stack::Quinn),
            ],
        ));
    }
    println!();
    println!(
        "| workload | quiver (wall / CPU) | quinn (wall / CPU) | quiver/quinn speed, wall | quiver/quinn speed, CPU | quiver/quinn speed, best wall |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, [qw, nw, qc, nc, qb, nb]) in rows {
        println!(
            "| {name} | {qw:.3} s / {qc:.3} s | {nw:.3} s / {nc:.3} s | {:.2} | {:.2} | {:.2} |",
            nw / qw,
            nc / qc,
            nb / qb
        );
    }
    println!(
        "\n(medians, and the best runs' wall times; ratios are quinn's time over quiver's: above 1, quiver is faster)"
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
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
