//! The examples work end to end: this test includes
//! `examples/echo_server.rs`, `examples/echo_client.rs` and
//! `examples/file_server.rs` as modules and runs their functions on
//! loopback (ephemeral ports).

#[path = "../examples/echo_client.rs"]
mod echo_client;
#[path = "../examples/echo_server.rs"]
mod echo_server;
#[path = "../examples/file_server.rs"]
mod file_server;

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

/// GET over the file server: a file comes back whole; a missing file, a
/// directory and paths leaving the root are refused with a stream reset
/// (code 0x194), never served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_server_serves_files_and_nothing_outside_its_root() {
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let dir = std::env::temp_dir().join(format!("quiver-file-server-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(root.join("sub/a.bin"), &content).unwrap();
        std::fs::write(dir.join("secret"), b"outside the root").unwrap();
        let root = root.canonicalize().unwrap();

        let (server, cert) = file_server::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(file_server::serve(server.clone(), root.clone()));
        let mut roots = quiver::rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let mut client = quiver::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(
            quiver::ClientConfig::with_root_certificates(roots)
                .alpn_protocols(&[file_server::ALPN])
                .build()
                .unwrap(),
        );
        let connection = client.connect(addr, "localhost").unwrap().await.unwrap();
        let get = |path: &'static str| {
            let connection = connection.clone();
            async move {
                let (mut send, mut recv) = connection.open_bi().await.unwrap();
                send.write_all(format!("GET {path}\r\n").as_bytes())
                    .await
                    .unwrap();
                send.finish().unwrap();
                recv.read_to_end(1 << 20).await
            }
        };
        assert!(get("/sub/a.bin").await.unwrap() == content);
        assert!(get("/sub/./a.bin").await.unwrap() == content);
        for refused in ["/missing", "/sub", "/../secret", "/sub/../../secret"] {
            let err = get(refused).await.expect_err(refused);
            assert_eq!(
                err,
                quiver::ReadToEndError::Read(quiver::ReadError::Reset(VarInt::from_u32(
                    file_server::NOT_FOUND
                ))),
                "{refused}"
            );
        }
        assert_eq!(file_server::resolve(&root, "/../secret"), None);
        assert_eq!(file_server::resolve(&root, "//etc/passwd"), None);
        connection.close(VarInt::from_u32(0), b"");
        client.wait_idle().await;
        server.close(VarInt::from_u32(0), b"");
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await
    .expect("timed out");
}
