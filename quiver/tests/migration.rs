//! `Endpoint::rebind` (the client's active migration, RFC 9000 §9) and
//! answers from the address the peer used on a socket bound to a wildcard
//! address (`IP_PKTINFO`), quiver against quiver over loopback.

mod common;

use std::net::SocketAddr;

use common::{Pki, bounded, connect, init_tracing, pair};
use quiver::{Connection, Endpoint, TransportConfig};

const SIZE: usize = 8 << 20;

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// Serves `SIZE` bytes on the first bidirectional stream of `conn`.
fn serve_download(conn: Connection) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        recv.read_to_end(64).await.unwrap();
        send.write_all(&pattern(SIZE)).await.unwrap();
        send.finish().unwrap();
        let _ = send.stopped().await;
    })
}

/// Downloads `SIZE` bytes, calling `rebind` with the byte count each time
/// another `every` bytes arrived; returns the bytes.
async fn download(conn: &Connection, every: usize, mut rebind: impl FnMut(usize)) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(b"GET").await.unwrap();
    send.finish().unwrap();
    let mut got = Vec::with_capacity(SIZE);
    let mut buf = vec![0u8; 64 * 1024];
    let mut next = every;
    while let Some(n) = recv.read(&mut buf).await.unwrap() {
        got.extend_from_slice(&buf[..n]);
        if got.len() >= next && got.len() < SIZE {
            next += every;
            rebind(got.len());
        }
    }
    got
}

fn socket_on(ip: [u8; 4]) -> std::net::UdpSocket {
    std::net::UdpSocket::bind(SocketAddr::from((ip, 0))).unwrap()
}

/// Rebinds `client` mid-download to sockets on `ips` in turn; checks the
/// download and that the server follows to the last address.
async fn rebind_during_download(ips: &[[u8; 4]]) {
    let (server, client) = pair();
    let (c, s) = connect(&server, &client).await;
    let serve = serve_download(s.clone());
    let mut moves = ips.iter();
    let mut last = client.local_addr().unwrap();
    let got = download(&c, SIZE / (ips.len() + 1), |_| {
        if let Some(&ip) = moves.next() {
            client.rebind(socket_on(ip)).unwrap();
            let now = client.local_addr().unwrap();
            assert_ne!(now, last);
            assert_eq!(now.ip(), std::net::IpAddr::from(ip));
            last = now;
        }
    })
    .await;
    assert!(moves.next().is_none(), "every rebind happened mid-download");
    assert_eq!(got.len(), SIZE);
    assert!(got == pattern(SIZE), "download corrupted");
    serve.await.unwrap();
    assert_eq!(c.stats().migrations, ips.len() as u64);
    assert_eq!(s.remote_address(), last, "the server follows the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebind_to_a_new_port_mid_download() {
    init_tracing();
    bounded(rebind_during_download(&[[127, 0, 0, 1]])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebind_to_a_new_address_mid_download() {
    init_tracing();
    bounded(rebind_during_download(&[[127, 0, 0, 2]])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebind_repeatedly_mid_download() {
    init_tracing();
    bounded(rebind_during_download(&[
        [127, 0, 0, 2],
        [127, 0, 0, 2],
        [127, 0, 0, 3],
        [127, 0, 0, 1],
    ]))
    .await;
}

/// Rebinding before the handshake is confirmed does not migrate (RFC 9000
/// §9) but does not fail either: a rebind right after `connect`, before
/// the first flight, leaves the connection to carry on from the new
/// socket.
#[tokio::test]
async fn rebind_before_the_handshake_does_not_migrate() {
    init_tracing();
    bounded(async {
        let (server, client) = pair();
        let addr = server.local_addr().unwrap();
        let connecting = client.connect(addr, "localhost").unwrap();
        client.rebind(socket_on([127, 0, 0, 1])).unwrap();
        let new = client.local_addr().unwrap();
        let (c, s) = tokio::join!(connecting, async { server.accept().await.unwrap().await });
        let (c, s) = (c.unwrap(), s.unwrap());
        assert_eq!(c.stats().migrations, 0);
        assert_eq!(s.remote_address(), new);
    })
    .await;
}

/// A server bound to 0.0.0.0 answers from the address the client wrote
/// to (127.0.0.2 here, where the kernel would pick 127.0.0.1 by route):
/// a quiver client discards packets from any other address.
#[tokio::test]
async fn wildcard_server_answers_from_the_address_used() {
    init_tracing();
    bounded(async {
        let pki = Pki::new();
        let server = Endpoint::server(
            pki.server(TransportConfig::default()),
            "0.0.0.0:0".parse().unwrap(),
        )
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let mut client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(pki.client(TransportConfig::default()));
        let to = SocketAddr::from(([127, 0, 0, 2], port));
        let (c, s) = tokio::join!(client.connect(to, "localhost").unwrap(), async {
            server.accept().await.unwrap().await
        });
        let (c, s) = (c.expect("client connects"), s.expect("server accepts"));
        assert_eq!(c.remote_address(), to);
        let serve = serve_download(s);
        let got = download(&c, usize::MAX, |_| {}).await;
        assert!(got == pattern(SIZE), "download corrupted");
        serve.await.unwrap();
    })
    .await;
}

/// `local_addr` follows the socket, and a second endpoint keeps its own.
#[tokio::test]
async fn local_addr_reflects_the_new_socket() {
    let (server, client) = pair();
    let (c, _s) = connect(&server, &client).await;
    let socket = socket_on([127, 0, 0, 4]);
    let want = socket.local_addr().unwrap();
    client.rebind(socket).unwrap();
    assert_eq!(client.local_addr().unwrap(), want);
    assert_ne!(server.local_addr().unwrap(), want);
    drop(c);
}
