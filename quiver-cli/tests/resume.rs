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
