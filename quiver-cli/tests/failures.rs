//! `quiver get` failing fast and clearly: a closed port is reported as
//! refused within a second (an ICMP port unreachable for the first
//! flight, RFC 9000 §14.2.1), not after the 10 s timeout; a rejected
//! certificate says what to pass.

mod common;

use std::time::Duration;

use common::{TempDir, one_error_line, run, run_with, serve, url};

/// A loopback port nobody listens on (bound, then closed).
fn closed_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[cfg(target_os = "linux")]
#[test]
fn closed_port_is_refused_at_once() {
    let port = closed_port();
    let (out, took) = run_with(
        &["get", "--insecure", &url(port, "x")],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(
        one_error_line(&out),
        format!("error: connection refused by 127.0.0.1:{port}")
    );
    // The handshake timeout is 10 s; a second is the promise, with slack
    // for a loaded machine.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // --json reports the same.
    let (out, _) = run_with(
        &["get", "--insecure", "--json", &url(port, "x")],
        &[],
        Duration::from_secs(30),
    );
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.contains(&format!(
            "\"error\":\"connection refused by 127.0.0.1:{port}\""
        )),
        "{json}"
    );
}

#[test]
fn rejected_certificate_ends_with_a_hint() {
    let root = TempDir::new("cert-hint");
    std::fs::write(root.path().join("c"), b"x").unwrap();
    let server = serve(root.path(), &[]);
    // The self-signed certificate is in no trust store.
    let out = run(&["get", "--timeout", "5", &url(server.port, "c")]);
    let line = one_error_line(&out);
    assert!(line.starts_with("error: certificate rejected: "), "{line}");
    assert!(
        line.ends_with("; hint: pass --ca PEM, or --insecure for a test server"),
        "{line}"
    );
    // Not for other failures.
    let out = run(&["get", "--insecure", &url(server.port, "missing")]);
    assert!(!one_error_line(&out).contains("hint:"));
}
