//! The `quiver` binary end to end: `serve` and `get` (and `perf`, `demo`)
//! as separate processes over loopback, every run bounded in time.

mod common;

use std::net::UdpSocket;
use std::process::Output;
use std::time::Duration;

use common::*;

#[test]
fn files_arrive_whole_over_one_connection() {
    let root = TempDir::new("multi-root");
    let out = TempDir::new("multi-out");
    let sizes = [0, 1, 1199, 1200, 65_536, 300_001, 2_000_000];
    for (i, &len) in sizes.iter().enumerate() {
        std::fs::write(root.path().join(format!("f{i}")), content(len, i as u32)).unwrap();
    }
    std::fs::create_dir(root.path().join("sub")).unwrap();
    std::fs::write(root.path().join("sub/nested.bin"), content(5000, 99)).unwrap();
    let server = serve(root.path(), &["--keylog"]);
    let mut urls: Vec<String> = (0..sizes.len())
        .map(|i| url(server.port, &format!("f{i}")))
        .collect();
    urls.push(url(server.port, "sub/nested.bin"));
    let keylog = out.path().join("keys.log");
    let mut args = vec!["get", "--insecure", "--keylog", "--out"];
    let out_dir = out.path().join("files");
    args.push(out_dir.to_str().unwrap());
    args.extend(urls.iter().map(String::as_str));
    let (result, _) = run_with(&args, &[("SSLKEYLOGFILE", &keylog)], DEADLINE);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(
        stderr(&result),
        "",
        "nothing on stderr when it is not a terminal"
    );
    let total: usize = sizes.iter().sum::<usize>() + 5000;
    let summary = stdout(&result);
    assert!(
        summary.starts_with(&format!("saved 8 files, {total} bytes in ")),
        "{summary}"
    );
    for (i, &len) in sizes.iter().enumerate() {
        let got = std::fs::read(out_dir.join(format!("f{i}"))).unwrap();
        assert_eq!(sha256(&got), sha256(&content(len, i as u32)), "file f{i}");
    }
    let nested = std::fs::read(out_dir.join("sub/nested.bin")).unwrap();
    assert_eq!(sha256(&nested), sha256(&content(5000, 99)));
    let keys = std::fs::read_to_string(&keylog).unwrap();
    assert!(keys.contains("CLIENT_HANDSHAKE_TRAFFIC_SECRET"), "{keys}");
}

/// `serve --preferred-address` on another loopback address: `get` moves
/// there after the handshake (RFC 9000 §9.6) and the file arrives whole;
/// with `--no-migrate` it stays on the address it connected to.
#[test]
fn preferred_address_is_offered_and_taken() {
    let root = TempDir::new("preferred-root");
    let out = TempDir::new("preferred-out");
    let data = content(3_000_000, 7);
    std::fs::write(root.path().join("big"), &data).unwrap();
    let server = serve(root.path(), &["--preferred-address", "127.0.0.2:0"]);
    let preferred = server
        .preferred
        .clone()
        .expect("serve prints its preferred address");
    assert!(preferred.starts_with("127.0.0.2:"), "{preferred}");
    for (flags, want) in [
        (
            &[][..],
            format!("moved to the server's preferred address {preferred}"),
        ),
        (
            &["--no-migrate"][..],
            format!("server address unchanged: 127.0.0.1:{}", server.port),
        ),
    ] {
        let dir = out
            .path()
            .join(if flags.is_empty() { "moved" } else { "stayed" });
        let mut args = vec!["get", "-v", "--insecure", "--out", dir.to_str().unwrap()];
        args.extend_from_slice(flags);
        let link = url(server.port, "big");
        args.push(&link);
        let result = run(&args);
        assert!(result.status.success(), "{}", stderr(&result));
        let err = stderr(&result);
        assert!(err.lines().any(|l| l == want), "{flags:?}: {err}");
        let got = std::fs::read(dir.join("big")).unwrap();
        assert_eq!(sha256(&got), sha256(&data), "{flags:?}");
    }
}

