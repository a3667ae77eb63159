//! NEW_TOKEN address-validation tokens (RFC 9000 §8.1.3, §8.1.4, §19.7)
//! in the simulated network: a token from one connection validates the
//! client's next one (no Retry, no anti-amplification limit); expired,
//! forged, foreign-IP and reused tokens count as no token (a Retry when
//! the server asks for one, never INVALID_TOKEN); servers of a fleet
//! sharing a key accept each other's tokens and resets, and each token
//! once per server, or once in all when they share a reuse log.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::{
    AdmissionConfig, ConnectionError, ConnectionHandle, Endpoint, EndpointConfig, EndpointStats,
    InMemoryTokenReuseLog, NewTokenConfig, TokenReuseLog, TokenStore, TransportConfig,
};
use quiver_sim::quic::{Admission, CLIENT_ADDR, Pair, QuicNode, SERVER_ADDR, TestPki};
use quiver_sim::{LinkConfig, Network, NodeId, Seed, Verdict, for_each_seed, loopback};

/// A certificate this large makes the server's first flight (about 8 KB)
/// larger than three times a client Initial: the amplification limit
/// binds when the address is not validated.
const CERT_LEN: usize = 8000;

/// A token store the test sees into: it keeps every token received, and
/// hands out the one the test chooses (once, or every time).
#[derive(Debug, Default)]
struct ScriptedStore {
    received: Mutex<Vec<Bytes>>,
    next: Mutex<Option<Bytes>>,
}

impl TokenStore for ScriptedStore {
    fn insert(&self, server_name: &str, token: Bytes) {
        assert_eq!(server_name, "localhost");
        self.received.lock().unwrap().push(token);
    }
    fn take(&self, _server_name: &str) -> Option<Bytes> {
        self.next.lock().unwrap().take()
    }
}

impl ScriptedStore {
    fn last_received(&self) -> Bytes {
        self.received
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no NEW_TOKEN received")
    }
    fn offer(&self, token: Bytes) {
        *self.next.lock().unwrap() = Some(token);
    }
}

/// A server behaving like `quiver serve --retry`: a Retry for every client
/// whose address is not validated, accept otherwise.
fn retry_unvalidated(pair: &mut Pair) {
    pair.server().admission = Admission::Manual;
    pair.server().set_app(|ep: &mut Endpoint, now| {
        while let Some((id, validated)) = ep
            .poll_incoming()
            .map(|i| (i.id(), i.remote_address_validated()))
        {
            if validated {
                ep.accept(now, id).unwrap();
            } else {
                ep.retry(now, id).unwrap();
            }
        }
    });
}

fn stats(pair: &mut Pair) -> EndpointStats {
    pair.server().endpoint.stats()
}

fn pair_with(seed: Seed, new_tokens: NewTokenConfig, store: Option<Arc<dyn TokenStore>>) -> Pair {
    pair_with_pki(seed, new_tokens, store, TestPki::with_cert_size(CERT_LEN))
}

fn pair_with_pki(
    seed: Seed,
    new_tokens: NewTokenConfig,
    store: Option<Arc<dyn TokenStore>>,
    pki: TestPki,
) -> Pair {
    let mut pair = Pair::with_pki(
        seed,
        LinkConfig::default(),
        TransportConfig::default(),
        TransportConfig::default(),
        pki.clone(),
    );
    let mut server = pki.server_config(TransportConfig::default());
    server.new_tokens = new_tokens;
    pair.server()
        .endpoint
        .set_server_config(Some(Arc::new(server)));
    if let Some(store) = store {
        pair.client_config.token_store = Some(store);
    }
    pair
}

/// Runs a connection to completion of the handshake and long enough for
/// the NEW_TOKEN frame to arrive (and be acknowledged).
fn connect_and_settle(pair: &mut Pair) -> ConnectionHandle {
    let handle = pair.connect();
    assert!(pair.run_handshake(handle, Duration::from_secs(10)));
    pair.net.run_for(Duration::from_millis(300));
    handle
}

