//! One cell of the close matrix: the scenario, run in the simulated
//! network, and what it observed.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quiver_proto::connection::LoggedPacket;
use quiver_proto::packet::PacketType;
use quiver_proto::{
    Connection, ConnectionError, ConnectionHandle, Endpoint, TransportConfig, VarInt,
};
use quiver_sim::quic::{Admission, CLIENT_ADDR, Pair, SERVER_ADDR};
use quiver_sim::{LinkConfig, Network, Node, Seed, TraceKind, Transmit, Verdict, loopback};

use super::common_close::{WireKind, carries, strip_handshake};
use super::zero_rtt;
use super::{
    APP_CODE, APP_REASON, LINK_DELAY, Loss, PEER_ACTIVITY, RANDOM_LOSS, Role, SCENARIO_LIMIT, Stage,
};

/// A node that only ticks, so the run visits every few milliseconds and
/// the peer's application can act on time.
struct Ticker {
    next: Instant,
    every: Duration,
}

impl Node for Ticker {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}
    fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        Some(self.next)
    }
    fn handle_timeout(&mut self, now: Instant) {
        while self.next <= now {
            self.next += self.every;
        }
    }
}

/// What the hooks and the driver record.
#[derive(Default)]
struct Shared {
    /// The server's connection (it accepts only the first attempt).
    server: Option<ConnectionHandle>,
    client: Option<ConnectionHandle>,
    /// Datagrams handed to the server→client link.
    sent_s2c: Cell<u64>,
    close: Option<CloseRecord>,
    /// When each side's connection first reported an end, why, and whether
    /// its handshake was complete then.
    server_end: Option<(Instant, ConnectionError, bool)>,
    client_end: Option<(Instant, ConnectionError, bool)>,
}

#[derive(Clone, Debug)]
pub(crate) struct CloseRecord {
    pub(crate) at: Instant,
    /// Index, on the closer→peer link, of the first datagram sent after
    /// the close.
    pub(crate) index: u64,
    /// Length of the closer's sent log at the close.
    pub(crate) log_len: usize,
    pub(crate) complete: bool,
    pub(crate) confirmed: bool,
    /// Whether the closer had the peer's transport parameters: a server
    /// has them, and its Handshake and 1-RTT keys, once it has read the
    /// ClientHello (its first Initial may have been only a PING probe).
    pub(crate) peer_params: bool,
}

fn app_close(conn: &mut Connection, now: Instant, index: u64) -> CloseRecord {
    let record = CloseRecord {
        at: now,
        index,
        log_len: conn.sent_log_for_test().len(),
        complete: conn.is_handshake_complete(),
        confirmed: conn.is_handshake_confirmed(),
        peer_params: conn.peer_params().is_some(),
    };
    conn.close(
        now,
        VarInt::from_u32(APP_CODE),
        Bytes::from_static(APP_REASON),
    );
    record
}

fn observe_end(
    slot: &mut Option<(Instant, ConnectionError, bool)>,
    conn: Option<&mut Connection>,
    now: Instant,
) {
    if slot.is_some() {
        return;
    }
    if let Some(conn) = conn {
        if let Some(reason) = conn.close_reason() {
            *slot = Some((now, reason.clone(), conn.is_handshake_complete()));
        }
    }
}

/// Everything a cell's checks need.
pub(crate) struct Outcome {
    pub(crate) closer: Role,
    /// Whether the peer ever had a connection (see `run_cell`).
    pub(crate) peer_had_state: bool,
    pub(crate) stage: Stage,
    pub(crate) loss: Loss,
    pub(crate) epoch: Instant,
    pub(crate) close: CloseRecord,
    pub(crate) closer_log: Vec<LoggedPacket>,
    pub(crate) peer_log: Vec<LoggedPacket>,
    pub(crate) closer_reason: Option<ConnectionError>,
    pub(crate) peer_end: Option<(Instant, ConnectionError, bool)>,
    /// First delivery of a datagram the closer sent after closing.
    pub(crate) first_close_delivered: Option<Instant>,
    /// A client Handshake packet reached the server before its first close
    /// datagram left (so a closing server had dropped its Initial keys).
    pub(crate) peer_handshake_delivered_to_server_before_close: bool,
    /// A server datagram reached the client before its first close left
    /// (so a closing client had read the ServerHello and holds Handshake
    /// keys: in these scenarios the server's first datagram carries it).
    pub(crate) server_datagram_delivered_to_client_before_close: bool,
    /// The closer is a server whose anti-amplification budget (RFC 9000
    /// §8.1: three times what it received, until the client's address is
    /// validated) was under one full datagram at the close: its first
    /// close may wait for the client's next datagram, and carry only some
    /// levels, the others following as the budget grows.
    pub(crate) amplification_limited: bool,
    /// A client 1-RTT packet reached the server before its first close
    /// datagram left: the client held 1-RTT keys (RFC 9000 §17.3.1).
    pub(crate) peer_one_rtt_delivered_to_server_before_close: bool,
    pub(crate) first_peer_delivery_after_close: Option<Instant>,
    /// First delivery of a client Handshake packet to the server.
    pub(crate) first_client_handshake_at_server: Option<Instant>,
    pub(crate) trace: String,
}

