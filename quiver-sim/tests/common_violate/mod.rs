//! Set-up shared by the files that play a misbehaving peer with
//! `send_raw_frames_for_test` (encoded frames put verbatim into the next
//! packet of a space): connect, misbehave, and check that the victim closes
//! with the expected transport error and that the misbehaving side hears
//! the same code in the victim's CONNECTION_CLOSE (RFC 9000 §10.2, §20.1).
#![allow(dead_code)] // each test file uses a subset

use std::time::Duration;

use quiver_proto::frame::{Frame, Stream};
use quiver_proto::{
    ConnectionError, ConnectionHandle, Side, TransportConfig, TransportErrorCode, VarInt,
};
use quiver_sim::quic::Pair;
use quiver_sim::{LinkConfig, Seed};

/// Packet number spaces as `send_raw_frames_for_test` numbers them.
pub const HANDSHAKE: u8 = 1;
pub const ONE_RTT: u8 = 2;

pub fn encode(frames: &[Frame<'_>]) -> Vec<u8> {
    let mut buf = Vec::new();
    for f in frames {
        f.encode(&mut buf);
    }
    buf
}

pub fn stream<'a>(id: u64, offset: u64, data: &'a [u8], fin: bool) -> Frame<'a> {
    Frame::Stream(Stream {
        id: VarInt::from_u64(id).unwrap(),
        offset: VarInt::from_u64(offset).unwrap(),
        fin,
        data,
    })
}

pub fn v(x: u64) -> VarInt {
    VarInt::from_u64(x).unwrap()
}

/// The expected outcome: the code, and the frame type the error names
/// (`None`: not checked).
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub code: TransportErrorCode,
    /// A second code the RFC allows instead ("... of type X or Y").
    pub alt: Option<TransportErrorCode>,
    pub frame_type: Option<u64>,
}

pub fn expect(code: TransportErrorCode, frame_type: u64) -> Expect {
    Expect {
        code,
        alt: None,
        frame_type: Some(frame_type),
    }
}

/// Either of two codes the RFC allows, with the frame type.
pub fn expect_either(code: TransportErrorCode, alt: TransportErrorCode, frame_type: u64) -> Expect {
    Expect {
        code,
        alt: Some(alt),
        frame_type: Some(frame_type),
    }
}

impl Expect {
    fn allows(&self, code: TransportErrorCode) -> bool {
        code == self.code || Some(code) == self.alt
    }
}

/// Runs until both ends are closed and checks both close reasons.
pub fn assert_closed_with(pair: &mut Pair, client: ConnectionHandle, misbehaver: Side, e: &Expect) {
    let closed = pair.run_until(Duration::from_secs(5), |p| {
        p.client_conn(client).close_reason().is_some()
            && p.server_handle().is_some()
            && p.server_conn().close_reason().is_some()
    });
    let client_reason = pair.client_conn(client).close_reason().cloned();
    let server_reason = pair
        .server_handle()
        .and_then(|_| pair.server_conn().close_reason().cloned());
    assert!(
        closed,
        "not both closed: client {client_reason:?}, server {server_reason:?}"
    );
    let (bad, victim) = match misbehaver {
        Side::Client => (client_reason.unwrap(), server_reason.unwrap()),
        Side::Server => (server_reason.unwrap(), client_reason.unwrap()),
    };
    match &victim {
        ConnectionError::TransportError(t) => {
            assert!(e.allows(t.code), "victim: {victim}, expected {}", e.code);
            if let Some(ty) = e.frame_type {
                assert_eq!(t.frame_type, Some(ty), "victim: {victim}");
            }
        }
        other => panic!(
            "victim closed with {other:?}, expected a transport error {}",
            e.code
        ),
    }
    match &bad {
        ConnectionError::ConnectionClosed {
            code, frame_type, ..
        } => {
            assert!(
                e.allows(*code),
                "misbehaving side: {bad}, expected {}",
                e.code
            );
            if let ConnectionError::TransportError(t) = &victim {
                assert_eq!(
                    *code, t.code,
                    "the misbehaving side hears the victim's code"
                );
            }
            if let Some(ty) = e.frame_type {
                assert_eq!(*frame_type, Some(ty), "misbehaving side: {bad}");
            }
        }
        other => panic!(
            "misbehaving side closed with {other:?}, expected the peer's CONNECTION_CLOSE with {}",
            e.code
        ),
    }
}

pub fn connected(client: TransportConfig, server: TransportConfig) -> (Pair, ConnectionHandle) {
    connected_seeded(Seed::from_env_or(1), client, server)
}

/// [`connected`] with the given seed.
pub fn connected_seeded(
    seed: Seed,
    client: TransportConfig,
    server: TransportConfig,
) -> (Pair, ConnectionHandle) {
    let mut pair = Pair::with_configs(seed, LinkConfig::default(), client, server);
    let (client, _) = pair.connect_and_wait(Duration::from_secs(5));
    (pair, client)
}

/// After the handshake, `misbehaver` sends `frames` in a 1-RTT packet.
pub fn violate_after_handshake(misbehaver: Side, frames: Vec<u8>, e: Expect) {
    violate_with(TransportConfig::default(), misbehaver, |_, _| {}, frames, e);
}

pub fn violate_with(
    server_config: TransportConfig,
    misbehaver: Side,
    setup: impl FnOnce(&mut Pair, ConnectionHandle),
    frames: Vec<u8>,
    e: Expect,
) {
    let (mut pair, client) = connected(TransportConfig::default(), server_config);
    setup(&mut pair, client);
    send_as(&mut pair, client, misbehaver, frames);
    assert_closed_with(&mut pair, client, misbehaver, &e);
}

/// `side` puts `frames` verbatim into its next 1-RTT packet.
pub fn send_as(pair: &mut Pair, client: ConnectionHandle, side: Side, frames: Vec<u8>) {
    match side {
        Side::Client => pair
            .client_conn(client)
            .send_raw_frames_for_test(ONE_RTT, frames),
        Side::Server => pair.server_conn().send_raw_frames_for_test(ONE_RTT, frames),
    }
}

/// [`violate_with`] for each of `seeds` seeds (`QUIVER_SIM_SEEDS` raises
/// it): `setup` runs after the handshake, then `misbehaver` sends `frames`
/// in a 1-RTT packet and both closes are checked.
pub fn violate_seeds(
    seeds: usize,
    misbehaver: Side,
    setup: impl Fn(&mut Pair, ConnectionHandle),
    frames: &[u8],
    e: Expect,
) {
    quiver_sim::for_each_seed(seeds, |seed| {
        let (mut pair, client) =
            connected_seeded(seed, TransportConfig::default(), TransportConfig::default());
        setup(&mut pair, client);
        send_as(&mut pair, client, misbehaver, frames.to_vec());
        assert_closed_with(&mut pair, client, misbehaver, &e);
    });
}

/// The server puts `frames` into its first Handshake packet; the client is
/// the victim, mid-handshake.
pub fn server_violates_in_handshake(seed: Seed, frames: Vec<u8>, e: Expect) {
    let mut pair = Pair::new(seed, LinkConfig::default());
    let mut frames = Some(frames);
    pair.server().set_app(move |endpoint, _now| {
        if let Some(h) = endpoint.connection_handles().first().copied() {
            if let Some(frames) = frames.take() {
                endpoint
                    .connection(h)
                    .unwrap()
                    .send_raw_frames_for_test(HANDSHAKE, frames);
            }
        }
    });
    let client = pair.connect();
    assert_closed_with(&mut pair, client, Side::Server, &e);
    assert!(!pair.client_conn(client).is_handshake_complete());
}
