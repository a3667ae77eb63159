//! `Endpoint::handle_unreachable`: which ICMP reports close a connection
//! (a client's handshake that heard nothing yet, quoted DCID matching) and
//! which are ignored (RFC 9000 §14.2.1 validation, §21.2).

use std::net::SocketAddr;

use crate::connection::tests::Pair;
use crate::{ConnectionError, ConnectionHandle, Event, Unreachable};

/// The client's first datagram, taken from it, as an ICMP message would
/// quote it (the first bytes of the UDP payload); with `deliver`, the
/// server gets it too.
fn first_flight_quote(pair: &mut Pair, deliver: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    let t = pair.client.poll_transmit(pair.now, 1, &mut buf).unwrap();
    let mut d = buf[buf.len() - t.size..].to_vec();
    let quote = d[..d.len().min(64)].to_vec();
    if deliver {
        pair.server.handle(pair.now, pair.client_addr, &mut d);
    }
    quote
}

fn reason(pair: &Pair, h: ConnectionHandle) -> Option<ConnectionError> {
    pair.client
        .connection_ref(h)
        .unwrap()
        .close_reason()
        .cloned()
}

// RFC 9000 §14.2.1, §21.2: a port unreachable for the client's first
// flight, quoting its Destination Connection ID, ends the attempt at once.
#[test]
fn port_unreachable_ends_the_handshake_at_once() {
    for kind in [
        Unreachable::Port,
        Unreachable::Host,
        Unreachable::Prohibited,
    ] {
        let mut pair = Pair::new();
        let h = pair.connect();
        let quote = first_flight_quote(&mut pair, false);
        let closed = pair
            .client
            .handle_unreachable(pair.server_addr, kind, &quote);
        assert_eq!(closed, vec![h]);
        assert_eq!(reason(&pair, h), Some(ConnectionError::Unreachable(kind)));
        let conn = pair.client.connection(h).unwrap();
        assert!(conn.is_drained(), "nobody to close with: drained at once");
        let mut lost = None;
        while let Some(e) = conn.poll() {
            if let Event::ConnectionLost { reason } = e {
                lost = Some(reason);
            }
        }
        assert_eq!(lost, Some(ConnectionError::Unreachable(kind)));
        // Nothing more goes out for it.
        let mut buf = Vec::new();
        assert!(pair.client.poll_transmit(pair.now, 1, &mut buf).is_none());
    }
}

// Without a quote (a platform that does not give one), the address and
// port alone are matched.
#[test]
fn no_quote_matches_on_the_address() {
    let mut pair = Pair::new();
    let h = pair.connect();
    let closed = pair
        .client
        .handle_unreachable(pair.server_addr, Unreachable::Port, &[]);
    assert_eq!(closed, vec![h]);
}

// RFC 9000 §14.2.1: "ICMP message validation MUST include matching IP
// addresses and UDP ports [...] and, when possible, connection IDs"; "The
// endpoint SHOULD ignore all ICMP messages that fail validation."
#[test]
fn reports_failing_validation_are_ignored() {
    let mut pair = Pair::new();
    let h = pair.connect();
    let quote = first_flight_quote(&mut pair, true);
    // Another port, another host.
    let mut other = pair.server_addr;
    other.set_port(other.port().wrapping_add(1));
    let elsewhere: SocketAddr = "192.0.2.1:443".parse().unwrap();
    for addr in [other, elsewhere] {
        assert!(
            pair.client
                .handle_unreachable(addr, Unreachable::Port, &quote)
                .is_empty()
        );
    }
    // The quote names another connection ID, or is not a long header.
    let mut wrong_cid = quote.clone();
    wrong_cid[6] ^= 0xff;
    let mut short = quote.clone();
    short[0] &= 0x7f;
    for q in [wrong_cid, short] {
        assert!(
            pair.client
                .handle_unreachable(pair.server_addr, Unreachable::Port, &q)
                .is_empty()
        );
    }
    assert_eq!(reason(&pair, h), None);
    // The handshake still completes.
    pair.drive();
    assert!(
        pair.client
            .connection_ref(h)
            .unwrap()
            .is_handshake_complete()
    );
}

// RFC 9000 §21.2: once the peer has answered, unauthenticated ICMP is
// ignored (an off-path attacker must not be able to end a connection that
// works); so are reports on the server's side.
#[test]
fn ignored_once_the_peer_answered_and_by_servers() {
    let mut pair = Pair::new();
    let h = pair.connect();
    let quote = first_flight_quote(&mut pair, true);
    // The server's answer arrives: from here on the path demonstrably
    // works (the report may be forged, or about an older datagram).
    pair.drive();
    assert!(
        pair.client
            .connection_ref(h)
            .unwrap()
            .stats()
            .datagrams_received
            > 0
    );
    assert!(
        pair.client
            .handle_unreachable(pair.server_addr, Unreachable::Port, &quote)
            .is_empty()
    );
    assert_eq!(reason(&pair, h), None);
    let server_conn = pair.server.connection_handles()[0];
    assert!(
        pair.server
            .handle_unreachable(pair.client_addr, Unreachable::Port, &[])
            .is_empty()
    );
    assert_eq!(
        pair.server
            .connection_ref(server_conn)
            .unwrap()
            .close_reason(),
        None
    );
}
