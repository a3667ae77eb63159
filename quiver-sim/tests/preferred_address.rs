//! The server's side of the preferred address (RFC 9000 §9.6.2–§9.6.3):
//! which of its two addresses each of its datagrams leaves from.
//!
//! The server advertises `PREFERRED` and receives on it (an alias in the
//! simulated network). Every datagram is classified by its decrypted
//! frames: each endpoint's qlog sink records the packets it seals, and the
//! network's filter, called as each datagram leaves, takes the packets
//! sealed since the sender's previous datagram (the simulated nodes send
//! each datagram as soon as it is written: one datagram per transmit,
//! not GSO batches).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quiver_proto::frame::{self, Frame};
use quiver_proto::qlog::{QlogConnectionInfo, QlogEvent, QlogFactory, QlogSink};
use quiver_proto::{ConnectionHandle, Side, TransportConfig};
use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, SendPlan, SharedApp};
use quiver_sim::{LinkConfig, Seed, Verdict, for_each_seed, loopback};

const MB: u64 = 1_000_000;
const PREFERRED: SocketAddr = loopback(5, 4500);

/// What one sealed packet carried.
#[derive(Debug, Clone, Copy, Default)]
struct Packet {
    challenge: bool,
    response: bool,
    /// RFC 9000 §9.1: any frame other than PATH_CHALLENGE, PATH_RESPONSE,
    /// NEW_CONNECTION_ID and PADDING.
    non_probing: bool,
}

/// A datagram as it left its sender.
#[derive(Debug, Clone)]
struct Datagram {
    time: Instant,
    src: SocketAddr,
    dst: SocketAddr,
    packets: Vec<Packet>,
    /// The Destination Connection ID of a short-header packet first in
    /// the datagram (the client's IDs are 8 bytes long).
    short_dcid: Option<[u8; 8]>,
}

impl Datagram {
    fn non_probing(&self) -> bool {
        self.packets.iter().any(|p| p.non_probing)
    }
    fn challenge(&self) -> bool {
        self.packets.iter().any(|p| p.challenge)
    }
    fn response(&self) -> bool {
        self.packets.iter().any(|p| p.response)
    }
    fn is_from_server(&self) -> bool {
        self.src == SERVER_ADDR || self.src == PREFERRED
    }
}

type Sealed = Arc<Mutex<VecDeque<Packet>>>;

/// Decides, from a datagram's packets, whether the network drops it.
type DropRule = Rc<RefCell<Box<dyn FnMut(&Datagram) -> bool>>>;

/// Records the packets one side's connections seal.
#[derive(Debug)]
struct Recorder {
    side: Side,
    sealed: Sealed,
}

struct Sink(Sealed);

impl QlogSink for Sink {
    fn event(&mut self, _: Instant, event: &QlogEvent<'_>) {
        let QlogEvent::PacketSent(info) = event else {
            return;
        };
        let mut p = Packet::default();
        for f in frame::Iter::new(info.payload).flatten() {
            match f {
                Frame::PathChallenge(_) => p.challenge = true,
                Frame::PathResponse(_) => p.response = true,
                Frame::Padding(_) | Frame::NewConnectionId(_) => {}
                _ => p.non_probing = true,
            }
        }
        self.0.lock().unwrap().push_back(p);
    }
}

impl QlogFactory for Recorder {
    fn new_sink(&self, info: &QlogConnectionInfo) -> Option<Box<dyn QlogSink>> {
        (info.side == self.side).then(|| Box::new(Sink(self.sealed.clone())) as Box<dyn QlogSink>)
    }
}

/// 10 ms each way at 20 Mbit/s, with 1% loss and some jitter and
/// reordering, so the seeds vary which probes and answers get through.
fn link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(2),
        bandwidth: Some(2_500_000),
        loss_rate: 0.01,
        reorder_rate: 0.01,
        reorder_delay: Duration::from_millis(5),
        ..LinkConfig::default()
    }
}

/// A pair whose server offers `PREFERRED`, with every datagram logged;
/// `drop` decides, from a datagram's packets, whether the network drops
/// it.
struct Scenario {
    pair: Pair,
    log: Rc<RefCell<Vec<Datagram>>>,
    drop: DropRule,
}