#[test]
fn many_small_files() {
    let root = TempDir::new("small-root");
    let out = TempDir::new("small-out");
    const FILES: usize = 300; // more than the server's 100 concurrent streams
    for i in 0..FILES {
        std::fs::write(
            root.path().join(format!("s{i}")),
            content(50 + i * 7, i as u32),
        )
        .unwrap();
    }
    let server = serve(root.path(), &[]);
    let urls: Vec<String> = (0..FILES)
        .map(|i| url(server.port, &format!("s{i}")))
        .collect();
    let mut args = vec!["get", "--insecure", "--out", out.path().to_str().unwrap()];
    args.extend(urls.iter().map(String::as_str));
    let result = run(&args);
    assert!(result.status.success(), "{}", stderr(&result));
    for i in 0..FILES {
        let got = std::fs::read(out.path().join(format!("s{i}"))).unwrap();
        assert_eq!(got, content(50 + i * 7, i as u32), "file s{i}");
    }
}

#[test]
fn concurrent_clients() {
    let root = TempDir::new("concurrent-root");
    std::fs::write(root.path().join("shared"), content(400_000, 3)).unwrap();
    let server = serve(root.path(), &[]);
    let outs: Vec<TempDir> = (0..4)
        .map(|i| TempDir::new(&format!("concurrent-out{i}")))
        .collect();
    let link = url(server.port, "shared");
    std::thread::scope(|s| {
        for out in &outs {
            let link = &link;
            s.spawn(move || {
                let result = run(&[
                    "get",
                    "--insecure",
                    "--out",
                    out.path().to_str().unwrap(),
                    link,
                ]);
                assert!(result.status.success(), "{}", stderr(&result));
            });
        }
    });
    for out in &outs {
        let got = std::fs::read(out.path().join("shared")).unwrap();
        assert_eq!(sha256(&got), sha256(&content(400_000, 3)));
    }
}

#[test]
fn missing_file_fails_with_the_reset() {
    let root = TempDir::new("missing-root");
    let out = TempDir::new("missing-out");
    std::fs::write(root.path().join("here"), b"here").unwrap();
    let server = serve(root.path(), &[]);
    let result = run(&[
        "get",
        "--alpn",
        "hq-interop",
        "--insecure",
        "--out",
        out.path().to_str().unwrap(),
        &url(server.port, "here"),
        &url(server.port, "missing"),
    ]);
    assert_eq!(result.status.code(), Some(1));
    assert_eq!(
        one_error_line(&result),
        "error: no such file /missing (stream reset 0x194)"
    );
    assert!(!out.path().join("missing").exists());
    assert!(!out.path().join("missing.part").exists());
    // Nothing outside the root.
    let result = run(&[
        "get",
        "--alpn",
        "hq-interop",
        "--insecure",
        &url(server.port, "%2e%2e/etc/passwd"),
    ]);
    assert!(
        one_error_line(&result).starts_with("error: no such file"),
        "{}",
        stderr(&result)
    );
}

#[test]
fn close_after_hello_is_reported_within_a_second() {
    let root = TempDir::new("hello-root");
    let server = serve(root.path(), &["--close-after-hello", "42"]);
    for _ in 0..3 {
        let (result, took) = run_with(
            &["get", "--insecure", &url(server.port, "x")],
            &[],
            DEADLINE,
        );
        let line = one_error_line(&result);
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(
            line == "error: connection closed by peer: transport error APPLICATION_ERROR (0xc)"
                || line
                    == "error: connection closed by peer: application error 0x2a (reason \"refused\")",
            "{line}"
        );
    }
}

