//! `--runtime`: the same junk against the tokio runtime over loopback. The
//! server endpoint runs alone on a current-thread runtime in its own thread,
//! so that thread's CPU time (from /proc, in 10 ms ticks) is the server's
//! whole cost: receiving, routing, and whatever its driver does per pass.
//! A plain UDP socket sends the junk at a steady rate the server keeps up
//! with. quinn's server (`quinn.rs`) is measured the same way, side by side.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};

use super::download;
use super::junk;

/// Connections opened at once while setting up.
pub(super) const CONNECT_BATCH: usize = 200;

/// The name of the server's threads (the one that runs a current-thread
/// runtime, or a multi-thread runtime's workers).
const SERVER_THREAD: &str = "junk-server";

/// The server threads' CPU seconds and voluntary context switches (each
/// time a thread went to sleep waiting, for the socket mostly, and was
/// woken again) so far, summed over this process's threads of that name.
pub(super) fn server_threads_usage() -> anyhow::Result<(f64, u64)> {
    let (mut cpu, mut sleeps) = (0.0, 0);
    for task in std::fs::read_dir("/proc/self/task")? {
        let dir = task?.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue; // a thread that just ended
        };
        let open = stat.find('(').ok_or_else(|| anyhow!("stat format"))?;
        let close = stat.rfind(')').ok_or_else(|| anyhow!("stat format"))?;
        if &stat[open + 1..close] != SERVER_THREAD {
            continue;
        }
        let mut fields = stat[close + 2..].split(' ');
        let utime: f64 = fields.nth(11).ok_or_else(|| anyhow!("utime"))?.parse()?;
        let stime: f64 = fields.next().ok_or_else(|| anyhow!("stime"))?.parse()?;
        cpu += (utime + stime) / 100.0;
        let status = std::fs::read_to_string(dir.join("status"))?;
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .ok_or_else(|| anyhow!("status format"))?;
        sleeps += line.trim().parse::<u64>()?;
    }
    Ok((cpu, sleeps))
}

fn transport() -> quiver::proto::TransportConfig {
    quiver::proto::TransportConfig {
        max_idle_timeout: None,
        ..Default::default()
    }
}

/// A server thread with `n` idle connections from a client thread.
pub(super) struct Setup {
    pub addr: SocketAddr,
    /// Connections the server endpoint holds open.
    pub open_connections: Box<dyn Fn() -> usize + Send>,
    /// Closes the server endpoint, so that its thread ends.
    pub close_server: Box<dyn FnOnce() + Send>,
    /// A fresh client's download from the server under a flood of the
    /// junk given: its time, and the junk sent per second.
    pub download: download::Download,
    pub server_thread: std::thread::JoinHandle<()>,
    pub client_stop: mpsc::Sender<()>,
    pub client_thread: std::thread::JoinHandle<()>,
}

