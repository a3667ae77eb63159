//! The echo examples work end to end: this test includes
//! `examples/echo_server.rs` and `examples/echo_client.rs` as modules and
//! runs their functions against each other on loopback (ephemeral ports).

#[path = "../examples/echo_client.rs"]
mod echo_client;
#[path = "../examples/echo_server.rs"]
mod echo_server;

use quiver::VarInt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_examples_round_trip() {
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let (cert, key) = echo_server::self_signed().unwrap();
        let server =
            echo_server::endpoint("127.0.0.1:0".parse().unwrap(), cert.clone(), key).unwrap();
        let addr = server.local_addr().unwrap();
        let serving = tokio::spawn(echo_server::serve(server.clone()));
        let client = echo_client::endpoint(cert).unwrap();
        let answer = echo_client::echo(&client, addr, b"hello, echo")
            .await
            .unwrap();
        assert_eq!(answer, b"hello, echo");
        // A message larger than the stream's first flow-control windows
        // comes back whole and in order.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let answer = echo_client::echo(&client, addr, &big).await.unwrap();
        assert!(answer == big, "the 300 kB echo differs");
        server.close(VarInt::from_u32(0), b"");
        serving.await.unwrap();
    })
    .await
    .expect("timed out");
}

/// The client refuses a server whose certificate it was not given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_client_refuses_an_unknown_certificate() {
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let (cert, key) = echo_server::self_signed().unwrap();
        let server = echo_server::endpoint("127.0.0.1:0".parse().unwrap(), cert, key).unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(echo_server::serve(server.clone()));
        let (other, _) = echo_server::self_signed().unwrap();
        let client = echo_client::endpoint(other).unwrap();
        assert!(echo_client::echo(&client, addr, b"hi").await.is_err());
        server.close(VarInt::from_u32(0), b"");
    })
    .await
    .expect("timed out");
}
