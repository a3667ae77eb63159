//! A server that sends disable_active_migration (RFC 9000 §18.2,
//! `TransportConfig::disable_active_migration`): the client does not
//! migrate, a NAT rebinding is still followed (validated, §9), and the
//! preferred address stays usable.

use std::net::SocketAddr;
use std::time::Duration;

use quiver_proto::{MigrateError, TransportConfig};
use quiver_sim::quic::{AppConfig, Pair, SERVER_ADDR, SendPlan};
use quiver_sim::{LinkConfig, for_each_seed, loopback};

const MB: u64 = 1_000_000;
const PREFERRED: SocketAddr = loopback(5, 4500);

fn link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        bandwidth: Some(2_500_000),
        ..LinkConfig::default()
    }
}

fn server_config() -> TransportConfig {
    TransportConfig {
        disable_active_migration: true,
        ..TransportConfig::default()
    }
}

/// Starts a download of `len` bytes from the server; returns the client's
/// handle and whether the download is done, as a closure's state.
fn download(
    pair: &mut Pair,
    len: u64,
) -> (quiver_proto::ConnectionHandle, quiver_sim::quic::SharedApp) {
    pair.server_app(AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    });
    let receiver = pair.client_app(AppConfig::default());
    let (client, _) = pair.connect_and_wait(Duration::from_secs(10));
    (client, receiver)
}

/// The client does not migrate on its own (§9: it "MUST NOT send packets
/// ... from a different local address"), but its NAT may still move it.
/// The server "MUST either drop the incoming packets on that path ... or
/// proceed with path validation and allow the peer to migrate": quiver
/// validates, so the download survives the rebinding.
#[test]
fn a_nat_rebinding_is_still_followed() {
    for_each_seed(5, |seed| {
        let mut pair =
            Pair::with_configs(seed, link(), TransportConfig::default(), server_config());
        let (client, r) = download(&mut pair, 4 * MB);
        pair.net.run_for(Duration::from_millis(200));
        let now = pair.net.now();
        assert_eq!(
            pair.client_conn(client).migrate(now),
            Err(MigrateError::DisabledByPeer)
        );
        let new_addr = loopback(2, 6000);
        pair.net.nat_rebind(pair.client, new_addr);
        let done = pair.run_until(Duration::from_secs(30), |_| {
            r.borrow().streams_finished() == 1
        });
        assert!(done, "seed {seed}: download incomplete after the rebinding");
        r.borrow().assert_intact();
        let server = pair.server_conn();
        assert_eq!(server.remote_address(), new_addr);
        assert_eq!(server.stats().migrations, 1);
    });
}

/// §18.2: the parameter "does not prohibit connection migration after a
/// client has acted on a preferred_address": the client still moves to
/// the server's preferred address and the download completes there.
#[test]
fn the_preferred_address_stays_open() {
    for_each_seed(5, |seed| {
        let mut pair = Pair::with_server_endpoint(
            seed,
            link(),
            TransportConfig::default(),
            server_config(),
            |e| {
                e.preferred_address_v4 = match PREFERRED {
                    SocketAddr::V4(a) => Some(a),
                    SocketAddr::V6(_) => None,
                }
            },
        );
        pair.net.add_alias(pair.server, PREFERRED);
        let (client, r) = download(&mut pair, 2 * MB);
        let done = pair.run_until(Duration::from_secs(60), |_| {
            r.borrow().streams_finished() == 1
        });
        assert!(done, "download incomplete");
        r.borrow().assert_intact();
        assert_eq!(pair.client_conn(client).remote_address(), PREFERRED);
        assert_eq!(pair.server_conn().local_address(), Some(PREFERRED));
        assert_ne!(pair.client_conn(client).remote_address(), SERVER_ADDR);
    });
}
