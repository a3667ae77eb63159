//! `quiver get` downloading from `quiver serve` through a UDP relay that
//! rebinds its server-facing side (a new port, a new address; once and
//! every 300 ms), as the QUIC interop runner's rebind-port and rebind-addr
//! cases do (RFC 9000 §9.3).

mod common;
mod relay;

use std::time::Duration;

use common::*;
use relay::{Rebind, Relay, Schedule};

// ------------------------------------------------ NAT rebinding (relay)

/// The file the rebinding tests fetch.
const REBIND_FILE: usize = 10 * 1024 * 1024;

/// `quiver get` fetches a 10 MB file from `quiver serve` through a relay
/// that moves its server-facing socket per `schedule`: the file arrives
/// whole, every switch happened mid-transfer, and the server followed the
/// last one (data came back through the newest socket).
fn fetch_through_rebinding_relay(name: &str, schedule: Schedule, min_switches: u32) {
    let root = TempDir::new(&format!("{name}-root"));
    let out = TempDir::new(&format!("{name}-out"));
    let data = content(REBIND_FILE, 77);
    std::fs::write(root.path().join("big"), &data).unwrap();
    let server = serve(root.path(), &[]);
    let relay = Relay::start(([127, 0, 0, 1], server.port).into(), schedule);
    let link = format!("https://{}/big", relay.addr());
    let (result, took) = run_with(
        &[
            "get",
            "--insecure",
            "--out",
            out.path().to_str().unwrap(),
            &link,
        ],
        &[],
        DEADLINE,
    );
    assert!(result.status.success(), "{}", stderr(&result));
    let got = std::fs::read(out.path().join("big")).unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256(&got), sha256(&data), "file differs");
    let switches = relay.switches();
    eprintln!("{name}: {switches} switches, {took:?}");
    assert!(
        switches >= min_switches,
        "{switches} switches in {took:?}, wanted {min_switches}"
    );
    assert!(relay.to_client() >= REBIND_FILE as u64, "all of it relayed");
    assert!(
        relay.before_first_switch() < REBIND_FILE as u64,
        "the first switch came mid-transfer"
    );
    assert!(
        relay.through_newest_socket() > 0,
        "the server sent to the relay's newest address"
    );
}

#[test]
fn rebind_port_once() {
    let schedule = Schedule {
        rebind: Rebind::Port,
        first_after: 3 << 20,
        every: None,
        rate: None,
    };
    fetch_through_rebinding_relay("rebind-port", schedule, 1);
}

#[test]
fn rebind_address_once() {
    let schedule = Schedule {
        rebind: Rebind::Address,
        first_after: 3 << 20,
        every: None,
        rate: None,
    };
    fetch_through_rebinding_relay("rebind-addr", schedule, 1);
}

/// Every 300 ms through a 5 MB/s bottleneck (2 s for the file): about
/// six moves.
#[test]
fn rebind_port_every_300_ms() {
    let schedule = Schedule {
        rebind: Rebind::Port,
        first_after: 1 << 20,
        every: Some(Duration::from_millis(300)),
        rate: Some(5 << 20),
    };
    fetch_through_rebinding_relay("rebind-port-often", schedule, 3);
}

#[test]
fn rebind_address_every_300_ms() {
    let schedule = Schedule {
        rebind: Rebind::Address,
        first_after: 1 << 20,
        every: Some(Duration::from_millis(300)),
        rate: Some(5 << 20),
    };
    fetch_through_rebinding_relay("rebind-addr-often", schedule, 3);
}
