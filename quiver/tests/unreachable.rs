//! ICMP errors through the runtime: a client whose server's port is
//! closed fails with `ConnectionError::Unreachable` at once, instead of at
//! its handshake timeout (RFC 9000 §14.2.1, §21.2; Linux, where the socket
//! reports ICMP errors).

mod common;

use std::time::Duration;

use tokio::time::Instant;

use common::{LOCALHOST, Pki, bounded};
use quiver::{ConnectionError, Endpoint, TransportConfig, Unreachable};

#[cfg(target_os = "linux")]
#[tokio::test]
async fn closed_port_fails_the_handshake_at_once() {
    bounded(async {
        let pki = Pki::new();
        let closed = {
            let s = std::net::UdpSocket::bind(LOCALHOST).unwrap();
            s.local_addr().unwrap()
        };
        let mut client = Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        // The handshake timeout is far away: only the ICMP error can end
        // the attempt in time.
        client.set_default_client_config(pki.client(TransportConfig {
            max_idle_timeout: Some(Duration::from_secs(30)),
            ..TransportConfig::default()
        }));
        let start = Instant::now();
        let result = client.connect(closed, "localhost").unwrap().await;
        assert_eq!(
            result.err(),
            Some(ConnectionError::Unreachable(Unreachable::Port))
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        // The endpoint still works: a server on that port now answers.
        let config =
            quiver::ServerConfig::with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
                .alpn_protocols(&[common::ALPN])
                .build()
                .unwrap();
        let server = Endpoint::server(config, closed).unwrap();
        let (c, s) = tokio::join!(client.connect(closed, "localhost").unwrap(), async {
            server.accept().await.unwrap().accept().await
        });
        c.unwrap();
        s.unwrap();
    })
    .await;
}