/// Runs one cell of the matrix.
///
/// `None` only where a random loss pattern cannot reach the stage at all
/// (see [`super::zero_rtt::may_be_unreachable`]).
pub(crate) fn run_cell(closer: Role, stage: Stage, loss: Loss) -> Option<Outcome> {
    let (seed, link) = match loss {
        Loss::Random(seed) => (
            seed,
            LinkConfig {
                delay: LINK_DELAY,
                loss_rate: RANDOM_LOSS,
                ..LinkConfig::default()
            },
        ),
        _ => (
            Seed(1),
            LinkConfig {
                delay: LINK_DELAY,
                ..LinkConfig::default()
            },
        ),
    };
    let mut pair = match stage {
        // A first connection leaves the client a ticket allowing 0-RTT.
        Stage::ZeroRtt => zero_rtt::resumable_pair(seed, link),
        _ => Pair::with_configs(
            seed,
            link,
            TransportConfig::default(),
            TransportConfig::default(),
        ),
    };
    // Counts from before the cell's connection (the first connection of
    // the 0-RTT stage) are not the cell's.
    let s2c_before = pair.net.link_stats(SERVER_ADDR, CLIENT_ADDR);
    let epoch = pair.net.epoch();
    pair.net.record(true);
    let ticker_addr = loopback(9, 9);
    let start = pair.net.now();
    pair.net.add_node(
        ticker_addr,
        Ticker {
            next: start,
            every: Duration::from_millis(5),
        },
    );
    let shared = Rc::new(RefCell::new(Shared::default()));
    shared.borrow().sent_s2c.set(s2c_before.sent);

    // The server accepts the first attempt only, logs what it sends, and
    // in stage 1 closes before sending anything.
    pair.server().admission = Admission::Manual;
    {
        let shared = shared.clone();
        pair.server().set_app(move |ep: &mut Endpoint, now| {
            let mut sh = shared.borrow_mut();
            while let Some(id) = ep.poll_incoming().map(|i| i.id()) {
                if sh.server.is_some() {
                    ep.ignore(id);
                    continue;
                }
                let h = ep.accept(now, id).expect("accept");
                let conn = ep.connection(h).expect("accepted");
                conn.enable_sent_log_for_test();
                sh.server = Some(h);
                if closer == Role::Server && stage == Stage::FirstInitial {
                    let index = sh.sent_s2c.get();
                    sh.close = Some(app_close(conn, now, index));
                }
            }
            if let Some(h) = sh.server {
                observe_end(&mut sh.server_end, ep.connection(h), now);
            }
        });
    }
    {
        let shared = shared.clone();
        pair.client().set_app(move |ep: &mut Endpoint, now| {
            let mut sh = shared.borrow_mut();
            if let Some(h) = sh.client {
                observe_end(&mut sh.client_end, ep.connection(h), now);
            }
        });
    }

    // Tap: count datagrams per direction. Filter: the server's Handshake
    // packets, when that column is on.
    {
        let shared = shared.clone();
        pair.net.set_tap(move |d| {
            let sh = shared.borrow();
            if d.src == SERVER_ADDR && d.dst == CLIENT_ADDR {
                sh.sent_s2c.set(sh.sent_s2c.get() + 1);
            }
        });
    }
    let hs_filter_on = Rc::new(Cell::new(false));
    let stripped: Rc<RefCell<VecDeque<Vec<u8>>>> = Rc::default();
    if loss.server_handshake_lost() {
        let late = matches!(
            (closer, stage),
            (Role::Client, Stage::OneRttUnconfirmed | Stage::Confirmed) | (_, Stage::Confirmed)
        );
        hs_filter_on.set(!late);
    }
    {
        let on = hs_filter_on.clone();
        let stripped = stripped.clone();
        let shared = shared.clone();
        let closer_addr = match closer {
            Role::Server => SERVER_ADDR,
            Role::Client => CLIENT_ADDR,
        };
        pair.net.set_filter(move |d| {
            if loss.first_close_lost() && d.src == closer_addr {
                let first_close = shared.borrow().close.as_ref().map(|c| c.index);
                if first_close == Some(d.index) {
                    return Verdict::Drop;
                }
            }
            if !on.get() || d.src != SERVER_ADDR {
                return Verdict::Deliver;
            }
            match strip_handshake(d.data) {
                None => Verdict::Deliver,
                Some(rest) => {
                    if !rest.is_empty() {
                        stripped.borrow_mut().push_back(rest);
                    }
                    Verdict::Drop
                }
            }
        });
    }

    let handle = pair.connect();
    pair.client().conn(handle).enable_sent_log_for_test();
    if stage == Stage::ZeroRtt {
        zero_rtt::write_early(pair.client().conn(handle));
    }
    shared.borrow_mut().client = Some(handle);

    let flush = |net: &mut Network| loop {
        net.run_until(net.now());
        let pending: Vec<Vec<u8>> = stripped.borrow_mut().drain(..).collect();
        if pending.is_empty() {
            break;
        }
        for d in pending {
            net.inject(SERVER_ADDR, CLIENT_ADDR, d);
        }
    };

    let deadline = start + SCENARIO_LIMIT;
    let mut next_activity = start;
    loop {
        flush(&mut pair.net);
        let now = pair.net.now();
        // Close when the stage is reached.
        if shared.borrow().close.is_none() {
            let server_h = shared.borrow().server;
            let s2c_delivered =
                pair.net.link_stats(SERVER_ADDR, CLIENT_ADDR).delivered - s2c_before.delivered;
            let client_sent = pair.client().conn(handle).sent_log_for_test().len();
            let client_complete = pair.client().conn(handle).is_handshake_complete();
            let client_confirmed = pair.client().conn(handle).is_handshake_confirmed();
            let (server_sent, server_complete, server_confirmed, server_read_0rtt) = match server_h
            {
                Some(h) => {
                    let c = pair.server().conn(h);
                    (
                        c.sent_log_for_test().len(),
                        c.is_handshake_complete(),
                        c.is_handshake_confirmed(),
                        c.is_zero_rtt_accepted() && c.stats().zero_rtt_packets_received > 0,
                    )
                }
                None => (0, false, false, false),
            };
            let reached = match (closer, stage) {
                (Role::Server, Stage::FirstInitial) => false, // in the hook
                (Role::Client, Stage::FirstInitial) => client_sent > 0,
                (_, Stage::FlightInFlight) => server_sent > 0 && s2c_delivered == 0,
                (Role::Server, Stage::OneRttUnconfirmed) => {
                    server_sent > 0 && s2c_delivered > 0 && !server_complete
                }
                (Role::Client, Stage::HandshakeKeysOnly) => s2c_delivered > 0 && !client_complete,
                (Role::Client, Stage::OneRttUnconfirmed) => client_complete && !client_confirmed,
                (_, Stage::Confirmed) => client_confirmed && server_confirmed,
                (Role::Server, Stage::HandshakeKeysOnly) => unreachable!("client-only stage"),
                (Role::Client, Stage::ZeroRtt) => {
                    let log = pair.client().conn(handle).sent_log_for_test();
                    s2c_delivered == 0 && log.iter().any(|p| p.ty == PacketType::ZeroRtt)
                }
                (Role::Server, Stage::ZeroRtt) => server_read_0rtt && !server_complete,
            };
            if reached {
                let record = match closer {
                    Role::Server => {
                        let h = server_h.expect("server connection");
                        let index = pair.net.link_stats(SERVER_ADDR, CLIENT_ADDR).sent;
                        app_close(pair.server().conn(h), now, index)
                    }
                    Role::Client => {
                        let index = pair.net.link_stats(CLIENT_ADDR, SERVER_ADDR).sent;
                        app_close(pair.client().conn(handle), now, index)
                    }
                };
                shared.borrow_mut().close = Some(record);
                hs_filter_on.set(loss == Loss::ServerHandshakeLost);
                continue;
            }
        }
        // After the close, the peer's application keeps sending.
        if shared.borrow().close.is_some() && now >= next_activity {
            next_activity = now + PEER_ACTIVITY;
            let peer = match closer {
                Role::Server => Some(handle),
                Role::Client => shared.borrow().server,
            };
            let node = match closer {
                Role::Server => pair.client(),
                Role::Client => pair.server(),
            };
            if let Some(conn) = peer.and_then(|h| node.endpoint.connection(h)) {
                if conn.is_handshake_complete() && !conn.is_closed() {
                    let _ = conn.send_datagram(Bytes::from_static(b"still there?"));
                }
            }
        }
        let server_drained = shared
            .borrow()
            .server
            .is_some_and(|h| pair.server().conn(h).is_drained());
        let client_drained = pair.client().conn(handle).is_drained();
        if (server_drained && client_drained) || now >= deadline {
            break;
        }
        if !pair.net.step() {
            break;
        }
    }

    let sh = shared.borrow();
    if sh.close.is_none() && zero_rtt::may_be_unreachable(closer, stage, loss) {
        return None;
    }
    let close = sh
        .close
        .clone()
        .unwrap_or_else(|| panic!("{closer:?} {stage:?} {loss:?}: the stage was never reached"));
    // The server has no connection only if nothing of the client's ever
    // reached it (the client closed at once and every datagram was lost):
    // then there is no peer state to close.
    let (server_log, server_reason) = match sh.server {
        Some(h) => {
            let conn = pair.server().conn(h);
            (
                conn.sent_log_for_test().to_vec(),
                conn.close_reason().cloned(),
            )
        }
        None => (Vec::new(), None),
    };
    let peer_had_state = closer == Role::Server || sh.server.is_some();
    let client_log = pair.client().conn(handle).sent_log_for_test().to_vec();
    let client_reason = pair.client().conn(handle).close_reason().cloned();
    let (closer_addr, peer_addr) = match closer {
        Role::Server => (SERVER_ADDR, CLIENT_ADDR),
        Role::Client => (CLIENT_ADDR, SERVER_ADDR),
    };
    let trace = pair.net.trace();
    let delivered = |e: &&quiver_sim::TraceEvent| matches!(e.kind, TraceKind::Delivered { .. });
    let first_close_delivered = trace
        .iter()
        .filter(delivered)
        .find(|e| e.src == closer_addr && e.dst == peer_addr && e.index >= close.index)
        .map(|e| e.time);
    let first_client_handshake_at_server = trace
        .iter()
        .filter(delivered)
        .find(|e| {
            e.src == CLIENT_ADDR && e.dst == SERVER_ADDR && carries(&e.data, WireKind::Handshake)
        })
        .map(|e| e.time);
    // Where, in the trace, the first close datagram left: what happened
    // before it decides the keys it could use.
    let first_close_pos = trace
        .iter()
        .position(|e| e.src == closer_addr && e.kind == TraceKind::Sent && e.index == close.index)
        .unwrap_or(trace.len());
    let before_first_close = &trace[..first_close_pos];
    let peer_handshake_delivered_to_server_before_close = before_first_close.iter().any(|e| {
        e.src == CLIENT_ADDR
            && matches!(e.kind, TraceKind::Delivered { .. })
            && carries(&e.data, WireKind::Handshake)
    });
    let peer_one_rtt_delivered_to_server_before_close = before_first_close.iter().any(|e| {
        e.src == CLIENT_ADDR
            && matches!(e.kind, TraceKind::Delivered { .. })
            && carries(&e.data, WireKind::Short)
    });
    let server_datagram_delivered_to_client_before_close = before_first_close
        .iter()
        .any(|e| e.src == SERVER_ADDR && matches!(e.kind, TraceKind::Delivered { .. }));
    // RFC 9000 §8.1: the server's anti-amplification budget at the close.
    let bytes = |src: SocketAddr, sent: bool| -> u64 {
        trace
            .iter()
            .filter(|e| e.src == src && e.time <= close.at)
            .filter(|e| match sent {
                true => e.kind == TraceKind::Sent,
                false => matches!(e.kind, TraceKind::Delivered { .. }),
            })
            .map(|e| e.data.len() as u64)
            .sum()
    };
    let validated_at_close = trace.iter().any(|e| {
        e.src == CLIENT_ADDR
            && e.time <= close.at
            && matches!(e.kind, TraceKind::Delivered { .. })
            && carries(&e.data, WireKind::Handshake)
    });
    let budget = (3 * bytes(CLIENT_ADDR, false)).saturating_sub(bytes(SERVER_ADDR, true));
    let amplification_limited = closer == Role::Server && !validated_at_close && budget < 1200;
    let first_peer_delivery_after_close = trace
        .iter()
        .find(|e| {
            e.src == peer_addr && matches!(e.kind, TraceKind::Delivered { .. }) && e.time > close.at
        })
        .map(|e| e.time);
    let (closer_log, peer_log, closer_reason, peer_end) = match closer {
        Role::Server => (server_log, client_log, server_reason, sh.client_end.clone()),
        Role::Client => (client_log, server_log, client_reason, sh.server_end.clone()),
    };
    Some(Outcome {
        closer,
        peer_had_state,
        stage,
        loss,
        epoch,
        peer_handshake_delivered_to_server_before_close,
        peer_one_rtt_delivered_to_server_before_close,
        close,
        closer_log,
        peer_log,
        closer_reason,
        peer_end,
        first_close_delivered,
        server_datagram_delivered_to_client_before_close,
        first_client_handshake_at_server,
        amplification_limited,
        first_peer_delivery_after_close,
        trace: pair.net.dump_trace(),
    })
}