/// RFC 9000 §8.1.3: the server sends a token after the handshake; the
/// client's next connection carries it, and a `--retry` server accepts it
/// without a Retry. §8.1.4/§8 (Servers can use tokens "in deciding not to
/// send a Retry packet"): the address is validated, so the server's first
/// flight is not held to three times what it received — with every client
/// datagram after the first Initial dropped, it still sends its whole
/// 8 KB flight.
#[test]
fn second_connection_with_token_skips_retry_and_amplification_limit() {
    for_each_seed(4, |seed| {
        let pki = TestPki::with_cert_size(CERT_LEN);
        let mut pair = pair_with_pki(seed, NewTokenConfig::default(), None, pki.clone());
        retry_unvalidated(&mut pair);
        connect_and_settle(&mut pair);
        let s = stats(&mut pair);
        assert_eq!((s.retried_by_application, s.new_tokens_issued), (1, 1));

        // Second connection: only its first datagram reaches the server.
        // A TLS configuration without the first connection's session
        // ticket, offering X25519 only, keeps the ClientHello in that one
        // datagram; the token store is the same.
        let store = pair.client_config.token_store.clone();
        pair.client_config = pki.client_config_with_groups(
            TransportConfig::default(),
            &[quiver_proto::crypto::KxGroup::X25519],
        );
        pair.client_config.token_store = store;
        let client_sent = Rc::new(RefCell::new(0u64));
        let server_sent = Rc::new(RefCell::new(0u64));
        let (c, s2) = (client_sent.clone(), server_sent.clone());
        pair.net.set_filter(move |d| {
            if d.src == CLIENT_ADDR {
                *c.borrow_mut() += 1;
                if *c.borrow() > 1 {
                    return Verdict::Drop;
                }
            } else {
                *s2.borrow_mut() += d.data.len() as u64;
            }
            Verdict::Deliver
        });
        pair.connect();
        pair.net.run_for(Duration::from_millis(200));
        let s = stats(&mut pair);
        assert_eq!(s.new_tokens_accepted, 1, "{s:?}");
        assert_eq!(s.retried_by_application, 1, "no second Retry");
        let second = *pair.server().endpoint.connection_handles().last().unwrap();
        assert!(pair.server().conn(second).is_path_validated());
        let sent = *server_sent.borrow();
        assert!(
            sent > 3 * 1200 + 2000,
            "validated server sent only {sent} bytes for a 1200-byte Initial"
        );

        // Control: a client without a token, to a server that accepts at
        // once, is held to the limit.
        let mut control = pair_with(seed, NewTokenConfig::default(), None);
        control.client_config.token_store = None;
        control.server().admission = Admission::Accept;
        let counter = Rc::new(RefCell::new((0u64, 0u64)));
        let c = counter.clone();
        control.net.set_filter(move |d| {
            let mut c = c.borrow_mut();
            if d.src == CLIENT_ADDR {
                c.0 += 1;
                if c.0 > 1 {
                    return Verdict::Drop;
                }
            } else {
                c.1 += d.data.len() as u64;
            }
            Verdict::Deliver
        });
        control.connect();
        control.net.run_for(Duration::from_millis(200));
        let unvalidated = counter.borrow().1;
        eprintln!(
            "first flight for one 1200-byte Initial: {sent} bytes with a token, {unvalidated} without"
        );
        assert!(unvalidated <= 3 * 1200, "{unvalidated}");
        assert!(sent > unvalidated);
    });
}

