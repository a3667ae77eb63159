//! A server's preferred address (RFC 9000 §9.6) on the runtime: the
//! endpoint receives on a second socket, advertises its address, and
//! answers each client from the socket it last reached; quiver against
//! quiver over loopback.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Pki, bounded, init_tracing};
use quiver::{Connection, Endpoint, EndpointConfig, TransportConfig};

const SIZE: usize = 8 << 20;

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Serves `SIZE` bytes on each bidirectional stream the client opens.
fn serve_downloads(conn: Connection) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            recv.read_to_end(64).await.unwrap();
            send.write_all(&pattern(SIZE)).await.unwrap();
            send.finish().unwrap();
            let _ = send.stopped().await;
        }
    })
}

/// Downloads `SIZE` bytes on a new stream.
async fn download(conn: &Connection) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(b"GET").await.unwrap();
    send.finish().unwrap();
    recv.read_to_end(SIZE + 1).await.unwrap()
}

/// Connects a client with `migrate` to `server` at `to`; returns
/// (client endpoint, client side, server side).
async fn connect(
    pki: &Pki,
    server: &Endpoint,
    to: SocketAddr,
    migrate: bool,
) -> (Endpoint, Connection, Connection) {
    let mut client = Endpoint::client(addr("127.0.0.1:0")).unwrap();
    client.set_default_client_config(pki.client(TransportConfig {
        migrate_to_preferred_address: migrate,
        ..TransportConfig::default()
    }));
    let (c, s) = tokio::join!(client.connect(to, "localhost").unwrap(), async {
        server.accept().await.expect("incoming").await
    });
    (
        client,
        c.expect("client connects"),
        s.expect("server accepts"),
    )
}

