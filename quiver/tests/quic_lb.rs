//! QUIC-LB connection IDs through the runtime (draft-ietf-quic-load-balancers-21
//! §5): every ID the server issues, in the handshake and in
//! NEW_CONNECTION_ID frames, routes to its server ID.

mod common;

use std::sync::{Arc, Mutex};

use common::{ALPN, LOCALHOST, Pki, bounded};
use quiver::proto::ConnectionId;
use quiver::proto::endpoint::CidGenerator;
use quiver::proto::quic_lb::{QuicLbCidGenerator, QuicLbConfig, QuicLbDecoder};
use quiver::{Endpoint, EndpointConfig, ServerConfig, TransportConfig};

/// Records every ID the wrapped generator issues.
#[derive(Debug)]
struct Recording {
    inner: QuicLbCidGenerator,
    issued: Arc<Mutex<Vec<ConnectionId>>>,
}

impl CidGenerator for Recording {
    fn generate(&mut self) -> ConnectionId {
        let cid = self.inner.generate();
        self.issued.lock().unwrap().push(cid);
        cid
    }
}

#[tokio::test]
async fn server_ids_route_to_the_server() {
    bounded(async {
        let pki = Pki::new();
        let key = [0x5a; 16];
        let server_id = [0x0a, 0x0b, 0x0c];
        for key in [None, Some(key)] {
            let lb = QuicLbConfig::new(2, server_id.len(), 8, key).unwrap();
            let mut endpoint_config = EndpointConfig::new([7; 32]);
            endpoint_config.local_cid_len = lb.cid_len();
            let server_config =
                ServerConfig::with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
                    .alpn_protocols(&[ALPN])
                    .build()
                    .unwrap();
            let socket = quiver::udp::UdpSocket::bind(LOCALHOST.parse().unwrap()).unwrap();
            let server =
                Endpoint::with_config(endpoint_config, Some(server_config), socket).unwrap();
            let issued = Arc::new(Mutex::new(Vec::new()));
            server.set_cid_generator(Box::new(Recording {
                inner: QuicLbCidGenerator::new(lb.clone(), &server_id, [1; 32]).unwrap(),
                issued: Arc::clone(&issued),
            }));

            let mut client = Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
            client.set_default_client_config(pki.client(TransportConfig::default()));
            let addr = server.local_addr().unwrap();
            let (c, s) = tokio::join!(client.connect(addr, "localhost").unwrap(), async {
                server.accept().await.unwrap().accept().await.unwrap()
            });
            let (c, s) = (c.unwrap(), s);
            // A round trip on a stream: the handshake is confirmed and the
            // server's NEW_CONNECTION_ID frames have gone out.
            let (mut send, mut recv) = c.open_bi().await.unwrap();
            send.write_all(b"ping").await.unwrap();
            send.finish().unwrap();
            let (mut s_send, mut s_recv) = s.accept_bi().await.unwrap();
            let got = s_recv.read_to_end(16).await.unwrap();
            s_send.write_all(&got).await.unwrap();
            s_send.finish().unwrap();
            assert_eq!(recv.read_to_end(16).await.unwrap(), b"ping");

            let issued = issued.lock().unwrap().clone();
            // The handshake's ID plus the NEW_CONNECTION_ID supply.
            assert!(issued.len() >= 2, "{} IDs issued", issued.len());
            let mut decoder = QuicLbDecoder::new();
            decoder.add(lb.clone());
            for cid in &issued {
                assert_eq!(cid.len(), lb.cid_len());
                assert_eq!(decoder.server_id(cid).unwrap(), server_id, "{cid:?}");
            }
            c.close(0u32.into(), b"");
        }
    })
    .await;
}