/// The client side of §8.1.3: with the default in-memory store shared by
/// the configuration, every later connection uses a fresh token (one per
/// connection, §8.1.3 "SHOULD NOT reuse"), so a `--retry` server never
/// sends a second Retry.
#[test]
fn default_store_gives_each_connection_a_fresh_token() {
    let mut pair = pair_with(Seed::from_env_or(31), NewTokenConfig::default(), None);
    retry_unvalidated(&mut pair);
    let mut handshakes = Vec::new();
    for _ in 0..4 {
        let start = pair.net.now();
        let handle = pair.connect();
        assert!(pair.run_handshake(handle, Duration::from_secs(10)));
        handshakes.push(pair.net.now() - start);
        pair.net.run_for(Duration::from_millis(300));
    }
    eprintln!("handshake times (Retry, then tokens): {handshakes:?}");
    // Without the Retry's round trip (20 ms here), every later handshake
    // is at least that much shorter.
    for later in &handshakes[1..] {
        assert!(
            *later + Duration::from_millis(20) <= handshakes[0],
            "{handshakes:?}"
        );
    }
    let s = stats(&mut pair);
    assert_eq!(s.retried_by_application, 1, "{s:?}");
    assert_eq!(s.new_tokens_accepted, 3);
    assert_eq!(s.new_tokens_reused, 0);
    assert_eq!(s.new_tokens_issued, 4);
}

/// How a bad token fares: the attempt is not validated, the server sends
/// a Retry (§8.1.3 "proceed as if the client did not have a validated
/// address, including potentially sending a Retry packet"), and the
/// connection completes — never INVALID_TOKEN, which §8.1.2 reserves for
/// Retry tokens.
fn assert_treated_as_absent(pair: &mut Pair, token: Bytes, store: &ScriptedStore) {
    let before = stats(pair);
    store.offer(token);
    let handle = pair.connect();
    assert!(
        pair.run_handshake(handle, Duration::from_secs(10)),
        "{:?}",
        pair.client_conn(handle).close_reason()
    );
    let after = stats(pair);
    assert_eq!(
        after.retried_by_application,
        before.retried_by_application + 1,
        "{after:?}"
    );
    assert_eq!(after.new_tokens_accepted, before.new_tokens_accepted);
    assert_eq!(after.refused.application, 0);
    pair.net.run_for(Duration::from_millis(300));
}

#[test]
fn forged_foreign_expired_and_reused_tokens_are_treated_as_absent() {
    for_each_seed(3, |seed| {
        let store = Arc::new(ScriptedStore::default());
        let config = NewTokenConfig {
            lifetime: Duration::from_secs(3600),
            ..NewTokenConfig::default()
        };
        let mut pair = pair_with(seed, config, Some(store.clone()));
        retry_unvalidated(&mut pair);
        connect_and_settle(&mut pair);
        let genuine = store.last_received();

        // Forged: any changed byte.
        let mut forged = genuine.to_vec();
        forged[5] ^= 0x40;
        assert_treated_as_absent(&mut pair, forged.into(), &store);
        assert_eq!(stats(&mut pair).new_tokens_invalid, 1);

        // Genuine: accepted once...
        let before = stats(&mut pair).retried_by_application;
        store.offer(genuine.clone());
        let h = pair.connect();
        assert!(pair.run_handshake(h, Duration::from_secs(10)));
        assert_eq!(stats(&mut pair).retried_by_application, before);
        assert_eq!(stats(&mut pair).new_tokens_accepted, 1);
        pair.net.run_for(Duration::from_millis(300));
        // ...reused: RFC 9000 §8.1.4, "SHOULD NOT be accepted multiple
        // times".
        assert_treated_as_absent(&mut pair, genuine, &store);
        assert_eq!(stats(&mut pair).new_tokens_reused, 1);

        // Issued to another IP address (§8.1.4: the token must show "that
        // the client IP address has not changed").
        let fresh = store.last_received();
        let client = pair.client;
        pair.net.rebind(client, loopback(9, 5000));
        assert_treated_as_absent(&mut pair, fresh, &store);
        assert_eq!(stats(&mut pair).new_tokens_invalid, 2);

        // Expired (§8.1.3: "a token SHOULD have an expiration time").
        let fresh = store.last_received();
        pair.net.run_for(Duration::from_secs(3601));
        assert_treated_as_absent(&mut pair, fresh, &store);
        assert_eq!(stats(&mut pair).new_tokens_expired, 1);
    });
}

