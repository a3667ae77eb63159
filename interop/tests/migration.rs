//! Connection migration against quinn (RFC 9000 §9): a client that moves to
//! a new UDP socket (another port, or another address) in the middle of a
//! download, in both directions. quinn's client moves with
//! `quinn::Endpoint::rebind`, quiver's with `quiver::Endpoint::rebind`; the
//! download must complete intact and the server must follow the client to
//! its new address.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{init_tracing, quinn_to_quiver, quiver_to_quinn};
use quiver_interop::{Pki, bounded, pattern};

/// Several megabytes, so that the move happens with data in flight.
const SIZE: usize = 6 * 1024 * 1024;
/// The client moves once this much has arrived.
const MOVE_AT: usize = 2 * 1024 * 1024;

fn socket_on(ip: [u8; 4]) -> std::net::UdpSocket {
    std::net::UdpSocket::bind(SocketAddr::from((ip, 0))).unwrap()
}

/// The client of the pair `$t` downloads `SIZE` bytes of pattern `$seed`
/// and rebinds to a socket on `$ip` after `MOVE_AT` bytes; checks the
/// download and the move, and evaluates to the client's new address. A
/// macro, not a function: `$t` is a pair of either direction, and quinn
/// and quiver name these methods alike.
macro_rules! download_and_rebind {
    ($t:expr, $ip:expr, $seed:expr) => {{
        let (t, ip, seed) = (&$t, $ip, $seed);
        let server = t.server.clone();
        let serve = tokio::spawn(async move {
            let (mut send, mut recv) = server.accept_bi().await.unwrap();
            recv.read_to_end(64).await.unwrap();
            send.write_all(&pattern(SIZE, seed)).await.unwrap();
            send.finish().unwrap();
            let _ = send.stopped().await;
        });
        let client_ep = &t.endpoints.0;
        let before = client_ep.local_addr().unwrap();
        let (mut send, mut recv) = t.client.open_bi().await.unwrap();
        send.write_all(b"GET /").await.unwrap();
        send.finish().unwrap();
        let mut got = Vec::with_capacity(SIZE);
        let mut buf = vec![0u8; 64 * 1024];
        let mut moved = None;
        while let Some(n) = recv.read(&mut buf).await.unwrap() {
            got.extend_from_slice(&buf[..n]);
            if moved.is_none() && got.len() >= MOVE_AT {
                client_ep.rebind(socket_on(ip)).unwrap();
                moved = Some(got.len());
            }
        }
        let moved = moved.expect("rebound mid-download");
        assert!(moved < SIZE, "moved with {moved} of {SIZE} bytes");
        assert_eq!(got.len(), SIZE);
        assert!(got == pattern(SIZE, seed), "download corrupted");
        serve.await.unwrap();
        let after = client_ep.local_addr().unwrap();
        assert_ne!(after, before);
        assert_eq!(after.ip(), IpAddr::from(ip));
        after
    }};
}

/// A quinn client downloads from a quiver server and rebinds to a socket
/// on `ip` after `MOVE_AT` bytes.
async fn quinn_client_rebinds(ip: [u8; 4]) {
    let pki = Pki::new();
    let t = quinn_to_quiver(&pki, false).await;
    let after = download_and_rebind!(t, ip, 7);
    assert_eq!(t.server.remote_address(), after, "quiver follows quinn");
}

/// A quiver client downloads from a quinn server and rebinds to a socket
/// on `ip` after `MOVE_AT` bytes.
async fn quiver_client_rebinds(ip: [u8; 4]) {
    let pki = Pki::new();
    let t = quiver_to_quinn(&pki, false).await;
    let after = download_and_rebind!(t, ip, 9);
    assert_eq!(t.client.stats().migrations, 1);
    assert_eq!(t.server.remote_address(), after, "quinn follows quiver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_rebinds_to_a_new_port_mid_download() {
    init_tracing();
    bounded(quinn_client_rebinds([127, 0, 0, 1])).await;
}

/// A quinn client moves to a new address (127.0.0.2) mid-download. The
/// server probes the old path and then the new one; quinn keeps one
/// PATH_RESPONSE per peer address (the later challenge's), so the new
/// path's challenge goes last, and no PMTU probe spends the new path's
/// anti-amplification budget before it is validated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_client_rebinds_to_a_new_address_mid_download() {
    init_tracing();
    bounded(quinn_client_rebinds([127, 0, 0, 2])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_rebinds_to_a_new_port_mid_download() {
    init_tracing();
    bounded(quiver_client_rebinds([127, 0, 0, 1])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_rebinds_to_a_new_address_mid_download() {
    init_tracing();
    bounded(quiver_client_rebinds([127, 0, 0, 2])).await;
}
