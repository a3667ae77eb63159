//! quiver against quiver over loopback UDP.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{ALPN, Pki, bounded, connect, init_tracing, pair, pair_with};
use quiver::udp::{Options, UdpSocket};
use quiver::{ConnectionError, Endpoint, ReadError, TransportConfig, VarInt, WriteError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn handshake_negotiates_alpn_and_counts_traffic() {
    init_tracing();
    bounded(async {
        let (server, client) = pair();
        let (c, s) = connect(&server, &client).await;
        assert_eq!(c.alpn_protocol().as_deref(), Some(ALPN));
        assert_eq!(s.alpn_protocol().as_deref(), Some(ALPN));
        assert_eq!(s.server_name().as_deref(), Some("localhost"));
        assert_eq!(c.remote_address(), server.local_addr().unwrap());
        assert_eq!(s.remote_address(), client.local_addr().unwrap());
        assert!(c.stats().datagrams_sent >= 1 && c.stats().datagrams_received >= 1);
        assert!(c.rtt() > Duration::ZERO);
        assert_eq!(c.side(), quiver::Side::Client);
        assert_eq!(s.side(), quiver::Side::Server);
    })
    .await;
}

async fn echo_server(server: Endpoint) {
    while let Some(incoming) = server.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    let data = recv.read_to_end(64 << 20).await.unwrap();
                    send.write_all(&data).await.unwrap();
                    send.finish().unwrap();
                    let _ = send.stopped().await;
                });
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_echo_of_four_megabytes() {
    init_tracing();
    bounded(async {
        let (server, client) = pair();
        let addr = server.local_addr().unwrap();
        tokio::spawn(echo_server(server));
        let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let data = pattern(4 << 20);
        let writer = {
            let data = data.clone();
            tokio::spawn(async move {
                send.write_all(&data).await.unwrap();
                send.finish().unwrap();
                assert_eq!(send.stopped().await.unwrap(), None);
            })
        };
        let echoed = recv.read_to_end(8 << 20).await.unwrap();
        writer.await.unwrap();
        assert_eq!(echoed.len(), data.len());
        assert!(echoed == data, "echo differs");
        // Further reads keep reporting the end.
        assert_eq!(recv.read(&mut [0; 8]).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn async_read_write_and_uni_streams() {
    bounded(async {
        let (server, client) = pair();
        let (c, s) = connect(&server, &client).await;
        let mut send = c.open_uni().await.unwrap();
        send.write_all(b"hello over a uni stream").await.unwrap();
        send.shutdown().await.unwrap();
        let mut recv = s.accept_uni().await.unwrap();
        let mut got = String::new();
        recv.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "hello over a uni stream");
        // A server-initiated bidirectional stream.
        let (mut s_send, _s_recv) = s.open_bi().await.unwrap();
        s_send.write_all(b"ping").await.unwrap();
        s_send.finish().unwrap();
        let (_c_send, mut c_recv) = c.accept_bi().await.unwrap();
        assert_eq!(c_recv.read_to_end(100).await.unwrap(), b"ping");
    })
    .await;
}

#[tokio::test]
async fn poll_send_buf_takes_every_piece_of_a_buf() {
    use bytes::Buf;
    use std::future::poll_fn;
    bounded(async {
        let (server, client) = pair();
        let (c, s) = connect(&server, &client).await;
        let mut send = c.open_uni().await.unwrap();
        // A frame header and its payload: one call takes both.
        let mut frame = Buf::chain(&b"\x00\x05"[..], &b"hello"[..]);
        let n = poll_fn(|cx| send.poll_send_buf(cx, &mut frame))
            .await
            .unwrap();
        assert_eq!(n, 7);
        assert!(!frame.has_remaining());
        // Pieces larger than the send buffer: partial calls, each
        // advancing the buf by what it took, and the bytes arrive in order.
        let (a, b) = (pattern(3_000_000), pattern(1_500_001));
        let mut big = Buf::chain(&a[..], &b[..]);
        let reader = tokio::spawn(async move {
            let mut recv = s.accept_uni().await.unwrap();
            recv.read_to_end(8 << 20).await.unwrap()
        });
        let mut calls = 0;
        while big.has_remaining() {
            let before = big.remaining();
            let n = poll_fn(|cx| send.poll_send_buf(cx, &mut big))
                .await
                .unwrap();
            assert_eq!(before - big.remaining(), n);
            calls += 1;
        }
        assert!(calls > 1, "a 4.5 MB buf went in one call");
        send.finish().unwrap();
        let got = reader.await.unwrap();
        assert_eq!(&got[..7], b"\x00\x05hello");
        assert!(got[7..7 + a.len()] == a[..] && got[7 + a.len()..] == b[..]);
    })
    .await;
}

#[tokio::test]
async fn read_to_end_enforces_its_limit() {
    bounded(async {
        let (server, client) = pair();
        let (c, s) = connect(&server, &client).await;
        let mut send = c.open_uni().await.unwrap();
        send.write_all(&[7; 1000]).await.unwrap();
        send.finish().unwrap();
        let mut recv = s.accept_uni().await.unwrap();
        assert!(matches!(
            recv.read_to_end(999).await,
            Err(quiver::ReadToEndError::TooLong)
        ));
    })
    .await;
}

#[tokio::test]
async fn datagrams_both_ways() {
    bounded(async {
        let (server, client) = pair();
        let (c, s) = connect(&server, &client).await;
        assert!(c.max_datagram_size().unwrap() >= 1000);
        c.send_datagram(Bytes::from_static(b"to server")).unwrap();
        assert_eq!(s.read_datagram().await.unwrap(), &b"to server"[..]);
        s.send_datagram(Bytes::from_static(b"to client")).unwrap();
        assert_eq!(c.read_datagram().await.unwrap(), &b"to client"[..]);
        let too_big = Bytes::from(vec![0; 2000]);
        assert!(matches!(
            c.send_datagram(too_big),
            Err(quiver::SendDatagramError::TooLarge { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn close_code_and_reason_reach_the_peer() {
    bounded(async {
        let (server, client) = pair();
        let (c, s) = connect(&server, &client).await;
        let (_send, mut recv) = s.open_bi().await.unwrap();
        c.close(VarInt::from_u32(42), b"bye");
        let expected = ConnectionError::ApplicationClosed {
            code: VarInt::from_u32(42),
            reason: Bytes::from_static(b"bye"),
        };
        assert_eq!(s.closed().await, expected);
        // Already closed: immediate, and the same reason everywhere.
        assert_eq!(s.closed().await, expected);
        assert_eq!(s.close_reason(), Some(expected.clone()));
        assert_eq!(
            recv.read(&mut [0; 10]).await,
            Err(ReadError::ConnectionLost(expected.clone()))
        );
        assert_eq!(c.closed().await, ConnectionError::LocallyClosed);
        assert!(matches!(
            c.open_bi().await,
            Err(ConnectionError::LocallyClosed)
        ));
        client.wait_idle().await;
        server.wait_idle().await;
        assert_eq!(client.open_connections(), 0);
        assert_eq!(server.open_connections(), 0);
    })
    .await;
}

#[tokio::test]
async fn dropping_the_last_handle_closes_with_code_zero() {
    bounded(async {
        let (server, client) = pair();
        let (c, s) = connect(&server, &client).await;
        let c2 = c.clone();
        drop(c);
        // A clone still holds the connection open.
        s.send_datagram(Bytes::from_static(b"still there?"))
            .unwrap();
        assert_eq!(c2.read_datagram().await.unwrap(), &b"still there?"[..]);
        // A stream keeps it open too.
        let mut send = c2.open_uni().await.unwrap();
        drop(c2);
        send.write_all(b"from an orphaned stream").await.unwrap();
        send.finish().unwrap();
        let mut recv = s.accept_uni().await.unwrap();
        assert_eq!(
            recv.read_to_end(100).await.unwrap(),
            b"from an orphaned stream"
        );
        // Like quinn, closing does not wait for unacknowledged data: wait
        // for the acknowledgement before dropping the last handle.
        assert_eq!(send.stopped().await.unwrap(), None);
        drop(send);
        assert_eq!(
            s.closed().await,
            ConnectionError::ApplicationClosed {
                code: VarInt::from_u32(0),
                reason: Bytes::new()
            }
        );
        client.wait_idle().await;
        assert_eq!(client.open_connections(), 0);
    })
    .await;
}

#[tokio::test]
async fn dropping_an_endpoint_keeps_its_connections_driven() {
    bounded(async {
        let (server, client) = pair();
        let (c, s) = connect(&server, &client).await;
        drop(client);
        c.send_datagram(Bytes::from_static(b"alive")).unwrap();
        assert_eq!(s.read_datagram().await.unwrap(), &b"alive"[..]);
    })
    .await;
}

#[tokio::test]
async fn reset_and_stop_are_seen_with_their_codes() {
    bounded(async {
        let (server, client) = pair();
        let (c, s) = connect(&server, &client).await;
        // Reset: the reader gets the code.
        let mut send = c.open_uni().await.unwrap();
        send.write_all(b"partial").await.unwrap();
        send.reset(VarInt::from_u32(7)).unwrap();
        let mut recv = s.accept_uni().await.unwrap();
        let r = recv.read_to_end(1 << 20).await;
        assert_eq!(
            r,
            Err(quiver::ReadToEndError::Read(ReadError::Reset(
                VarInt::from_u32(7)
            )))
        );
        // Stop: the writer gets the code.
        let (mut send, _recv) = c.open_bi().await.unwrap();
        send.write_all(b"x").await.unwrap();
        let (_s_send, mut s_recv) = s.accept_bi().await.unwrap();
        s_recv.stop(VarInt::from_u32(9)).unwrap();
        assert_eq!(send.stopped().await.unwrap(), Some(VarInt::from_u32(9)));
        assert_eq!(
            send.write(b"more").await,
            Err(WriteError::Stopped(VarInt::from_u32(9)))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_streams_than_the_limit_wait_for_credit() {
    bounded(async {
        let server_transport = TransportConfig {
            max_concurrent_bidi_streams: 10,
            ..TransportConfig::default()
        };
        let (server, client) = pair_with(TransportConfig::default(), server_transport);
        let addr = server.local_addr().unwrap();
        tokio::spawn(echo_server(server));
        let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..50u32 {
            let conn = conn.clone();
            tasks.push(tokio::spawn(async move {
                let (mut send, mut recv) = conn.open_bi().await.unwrap();
                let msg = format!("stream {i}");
                send.write_all(msg.as_bytes()).await.unwrap();
                send.finish().unwrap();
                assert_eq!(recv.read_to_end(100).await.unwrap(), msg.as_bytes());
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn endpoint_close_ends_accept_and_connections() {
    bounded(async {
        let (server, client) = pair();
        let (c, _s) = connect(&server, &client).await;
        server.close(VarInt::from_u32(3), b"shutting down");
        assert!(server.accept().await.is_none());
        assert_eq!(
            c.closed().await,
            ConnectionError::ApplicationClosed {
                code: VarInt::from_u32(3),
                reason: Bytes::from_static(b"shutting down")
            }
        );
        server.wait_idle().await;
        assert!(matches!(
            server.connect(client.local_addr().unwrap(), "x"),
            Err(quiver::ConnectError::NoDefaultClientConfig)
                | Err(quiver::ConnectError::EndpointStopping)
        ));
    })
    .await;
}

#[tokio::test]
async fn ignored_attempt_times_out_for_the_client() {
    bounded(async {
        let pki = Pki::new();
        let server = Endpoint::server(
            pki.server(TransportConfig::default()),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let transport = TransportConfig {
            max_idle_timeout: Some(Duration::from_millis(500)),
            ..TransportConfig::default()
        };
        let mut client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(pki.client(transport));
        let connecting = client
            .connect(server.local_addr().unwrap(), "localhost")
            .unwrap();
        let (result, ()) = tokio::join!(connecting, async {
            server.accept().await.unwrap().ignore();
        });
        assert_eq!(result.unwrap_err(), ConnectionError::TimedOut);
    })
    .await;
}

#[tokio::test]
async fn untrusted_certificate_fails_the_handshake() {
    bounded(async {
        let server_pki = Pki::new();
        let server = Endpoint::server(
            server_pki.server(TransportConfig::default()),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let mut client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(Pki::new().client(TransportConfig::default()));
        let addr = server.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let r = server.accept().await.unwrap().await;
            assert!(r.is_err());
        });
        let err = client
            .connect(addr, "localhost")
            .unwrap()
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectionError::TransportError(ref e) if e.code.tls_alert().is_some()),
            "{err:?}"
        );
        accept.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn portable_socket_path_and_ipv6() {
    bounded(async {
        for (addr, options) in [
            ("127.0.0.1:0", Options::portable()),
            ("[::1]:0", Options::default()),
        ] {
            let Ok(server_socket) = UdpSocket::bind_with(addr.parse().unwrap(), options) else {
                continue; // no IPv6 on this machine
            };
            let pki = Pki::new();
            let server =
                Endpoint::new(server_socket, Some(pki.server(TransportConfig::default()))).unwrap();
            let client_socket = UdpSocket::bind_with(addr.parse().unwrap(), options).unwrap();
            let mut client = Endpoint::new(client_socket, None).unwrap();
            client.set_default_client_config(pki.client(TransportConfig::default()));
            let (c, s) = connect(&server, &client).await;
            let (mut send, mut recv) = c.open_bi().await.unwrap();
            let data = pattern(300_000);
            send.write_all(&data).await.unwrap();
            send.finish().unwrap();
            let (_, mut s_recv) = s.accept_bi().await.unwrap();
            assert!(s_recv.read_to_end(1 << 20).await.unwrap() == data);
            recv.stop(VarInt::from_u32(0)).unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn one_endpoint_is_client_and_server() {
    bounded(async {
        let pki = Pki::new();
        let mut a = Endpoint::server(
            pki.server(TransportConfig::default()),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        a.set_default_client_config(pki.client(TransportConfig::default()));
        let b = a.clone();
        // The endpoint connects to itself.
        let (c, s) = connect(&b, &a).await;
        c.send_datagram(Bytes::from_static(b"self")).unwrap();
        assert_eq!(s.read_datagram().await.unwrap(), &b"self"[..]);
    })
    .await;
}

#[tokio::test]
async fn second_connection_to_a_server_with_the_same_config() {
    // rustls caches the first connection's session ticket; a second
    // connection must not trip over the remembered transport parameters.
    bounded(async {
        let (server, client) = pair();
        for _ in 0..3 {
            let (c, s) = connect(&server, &client).await;
            let (mut send, _recv) = c.open_bi().await.unwrap();
            send.write_all(b"x").await.unwrap();
            let (_send, mut recv) = s.accept_bi().await.unwrap();
            let mut b = [0u8; 1];
            recv.read_exact(&mut b).await.unwrap();
            c.close(VarInt::from_u32(0), b"");
        }
    })
    .await;
}

#[tokio::test]
async fn incoming_shows_the_client_hello_and_can_be_refused() {
    bounded(async {
        let (server, client) = pair();
        let addr = server.local_addr().unwrap();
        let connecting = client.connect(addr, "localhost").unwrap();
        let (result, ()) = tokio::join!(connecting, async {
            let incoming = server.accept().await.unwrap();
            assert_eq!(incoming.server_name().as_deref(), Some("localhost"));
            assert_eq!(incoming.alpn_protocols(), [ALPN.to_vec()]);
            assert!(!incoming.remote_address_validated());
            incoming.refuse();
        });
        assert_eq!(result.unwrap_err(), ConnectionError::Refused);
    })
    .await;
}

#[tokio::test]
async fn retry_validates_the_address_once() {
    bounded(async {
        let (server, client) = pair();
        let addr = server.local_addr().unwrap();
        let connecting = client.connect(addr, "localhost").unwrap();
        let (result, server_side) = tokio::join!(connecting, async {
            let first = server.accept().await.unwrap();
            assert!(!first.remote_address_validated());
            first.retry().unwrap();
            let second = server.accept().await.unwrap();
            assert!(second.remote_address_validated());
            // A second Retry is refused and the attempt handed back.
            let second = second.retry().unwrap_err().into_incoming();
            second.await
        });
        let c = result.unwrap();
        let s = server_side.unwrap();
        assert!(c.peer_certificates().is_some_and(|chain| chain.len() == 1));
        assert!(s.peer_certificates().is_none());
    })
    .await;
}

#[tokio::test]
async fn accept_and_close_reports_the_application_close() {
    bounded(async {
        let (server, client) = pair();
        let addr = server.local_addr().unwrap();
        let connecting = client.connect(addr, "localhost").unwrap();
        let (result, ()) = tokio::join!(connecting, async {
            server
                .accept()
                .await
                .unwrap()
                .accept_and_close(VarInt::from_u32(42), b"go away");
        });
        // During the handshake the close is APPLICATION_ERROR without the
        // application's code (RFC 9000 §10.2.3); in 1-RTT it is the code.
        match result.unwrap_err() {
            ConnectionError::ConnectionClosed { code, .. } => {
                assert_eq!(code, quiver::TransportErrorCode::APPLICATION_ERROR)
            }
            ConnectionError::ApplicationClosed { code, .. } => assert_eq!(code.into_inner(), 42),
            other => panic!("unexpected {other:?}"),
        }
        server.wait_idle().await;
        assert_eq!(server.open_connections(), 0);
    })
    .await;
}

#[tokio::test]
async fn connecting_can_be_closed_before_the_handshake_ends() {
    bounded(async {
        let (server, client) = pair();
        let addr = server.local_addr().unwrap();
        let connecting = client.connect(addr, "localhost").unwrap();
        connecting.close(VarInt::from_u32(7), b"changed my mind");
        assert_eq!(
            connecting.await.unwrap_err(),
            ConnectionError::LocallyClosed
        );
    })
    .await;
}

/// A connection that serves many requests keeps nothing per stream once
/// the stream's handles are gone: an end (all data acknowledged, or the
/// peer's STOP_SENDING) that arrives after the send handle dropped is
/// forgotten, not recorded for good.
#[tokio::test]
async fn stream_ends_are_not_kept_after_their_handles() {
    const REQUESTS: usize = 200;
    bounded(async {
        let (server, client) = pair();
        let (client_conn, server_conn) = connect(&server, &client).await;
        let serving = tokio::spawn(async move {
            for i in 0..=REQUESTS {
                let (mut send, mut recv) = server_conn.accept_bi().await.unwrap();
                if i % 2 == 0 {
                    recv.read_to_end(1024).await.unwrap();
                } else {
                    // Unread: STOP_SENDING to a handle the client dropped.
                    drop(recv);
                }
                send.write_all(b"response").await.unwrap();
                send.finish().unwrap();
                if i == REQUESTS {
                    // The last one waits for its acknowledgement: every
                    // earlier packet was acknowledged before it.
                    assert_eq!(send.stopped().await.unwrap(), None);
                }
            }
            server_conn
        });
        for i in 0..=REQUESTS {
            let (mut send, mut recv) = client_conn.open_bi().await.unwrap();
            send.write_all(b"request").await.unwrap();
            send.finish().unwrap();
            if i == REQUESTS {
                assert_eq!(send.stopped().await.unwrap(), None);
            }
            drop(send);
            assert_eq!(recv.read_to_end(1024).await.unwrap(), b"response");
        }
        let server_conn = serving.await.unwrap();
        // The last streams' ends may still be on their way (a loss on
        // loopback is rare, but allowed): a few, never one per stream.
        for (side, conn) in [("client", &client_conn), ("server", &server_conn)] {
            let kept = conn.stream_ends_for_test();
            assert!(kept <= 4, "{side} keeps {kept} stream ends");
        }
    })
    .await;
}

/// A task that races `closed()` against other work in a loop registers
/// one waker, not one per round: the list is only drained when the
/// connection ends.
#[tokio::test]
async fn closed_in_a_select_loop_keeps_one_waker() {
    bounded(async {
        let (server, client) = pair();
        let (client_conn, _server_conn) = connect(&server, &client).await;
        for _ in 0..1000 {
            tokio::select! {
                _ = client_conn.closed() => panic!("the connection is open"),
                _ = tokio::task::yield_now() => {}
            }
        }
        assert_eq!(client_conn.closed_waiters_for_test(), 1);
    })
    .await;
}

/// A STOP_SENDING that arrives before the application accepts the stream
/// still reaches the send handle it then gets: ends are kept for peer
/// streams not yet accepted, as for live handles.
#[tokio::test]
async fn a_stop_before_accept_reaches_the_send_handle() {
    bounded(async {
        let (server, client) = pair();
        let (client_conn, server_conn) = connect(&server, &client).await;
        let (mut send, recv) = client_conn.open_bi().await.unwrap();
        send.write_all(b"request").await.unwrap();
        // Unread: STOP_SENDING (code 0) for the server's half.
        drop(recv);
        // Queued after the stop: once it arrives, so has the stop.
        client_conn
            .send_datagram(Bytes::from_static(b"barrier"))
            .unwrap();
        assert_eq!(server_conn.read_datagram().await.unwrap(), &b"barrier"[..]);
        let (mut server_send, _server_recv) = server_conn.accept_bi().await.unwrap();
        assert_eq!(
            server_send.stopped().await.unwrap(),
            Some(VarInt::from_u32(0))
        );
        assert_eq!(
            server_send.write_all(b"late").await,
            Err(WriteError::Stopped(VarInt::from_u32(0)))
        );
    })
    .await;
}
