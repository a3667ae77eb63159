//! A UDP relay between a QUIC client and server that plays a NAT changing
//! its mapping mid-connection, like the QUIC interop runner's
//! `rebind-port` and `rebind-addr` tests: the client talks to the relay's
//! fixed client-facing socket, and the relay reaches the server from a
//! server-facing socket it replaces, on a schedule, by one on a new port
//! or on a new loopback address (127.0.0.2, .3, …; all of 127/8 answers on
//! Linux). The server sees the client move; the client sees nothing.
//!
//! A NAT's old mapping lingers: the replaced socket keeps forwarding what
//! the server still sends to it for [`LINGER`], so that a client that only
//! receives keeps acknowledging what was in flight.
//!
//! The relay runs on a thread of its own (a current-thread tokio runtime)
//! and stops when dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

/// How long a replaced server-facing socket keeps forwarding.
pub const LINGER: Duration = Duration::from_millis(500);

/// What a switch changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebind {
    /// A new port on the same address (NAT rebinding).
    Port,
    /// A new address: 127.0.0.2, then .3 and so on.
    Address,
}

/// When the relay switches its server-facing socket.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// What each switch changes.
    pub rebind: Rebind,
    /// The first switch comes once this many bytes went to the client.
    pub first_after: u64,
    /// Then one every this long, while data flows; `None`: only once.
    pub every: Option<Duration>,
    /// Bytes per second towards the client (a bottleneck, queueing in the
    /// socket buffer), so that a transfer lasts long enough for the
    /// schedule; `None`: as fast as it goes.
    pub rate: Option<u64>,
}

/// What the relay did.
#[derive(Debug, Default)]
struct Counters {
    switches: AtomicU32,
    /// Bytes forwarded to the client.
    to_client: AtomicU64,
    /// `to_client` when the first switch happened.
    at_first_switch: AtomicU64,
    /// Bytes the newest server-facing socket forwarded to the client.
    newest_socket: AtomicU64,
}

struct State {
    server: SocketAddr,
    schedule: Schedule,
    to_client_socket: UdpSocket,
    client: Mutex<Option<SocketAddr>>,
    upstream: Mutex<Arc<UdpSocket>>,
    generation: AtomicU32,
    last_switch: Mutex<Option<Instant>>,
    /// When the bottleneck is free again.
    next_free: Mutex<Instant>,
    counters: Counters,
}

/// A running relay; stops when dropped.
pub struct Relay {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Starts a relay to `server` on 127.0.0.1, switching per `schedule`.
    pub fn start(server: SocketAddr, schedule: Schedule) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let state = runtime.block_on(async {
            let to_client_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let upstream = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
            Arc::new(State {
                server,
                schedule,
                to_client_socket,
                client: Mutex::new(None),
                upstream: Mutex::new(upstream),
                generation: AtomicU32::new(0),
                last_switch: Mutex::new(None),
                next_free: Mutex::new(Instant::now()),
                counters: Counters::default(),
            })
        });
        let addr = state.to_client_socket.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let state = state.clone();
            std::thread::spawn(move || {
                runtime.block_on(async move {
                    let first = state.upstream.lock().unwrap().clone();
                    tokio::spawn(to_client(state.clone(), first, 0));
                    tokio::spawn(to_server(state));
                    let _ = stopped.await;
                });
            })
        };
        Self {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address the client should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches so far.
    pub fn switches(&self) -> u32 {
        self.state.counters.switches.load(Ordering::Relaxed)
    }

    /// Bytes forwarded to the client in all.
    pub fn to_client(&self) -> u64 {
        self.state.counters.to_client.load(Ordering::Relaxed)
    }

    /// Bytes forwarded to the client before the first switch.
    pub fn before_first_switch(&self) -> u64 {
        self.state.counters.at_first_switch.load(Ordering::Relaxed)
    }

    /// Bytes that came from the server through the newest server-facing
    /// socket: more than zero means the server followed the last move.
    pub fn through_newest_socket(&self) -> u64 {
        self.state.counters.newest_socket.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Client to server: from the client-facing socket out of the current
/// server-facing one.
async fn to_server(state: Arc<State>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = state.to_client_socket.recv_from(&mut buf).await else {
            continue;
        };
        *state.client.lock().unwrap() = Some(from);
        let upstream = state.upstream.lock().unwrap().clone();
        let _ = upstream.send_to(&buf[..n], state.server).await;
    }
}

/// Server to client, from one server-facing socket: the current one until
/// it is replaced, then for [`LINGER`] more.
async fn to_client(state: Arc<State>, socket: Arc<UdpSocket>, generation: u32) {
    let mut buf = vec![0u8; 65_536];
    let mut retire: Option<Instant> = None;
    loop {
        let received = match retire {
            Some(at) => match tokio::time::timeout_at(at, socket.recv_from(&mut buf)).await {
                Ok(r) => r,
                Err(_) => return, // the old mapping expired
            },
            None => socket.recv_from(&mut buf).await,
        };
        let Ok((n, from)) = received else { continue };
        if from != state.server {
            continue;
        }
        let Some(client) = *state.client.lock().unwrap() else {
            continue;
        };
        pace(&state, n).await;
        let _ = state.to_client_socket.send_to(&buf[..n], client).await;
        let c = &state.counters;
        let total = c.to_client.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if state.generation.load(Ordering::Relaxed) == generation {
            c.newest_socket.fetch_add(n as u64, Ordering::Relaxed);
            if retire.is_none() && switch_due(&state, total) {
                switch(&state, total);
                retire = Some(Instant::now() + LINGER);
            }
        }
    }
}

/// Waits for the bottleneck to take `len` bytes.
async fn pace(state: &State, len: usize) {
    let Some(rate) = state.schedule.rate else {
        return;
    };
    let now = Instant::now();
    let start = {
        let mut next = state.next_free.lock().unwrap();
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(len as f64 / rate as f64);
        start
    };
    // Small debts are paid in bursts: the timer's grain is a millisecond.
    if start > now + Duration::from_millis(2) {
        tokio::time::sleep_until(start).await;
    }
}

fn switch_due(state: &State, total: u64) -> bool {
    let last = *state.last_switch.lock().unwrap();
    match (last, state.schedule.every) {
        (None, _) => total >= state.schedule.first_after,
        (Some(at), Some(every)) => at.elapsed() >= every,
        (Some(_), None) => false,
    }
}

/// Replaces the server-facing socket; the caller's task lingers.
fn switch(state: &Arc<State>, total: u64) {
    let c = &state.counters;
    let n = c.switches.fetch_add(1, Ordering::Relaxed) + 1;
    if n == 1 {
        c.at_first_switch.store(total, Ordering::Relaxed);
    }
    let ip = match state.schedule.rebind {
        Rebind::Port => Ipv4Addr::LOCALHOST,
        Rebind::Address => Ipv4Addr::new(127, 0, 0, 2 + (n % 200) as u8),
    };
    let socket = std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), 0)).unwrap();
    socket.set_nonblocking(true).unwrap();
    let socket = Arc::new(UdpSocket::from_std(socket).unwrap());
    *state.last_switch.lock().unwrap() = Some(Instant::now());
    c.newest_socket.store(0, Ordering::Relaxed);
    let generation = state.generation.fetch_add(1, Ordering::Relaxed) + 1;
    *state.upstream.lock().unwrap() = socket.clone();
    tokio::spawn(to_client(state.clone(), socket, generation));
}