/// A download through a server with a preferred address on another IP:
/// the client ends on it (RFC 9000 §9.6.2) with every byte intact, or,
/// with `migrate_to_preferred_address: false`, stays where it connected.
async fn download_from_server_with_preferred_address(migrate: bool) {
    let pki = Pki::new();
    let server = Endpoint::server_with_preferred_address(
        pki.server(TransportConfig::default()),
        addr("127.0.0.1:0"),
        addr("127.0.0.2:0"),
    )
    .unwrap();
    let original = server.local_addr().unwrap();
    let preferred = server.preferred_addresses().unwrap();
    assert_eq!(preferred.len(), 1);
    let preferred = preferred[0];
    assert_eq!(preferred.ip(), std::net::IpAddr::from([127, 0, 0, 2]));
    assert_ne!(preferred.port(), 0, "the port the system picked");

    let (client, c, s) = connect(&pki, &server, original, migrate).await;
    let serve = serve_downloads(s.clone());
    for _ in 0..2 {
        let got = download(&c).await;
        assert_eq!(got.len(), SIZE);
        assert!(got == pattern(SIZE), "download corrupted");
    }
    if migrate {
        assert_eq!(c.remote_address(), preferred, "the client moved");
        assert_eq!(c.stats().migrations, 1);
    } else {
        assert_eq!(c.remote_address(), original, "the client stayed");
        assert_eq!(c.stats().migrations, 0);
    }
    // The server sees the client at one address throughout.
    assert_eq!(s.remote_address(), client.local_addr().unwrap());
    c.close(0u32.into(), b"done");
    serve.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_moves_to_the_preferred_address() {
    init_tracing();
    bounded(download_from_server_with_preferred_address(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_told_not_to_migrate_stays() {
    init_tracing();
    bounded(download_from_server_with_preferred_address(false)).await;
}

/// Two UDP sockets `front` in front of a server's two addresses `back`,
/// forwarding both through one `upstream` socket (so the server sees the
/// client at one address, as without the relay), and answers from
/// `back[i]` out of `front[i]`; counts the bytes each back address sent.
struct Relay {
    front: [SocketAddr; 2],
    from_back: Arc<[AtomicU64; 2]>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn new(back: [SocketAddr; 2]) -> Self {
        let bind = || tokio::net::UdpSocket::bind("127.0.0.1:0");
        let front = [
            Arc::new(bind().await.unwrap()),
            Arc::new(bind().await.unwrap()),
        ];
        let upstream = Arc::new(bind().await.unwrap());
        let client = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        let from_back = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let mut tasks = Vec::new();
        for (i, socket) in front.iter().enumerate() {
            let (socket, upstream, client) = (socket.clone(), upstream.clone(), client.clone());
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                    *client.lock().unwrap() = Some(from);
                    let _ = upstream.send_to(&buf[..n], back[i]).await;
                }
            }));
        }
        let (sockets, counts) = (front.clone(), from_back.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = upstream.recv_from(&mut buf).await {
                let Some(i) = back.iter().position(|b| *b == from) else {
                    continue;
                };
                counts[i].fetch_add(n as u64, Ordering::Relaxed);
                let to = *client.lock().unwrap();
                if let Some(to) = to {
                    let _ = sockets[i].send_to(&buf[..n], to).await;
                }
            }
        }));
        Self {
            front: [
                front[0].local_addr().unwrap(),
                front[1].local_addr().unwrap(),
            ],
            from_back,
            tasks,
        }
    }

    /// Bytes sent by each back address so far.
    fn counts(&self) -> [u64; 2] {
        [
            self.from_back[0].load(Ordering::Relaxed),
            self.from_back[1].load(Ordering::Relaxed),
        ]
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// The server answers a client that moved from its preferred socket, not
/// only reaches it there: through a relay that tells the two server
/// sockets apart, nearly all of a download after the move comes from the
/// preferred one. The preferred address advertised is the relay's (an
/// address that reaches the socket another way, as a NAT's would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_answers_from_the_preferred_socket() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let socket = quiver::udp::UdpSocket::bind(addr("127.0.0.1:0")).unwrap();
        let preferred = quiver::udp::UdpSocket::bind(addr("127.0.0.1:0")).unwrap();
        let back = [
            socket.local_addr().unwrap(),
            preferred.local_addr().unwrap(),
        ];
        let relay = Relay::new(back).await;
        let SocketAddr::V4(advertised) = relay.front[1] else {
            unreachable!()
        };
        let mut config = EndpointConfig::new([7; 32]);
        config.preferred_address_v4 = Some(advertised);
        let server = Endpoint::with_preferred_addresses(
            config,
            pki.server(TransportConfig::default()),
            socket,
            vec![preferred],
        )
        .unwrap();
        assert_eq!(server.preferred_addresses().unwrap(), [back[1]]);

        let (_client, c, s) = connect(&pki, &server, relay.front[0], true).await;
        let serve = serve_downloads(s);
        // The first download sees the move (right after the handshake is
        // confirmed); the second runs wholly after it.
        let got = download(&c).await;
        assert!(got == pattern(SIZE), "download corrupted");
        assert_eq!(c.remote_address(), relay.front[1], "the client moved");
        let before = relay.counts();
        let got = download(&c).await;
        assert!(got == pattern(SIZE), "download corrupted");
        let after = relay.counts();
        let (original, preferred) = (after[0] - before[0], after[1] - before[1]);
        assert!(
            preferred >= SIZE as u64 && original < 64 * 1024,
            "after the move: {original} bytes from the original socket, \
             {preferred} from the preferred one"
        );
        c.close(0u32.into(), b"done");
        serve.abort();
    })
    .await;
}

/// Preferred sockets must name an address a client can send to.
#[tokio::test]
async fn preferred_socket_must_be_usable() {
    let pki = Pki::new();
    let bind = |a: &str| quiver::udp::UdpSocket::bind(addr(a)).unwrap();
    let server = || pki.server(TransportConfig::default());
    let config = || EndpointConfig::new([1; 32]);
    let unspecified = Endpoint::with_preferred_addresses(
        config(),
        server(),
        bind("127.0.0.1:0"),
        vec![bind("0.0.0.0:0")],
    );
    assert_eq!(
        unspecified.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let two_v4 = Endpoint::with_preferred_addresses(
        config(),
        server(),
        bind("127.0.0.1:0"),
        vec![bind("127.0.0.2:0"), bind("127.0.0.3:0")],
    );
    assert_eq!(two_v4.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}
