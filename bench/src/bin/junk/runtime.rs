//! `--runtime`: the same junk against the tokio runtime over loopback. The
//! server endpoint runs alone on a current-thread runtime in its own thread,
//! so that thread's CPU time (from /proc, in 10 ms ticks) is the server's
//! whole cost: receiving, routing, and whatever its driver does per pass.
//! A plain UDP socket sends the junk at a steady rate the server keeps up
//! with.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};

use super::junk;

/// Connections opened at once while setting up.
const CONNECT_BATCH: usize = 200;

/// CPU seconds of thread `tid` of this process so far.
fn thread_cpu_seconds(tid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))?;
    let rest = &stat[stat.rfind(')').ok_or_else(|| anyhow!("stat format"))? + 2..];
    let mut fields = rest.split(' ');
    let utime: f64 = fields.nth(11).ok_or_else(|| anyhow!("utime"))?.parse()?;
    let stime: f64 = fields.next().ok_or_else(|| anyhow!("stime"))?.parse()?;
    Ok((utime + stime) / 100.0)
}

fn this_thread_id() -> anyhow::Result<String> {
    let link = std::fs::read_link("/proc/thread-self")?;
    Ok(link
        .file_name()
        .ok_or_else(|| anyhow!("/proc/thread-self"))?
        .to_string_lossy()
        .into_owned())
}

fn transport() -> quiver::proto::TransportConfig {
    quiver::proto::TransportConfig {
        max_idle_timeout: None,
        ..Default::default()
    }
}

/// A server thread with `n` idle connections from a client thread.
struct Setup {
    server: quiver::Endpoint,
    server_tid: String,
    server_thread: std::thread::JoinHandle<()>,
    client_stop: mpsc::Sender<()>,
    client_thread: std::thread::JoinHandle<()>,
}

fn setup(n: usize) -> anyhow::Result<Setup> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server_config = quiver::ServerConfig::with_single_cert(vec![cert.clone()], key)
        .alpn_protocols(&[b"junk"])
        .transport(transport())
        .build()?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let client_config = quiver::ClientConfig::with_root_certificates(roots)
        .alpn_protocols(&[b"junk"])
        .transport(transport())
        .build()?;

    let (ready_tx, ready_rx) = mpsc::channel();
    let server_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let ep = match quiver::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap()) {
                Ok(ep) => ep,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!(e)));
                    return;
                }
            };
            let _ = ready_tx.send(this_thread_id().map(|tid| (ep.clone(), tid)));
            let mut conns = Vec::new();
            while let Some(incoming) = ep.accept().await {
                if let Ok(c) = incoming.await {
                    conns.push(c);
                }
            }
        });
    });
    let (server, server_tid) = ready_rx.recv()??;
    let addr = server.local_addr()?;

    let (done_tx, done_rx) = mpsc::channel();
    let (client_stop, stop_rx) = mpsc::channel::<()>();
    let client_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let conns = rt.block_on(async move {
            let mut ep = quiver::Endpoint::client("127.0.0.1:0".parse().unwrap())?;
            ep.set_default_client_config(client_config);
            let mut conns = Vec::with_capacity(n);
            while conns.len() < n {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..CONNECT_BATCH.min(n - conns.len()) {
                    let connecting = ep.connect(addr, "localhost")?;
                    set.spawn(connecting);
                }
                while let Some(c) = set.join_next().await {
                    conns.push(c??);
                }
            }
            anyhow::Ok((ep, conns))
        });
        let ok = conns.is_ok();
        let _ = done_tx.send(conns.map(|_| ()));
        if ok {
            // Idle (no idle timeout) until told to stop; the runtime keeps
            // the connections' state.
            let _ = stop_rx.recv();
        }
        drop(rt);
    });
    done_rx.recv()?.context("connecting")?;
    // Let the server finish accepting and go quiet.
    std::thread::sleep(Duration::from_millis(500));
    Ok(Setup {
        server,
        server_tid,
        server_thread,
        client_stop,
        client_thread,
    })
}

/// Server CPU nanoseconds per junk datagram, `count` sent at `rate` per
/// second.
fn measure(s: &Setup, junk: &[Vec<u8>], count: usize, rate: u64) -> anyhow::Result<f64> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let to: SocketAddr = s.server.local_addr()?;
    let before = thread_cpu_seconds(&s.server_tid)?;
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
    let after = thread_cpu_seconds(&s.server_tid)?;
    Ok((after - before) * 1e9 / count as f64)
}

/// Runs the runtime comparison and prints it.
pub fn run(counts: &[usize], datagrams: usize, size: usize, rate: u64) -> anyhow::Result<()> {
    let junk = junk(4096, size);
    let mut results = Vec::new();
    for &n in counts {
        let s = setup(n).with_context(|| format!("setting up {n} connections"))?;
        // Best of three: other processes' load only adds.
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            best = best.min(measure(&s, &junk, datagrams, rate)?);
        }
        results.push((n, best));
        s.server.close(quiver::VarInt::from_u32(0), b"");
        let _ = s.client_stop.send(());
        let _ = s.client_thread.join();
        let _ = s.server_thread.join();
    }
    let base = results[0].1;
    for (n, ns) in &results {
        println!(
            "{n:>6} idle connections (runtime): {ns:>8.0} ns server CPU per junk {size}-byte datagram at {rate}/s (x{:.2})",
            ns / base
        );
    }
    Ok(())
}
