//! CPU per junk datagram at a server holding many idle connections
//! (issue 13, "A server for hostile networks"). A sans-IO server endpoint
//! accepts N connections from a sans-IO client endpoint (datagrams passed
//! by hand, no sockets, no timers beyond a few ACK delays), then is fed
//! short-header datagrams whose Destination Connection IDs route nowhere:
//! what an attacker, or a peer after a restart, sends. Each is examined as
//! a possible stateless reset (RFC 9000 §10.3.1) and answered, or not, with
//! one (§10.3). The cost must not grow with N.
//!
//! `cargo run --release -p quiver-bench --bin junk [-- --connections 1000,10000]`
//!
//! `-- --runtime` measures the tokio runtime instead, over loopback (see
//! `runtime.rs`).
//!
//! Also prints the server's heap per idle connection, measured with a
//! counting allocator (live bytes after the handshakes, client dropped,
//! over N).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use quiver::proto::crypto;
use quiver::proto::{
    ClientConfig, DatagramEvent, Endpoint, EndpointConfig, ServerConfig, TransportConfig,
};
use rustls::pki_types::PrivateKeyDer;

mod download;
mod quinn;
mod runtime;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// CPU per junk datagram against the number of idle connections.
#[derive(Debug, Parser)]
struct Args {
    /// Idle connection counts to compare (the first is the baseline).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    connections: Vec<usize>,
    /// Junk datagrams per measurement.
    #[arg(long, default_value_t = 200_000)]
    datagrams: usize,
    /// Measurements per connection count, interleaved; the best is kept.
    #[arg(long, default_value_t = 7)]
    rounds: u32,
    /// Bytes per junk datagram.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Measure the tokio runtime over loopback instead of the sans-IO
    /// endpoint: server thread CPU per junk datagram.
    #[arg(long)]
    runtime: bool,
    /// The stacks `--runtime` measures, side by side.
    #[arg(long, value_delimiter = ',', default_value = "quiver,quinn")]
    stacks: Vec<runtime::Stack>,
    /// `--runtime`: run each server on a multi-thread tokio runtime of this
    /// many workers (as `quiver serve` runs) instead of a current-thread one
    /// (0); its cost is then the CPU time of all its threads.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Junk datagrams per second in `--runtime` mode.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
}

const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000);
const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4433);

fn configs() -> anyhow::Result<(ServerConfig, ClientConfig)> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let transport = TransportConfig {
        // Idle for the whole run.
        max_idle_timeout: None,
        ..TransportConfig::default()
    };
    let server = crypto::ServerConfig::with_single_cert(vec![cert.clone()], key)
        .alpn_protocols(vec![b"junk".to_vec()])
        .build()?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let client = crypto::ClientConfig::with_root_certificates(roots)
        .alpn_protocols(vec![b"junk".to_vec()])
        .build()?;
    let transport = Arc::new(transport);
    Ok((
        ServerConfig {
            crypto: Arc::new(server),
            transport: transport.clone(),
            // Thousands of connections set up at once, from one address.
            admission: quiver::proto::AdmissionConfig::unlimited(),
            new_tokens: Default::default(),
        },
        ClientConfig {
            crypto: Arc::new(client),
            transport,
            version: quiver::proto::Version::V1,
            available_versions: Vec::new(),
            token_store: None,
        },
    ))
}