/// Admission control's automatic Retry (retry threshold 0) treats a bad
/// token as absent too, and is skipped for a good one.
#[test]
fn automatic_retry_is_skipped_only_for_a_valid_token() {
    let store = Arc::new(ScriptedStore::default());
    let pki = TestPki::new();
    let mut pair = Pair::with_pki(
        Seed::from_env_or(33),
        LinkConfig::default(),
        TransportConfig::default(),
        TransportConfig::default(),
        pki.clone(),
    );
    let mut server = pki.server_config(TransportConfig::default());
    server.admission = AdmissionConfig {
        retry_threshold: 0,
        ..AdmissionConfig::default()
    };
    pair.server()
        .endpoint
        .set_server_config(Some(Arc::new(server)));
    pair.client_config.token_store = Some(store.clone());
    connect_and_settle(&mut pair);
    assert_eq!(stats(&mut pair).retried_automatically, 1);
    let genuine = store.last_received();
    let mut forged = genuine.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    store.offer(forged.into());
    connect_and_settle(&mut pair);
    assert_eq!(stats(&mut pair).retried_automatically, 2);
    store.offer(genuine);
    connect_and_settle(&mut pair);
    let s = stats(&mut pair);
    assert_eq!((s.retried_automatically, s.new_tokens_accepted), (2, 1));
}

/// Disabled: no NEW_TOKEN frame is sent, and tokens are not honoured.
/// The Retry's token is not kept either (RFC 9000 §8.1.3: "The client MUST
/// NOT use the token provided in a Retry for future connections").
#[test]
fn disabled_new_tokens_are_neither_sent_nor_accepted() {
    let store = Arc::new(ScriptedStore::default());
    let pki = TestPki::with_cert_size(CERT_LEN);
    let mut pair = pair_with_pki(
        Seed::from_env_or(34),
        NewTokenConfig::default(),
        Some(store.clone()),
        pki.clone(),
    );
    retry_unvalidated(&mut pair);
    connect_and_settle(&mut pair);
    let genuine = store.last_received();
    let mut disabled = pki.server_config(TransportConfig::default());
    disabled.new_tokens = NewTokenConfig::disabled();
    pair.server()
        .endpoint
        .set_server_config(Some(Arc::new(disabled)));
    assert_treated_as_absent(&mut pair, genuine, &store);
    let s = stats(&mut pair);
    assert_eq!((s.new_tokens_issued, s.new_tokens_accepted), (1, 0));
    // The retried connection got no token: only the first one's is kept.
    assert_eq!(store.received.lock().unwrap().len(), 1);
}

/// NEW_TOKEN is retransmitted when the packet carrying it is lost (RFC
/// 9000 §13.3): the server's first two 1-RTT datagrams (HANDSHAKE_DONE and
/// NEW_TOKEN go in the first) are dropped; the server sends the frame
/// again and the client gets its token.
#[test]
fn lost_new_token_is_retransmitted() {
    for_each_seed(3, |seed| {
        let store = Arc::new(ScriptedStore::default());
        let mut pair = pair_with(seed, NewTokenConfig::default(), Some(store.clone()));
        pair.server().admission = Admission::Manual;
        pair.server().set_app(|ep: &mut Endpoint, now| {
            while let Some(id) = ep.poll_incoming().map(|i| i.id()) {
                let h = ep.accept(now, id).unwrap();
                ep.connection(h).unwrap().enable_sent_log_for_test();
            }
        });
        let dropped = Rc::new(RefCell::new(0));
        let d2 = dropped.clone();
        pair.net.set_filter(move |d| {
            let short_header = d.data[0] & 0x80 == 0;
            if d.src == SERVER_ADDR && short_header && *d2.borrow() < 2 {
                *d2.borrow_mut() += 1;
                return Verdict::Drop;
            }
            Verdict::Deliver
        });
        let handle = pair.connect();
        assert!(pair.run_handshake(handle, Duration::from_secs(10)));
        pair.net.run_for(Duration::from_secs(2));
        assert_eq!(store.received.lock().unwrap().len(), 1);
        let server = pair.server().endpoint.connection_handles()[0];
        let sent = pair
            .server()
            .conn(server)
            .sent_log_for_test()
            .iter()
            .filter(|p| {
                quiver_proto::frame::Iter::new(&p.payload)
                    .any(|f| matches!(f, Ok(quiver_proto::frame::Frame::NewToken(_))))
            })
            .count();
        assert_eq!(*dropped.borrow(), 2);
        assert!(sent >= 2, "NEW_TOKEN sent {sent} times");
    });
}