#[test]
fn retry_then_transfer() {
    let root = TempDir::new("retry-root");
    let out = TempDir::new("retry-out");
    std::fs::write(root.path().join("r"), content(100_000, 7)).unwrap();
    let server = serve(root.path(), &["--retry"]);
    let result = run(&[
        "get",
        "--insecure",
        "--out",
        out.path().to_str().unwrap(),
        &url(server.port, "r"),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(
        std::fs::read(out.path().join("r")).unwrap(),
        content(100_000, 7)
    );
}

/// `--versions` on both ends (RFC 9368): a server preferring v2 upgrades a
/// client starting in v1 that offers v2 (compatible negotiation); a server
/// accepting only v1 answers a client starting in v2 with Version
/// Negotiation, and the client retries in v1.
#[test]
fn versions_are_negotiated() {
    let root = TempDir::new("versions-root");
    std::fs::write(root.path().join("v"), content(50_000, 9)).unwrap();
    for (serve_versions, get_versions, expect) in [
        ("v2,v1", "v1,v2", "V2"),
        ("v1", "v2,v1", "V1"),
        ("v1,v2", "v1,v2", "V1"),
        ("v1,v2", "v2", "V2"),
    ] {
        let out = TempDir::new("versions-out");
        let server = serve(root.path(), &["--versions", serve_versions]);
        let result = run(&[
            "get",
            "--insecure",
            "--versions",
            get_versions,
            "--out",
            out.path().to_str().unwrap(),
            &url(server.port, "v"),
        ]);
        assert!(result.status.success(), "{}", stderr(&result));
        assert!(
            stdout(&result).contains(&format!("QUIC version: {expect}")),
            "serve {serve_versions}, get {get_versions}: {}",
            stdout(&result)
        );
        assert_eq!(
            std::fs::read(out.path().join("v")).unwrap(),
            content(50_000, 9)
        );
    }
    let bad = run(&["get", "--versions", "v3", &url(1, "x")]);
    assert!(!bad.status.success());
}

/// The QUIC interop runner's chacha20 case: `get --cipher chacha20` offers
/// only TLS_CHACHA20_POLY1305_SHA256 (RFC 9001 §5.3) and the transfer uses
/// it; a server that accepts none of the offered suites fails the
/// handshake with one error line.
#[test]
fn cipher_is_chosen_with_cipher() {
    let root = TempDir::new("cipher-root");
    std::fs::write(root.path().join("c"), content(200_000, 4)).unwrap();
    let out = TempDir::new("cipher-out");
    let server = serve(root.path(), &[]);
    let result = run(&[
        "get",
        "--insecure",
        "-v",
        "--cipher",
        "chacha20",
        "--out",
        out.path().to_str().unwrap(),
        &url(server.port, "c"),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("TLS cipher suite: chacha20"),
        "{}",
        stderr(&result)
    );
    assert_eq!(
        std::fs::read(out.path().join("c")).unwrap(),
        content(200_000, 4)
    );

    let aes_only = serve(root.path(), &["--cipher", "aes128gcm,aes256gcm"]);
    let refused = run(&[
        "get",
        "--insecure",
        "--cipher",
        "chacha20",
        "--out",
        out.path().to_str().unwrap(),
        &url(aes_only.port, "c"),
    ]);
    assert!(!refused.status.success());
    let line = one_error_line(&refused);
    assert!(line.contains("0x128"), "{line}");
    let bad = run(&["get", "--cipher", "rc4", &url(1, "x")]);
    assert!(!bad.status.success());
}

#[test]
fn certificate_is_verified_against_ca() {
    let root = TempDir::new("ca-root");
    let out = TempDir::new("ca-out");
    std::fs::write(root.path().join("c"), b"certified").unwrap();
    let server = serve(root.path(), &[]);
    let cert = server
        .cert
        .clone()
        .expect("the server prints its certificate");
    let cert = cert.to_str().unwrap();
    let ok = run(&[
        "get",
        "--ca",
        cert,
        "--out",
        out.path().to_str().unwrap(),
        &format!("https://localhost:{}/c", server.port),
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(std::fs::read(out.path().join("c")).unwrap(), b"certified");
    let wrong_name = run(&[
        "get",
        "--ca",
        cert,
        "--server-name",
        "example.com",
        &url(server.port, "c"),
    ]);
    assert!(
        one_error_line(&wrong_name).starts_with(
            "error: certificate rejected: invalid peer certificate: not valid for the server name"
        ),
        "{}",
        stderr(&wrong_name)
    );
}

#[test]
fn bad_input_is_one_error_line() {
    let dir = TempDir::new("bad-input");
    let line = one_error_line(&run(&["get", "--insecure", "htp://localhost/x"]));
    assert!(
        line.starts_with("error: malformed URL \"htp://localhost/x\""),
        "{line}"
    );
    let line = one_error_line(&run(&["get", "--insecure", "https://localhost:99999/x"]));
    assert!(line.starts_with("error: malformed URL"), "{line}");
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let line = one_error_line(&run(&["serve", "--cert", missing, "--key", missing]));
    assert!(
        line.starts_with("error: cannot read certificate "),
        "{line}"
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let garbage = garbage.to_str().unwrap();
    let line = one_error_line(&run(&["serve", "--cert", garbage, "--key", garbage]));
    assert!(line.starts_with("error: no certificate in "), "{line}");
    let line = one_error_line(&run(&["get", "--ca", garbage, "https://localhost:4433/x"]));
    assert!(line.starts_with("error: no certificate in "), "{line}");
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = one_error_line(&run(&["serve", "--listen", &addr]));
    assert!(
        line.starts_with(&format!("error: cannot listen on {addr}: ")),
        "{line}"
    );
    let line = one_error_line(&run(&["serve", "--root", missing]));
    assert!(line.starts_with("error: cannot serve "), "{line}");
}

#[test]
fn silent_host_times_out() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (result, took) = run_with(
        &["get", "--insecure", "--timeout", "1", &url(port, "x")],
        &[],
        DEADLINE,
    );
    assert_eq!(one_error_line(&result), "error: timed out");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "took {took:?}"
    );
}

#[test]
fn perf_transfer_and_handshakes() {
    let server = start(&["perf", "server"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let bulk = run(&[
        "perf",
        "client",
        "--connect",
        &addr,
        "--download",
        "1M",
        "--upload",
        "100k",
        "--streams",
        "3",
    ]);
    assert!(bulk.status.success(), "{}", stderr(&bulk));
    let json = stdout(&bulk);
    assert_eq!(json.lines().count(), 1, "{json}");
    assert!(json.contains("\"bytes\":1100000,"), "{json}");
    assert!(json.contains("\"seconds\":"), "{json}");
    let hs = run(&["perf", "client", "--connect", &addr, "--handshakes", "5"]);
    assert!(hs.status.success(), "{}", stderr(&hs));
    let json = stdout(&hs);
    assert!(json.contains("\"handshakes\":5,"), "{json}");
    assert!(json.contains("\"seconds\":"), "{json}");
}

#[test]
fn congestion_controller_is_chosen_with_cc() {
    // serve and get.
    let root = TempDir::new("cc-root");
    let out = TempDir::new("cc-out");
    std::fs::write(root.path().join("f"), content(500_000, 7)).unwrap();
    for (server_cc, client_cc) in [("newreno", "cubic"), ("cubic", "bbr"), ("bbr", "newreno")] {
        let server = serve(root.path(), &["--cc", server_cc]);
        let out_dir = out.path().join(server_cc);
        let get = run(&[
            "get",
            "--insecure",
            "--cc",
            client_cc,
            "--out",
            out_dir.to_str().unwrap(),
            &url(server.port, "f"),
        ]);
        assert!(get.status.success(), "{}", stderr(&get));
        let got = std::fs::read(out_dir.join("f")).unwrap();
        assert_eq!(sha256(&got), sha256(&content(500_000, 7)));
    }
    // perf, both ends.
    let server = start(&["perf", "server", "--cc", "bbr"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let bulk = run(&[
        "perf",
        "client",
        "--connect",
        &addr,
        "--cc",
        "cubic",
        "--download",
        "1M",
        "--upload",
        "100k",
    ]);
    assert!(bulk.status.success(), "{}", stderr(&bulk));
    assert!(
        stdout(&bulk).contains("\"bytes\":1100000,"),
        "{}",
        stdout(&bulk)
    );
    // An unknown controller is refused by the argument parser.
    let bad = run(&["perf", "client", "--connect", &addr, "--cc", "vegas"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("invalid value 'vegas'"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn demo_runs() {
    let result = run(&["demo", "--size", "1M"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let text = stdout(&result);
    for word in ["transfer:", "rtt:", "packets sent"] {
        assert!(text.contains(word), "{text}");
    }
}

/// A quinn client endpoint that trusts the certificates in `cert` (PEM)
/// and offers ALPN hq-interop; call from within a tokio runtime.
fn quinn_endpoint(cert: &[u8]) -> quinn::Endpoint {
    use rustls::pki_types::pem::PemObject as _;
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"hq-interop".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `quiver serve` answers at the end of the request line, without
/// waiting for the client to finish its stream.
#[test]
fn request_line_is_answered_before_the_stream_ends() {
    let root = TempDir::new("no-fin-root");
    std::fs::write(root.path().join("f"), b"answered").unwrap();
    let server = serve(root.path(), &[]);
    let cert = std::fs::read(server.cert.as_ref().unwrap()).unwrap();
    let body = current_thread_runtime().block_on(async {
        let endpoint = quinn_endpoint(&cert);
        let addr = format!("127.0.0.1:{}", server.port).parse().unwrap();
        let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(b"GET /f\r\n").await.unwrap();
        // No finish: the stream stays open while the answer comes.
        let body = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1024))
            .await
            .expect("answered without FIN")
            .unwrap();
        drop(send);
        body
    });
    assert_eq!(body, b"answered");
}

/// A quinn client sees the close of `quiver serve --close-after-hello`.
#[test]
fn quinn_client_sees_close_after_hello() {
    let root = TempDir::new("quinn-root");
    let server = serve(root.path(), &["--close-after-hello", "0x2a"]);
    let cert = std::fs::read(server.cert.as_ref().unwrap()).unwrap();
    let error = current_thread_runtime().block_on(async {
        let endpoint = quinn_endpoint(&cert);
        let addr = format!("127.0.0.1:{}", server.port).parse().unwrap();
        let connecting = endpoint.connect(addr, "localhost").unwrap();
        tokio::time::timeout(Duration::from_secs(5), connecting)
            .await
            .expect("the close arrives in time")
            .expect_err("the server closes")
    });
    use quinn::ConnectionError as E;
    match error {
        E::ApplicationClosed(close) => assert_eq!(close.error_code.into_inner(), 0x2a),
        E::ConnectionClosed(close) => {
            assert_eq!(
                close.error_code,
                quinn::TransportErrorCode::APPLICATION_ERROR
            )
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// A quiver client endpoint that trusts the certificates in `cert` (PEM)
/// and offers ALPN h3; call from within a tokio runtime.
fn quiver_h3_endpoint(cert: &[u8]) -> quiver::Endpoint {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut endpoint = quiver::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(
        quiver::ClientConfig::with_root_certificates(roots)
            .alpn_protocols(&[quiver_h3::ALPN])
            .build()
            .unwrap(),
    );
    endpoint
}

/// A response's status, headers and whole body.
struct H3Response {
    status: u16,
    content_type: Option<String>,
    content_length: Option<u64>,
    body: Vec<u8>,
}

async fn h3_request(
    send: &mut h3::client::SendRequest<quiver_h3::OpenStreams, bytes::Bytes>,
    method: &str,
    path: &str,
) -> H3Response {
    use bytes::Buf as _;
    let request = http::Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .body(())
        .unwrap();
    let mut stream = send.send_request(request).await.unwrap();
    match stream.finish().await {
        // `quiver serve` answers without reading the request's end and may
        // stop the stream before h3's first `finish` writes its grease
        // frame: the response stands (RFC 9114 §4.1.2).
        Ok(()) | Err(h3::error::StreamError::RemoteTerminate { .. }) => {}
        Err(e) => panic!("finish: {e}"),
    }
    let response = stream.recv_response().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        while chunk.has_remaining() {
            let n = chunk.chunk().len();
            body.extend_from_slice(chunk.chunk());
            chunk.advance(n);
        }
    }
    H3Response {
        status: response.status().as_u16(),
        content_type: header("content-type"),
        content_length: header("content-length").map(|v| v.parse().unwrap()),
        body,
    }
}

/// `quiver serve` offers h3 next to hq-interop: the same files over
/// HTTP/3 with status, content-length and content-type; 404 for a missing
/// file or a path out of the root; 405 for other methods.
#[test]
fn serves_files_over_http3() {
    let dir = TempDir::new("h3-root");
    let root = dir.path().join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"outside the root").unwrap();
    let page = b"<!doctype html><title>quiver</title>".to_vec();
    std::fs::write(root.join("index.html"), &page).unwrap();
    let data = content(300_000, 7);
    std::fs::write(root.join("sub/data.bin"), &data).unwrap();
    std::fs::write(root.join("notes.txt"), b"notes\n").unwrap();
    let server = serve(&root, &[]);
    let cert = std::fs::read(server.cert.as_ref().unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(DEADLINE, async {
            let endpoint = quiver_h3_endpoint(&cert);
            let addr = format!("127.0.0.1:{}", server.port).parse().unwrap();
            let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
            assert_eq!(conn.alpn_protocol().as_deref(), Some(&b"h3"[..]));
            let (mut driver, mut send) = h3::client::new(quiver_h3::Connection::new(conn))
                .await
                .unwrap();
            tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });

            let r = h3_request(&mut send, "GET", "/index.html").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.content_type.as_deref(), Some("text/html"));
            assert_eq!(r.content_length, Some(page.len() as u64));
            assert_eq!(r.body, page);

            let r = h3_request(&mut send, "GET", "/sub/data.bin").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.content_type.as_deref(), Some("application/octet-stream"));
            assert_eq!(r.content_length, Some(data.len() as u64));
            assert_eq!(sha256(&r.body), sha256(&data));

            let r = h3_request(&mut send, "GET", "/notes.txt").await;
            assert_eq!(r.content_type.as_deref(), Some("text/plain"));
            assert_eq!(r.body, b"notes\n");

            let r = h3_request(&mut send, "HEAD", "/sub/data.bin").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.content_length, Some(data.len() as u64));
            assert!(r.body.is_empty());

            for path in ["/missing", "/../secret.txt", "/%2e%2e/secret.txt", "/sub"] {
                let r = h3_request(&mut send, "GET", path).await;
                assert_eq!(r.status, 404, "{path}");
                assert_ne!(r.body, b"outside the root", "{path}");
            }

            let r = h3_request(&mut send, "POST", "/index.html").await;
            assert_eq!(r.status, 405);
        })
        .await
        .expect("HTTP/3 requests within the deadline");
    });
}

/// The `--json` line of a `quiver get` run, parsed.
fn json_line(out: &Output) -> serde_json::Value {
    let text = stdout(out);
    assert_eq!(text.lines().count(), 1, "one line on stdout: {text:?}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// `quiver get` offers h3 and hq-interop and `quiver serve` prefers h3:
/// several files over HTTP/3 on one connection, each with its status in
/// the `--json` line; a missing file fails the run with its status.
#[test]
fn get_over_http3_with_json() {
    let root = TempDir::new("h3get-root");
    let out = TempDir::new("h3get-out");
    let sizes = [0, 1, 5000, 1_000_000];
    for (i, &len) in sizes.iter().enumerate() {
        std::fs::write(
            root.path().join(format!("g{i}")),
            content(len, 40 + i as u32),
        )
        .unwrap();
    }
    std::fs::create_dir(root.path().join("d")).unwrap();
    std::fs::write(root.path().join("d/index.html"), b"<p>index</p>").unwrap();
    let server = serve(root.path(), &[]);
    let out_dir = out.path().to_str().unwrap();
    let mut urls: Vec<String> = (0..sizes.len())
        .map(|i| url(server.port, &format!("g{i}")))
        .collect();
    urls.push(url(server.port, "d/"));
    let mut args = vec!["get", "--insecure", "--json", "--out", out_dir];
    args.extend(urls.iter().map(String::as_str));
    let result = run(&args);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(stderr(&result), "");
    let report = json_line(&result);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["protocol"], "h3", "{report}");
    assert_eq!(report["saved"], 5, "{report}");
    let total = sizes.iter().sum::<usize>() + 12;
    assert_eq!(report["bytes"], total, "{report}");
    assert!(report["seconds"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["error"].is_null(), "{report}");
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 5);
    for (i, &len) in sizes.iter().enumerate() {
        assert_eq!(files[i]["url"], urls[i].as_str());
        assert_eq!(files[i]["ok"], true);
        assert_eq!(files[i]["status"], 200);
        assert_eq!(files[i]["bytes"], len);
        let got = std::fs::read(out.path().join(format!("g{i}"))).unwrap();
        assert_eq!(sha256(&got), sha256(&content(len, 40 + i as u32)), "g{i}");
    }
    assert_eq!(
        std::fs::read(out.path().join("d/index.html")).unwrap(),
        b"<p>index</p>"
    );

    // Without --json: the summary line; a missing file is its status.
    let result = run(&["get", "--insecure", "--out", out_dir, &urls[2]]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stdout(&result).starts_with("saved 1 file, 5000 bytes in "),
        "{}",
        stdout(&result)
    );
    let missing = url(server.port, "missing");
    let result = run(&["get", "--insecure", "--out", out_dir, &urls[1], &missing]);
    assert_eq!(result.status.code(), Some(1));
    assert_eq!(
        one_error_line(&result),
        "error: /missing: HTTP 404 Not Found"
    );
    assert_eq!(stdout(&result), "");
    assert!(!out.path().join("missing").exists());
    assert!(!out.path().join("missing.part").exists());

    // With --json, the failure is in the line too, and still one error line.
    let result = run(&["get", "--insecure", "--json", "--out", out_dir, &missing]);
    assert_eq!(
        one_error_line(&result),
        "error: /missing: HTTP 404 Not Found"
    );
    let report = json_line(&result);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["error"], "/missing: HTTP 404 Not Found", "{report}");
    assert_eq!(report["files"][0]["status"], 404, "{report}");
    assert_eq!(report["files"][0]["ok"], false, "{report}");

    // A failure before any request: the line says so.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let result = run(&[
        "get",
        "--insecure",
        "--json",
        "--timeout",
        "0.5",
        &url(port, "x"),
    ]);
    assert_eq!(one_error_line(&result), "error: timed out");
    let report = json_line(&result);
    assert_eq!(report["error"], "timed out", "{report}");
    assert!(report["protocol"].is_null(), "{report}");
    assert_eq!(report["files"][0]["error"], "not fetched", "{report}");
}

/// `--alpn hq-interop` still speaks HTTP/0.9 to the same server.
#[test]
fn get_with_alpn_hq_interop() {
    let root = TempDir::new("hqget-root");
    let out = TempDir::new("hqget-out");
    for i in 0..3 {
        std::fs::write(
            root.path().join(format!("h{i}")),
            content(70_000 * i, i as u32),
        )
        .unwrap();
    }
    let server = serve(root.path(), &["--verbose"]);
    let urls: Vec<String> = (0..3).map(|i| url(server.port, &format!("h{i}"))).collect();
    let mut args = vec![
        "get",
        "--insecure",
        "--alpn",
        "hq-interop",
        "--json",
        "--out",
    ];
    args.push(out.path().to_str().unwrap());
    args.extend(urls.iter().map(String::as_str));
    let result = run(&args);
    assert!(result.status.success(), "{}", stderr(&result));
    let report = json_line(&result);
    assert_eq!(report["protocol"], "hq-interop", "{report}");
    assert_eq!(report["saved"], 3, "{report}");
    for i in 0..3 {
        assert!(report["files"][i]["status"].is_null(), "{report}");
        let got = std::fs::read(out.path().join(format!("h{i}"))).unwrap();
        assert_eq!(got, content(70_000 * i, i as u32), "h{i}");
    }
}