/// Runs a server in a thread of its own, on a current-thread runtime
/// (`workers` 0) or a multi-thread one, so that the CPU time of the threads
/// named [`SERVER_THREAD`] is the server's whole cost. `start` makes the
/// endpoint, and the task that accepts connections (and holds them) until
/// the endpoint closes. Returns the endpoint and the thread.
pub(super) fn spawn_server<E, F, Fut, A>(
    workers: usize,
    start: F,
) -> anyhow::Result<(E, std::thread::JoinHandle<()>)>
where
    E: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<(E, A)>>,
    A: Future<Output = ()> + Send + 'static,
{
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(SERVER_THREAD.into())
        .spawn(move || {
            let rt = match workers {
                0 => tokio::runtime::Builder::new_current_thread(),
                n => {
                    let mut b = tokio::runtime::Builder::new_multi_thread();
                    b.worker_threads(n);
                    b
                }
            }
            .thread_name(SERVER_THREAD)
            .enable_all()
            .build()
            .expect("runtime");
            rt.block_on(async move {
                match start().await {
                    Ok((ep, accept)) => {
                        let _ = ready_tx.send(Ok(ep));
                        if workers == 0 {
                            accept.await;
                        } else {
                            // On the workers, as a server's tasks run.
                            let _ = tokio::spawn(accept).await;
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
    let ep = ready_rx.recv()??;
    Ok((ep, thread))
}

/// Runs a client on a current-thread runtime in a thread of its own:
/// `connect` opens the connections, which the thread then holds, idle,
/// until told to stop (dropping their last handle would close them).
/// Returns once they are open, with the stop channel and the thread.
pub(super) fn spawn_client<C, F, Fut>(
    connect: F,
) -> anyhow::Result<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>
where
    C: 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<C>>,
{
    let (done_tx, done_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("junk-client".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let held = rt.block_on(connect());
            let ok = held.is_ok();
            let _ = done_tx.send(held.as_ref().map(|_| ()).map_err(|e| anyhow!("{e:#}")));
            if ok {
                let _ = stop_rx.recv();
            }
            drop(held);
            drop(rt);
        })?;
    done_rx.recv()?.context("connecting")?;
    Ok((stop_tx, thread))
}

fn setup(n: usize, workers: usize) -> anyhow::Result<Setup> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server_config = quiver::ServerConfig::with_single_cert(vec![cert.clone()], key)
        .alpn_protocols(&[b"junk"])
        .transport(transport())
        // Setting up opens CONNECT_BATCH connections at once from one
        // address: past the default per-source handshake limit.
        .admission(quiver::AdmissionConfig::unlimited())
        .build()?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let client_config = quiver::ClientConfig::with_root_certificates(roots)
        .alpn_protocols(&[b"junk"])
        .transport(transport())
        .build()?;
    let downloader = client_config.clone();

    let (server, server_thread) = spawn_server(workers, move || async move {
        let ep = quiver::Endpoint::server(server_config, "127.0.0.1:0".parse()?)?;
        let accepting = ep.clone();
        Ok((ep, async move {
            let mut conns = Vec::new();
            while let Some(incoming) = accepting.accept().await {
                if let Ok(c) = incoming.await {
                    tokio::spawn(download::serve_quiver(c.clone()));
                    conns.push(c);
                }
            }
        }))
    })?;
    let addr = server.local_addr()?;

    let (client_stop, client_thread) = spawn_client(move || async move {
        let mut ep = quiver::Endpoint::client("127.0.0.1:0".parse()?)?;
        ep.set_default_client_config(client_config);
        let mut conns = Vec::with_capacity(n);
        while conns.len() < n {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..CONNECT_BATCH.min(n - conns.len()) {
                set.spawn(ep.connect(addr, "localhost")?);
            }
            while let Some(c) = set.join_next().await {
                conns.push(c??);
            }
        }
        anyhow::Ok((ep, conns))
    })?;
    // Let the server finish accepting and go quiet.
    std::thread::sleep(Duration::from_millis(500));
    Ok(Setup {
        addr,
        open_connections: {
            let counted = server.clone();
            Box::new(move || counted.open_connections())
        },
        close_server: Box::new(move || server.close(quiver::VarInt::from_u32(0), b"")),
        download: Box::new(move |junk| {
            let config = downloader.clone();
            download::under_flood(addr, junk, || download::download_quiver(config, addr))
        }),
        server_thread,
        client_stop,
        client_thread,
    })
}

/// One measurement: what the server spent on `count` junk datagrams.
struct Measured {
    /// CPU nanoseconds per datagram.
    ns: f64,
    /// Times the server thread slept and woke, per datagram.
    wakes: f64,
    /// Datagrams the server sent back (stateless resets, RFC 9000 §10.3).
    answered: u64,
}

/// Server cost of `count` junk datagrams sent at `rate` per second.
fn measure(s: &Setup, junk: &[Vec<u8>], count: usize, rate: u64) -> anyhow::Result<Measured> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let to = s.addr;
    let answers = {
        let sock = sock.try_clone()?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let counter = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut n = 0u64;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                if sock.recv(&mut buf).is_ok() {
                    n += 1;
                }
            }
            n
        });
        (stop, counter)
    };
    let (before, sleeps_before) = server_threads_usage()?;
    let burst = 16usize;
    let gap = Duration::from_secs_f64(burst as f64 / rate as f64);
    #[allow(clippy::disallowed_methods)] // a benchmark's clock
    let start = Instant::now();
    for (i, chunk) in (0..count).collect::<Vec<_>>().chunks(burst).enumerate() {
        for &j in chunk {
            let _ = sock.send_to(&junk[j % junk.len()], to);
        }
        let due = start + gap * (i as u32 + 1);
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let (after, sleeps_after) = server_threads_usage()?;
    let sleeps = sleeps_after - sleeps_before;
    answers.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = answers
        .1
        .join()
        .map_err(|_| anyhow!("answer counter panicked"))?;
    Ok(Measured {
        ns: (after - before) * 1e9 / count as f64,
        wakes: sleeps as f64 / count as f64,
        answered,
    })
}

/// The stacks `--runtime` can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stack {
    Quiver,
    Quinn,
}

/// Runs the runtime comparison and prints it: for each stack and each
/// connection count, the best of three measurements, then each stack's
/// growth from the first count and quinn's cost over quiver's.
pub fn run(
    stacks: &[Stack],
    counts: &[usize],
    datagrams: usize,
    size: usize,
    rate: u64,
    workers: usize,
) -> anyhow::Result<()> {
    let junk = junk(4096, size);
    let mut results = Vec::new();
    for &n in counts {
        for &stack in stacks {
            let s = match stack {
                Stack::Quiver => setup(n, workers),
                Stack::Quinn => super::quinn::setup(n, workers),
            }
            .with_context(|| format!("setting up {n} {stack:?} connections"))?;
            // Best of three: other processes' load only adds.
            let mut best = f64::INFINITY;
            let (mut answered, mut wakes) = (0, f64::INFINITY);
            for _ in 0..3 {
                let m = measure(&s, &junk, datagrams, rate)?;
                best = best.min(m.ns);
                wakes = wakes.min(m.wakes);
                answered = answered.max(m.answered);
            }
            // Every held connection survives the junk.
            let open = (s.open_connections)();
            eprintln!(
                "{stack:?}, {n} idle connections: {best:.0} ns; {wakes:.3} wakes per datagram; {open} still open; {answered} of {datagrams} junk datagrams answered"
            );
            if open != n {
                anyhow::bail!("{stack:?}: {open} of {n} connections still open after the junk");
            }
            // A real client's download while junk floods the server.
            let (took, flood) = (s.download)(&junk)?;
            eprintln!(
                "{stack:?}, {n} idle connections: {} KiB downloaded in {:.3} s under {flood:.0} junk datagrams/s",
                download::BODY_LEN >> 10,
                took.as_secs_f64()
            );
            results.push((stack, n, best, took));
            (s.close_server)();
            let _ = s.client_stop.send(());
            let _ = s.client_thread.join();
            let _ = s.server_thread.join();
        }
    }
    let flavor = match workers {
        0 => "current-thread runtime".to_owned(),
        n => format!("{n}-worker runtime"),
    };
    let cost = |stack: Stack, n: usize| {
        results
            .iter()
            .find(|r| r.0 == stack && r.1 == n)
            .map(|r| r.2)
    };
    for &(stack, n, ns, took) in &results {
        let base = cost(stack, counts[0]).unwrap_or(ns);
        println!(
            "{:<6} {n:>6} idle connections ({flavor}): {ns:>8.0} ns server CPU per junk {size}-byte datagram at {rate}/s (x{:.2} of {}); {} KiB download under a flood {:.3} s",
            format!("{stack:?}").to_lowercase(),
            ns / base,
            counts[0],
            download::BODY_LEN >> 10,
            took.as_secs_f64(),
        );
    }
    for &n in counts {
        if let (Some(quiver), Some(quinn)) = (cost(Stack::Quiver, n), cost(Stack::Quinn, n)) {
            println!(
                "{n:>6} idle connections: quinn/quiver CPU per junk datagram {:.2} (above 1: quiver is cheaper)",
                quinn / quiver
            );
        }
    }
    Ok(())
}