/// Where the second server of [`fleet`] listens.
const SERVER_B_ADDR: std::net::SocketAddr = loopback(3, 4433);

/// Two servers of a fleet configured with the same fleet secret and the
/// wall clock, sending a Retry to every client whose address is not
/// validated (retry threshold 0): A at `SERVER_ADDR` (the pair's server),
/// B at [`SERVER_B_ADDR`], recording used NEW_TOKEN tokens in
/// `reuse_logs[0]` and `[1]`. Returns the pair (its client keeps tokens in
/// `store`) and B's node.
fn fleet(
    seed: Seed,
    reuse_logs: [Arc<dyn TokenReuseLog>; 2],
    store: Option<Arc<dyn TokenStore>>,
) -> (Pair, NodeId) {
    let secret = [0x5a; 48];
    let pki = TestPki::new();
    let mut net = Network::new(seed);
    net.set_default_link(LinkConfig::default());
    let [log_a, log_b] = reuse_logs;
    let make_server = |rng_seed: u8, reuse_log| {
        let mut server = pki.server_config(TransportConfig::default());
        server.admission = AdmissionConfig {
            retry_threshold: 0,
            ..AdmissionConfig::default()
        };
        server.new_tokens = NewTokenConfig::default().with_reuse_log(reuse_log);
        let mut endpoint = Endpoint::new(
            Arc::new(EndpointConfig::with_fleet_key(&secret)),
            Some(Arc::new(server)),
            [rng_seed; 32],
        );
        // Both servers know the wall clock (the runtime sets it).
        endpoint.set_wall_clock(net.now(), Duration::from_secs(1_800_000_000));
        endpoint
    };
    let (a, b) = (make_server(1, log_a), make_server(2, log_b));
    let server_a = net.add_node(SERVER_ADDR, QuicNode::new(a));
    let server_b = net.add_node(SERVER_B_ADDR, QuicNode::new(b));
    let client_ep = Endpoint::new(Arc::new(EndpointConfig::new([7; 32])), None, [8; 32]);
    let client = net.add_node(CLIENT_ADDR, QuicNode::new(client_ep));
    let mut client_config = pki.client_config(TransportConfig::default());
    if let Some(store) = store {
        client_config.token_store = Some(store);
    }
    let pair = Pair {
        net,
        client,
        server: server_a,
        client_config,
        pki,
    };
    (pair, server_b)
}

/// A connection from the pair's client to the server at `addr`, through
/// its handshake and long enough for a NEW_TOKEN to arrive.
fn connect_to(pair: &mut Pair, addr: std::net::SocketAddr) -> ConnectionHandle {
    let now = pair.net.now();
    let config = pair.client_config.clone();
    let handle = pair
        .client()
        .endpoint
        .connect(now, &config, addr, "localhost")
        .unwrap();
    assert!(pair.run_handshake(handle, Duration::from_secs(10)));
    pair.net.run_for(Duration::from_millis(300));
    handle
}

fn node_stats(pair: &mut Pair, node: NodeId) -> EndpointStats {
    pair.net.node_mut::<QuicNode>(node).endpoint.stats()
}

