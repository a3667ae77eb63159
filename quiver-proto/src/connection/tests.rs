//! Smoke tests of two endpoints talking over a perfect in-memory link. The
//! real scenario tests run in the simulated network (quiver-sim).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::RootCertStore;
use rustls::pki_types::PrivateKeyDer;

use crate::crypto;
use crate::{ClientConfig, ConnectionHandle, Endpoint, EndpointConfig, Event, ServerConfig};

pub(crate) struct Pair {
    pub(crate) now: Instant,
    pub(crate) client: Endpoint,
    pub(crate) server: Endpoint,
    pub(crate) client_addr: SocketAddr,
    pub(crate) server_addr: SocketAddr,
    pub(crate) client_config: ClientConfig,
    server_config: Option<Arc<ServerConfig>>,
}

#[allow(clippy::disallowed_methods)]
pub(crate) fn epoch() -> Instant {
    // An arbitrary origin; time only advances virtually from here.
    Instant::now()
}

impl Pair {
    /// Both sides with the default key exchange (X25519MLKEM768 first: the
    /// client's ClientHello spans two Initial datagrams).
    pub(crate) fn new() -> Self {
        Self::with_client_groups(None)
    }

    /// A client that offers only X25519, so that its ClientHello fits one
    /// Initial datagram: for tests that carry the first datagram by hand.
    pub(crate) fn classical() -> Self {
        Self::with_client_groups(Some(&[crypto::KxGroup::X25519]))
    }

    fn with_client_groups(groups: Option<&[crypto::KxGroup]>) -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = ck.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let server_crypto = crypto::ServerConfig::with_single_cert(vec![cert.clone()], key)
            .alpn_protocols(vec![b"test".to_vec()])
            .build()
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let mut client_crypto = crypto::ClientConfig::with_root_certificates(roots)
            .alpn_protocols(vec![b"test".to_vec()]);
        if let Some(groups) = groups {
            client_crypto = client_crypto.kx_groups(groups);
        }
        let client_crypto = client_crypto.build().unwrap();
        let server_config = Arc::new(ServerConfig::new(Arc::new(server_crypto)));
        Self {
            server_config: Some(server_config.clone()),
            now: epoch(),
            client: Endpoint::new(Arc::new(EndpointConfig::new([1; 32])), None, [2; 32]),
            server: Endpoint::new(
                Arc::new(EndpointConfig::new([3; 32])),
                Some(server_config),
                [4; 32],
            ),
            client_addr: "127.0.0.1:5000".parse().unwrap(),
            server_addr: "127.0.0.1:4433".parse().unwrap(),
            client_config: ClientConfig::new(Arc::new(client_crypto)),
        }
    }

    /// A server configuration with the same certificate, for a second
    /// server endpoint.
    pub(crate) fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.server_config.clone()
    }

    pub(crate) fn connect(&mut self) -> ConnectionHandle {
        self.client
            .connect(self.now, &self.client_config, self.server_addr, "localhost")
            .unwrap()
    }

    /// Moves datagrams both ways until quiet; the server accepts everything.
    pub(crate) fn drive(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            let mut buf = Vec::new();
            // Several datagrams per transmit, as a GSO socket takes them.
            while let Some(t) = self.client.poll_transmit(self.now, 10, &mut buf) {
                let start = buf.len() - t.size;
                for d in t.datagrams(&buf[start..]) {
                    self.server
                        .handle(self.now, self.client_addr, &mut d.to_vec());
                }
                moved = true;
            }
            while let Some(id) = self.server.poll_incoming().map(|i| i.id()) {
                self.server.accept(self.now, id).unwrap();
            }
            buf.clear();
            while let Some(t) = self.server.poll_transmit(self.now, 10, &mut buf) {
                let start = buf.len() - t.size;
                for d in t.datagrams(&buf[start..]) {
                    self.client
                        .handle(self.now, self.server_addr, &mut d.to_vec());
                }
                moved = true;
            }
            if !moved {
                // Jump to the next timer, if soon.
                let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                match next {
                    Some(t) if t <= self.now + Duration::from_millis(100) => {
                        self.now = self.now.max(t);
                        self.client.handle_timeout(self.now);
                        self.server.handle_timeout(self.now);
                    }
                    _ => return,
                }
            }
        }
        panic!("no quiescence");
    }
}

#[test]
fn handshake_completes_over_a_perfect_link() {
    let mut pair = Pair::new();
    let client = pair.connect();
    pair.drive();
    let conn = pair.client.connection(client).unwrap();
    let mut events = Vec::new();
    while let Some(e) = conn.poll() {
        events.push(e);
    }
    assert!(events.contains(&Event::Connected), "{events:?}");
    assert!(events.contains(&Event::HandshakeConfirmed), "{events:?}");
    assert_eq!(conn.alpn_protocol(), Some(&b"test"[..]));
    let server = pair.server.connection_handles()[0];
    let sconn = pair.server.connection(server).unwrap();
    assert!(sconn.is_handshake_confirmed());
    assert_eq!(sconn.server_name(), Some("localhost"));
}

#[test]
fn stream_data_crosses_a_perfect_link() {
    use crate::frame::Dir;
    let mut pair = Pair::new();
    let client = pair.connect();
    pair.drive();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let conn = pair.client.connection(client).unwrap();
    let id = conn.open_stream(Dir::Bi).unwrap();
    let mut written = 0;
    let mut received = Vec::new();
    let server = pair.server.connection_handles()[0];
    let mut server_stream = None;
    let mut finished = false;
    for _ in 0..10_000 {
        let conn = pair.client.connection(client).unwrap();
        if written < data.len() {
            written += conn.write(id, &data[written..]).unwrap_or(0);
        } else if !finished {
            conn.finish(id).unwrap();
            finished = true;
        }
        pair.drive();
        let now = pair.now;
        let sconn = pair.server.connection(server).unwrap();
        if server_stream.is_none() {
            server_stream = sconn.accept_stream(Dir::Bi);
        }
        if let Some(sid) = server_stream {
            let mut buf = [0u8; 65536];
            loop {
                match sconn.read(now, sid, &mut buf) {
                    Ok(Some(n)) => received.extend_from_slice(&buf[..n]),
                    Ok(None) => {
                        assert_eq!(received.len(), data.len());
                        assert!(received == data);
                        return;
                    }
                    Err(_) => break,
                }
            }
        }
    }
    panic!(
        "transfer incomplete: {} of {} bytes",
        received.len(),
        data.len()
    );
}
