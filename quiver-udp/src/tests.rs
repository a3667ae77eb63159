//! Loopback tests of the socket paths. They make system calls, so Miri
//! skips them.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::time::Duration;

use crate::{DEFAULT_SOCKET_BUFFER, EcnCodepoint, Options, RecvMeta, Transmit, UdpSocket};

const V4: &str = "127.0.0.1:0";
const V6: &str = "[::1]:0";

fn bind(addr: &str, options: Options) -> Option<UdpSocket> {
    // IPv6 may be missing on a test machine: skip rather than fail.
    UdpSocket::bind_with(addr.parse().unwrap(), options).ok()
}

/// Receives until `count` datagrams arrived; returns them with their ECN.
async fn recv_datagrams(
    socket: &UdpSocket,
    count: usize,
) -> Vec<(SocketAddr, Vec<u8>, Option<EcnCodepoint>)> {
    let mut storage = vec![0u8; 8 * 65536];
    let mut out = Vec::new();
    while out.len() < count {
        let mut meta = [RecvMeta::default(); 8];
        let mut bufs: Vec<IoSliceMut<'_>> =
            storage.chunks_mut(65536).map(IoSliceMut::new).collect();
        let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut bufs, &mut meta))
            .await
            .expect("datagrams within 5 s")
            .unwrap();
        for (m, buf) in meta[..n].iter().zip(&bufs) {
            for d in buf[..m.len].chunks(m.stride.max(1)) {
                out.push((m.addr, d.to_vec(), m.ecn));
            }
        }
    }
    out
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

