//! The 0-RTT stage of the close matrix (RFC 9000 §10.2.3, RFC 9001 §4.6):
//! a client resuming with a ticket that allows early data, its first
//! flight carrying stream data in 0-RTT packets.

use std::time::Duration;

use quiver_proto::frame::Dir;
use quiver_proto::{Connection, TransportConfig};
use quiver_sim::LinkConfig;
use quiver_sim::Seed;
use quiver_sim::quic::{CLIENT_ADDR, Pair, SERVER_ADDR, TestPki};

use super::common_zero_rtt::{early_data_pair, first_connection};
use super::{LINK_DELAY, Loss, Role, Stage};

/// Bytes the client writes before its handshake: several 0-RTT packets,
/// so under random loss some reach the server.
const EARLY_BYTES: usize = 6000;

/// A pair whose client holds a ticket allowing 0-RTT from a first
/// connection, run without loss and over (its server side drained), the
/// cell's `link` in force from then on.
pub(crate) fn resumable_pair(seed: Seed, link: LinkConfig) -> Pair {
    let lossless = LinkConfig {
        delay: LINK_DELAY,
        ..LinkConfig::default()
    };
    let mut pair = early_data_pair(seed, lossless, TransportConfig::default(), &TestPki::new());
    first_connection(&mut pair);
    let server_side = pair.server().accepted[0];
    for _ in 0..50 {
        if pair.server().conn(server_side).is_drained() {
            break;
        }
        pair.net.run_for(Duration::from_millis(100));
    }
    assert!(pair.server().conn(server_side).is_drained());
    pair.net.set_path(CLIENT_ADDR, SERVER_ADDR, link);
    pair
}

/// The client's 0-RTT data: a unidirectional stream, written and finished
/// before anything is sent.
pub(crate) fn write_early(conn: &mut Connection) {
    assert!(conn.is_zero_rtt_offered(), "no 0-RTT keys");
    let id = conn.open_stream(Dir::Uni).expect("a 0-RTT stream");
    let data = vec![0x30; EARLY_BYTES];
    assert_eq!(conn.write(id, &data).expect("0-RTT write"), EARLY_BYTES);
    conn.finish(id).expect("finish");
}

/// Whether random loss can keep the stage from happening at all: the
/// server's stage needs a 0-RTT packet read before its handshake
/// completes, and every one of them may be lost (0-RTT data lost is sent
/// again in 1-RTT). Such seeds are skipped, and counted.
pub(crate) fn may_be_unreachable(closer: Role, stage: Stage, loss: Loss) -> bool {
    closer == Role::Server && stage == Stage::ZeroRtt && matches!(loss, Loss::Random(_))
}