/// Passes datagrams both ways until neither side has anything to send;
/// the server accepts every attempt.
fn pump(now: Instant, server: &mut Endpoint, client: &mut Endpoint, buf: &mut Vec<u8>) {
    loop {
        let mut moved = false;
        while let Some(t) = client.poll_transmit(now, 1, buf) {
            let start = buf.len() - t.size;
            if let DatagramEvent::NewConnection(id) = server.handle(now, CLIENT, &mut buf[start..])
            {
                let _ = server.accept(now, id);
            }
            buf.clear();
            moved = true;
        }
        while let Some(t) = server.poll_transmit(now, 1, buf) {
            let start = buf.len() - t.size;
            client.handle(now, SERVER, &mut buf[start..]);
            buf.clear();
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// A server endpoint with `n` established, idle connections, and its
/// heap bytes per connection.
fn server_with(n: usize, seed: u8) -> anyhow::Result<(Endpoint, f64)> {
    let (server_config, client_config) = configs()?;
    let baseline = LIVE.load(Ordering::Relaxed);
    let mut server = Endpoint::new(
        Arc::new(EndpointConfig::new([seed; 32])),
        Some(Arc::new(server_config)),
        [seed; 32],
    );
    let mut client = Endpoint::new(
        Arc::new(EndpointConfig::new([!seed; 32])),
        None,
        [!seed; 32],
    );
    #[allow(clippy::disallowed_methods)] // a benchmark's clock, not the core's
    let mut now = Instant::now();
    let mut buf = Vec::with_capacity(1 << 16);
    let mut handles = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(100) {
        for _ in 0..(n - chunk * 100).min(100) {
            handles.push(client.connect(now, &client_config, SERVER, "localhost")?);
        }
        pump(now, &mut server, &mut client, &mut buf);
    }
    // ACK delays and NEW_CONNECTION_ID exchanges.
    for _ in 0..4 {
        now += Duration::from_millis(30);
        client.handle_timeout(now);
        server.handle_timeout(now);
        pump(now, &mut server, &mut client, &mut buf);
    }
    let established = handles
        .iter()
        .filter(|h| {
            client
                .connection(**h)
                .is_some_and(|c| c.is_handshake_confirmed() && c.close_reason().is_none())
        })
        .count();
    if established != n || server.connection_handles().len() != n {
        bail!("{established} of {n} connections established");
    }
    drop(client);
    let per_connection = (LIVE.load(Ordering::Relaxed) - baseline) as f64 / n as f64;
    Ok((server, per_connection))
}

/// Short-header datagrams for connection IDs nobody issued.
fn junk(count: usize, size: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count)
        .map(|_| {
            let mut d: Vec<u8> = (0..size).map(|_| next() as u8).collect();
            d[0] = 0x40 | (d[0] & 0x3f); // short header, fixed bit
            d
        })
        .collect()
}

/// Nanoseconds per junk datagram.
fn measure(server: &mut Endpoint, junk: &[Vec<u8>], datagrams: usize) -> f64 {
    let mut buf = vec![0u8; junk[0].len()];
    #[allow(clippy::disallowed_methods)] // a benchmark's clock, not the core's
    let now = Instant::now();
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    for i in 0..datagrams {
        let d = &junk[i % junk.len()];
        buf.copy_from_slice(d);
        let ev = server.handle(now, CLIENT, &mut buf);
        debug_assert_eq!(ev, DatagramEvent::Handled);
    }
    let ns = start.elapsed().as_nanos() as f64 / datagrams as f64;
    // Drop the queued stateless resets.
    let mut out = Vec::new();
    while server.poll_transmit(now, 1, &mut out).is_some() {
        out.clear();
    }
    ns
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections.is_empty() || args.size < 22 {
        bail!("need connection counts and datagrams of at least 22 bytes");
    }
    if args.runtime {
        return runtime::run(
            &args.stacks,
            &args.connections,
            args.datagrams,
            args.size,
            args.rate,
            args.workers,
        );
    }
    let mut servers = Vec::new();
    for (i, &n) in args.connections.iter().enumerate() {
        let (server, per_conn) =
            server_with(n, i as u8 + 1).with_context(|| format!("setting up {n} connections"))?;
        println!("{n:>6} idle connections: {per_conn:>8.0} heap bytes per connection (server)");
        servers.push((n, server, f64::INFINITY));
    }
    let junk = junk(4096, args.size);
    for _ in 0..args.rounds {
        for (_, server, best) in &mut servers {
            *best = best.min(measure(server, &junk, args.datagrams));
        }
    }
    let base = servers[0].2;
    for (n, _, ns) in &servers {
        println!(
            "{n:>6} idle connections: {ns:>8.1} ns per junk {}-byte short-header datagram (x{:.2})",
            args.size,
            ns / base
        );
    }
    Ok(())
}