impl Scenario {
    fn new(seed: Seed, migrate: bool) -> Self {
        let server_sealed = Sealed::default();
        let client_sealed = Sealed::default();
        let client = TransportConfig {
            migrate_to_preferred_address: migrate,
            qlog: Some(Arc::new(Recorder {
                side: Side::Client,
                sealed: client_sealed.clone(),
            })),
            ..TransportConfig::default()
        };
        let server = TransportConfig {
            qlog: Some(Arc::new(Recorder {
                side: Side::Server,
                sealed: server_sealed.clone(),
            })),
            ..TransportConfig::default()
        };
        let mut pair = Pair::with_server_endpoint(seed, link(), client, server, |e| {
            e.preferred_address_v4 = match PREFERRED {
                SocketAddr::V4(a) => Some(a),
                SocketAddr::V6(_) => None,
            }
        });
        pair.net.add_alias(pair.server, PREFERRED);
        // A batch's packets are all sealed before its first datagram
        // leaves: one datagram per transmit keeps the classification exact.
        pair.client().set_max_datagrams(1);
        pair.server().set_max_datagrams(1);
        let log: Rc<RefCell<Vec<Datagram>>> = Rc::default();
        let drop: DropRule = Rc::new(RefCell::new(Box::new(|_| false)));
        let (l, d) = (log.clone(), drop.clone());
        pair.net.set_filter(move |info| {
            let sealed = if info.src == CLIENT_ADDR {
                &client_sealed
            } else {
                &server_sealed
            };
            let packets = sealed.lock().unwrap().drain(..).collect();
            let short = info.data.first().is_some_and(|b| b & 0x80 == 0);
            let datagram = Datagram {
                time: info.time,
                src: info.src,
                dst: info.dst,
                packets,
                short_dcid: info
                    .data
                    .get(1..9)
                    .filter(|_| short)
                    .and_then(|c| c.try_into().ok()),
            };
            let dropped = (d.borrow_mut())(&datagram);
            l.borrow_mut().push(datagram);
            if dropped {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        Self { pair, log, drop }
    }

    /// Starts a download of `len` bytes from the server and runs the
    /// handshake.
    fn download(&mut self, len: u64) -> (ConnectionHandle, SharedApp) {
        self.pair.server_app(AppConfig {
            send: vec![SendPlan::uni(len)],
            ..AppConfig::default()
        });
        let receiver = self.pair.client_app(AppConfig::default());
        let (client, _) = self.pair.connect_and_wait(Duration::from_secs(10));
        (client, receiver)
    }

    fn finish(&mut self, receiver: &SharedApp, len: u64) {
        let done = self.pair.run_until(Duration::from_secs(60), |_| {
            receiver.borrow().streams_finished() == 1
        });
        let r = receiver.borrow();
        assert!(done, "download incomplete: {} of {len}", r.bytes_received());
        r.assert_intact();
        assert!(r.lost.is_none(), "{:?}", r.lost);
    }

    /// The server's datagrams to the client, in order.
    fn server_datagrams(&self) -> Vec<Datagram> {
        self.log
            .borrow()
            .iter()
            .filter(|d| d.is_from_server() && d.dst == CLIENT_ADDR)
            .cloned()
            .collect()
    }

    /// Every datagram the server sent was matched with its packets, or
    /// is one the endpoint sent without a connection (a stateless reset:
    /// with reordering, a packet under a connection ID the client just
    /// retired can arrive after the retirement); those leave from the
    /// endpoint's own address.
    fn assert_classified(&self) {
        for d in self.server_datagrams() {
            assert!(
                !d.packets.is_empty() || (d.src == SERVER_ADDR && d.dst == CLIENT_ADDR),
                "unclassified datagram {d:?}"
            );
        }
    }
}

/// (a) RFC 9000 §9.6.2: the PATH_RESPONSE to the client's probe of the
/// preferred address leaves from the preferred address (§8.2.2: "MUST be
/// sent on the network path where the PATH_CHALLENGE frame was
/// received"), and the server "MUST probe on the path toward the client
/// from its preferred address": its first PATH_CHALLENGE leaves from there,
/// before any non-probing packet does.
/// (c) Once the client moved (validated path, non-probing packet there),
/// every non-probing packet of the server comes from the preferred
/// address.
#[test]
fn probes_are_answered_from_the_preferred_address_and_data_follows_the_move() {
    for_each_seed(5, |seed| {
        let mut s = Scenario::new(seed, true);
        let (client, r) = s.download(2 * MB);
        s.finish(&r, 2 * MB);
        s.assert_classified();
        assert_eq!(s.pair.client_conn(client).remote_address(), PREFERRED);
        assert_eq!(s.pair.server_conn().local_address(), Some(PREFERRED));
        let server = s.server_datagrams();
        let responses: Vec<&Datagram> = server.iter().filter(|d| d.response()).collect();
        assert!(!responses.is_empty(), "no PATH_RESPONSE");
        // The client probes only the preferred address.
        assert!(
            responses.iter().all(|d| d.src == PREFERRED),
            "a PATH_RESPONSE left from the original address"
        );
        let first_challenge = server
            .iter()
            .position(Datagram::challenge)
            .expect("the server never challenged the client");
        assert_eq!(server[first_challenge].src, PREFERRED);
        let first_from_preferred = server
            .iter()
            .position(|d| d.src == PREFERRED && d.non_probing())
            .expect("nothing non-probing from the preferred address");
        assert!(first_challenge < first_from_preferred);
        // §9.6.2: "the server begins sending non-probing packets to the
        // client exclusively from its preferred IP address".
        let stray = server[first_from_preferred..]
            .iter()
            .filter(|d| d.src == SERVER_ADDR && d.non_probing())
            .count();
        assert_eq!(stray, 0, "non-probing packets from the original address");
        // And nothing non-probing came from there before the client's
        // first non-probing packet reached it (§9.6.2).
        let log = s.log.borrow();
        let client_arrived = log
            .iter()
            .find(|d| d.src == CLIENT_ADDR && d.dst == PREFERRED && d.non_probing())
            .map(|d| d.time)
            .expect("the client never sent non-probing packets there");
        assert!(server[first_from_preferred].time > client_arrived);
        // RFC 9000 §9.5: "An endpoint MUST NOT reuse a connection ID when
        // sending from more than one local address."
        let ids = |src| -> std::collections::HashSet<[u8; 8]> {
            server
                .iter()
                .filter(|d| d.src == src && !d.packets.is_empty())
                .filter_map(|d| d.short_dcid)
                .collect()
        };
        let (original, preferred) = (ids(SERVER_ADDR), ids(PREFERRED));
        assert!(!original.is_empty() && !preferred.is_empty());
        assert!(
            original.is_disjoint(&preferred),
            "one connection ID sent from both addresses"
        );
    });
}

/// (b) RFC 9000 §9.6.2: "The server MUST send non-probing packets from its
/// original address until it receives a non-probing packet from the
/// client at its preferred address and until the server has validated
/// the new path." The client's non-probing packets to the preferred
/// address are dropped: its probes (and its answer to the server's
/// challenge) get through, yet the server's non-probing packets keep
/// leaving from the original address. When the client's packets get
/// through, the server moves (c).
#[test]
fn non_probing_packets_stay_on_the_original_address_until_the_client_moves() {
    for_each_seed(5, |seed| {
        let mut s = Scenario::new(seed, true);
        *s.drop.borrow_mut() =
            Box::new(|d| d.src == CLIENT_ADDR && d.dst == PREFERRED && d.non_probing());
        let (_client, r) = s.download(4 * MB);
        s.pair.net.run_for(Duration::from_millis(600));
        s.assert_classified();
        let server = s.server_datagrams();
        assert!(
            server.iter().any(|d| d.src == PREFERRED && d.response()),
            "the client's probe was not answered from the preferred address"
        );
        assert!(
            server.iter().any(|d| d.src == PREFERRED && d.challenge()),
            "the server did not probe from the preferred address"
        );
        assert!(
            s.log
                .borrow()
                .iter()
                .any(|d| d.src == CLIENT_ADDR && d.dst == PREFERRED && d.response()),
            "the client never answered the server's challenge"
        );
        let from_preferred = server
            .iter()
            .filter(|d| d.src == PREFERRED && d.non_probing())
            .count();
        assert_eq!(from_preferred, 0, "non-probing packets before the move");
        assert!(
            server
                .iter()
                .any(|d| d.src == SERVER_ADDR && d.non_probing()),
            "the server fell silent on the original address"
        );
        assert_eq!(s.pair.server_conn().local_address(), None);

        // The client's packets now reach the preferred address: the
        // server moves there.
        let before = server.len();
        *s.drop.borrow_mut() = Box::new(|_| false);
        let moved = s.pair.run_until(Duration::from_secs(5), |p| {
            p.server_conn().local_address() == Some(PREFERRED)
        });
        assert!(moved, "the server never moved to its preferred address");
        s.finish(&r, 4 * MB);
        let server = s.server_datagrams();
        let first = before
            + server[before..]
                .iter()
                .position(|d| d.src == PREFERRED && d.non_probing())
                .expect("nothing non-probing from the preferred address");
        let stray = server[first..]
            .iter()
            .filter(|d| d.src == SERVER_ADDR && d.non_probing())
            .count();
        assert_eq!(stray, 0, "non-probing packets from the original address");
    });
}

/// (d) A client that never moves is never sent anything from the
/// preferred address (§9.6: "If a client receives packets from a new
/// server address when the client has not initiated a migration to that
/// address, the client SHOULD discard these packets").
#[test]
fn a_client_that_stays_hears_nothing_from_the_preferred_address() {
    for_each_seed(5, |seed| {
        let mut s = Scenario::new(seed, false);
        let (client, r) = s.download(MB);
        s.finish(&r, MB);
        s.assert_classified();
        assert_eq!(s.pair.client_conn(client).remote_address(), SERVER_ADDR);
        assert_eq!(s.pair.server_conn().local_address(), None);
        let server = s.server_datagrams();
        assert!(server.iter().all(|d| d.src == SERVER_ADDR));
        assert!(
            !s.log.borrow().iter().any(|d| d.dst == PREFERRED),
            "the client probed the preferred address"
        );
    });
}

/// RFC 9000 §9.6.2, the other half of the condition: the client's
/// non-probing packets reach the preferred address, but its answers to
/// the server's PATH_CHALLENGE do not, so the server never validates the
/// path, and its non-probing packets keep leaving from the original
/// address ("... and until the server has validated the new path"). Once
/// the answers get through, it moves.
#[test]
fn non_probing_packets_wait_for_the_servers_validation() {
    for_each_seed(5, |seed| {
        let mut s = Scenario::new(seed, true);
        *s.drop.borrow_mut() =
            Box::new(|d| d.src == CLIENT_ADDR && d.dst == PREFERRED && d.response());
        let (client, r) = s.download(4 * MB);
        s.pair.net.run_for(Duration::from_millis(600));
        s.assert_classified();
        assert_eq!(
            s.pair.client_conn(client).remote_address(),
            PREFERRED,
            "the client did not move"
        );
        assert!(
            s.log
                .borrow()
                .iter()
                .any(|d| d.src == CLIENT_ADDR && d.dst == PREFERRED && d.non_probing()),
            "no non-probing packet reached the preferred address"
        );
        let server = s.server_datagrams();
        let from_preferred = server
            .iter()
            .filter(|d| d.src == PREFERRED && d.non_probing())
            .count();
        assert_eq!(from_preferred, 0, "non-probing packets before validation");
        assert_eq!(s.pair.server_conn().local_address(), None);

        *s.drop.borrow_mut() = Box::new(|_| false);
        let moved = s.pair.run_until(Duration::from_secs(5), |p| {
            p.server_conn().local_address() == Some(PREFERRED)
        });
        assert!(moved, "the server never moved to its preferred address");
        s.finish(&r, 4 * MB);
    });
}