/// Fleet-wide keys (issue 13): two servers configured with the same fleet
/// secret (and the wall clock) accept each other's NEW_TOKEN tokens, and
/// one recognises the other's connections in stateless resets (RFC 9000
/// §10.3.2).
#[test]
fn fleet_servers_share_tokens_and_resets() {
    let logs: [Arc<dyn TokenReuseLog>; 2] = [
        Arc::new(InMemoryTokenReuseLog::default()),
        Arc::new(InMemoryTokenReuseLog::default()),
    ];
    let (mut pair, server_b) = fleet(Seed::from_env_or(35), logs, None);
    let server_a = pair.server;
    // Connection 1 to A: a Retry (threshold 0), a NEW_TOKEN.
    let first = connect_to(&mut pair, SERVER_ADDR);
    assert_eq!(stats(&mut pair).retried_automatically, 1);
    // Connection 2 to B with A's token: no Retry from B.
    connect_to(&mut pair, SERVER_B_ADDR);
    let b_stats = node_stats(&mut pair, server_b);
    assert_eq!(
        (b_stats.new_tokens_accepted, b_stats.retried_automatically),
        (1, 0)
    );
    // A goes away and B takes over its address: B answers connection 1's
    // next packet with a stateless reset the client recognises.
    pair.net.rebind(server_a, loopback(4, 4433));
    pair.net.run_for(Duration::from_millis(1));
    pair.net.rebind(server_b, SERVER_ADDR);
    pair.client_conn(first)
        .send_datagram(Bytes::from_static(b"anyone?"))
        .unwrap();
    let client_id = pair.client;
    pair.net.run_while(|net| {
        net.node_mut::<QuicNode>(client_id)
            .conn(first)
            .close_reason()
            .is_none()
    });
    assert_eq!(
        pair.client_conn(first).close_reason(),
        Some(&ConnectionError::Reset)
    );
}

/// One NEW_TOKEN token used at A, then replayed at B. Returns B's stats
/// after the replay, which completes either way.
fn replay_across_fleet(seed: Seed, reuse_logs: [Arc<dyn TokenReuseLog>; 2]) -> EndpointStats {
    let store = Arc::new(ScriptedStore::default());
    let (mut pair, server_b) = fleet(seed, reuse_logs, Some(store.clone()));
    connect_to(&mut pair, SERVER_ADDR);
    let token = store.last_received();
    // First use, at A: accepted, no Retry.
    store.offer(token.clone());
    connect_to(&mut pair, SERVER_ADDR);
    let a = stats(&mut pair);
    assert_eq!((a.new_tokens_accepted, a.retried_automatically), (1, 1));
    // The same token at B.
    store.offer(token);
    connect_to(&mut pair, SERVER_B_ADDR);
    node_stats(&mut pair, server_b)
}

/// RFC 9000 §8.1.4 across a fleet: servers sharing one reuse log accept a
/// NEW_TOKEN token once between them. Replayed at B after its use at A, it
/// counts as reused and the client is validated by a Retry (§8.1.3: as if
/// it had no token), and its connection completes.
#[test]
fn fleet_sharing_a_reuse_log_accepts_a_token_once() {
    for_each_seed(3, |seed| {
        let shared: Arc<dyn TokenReuseLog> = Arc::new(InMemoryTokenReuseLog::default());
        let b = replay_across_fleet(seed, [shared.clone(), shared]);
        assert_eq!(
            (
                b.new_tokens_reused,
                b.new_tokens_accepted,
                b.retried_automatically
            ),
            (1, 0, 1),
            "{b:?}"
        );
    });
}

/// The default: each server's configuration has a reuse log of its own, so
/// a token used at A still validates the client at B (once per server).
#[test]
fn fleet_with_own_reuse_logs_accepts_a_token_once_per_server() {
    for_each_seed(3, |seed| {
        let own = || -> Arc<dyn TokenReuseLog> { NewTokenConfig::default().reuse_log };
        let b = replay_across_fleet(seed, [own(), own()]);
        assert_eq!(
            (
                b.new_tokens_reused,
                b.new_tokens_accepted,
                b.retried_automatically
            ),
            (0, 1, 0),
            "{b:?}"
        );
    });
}
