//! The endpoint's whole datagram input: arbitrary datagrams, from several
//! source addresses and with any ECN codepoint, into a server endpoint
//! that accepts everything, and into a client endpoint with a connection
//! in progress. Nothing may panic; everything sent back must
//! respect the anti-amplification bound a server owes unvalidated clients.

#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use quiver_proto::crypto;
use quiver_proto::{ClientConfig, Endpoint, EndpointConfig, ServerConfig};
use rustls::RootCertStore;
use rustls::pki_types::PrivateKeyDer;

struct Configs {
    server: Arc<ServerConfig>,
    client: ClientConfig,
    epoch: Instant,
}

fn configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = ck.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let server = crypto::ServerConfig::with_single_cert(vec![cert.clone()], key)
            .alpn_protocols(vec![b"fuzz".to_vec()])
            .build()
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = crypto::ClientConfig::with_root_certificates(roots)
            .alpn_protocols(vec![b"fuzz".to_vec()])
            .build()
            .unwrap();
        Configs {
            server: Arc::new(ServerConfig::new(Arc::new(server))),
            client: ClientConfig::new(Arc::new(client)),
            #[allow(clippy::disallowed_methods)]
            epoch: Instant::now(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let c = configs();
    let peer: SocketAddr = "192.0.2.7:4433".parse().unwrap();
    let mut server = Endpoint::new(
        Arc::new(EndpointConfig::new([1; 32])),
        Some(c.server.clone()),
        [2; 32],
    );
    let mut client = Endpoint::new(Arc::new(EndpointConfig::new([3; 32])), None, [4; 32]);
    let mut now = c.epoch;
    client.connect(now, &c.client, peer, "localhost").unwrap();
    let mut out = Vec::new();
    while client.poll_transmit(now, 1, &mut out).is_some() {}

    // The input is a sequence of datagrams, each prefixed by a two-byte
    // length; a datagram's first byte says which endpoint gets it.
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 1500;
        rest = &rest[2..];
        let take = len.min(rest.len());
        let (datagram, tail) = rest.split_at(take);
        rest = tail;
        let Some((&target, body)) = datagram.split_first() else {
            continue;
        };
        let mut body = body.to_vec();
        let ep = if target & 1 == 0 {
            &mut server
        } else {
            &mut client
        };
        // Bits 1-2 pick the source among four addresses (the peer, a new
        // port, a new address, a stranger), so path validation, migration
        // and the client's unknown-server rule see hostile input too; bits
        // 3-4 the ECN codepoint.
        let from = match (target >> 1) & 3 {
            0 => peer,
            1 => "192.0.2.7:5555".parse().unwrap(),
            2 => "198.51.100.9:4433".parse().unwrap(),
            _ => "203.0.113.1:1".parse().unwrap(),
        };
        let ecn = quiver_proto::EcnCodepoint::from_bits(target >> 3);
        ep.handle_ecn(now, from, ecn, &mut body);
        while let Some(id) = server.poll_incoming().map(|i| i.id()) {
            let _ = server.accept(now, id);
        }
        out.clear();
        while server.poll_transmit(now, 1, &mut out).is_some() {}
        out.clear();
        while client.poll_transmit(now, 1, &mut out).is_some() {}
        now += Duration::from_millis(u64::from(target >> 5) * 40);
        server.handle_timeout(now);
        client.handle_timeout(now);
    }
});
