//! Session resumption from the command line (RFC 9001 §4.5): `get
//! --resume` (the QUIC interop runner's resumption case) and `perf client
//! --handshakes N --resume`.

mod common;

use common::*;

/// `get --resume` fetches the first URL on a full handshake and the rest
/// on a second connection that resumes; `-v` says which, `--json` too, and
/// every file arrives whole. Over HTTP/0.9 and HTTP/3.
#[test]
fn get_resume_fetches_the_rest_on_a_resumed_connection() {
    let root = TempDir::new("resume-root");
    let sizes = [10_000, 1, 70_000];
    for (i, &len) in sizes.iter().enumerate() {
        std::fs::write(root.path().join(format!("r{i}")), content(len, i as u32)).unwrap();
    }
    let server = serve(root.path(), &[]);
    let urls: Vec<String> = (0..sizes.len())
        .map(|i| url(server.port, &format!("r{i}")))
        .collect();
    for alpn in ["hq-interop", "h3"] {
        let out = TempDir::new(&format!("resume-out-{alpn}"));
        let mut args = vec![
            "get",
            "--insecure",
            "--resume",
            "-v",
            "--json",
            "--alpn",
            alpn,
            "--out",
            out.path().to_str().unwrap(),
        ];
        args.extend(urls.iter().map(String::as_str));
        let result = run(&args);
        let err = stderr(&result);
        assert!(result.status.success(), "{err}");
        assert!(err.contains("connection 1: full handshake"), "{err}");
        assert!(err.contains("connection 2: resumed"), "{err}");
        let json = stdout(&result);
        assert!(json.contains("\"resumed\":[false,true]"), "{json}");
        assert!(json.contains("\"saved\":3,"), "{json}");
        for (i, &len) in sizes.iter().enumerate() {
            let got = std::fs::read(out.path().join(format!("r{i}"))).unwrap();
            assert_eq!(sha256(&got), sha256(&content(len, i as u32)), "file r{i}");
        }
    }
}

/// `--resume` needs something to fetch on the second connection.
#[test]
fn get_resume_with_one_url_is_an_error() {
    let out = run(&["get", "--insecure", "--resume", "https://127.0.0.1:9/a"]);
    let line = one_error_line(&out);
    assert!(line.contains("--resume needs at least two URLs"), "{line}");
}