async fn batch_round_trip(addr: &str, options: Options) {
    let (Some(a), Some(b)) = (bind(addr, options), bind(addr, options)) else {
        return;
    };
    let to = b.local_addr().unwrap();
    let datagrams: Vec<Vec<u8>> = (0..40).map(|i| payload(i, 100 + i)).collect();
    let transmits: Vec<Transmit<'_>> = datagrams.iter().map(|d| Transmit::new(to, d)).collect();
    let mut sent = 0;
    while sent < transmits.len() {
        sent += a.send(&transmits[sent..]).await.unwrap();
    }
    let got = recv_datagrams(&b, datagrams.len()).await;
    let from = a.local_addr().unwrap();
    for ((addr, data, _), want) in got.iter().zip(&datagrams) {
        assert_eq!(*addr, from);
        assert_eq!(data, want);
    }
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn batch_ipv4() {
    batch_round_trip(V4, Options::default()).await;
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn batch_ipv6() {
    batch_round_trip(V6, Options::default()).await;
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn portable_ipv4_and_ipv6() {
    batch_round_trip(V4, Options::portable()).await;
    batch_round_trip(V6, Options::portable()).await;
}

async fn gso_run(options: Options, receiver: Options) {
    let (Some(a), Some(b)) = (bind(V4, options), bind(V4, receiver)) else {
        return;
    };
    let to = b.local_addr().unwrap();
    // Ten datagrams of 1200 bytes and a short last one, as one transmit.
    let mut contents = Vec::new();
    for i in 0..10 {
        contents.extend(payload(i, 1200));
    }
    contents.extend(payload(10, 333));
    let t = Transmit {
        destination: to,
        ecn: None,
        contents: &contents,
        segment_size: Some(1200),
        src_ip: None,
    };
    assert_eq!(a.send(&[t]).await.unwrap(), 1);
    let got = recv_datagrams(&b, 11).await;
    assert_eq!(got.len(), 11);
    for (i, (_, data, _)) in got.iter().enumerate() {
        let len = if i == 10 { 333 } else { 1200 };
        assert_eq!(*data, payload(i, len), "datagram {i}");
    }
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn gso_send_is_split_into_datagrams() {
    gso_run(Options::default(), Options::default()).await;
    // Without GRO at the receiver, and without GSO at the sender (split in
    // user space), the same datagrams arrive.
    let no_gro = Options {
        gro: false,
        ..Options::default()
    };
    gso_run(Options::default(), no_gro).await;
    let no_gso = Options {
        gso: false,
        ..Options::default()
    };
    gso_run(no_gso, no_gro).await;
    gso_run(Options::portable(), Options::portable()).await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn linux_probes_offloads() {
    let s = bind(V4, Options::default()).unwrap();
    assert!(s.is_batched());
    // Every kernel this is meant to run on has GSO (4.18) and GRO (5.0);
    // the probe must at least not claim more than the kernel's limit.
    assert!(s.max_gso_segments() <= 64);
    let p = bind(V4, Options::portable()).unwrap();
    assert!(!p.is_batched());
    assert_eq!(p.max_gso_segments(), 1);
    assert_eq!(p.gro_segments(), 1);
}

async fn ecn_round_trip(addr: &str) {
    let (Some(a), Some(b)) = (
        bind(addr, Options::default()),
        bind(addr, Options::default()),
    ) else {
        return;
    };
    if !a.ecn() || !b.ecn() {
        return;
    }
    let to = b.local_addr().unwrap();
    for ecn in [EcnCodepoint::Ect0, EcnCodepoint::Ect1, EcnCodepoint::Ce] {
        let t = Transmit {
            ecn: Some(ecn),
            ..Transmit::new(to, b"ecn")
        };
        a.send(&[t]).await.unwrap();
        let got = recv_datagrams(&b, 1).await;
        assert_eq!(got[0].2, Some(ecn), "{addr}");
    }
    a.send(&[Transmit::new(to, b"not-ect")]).await.unwrap();
    assert_eq!(recv_datagrams(&b, 1).await[0].2, None);
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn ecn_codepoints_are_written_and_read() {
    ecn_round_trip(V4).await;
    ecn_round_trip(V6).await;
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn ipv4_peer_of_a_dual_stack_socket_is_reported_as_ipv4() {
    let Some(server) = bind("[::]:0", Options::default()) else {
        return;
    };
    let port = server.local_addr().unwrap().port();
    let client = bind(V4, Options::default()).unwrap();
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    client.send(&[Transmit::new(to, b"hi")]).await.unwrap();
    let got = recv_datagrams(&server, 1).await;
    assert_eq!(got[0].0, client.local_addr().unwrap());
    // And the reply to that IPv4 address goes out of the IPv6 socket.
    server
        .send(&[Transmit::new(got[0].0, b"hello")])
        .await
        .unwrap();
    assert_eq!(recv_datagrams(&client, 1).await[0].1, b"hello");
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn send_error_concerns_the_first_transmit_only() {
    let a = bind(V4, Options::default()).unwrap();
    let b = bind(V4, Options::default()).unwrap();
    // An IPv6 destination on an IPv4 socket fails at once.
    let bad: SocketAddr = "[::1]:9".parse().unwrap();
    let good = b.local_addr().unwrap();
    let err = a.send(&[Transmit::new(bad, b"x")]).await;
    assert!(err.is_err());
    let n = a
        .send(&[Transmit::new(good, b"1"), Transmit::new(bad, b"2")])
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(recv_datagrams(&b, 1).await[0].1, b"1");
}

/// Receives one datagram; returns its description and bytes.
async fn recv_one(socket: &UdpSocket) -> (RecvMeta, Vec<u8>) {
    let mut buf = vec![0u8; 65536];
    let mut meta = [RecvMeta::default()];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        socket.recv(&mut [IoSliceMut::new(&mut buf)], &mut meta),
    )
    .await
    .expect("a datagram within 5 s")
    .unwrap();
    assert_eq!(n, 1);
    (meta[0], buf[..meta[0].len].to_vec())
}

/// A socket bound to `wildcard` learns which of its addresses each
/// datagram was sent to, and answers from the one asked for (without
/// `src_ip` the kernel picks by route, here 127.0.0.1 / ::1).
async fn wildcard_answers_from_the_address_used(wildcard: &str, client: &str, alias: &str) {
    let (Some(server), Some(client)) = (
        bind(wildcard, Options::default()),
        bind(client, Options::default()),
    ) else {
        return;
    };
    if !cfg!(target_os = "linux") {
        assert!(!server.pktinfo());
        return;
    }
    assert!(server.pktinfo(), "Linux reports destination addresses");
    let alias: std::net::IpAddr = alias.parse().unwrap();
    let to = SocketAddr::new(alias, server.local_addr().unwrap().port());
    client.send(&[Transmit::new(to, b"ping")]).await.unwrap();
    let (meta, data) = recv_one(&server).await;
    assert_eq!(data, b"ping");
    assert_eq!(meta.addr, client.local_addr().unwrap());
    assert_eq!(meta.dst_ip, Some(alias), "{wildcard}");
    let reply = Transmit {
        src_ip: meta.dst_ip,
        ..Transmit::new(meta.addr, b"pong")
    };
    server.send(&[reply]).await.unwrap();
    let (meta, data) = recv_one(&client).await;
    assert_eq!(data, b"pong");
    assert_eq!(meta.addr, to, "the reply comes from the address used");
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn pktinfo_ipv4_wildcard() {
    wildcard_answers_from_the_address_used("0.0.0.0:0", V4, "127.0.0.2").await;
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn pktinfo_dual_stack_wildcard_with_ipv4_peer() {
    wildcard_answers_from_the_address_used("[::]:0", V4, "127.0.0.3").await;
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn pktinfo_ipv6_wildcard() {
    // ::1 is the only IPv6 loopback address; this checks the IPv6
    // control messages rather than a choice between addresses.
    wildcard_answers_from_the_address_used("[::]:0", V6, "::1").await;
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn portable_path_reports_no_destination() {
    let a = bind(V4, Options::portable()).unwrap();
    let b = bind(V4, Options::portable()).unwrap();
    assert!(!b.pktinfo());
    a.send(&[Transmit::new(b.local_addr().unwrap(), b"x")])
        .await
        .unwrap();
    assert_eq!(recv_one(&b).await.0.dst_ip, None);
}

#[test]
fn ecn_bits() {
    for e in [EcnCodepoint::Ect0, EcnCodepoint::Ect1, EcnCodepoint::Ce] {
        assert_eq!(EcnCodepoint::from_bits(e.bits()), Some(e));
        assert_eq!(EcnCodepoint::from_bits(e.bits() | 0xfc), Some(e));
    }
    assert_eq!(EcnCodepoint::from_bits(0xfc), None);
}

#[test]
fn transmit_stride() {
    let to: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let t = Transmit::new(to, &[0; 100]);
    assert_eq!(t.stride(), 100);
    let t = Transmit {
        segment_size: Some(30),
        ..t
    };
    assert_eq!(t.stride(), 30);
    assert_eq!(t.contents.chunks(t.stride()).count(), 4);
}

/// A loopback port nobody listens on (bound, then closed).
#[cfg(target_os = "linux")]
fn closed_port(ip: &str) -> Option<SocketAddr> {
    let s = std::net::UdpSocket::bind(format!("{ip}:0")).ok()?;
    s.local_addr().ok()
}

/// A datagram to a closed port comes back as an ICMP port unreachable
/// naming that destination and quoting the datagram; the socket still
/// sends and receives afterwards. IPv4, IPv6, and IPv4 on a dual-stack
/// IPv6 socket.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn icmp_port_unreachable_is_reported() {
    use crate::{IcmpError, IcmpKind};
    for (local, remote_ip) in [(V4, "127.0.0.1"), (V6, "[::1]"), ("[::]:0", "127.0.0.1")] {
        let Some(socket) = bind(local, Options::default()) else {
            continue;
        };
        let Some(closed) = closed_port(remote_ip) else {
            continue;
        };
        assert!(socket.enable_icmp_errors(), "{local}");
        assert!(socket.icmp_errors());
        let payload = [0xc3u8, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0];
        socket
            .send(&[Transmit::new(closed, &payload)])
            .await
            .unwrap();
        let mut out = [IcmpError::default(); 4];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.recv_icmp_errors(&mut out))
            .await
            .expect("an ICMP report within 5 s")
            .unwrap();
        assert!(n >= 1);
        assert_eq!(out[0].destination, closed, "{local}");
        assert_eq!(out[0].kind, IcmpKind::PortUnreachable);
        assert_eq!(out[0].quoted(), &payload[..]);
        // A pending report fails at most a send, which is sent again:
        // the socket goes on working both ways.
        let peer = bind(local, Options::default()).unwrap();
        let to = SocketAddr::new(closed.ip(), peer.local_addr().unwrap().port());
        socket
            .send(&[Transmit::new(closed, b"again")])
            .await
            .unwrap();
        socket.send(&[Transmit::new(to, b"hello")]).await.unwrap();
        let (meta, data) = recv_one(&peer).await;
        assert_eq!(data, b"hello");
        assert_eq!(meta.addr.port(), socket.local_addr().unwrap().port());
    }
}

/// Without `enable_icmp_errors` nothing is reported (and the socket is
/// not disturbed); portable sockets cannot enable it.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn icmp_errors_are_off_by_default() {
    use crate::IcmpError;
    let socket = bind(V4, Options::default()).unwrap();
    assert!(!socket.icmp_errors());
    let closed = closed_port("127.0.0.1").unwrap();
    socket.send(&[Transmit::new(closed, b"x")]).await.unwrap();
    let mut out = [IcmpError::default(); 1];
    let waited = tokio::time::timeout(
        Duration::from_millis(200),
        socket.recv_icmp_errors(&mut out),
    )
    .await;
    assert!(waited.is_err());
    let portable = bind(V4, Options::portable()).unwrap();
    assert!(!portable.enable_icmp_errors());
}

/// `Options::recv_buffer` reaches the kernel (below Linux's default cap
/// of 208 KiB, so the result does not depend on `net.core.rmem_max`).
#[cfg(target_os = "linux")]
#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn socket_buffers_are_applied() {
    let with = |size| {
        let options = Options {
            recv_buffer: Some(size),
            send_buffer: Some(size),
            ..Options::default()
        };
        UdpSocket::bind_with("127.0.0.1:0".parse().unwrap(), options)
            .unwrap()
            .recv_buffer_size()
            .unwrap()
    };
    let (small, large) = (with(32 * 1024), with(128 * 1024));
    assert!(
        small >= 32 * 1024 && large >= 128 * 1024 && large > small,
        "{small} {large}"
    );
    assert_eq!(Options::default().recv_buffer, Some(DEFAULT_SOCKET_BUFFER));
}
