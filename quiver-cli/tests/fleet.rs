//! `quiver serve`'s admission and QUIC-LB flags end to end.

mod common;

use common::*;

/// A server behind a QUIC-LB load balancer (encrypted 12-octet IDs,
/// draft-ietf-quic-load-balancers-21 §5.4) that validates every client's
/// address first (`--retry-threshold 0`, RFC 9000 §8.1.2) still serves
/// files whole, over HTTP/0.9 and HTTP/3.
#[test]
fn quic_lb_ids_and_automatic_retry() {
    let root = TempDir::new("fleet-root");
    std::fs::write(root.path().join("f"), content(300_000, 5)).unwrap();
    let server = serve(
        root.path(),
        &[
            "--quic-lb",
            "1:0a0b0c:8:000102030405060708090a0b0c0d0e0f",
            "--retry-threshold",
            "0",
            "--max-handshakes-per-source",
            "4",
            "--max-connections",
            "100",
            "--max-handshakes",
            "50",
        ],
    );
    for alpn in ["hq-interop", "h3"] {
        let out = TempDir::new("fleet-out");
        let result = run(&[
            "get",
            "--insecure",
            "--alpn",
            alpn,
            "--out",
            out.path().to_str().unwrap(),
            &url(server.port, "f"),
        ]);
        assert!(result.status.success(), "{alpn}: {}", stderr(&result));
        assert_eq!(
            std::fs::read(out.path().join("f")).unwrap(),
            content(300_000, 5)
        );
    }
}

#[test]
fn bad_quic_lb_spec_is_one_error_line() {
    for spec in ["7:0a:6", "0:0a:3", "0:zz:6", "0:0a:6:0011"] {
        let out = run(&["serve", "--listen", "127.0.0.1:0", "--quic-lb", spec]);
        assert!(!out.status.success(), "{spec}");
        assert!(
            stderr(&out).contains("--quic-lb"),
            "{spec}: {}",
            stderr(&out)
        );
    }
}

/// `--fleet-key FILE`: a server whose reset and token keys come from the
/// fleet's secret serves as usual (here with every client retried first);
/// a secret under 32 bytes is one error line.
#[test]
fn fleet_key_serves_and_a_short_key_is_one_error_line() {
    let root = TempDir::new("fleet-key-root");
    std::fs::write(root.path().join("f"), content(10_000, 3)).unwrap();
    let key = root.path().join("fleet.key");
    std::fs::write(&key, [0x5a; 48]).unwrap();
    let server = serve(
        root.path(),
        &[
            "--fleet-key",
            key.to_str().unwrap(),
            "--retry-threshold",
            "0",
        ],
    );
    let out = TempDir::new("fleet-key-out");
    let result = run(&[
        "get",
        "--insecure",
        "--out",
        out.path().to_str().unwrap(),
        &url(server.port, "f"),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(
        std::fs::read(out.path().join("f")).unwrap(),
        content(10_000, 3)
    );

    let short = root.path().join("short.key");
    std::fs::write(&short, [1u8; 8]).unwrap();
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--fleet-key",
        short.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--fleet-key"), "{}", stderr(&out));
}
