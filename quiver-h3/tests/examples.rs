//! The HTTP/3 examples work end to end: this test includes
//! `examples/h3_server.rs` and `examples/h3_client.rs` as modules and runs
//! their functions against each other on loopback (ephemeral ports).

#[path = "../examples/h3_client.rs"]
mod h3_client;
#[path = "../examples/h3_server.rs"]
mod h3_server;

use quiver::VarInt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h3_examples_round_trip() {
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let (cert, key) = h3_server::self_signed().unwrap();
        let server =
            h3_server::endpoint("127.0.0.1:0".parse().unwrap(), cert.clone(), key).unwrap();
        let addr = server.local_addr().unwrap();
        let serving = tokio::spawn(h3_server::serve(server.clone()));
        let client = h3_client::endpoint(cert).unwrap();
        for path in ["/", "/hello"] {
            let uri: http::Uri = format!("https://localhost:{}{path}", addr.port())
                .parse()
                .unwrap();
            let (response, body) = h3_client::get(&client, addr, &uri)
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            assert_eq!(response.status(), 200);
            assert_eq!(
                body,
                format!("hello from HTTP/3 over quiver: GET {path}\n").as_bytes()
            );
        }
        server.close(VarInt::from_u32(0), b"");
        serving.await.unwrap();
    })
    .await
    .expect("timed out");
}