/// `perf client --handshakes N --resume`: all N handshakes resume; without
/// `--resume` none does (the client keeps no tickets).
#[test]
fn perf_measures_resumed_and_full_handshakes() {
    let server = start(&["perf", "server"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let resumed = run(&[
        "perf",
        "client",
        "--connect",
        &addr,
        "--handshakes",
        "5",
        "--resume",
    ]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let json = stdout(&resumed);
    assert!(json.contains("\"handshakes\":5,\"resumed\":5,"), "{json}");
    let full = run(&["perf", "client", "--connect", &addr, "--handshakes", "5"]);
    assert!(full.status.success(), "{}", stderr(&full));
    let json = stdout(&full);
    assert!(json.contains("\"handshakes\":5,\"resumed\":0,"), "{json}");
}

/// A quinn client endpoint trusting `cert` (PEM), offering `alpns`, that
/// resumes sessions and attempts 0-RTT; call within a tokio runtime.
fn quinn_0rtt_endpoint(cert: &[u8], alpns: &[&[u8]]) -> quinn::Endpoint {
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
    tls.alpn_protocols = alpns.iter().map(|a| a.to_vec()).collect();
    tls.enable_early_data = true;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

/// HTTP/0.9 GET of `path` on `conn`.
async fn get(conn: &quinn::Connection, path: &str) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(format!("GET /{path}\r\n").as_bytes())
        .await
        .unwrap();
    send.finish().unwrap();
    recv.read_to_end(1 << 20).await.unwrap()
}

/// `quiver serve` accepts 0-RTT on HTTP/0.9 (RFC 9001 §4.6): a quinn
/// client resumes and sends its GET in 0-RTT, and the answer comes; a
/// connection that becomes HTTP/3 refuses 0-RTT (requests of any method
/// could be replayed, RFC 9001 §9.2), so its tickets do not offer it.
#[test]
fn serve_accepts_0rtt_for_http09_only() {
    let root = TempDir::new("0rtt-root");
    std::fs::write(root.path().join("f"), b"early answer").unwrap();
    let server = serve(root.path(), &[]);
    let cert = std::fs::read(server.cert.as_ref().unwrap()).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let limit = std::time::Duration::from_secs(10);
        tokio::time::timeout(limit, async {
            // HTTP/0.9: accepted.
            let hq = quinn_0rtt_endpoint(&cert, &[b"hq-interop"]);
            let first = hq.connect(addr, "localhost").unwrap().await.unwrap();
            // The ticket precedes the answer.
            assert_eq!(get(&first, "f").await, b"early answer");
            let (conn, accepted) = hq
                .connect(addr, "localhost")
                .unwrap()
                .into_0rtt()
                .expect("the ticket allows 0-RTT");
            assert_eq!(get(&conn, "f").await, b"early answer");
            assert!(accepted.await, "0-RTT rejected on HTTP/0.9");

            // HTTP/3: rejected.
            let h3 = quinn_0rtt_endpoint(&cert, &[b"h3", b"hq-interop"]);
            let first = h3.connect(addr, "localhost").unwrap().await.unwrap();
            // The server's control stream follows its ticket.
            let _control = first.accept_uni().await.unwrap();
            // Its ticket was issued without early data (the connection
            // refused 0-RTT), so the client does not even try; it still
            // resumes.
            let connecting = h3.connect(addr, "localhost").unwrap();
            let connecting = match connecting.into_0rtt() {
                Ok(_) => panic!("the ticket of an HTTP/3 connection allows 0-RTT"),
                Err(connecting) => connecting,
            };
            connecting.await.unwrap();
        })
        .await
        .expect("timed out");
    });
}

/// `get --0rtt` (the interop runner's zerortt case): the second
/// connection sends its HTTP/0.9 requests in 0-RTT, which `serve`
/// accepts; the files arrive whole, `-v` and `--json` say so, and the key
/// log holds the early secret so captures decrypt. Over HTTP/3 `serve`
/// issues tickets without 0-RTT, and `get` falls back to a resumed 1-RTT
/// connection.
#[test]
fn get_0rtt_sends_the_second_requests_in_0rtt() {
    let root = TempDir::new("0rtt-get-root");
    let sizes = [3000, 50_000, 7];
    for (i, &len) in sizes.iter().enumerate() {
        std::fs::write(root.path().join(format!("z{i}")), content(len, i as u32)).unwrap();
    }
    let server = serve(root.path(), &[]);
    let urls: Vec<String> = (0..sizes.len())
        .map(|i| url(server.port, &format!("z{i}")))
        .collect();
    for (alpn, kind, json) in [
        ("hq-interop", "resumed, 0-RTT accepted", "\"zero_rtt\":true"),
        ("h3", "resumed, 0-RTT not offered", "\"zero_rtt\":null"),
    ] {
        let out = TempDir::new(&format!("0rtt-get-out-{alpn}"));
        let keylog = out.path().join("keys.log");
        let files = out.path().join("files");
        let mut args = vec![
            "get",
            "--insecure",
            "--0rtt",
            "--keylog",
            "-v",
            "--json",
            "--alpn",
            alpn,
            "--out",
            files.to_str().unwrap(),
        ];
        args.extend(urls.iter().map(String::as_str));
        let (result, _) = run_with(&args, &[("SSLKEYLOGFILE", &keylog)], DEADLINE);
        let err = stderr(&result);
        assert!(result.status.success(), "{err}");
        assert!(err.contains("connection 1: full handshake"), "{err}");
        assert!(err.contains(&format!("connection 2: {kind}")), "{err}");
        let out_json = stdout(&result);
        assert!(out_json.contains(json), "{out_json}");
        assert!(out_json.contains("\"resumed\":[false,true]"), "{out_json}");
        for (i, &len) in sizes.iter().enumerate() {
            let got = std::fs::read(files.join(format!("z{i}"))).unwrap();
            assert_eq!(sha256(&got), sha256(&content(len, i as u32)), "file z{i}");
        }
        let keys = std::fs::read_to_string(&keylog).unwrap();
        assert_eq!(
            keys.contains("CLIENT_EARLY_TRAFFIC_SECRET"),
            alpn == "hq-interop",
            "{keys}"
        );
    }
}

/// `get --0rtt` writes every request of the second connection in 0-RTT
/// packets (RFC 9001 §4.6.1), as the interop runner's zerortt case checks
/// in its captures (`interop/external/wire.sh` does too): the client's
/// qlog of that connection shows a STREAM frame of each request stream in
/// a 0-RTT packet. The requests used to be sent from tasks of their own,
/// which a busy machine could schedule after the server's first flight
/// (half a millisecond away on loopback) had completed the handshake, and
/// then they went in 1-RTT; they are now written before those tasks start.
/// That race showed over HTTP/3 (against ngtcp2, in wire.sh), which
/// `serve` does not take in 0-RTT; over HTTP/0.9 this test did not catch
/// it, and guards the outcome only.
#[test]
fn get_0rtt_requests_travel_in_0rtt_packets() {
    let root = TempDir::new("0rtt-qlog-root");
    let count = 7;
    for i in 0..count {
        std::fs::write(
            root.path().join(format!("q{i}")),
            content(2000 + i, i as u32),
        )
        .unwrap();
    }
    let server = serve(root.path(), &[]);
    let out = TempDir::new("0rtt-qlog-out");
    let qlogs = out.path().join("qlog");
    let files = out.path().join("files");
    let urls: Vec<String> = (0..count)
        .map(|i| url(server.port, &format!("q{i}")))
        .collect();
    let mut args = vec![
        "get",
        "--insecure",
        "--0rtt",
        "-v",
        "--alpn",
        "hq-interop",
        "--qlog-dir",
        qlogs.to_str().unwrap(),
        "--out",
        files.to_str().unwrap(),
    ];
    args.extend(urls.iter().map(String::as_str));
    let (result, _) = run_with(&args, &[], DEADLINE);
    let err = stderr(&result);
    assert!(result.status.success(), "{err}");
    assert!(
        err.contains("connection 2: resumed, 0-RTT accepted"),
        "{err}"
    );
    // Stream IDs carried in the 0-RTT packets of each client qlog.
    let mut early: Vec<std::collections::BTreeSet<u64>> = Vec::new();
    for entry in std::fs::read_dir(&qlogs).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut streams = std::collections::BTreeSet::new();
        for record in text.split('\u{1e}').filter(|r| !r.trim().is_empty()) {
            let event: serde_json::Value = serde_json::from_str(record.trim()).unwrap();
            let data = &event["data"];
            if event["name"] != "transport:packet_sent" || data["header"]["packet_type"] != "0RTT" {
                continue;
            }
            for frame in data["frames"].as_array().into_iter().flatten() {
                if frame["frame_type"] == "stream" {
                    streams.insert(frame["stream_id"].as_u64().unwrap());
                }
            }
        }
        early.push(streams);
    }
    early.sort();
    // The first connection sends nothing in 0-RTT; the second, the six
    // requests on client bidirectional streams 0, 4, ..., 20.
    let requests: std::collections::BTreeSet<u64> = (0..count as u64 - 1).map(|i| i * 4).collect();
    assert_eq!(early, [std::collections::BTreeSet::new(), requests]);
}
