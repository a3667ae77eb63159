//! Structure-aware: a connected client and server in the simulated network
//! (virtual time, a clean link), and a hostile peer that sends arbitrary
//! sequences of well-formed frames (typed, with fuzzed fields), raw frame
//! bytes, and application actions, in 1-RTT packets both ways, with time
//! passing between them.
//!
//! Oracles, beyond "nothing panics":
//! - a connection that closes because of what its peer sent closes with a
//!   transport error the peer could have caused, never INTERNAL_ERROR (a
//!   bug of ours, RFC 9000 §20.1);
//! - the victim's buffered stream data stays within what it advertised
//!   (checked through its stats: receive windows are bounded by
//!   `TransportConfig`).

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use quiver_proto::frame::{
    ApplicationClose, ConnectionClose, Crypto, DataBlocked, Datagram, Dir, Frame, FrameType,
    MaxData, MaxStreamData, MaxStreams, NewConnectionId, NewToken, PathChallenge, PathResponse,
    ResetStream, RetireConnectionId, StopSending, Stream, StreamDataBlocked, StreamsBlocked,
    encode_ack,
};
use quiver_proto::{ConnectionError, ConnectionId, TransportConfig, TransportErrorCode, VarInt};
use quiver_sim::quic::{Pair, TestPki};
use quiver_sim::{LinkConfig, Seed};

const ONE_RTT: u8 = 2;

/// A frame with fuzzed fields, encoded by quiver's own encoders (so it is
/// well-formed and reaches the connection's frame handling, not only the
/// decoder).
#[derive(Debug, Arbitrary)]
enum FuzzFrame {
    Padding(u8),
    Ping,
    /// Ranges as (gap, length) pairs below `largest`.
    Ack {
        largest: u16,
        ranges: Vec<(u8, u8)>,
        delay: u16,
        ecn: Option<(u16, u16, u16)>,
    },
    ResetStream {
        id: u16,
        code: u16,
        final_size: u32,
    },
    StopSending {
        id: u16,
        code: u16,
    },
    Crypto {
        offset: u32,
        len: u8,
    },
    NewToken {
        len: u8,
    },
    Stream {
        id: u16,
        offset: u32,
        len: u16,
        fin: bool,
    },
    MaxData(u32),
    MaxStreamData {
        id: u16,
        max: u32,
    },
    MaxStreams {
        bidi: bool,
        count: u32,
    },
    DataBlocked(u32),
    StreamDataBlocked {
        id: u16,
        limit: u32,
    },
    StreamsBlocked {
        bidi: bool,
        limit: u32,
    },
    NewConnectionId {
        sequence: u8,
        retire_prior_to: u8,
        len: u8,
        byte: u8,
    },
    RetireConnectionId(u8),
    PathChallenge([u8; 8]),
    PathResponse([u8; 8]),
    ConnectionClose {
        code: u16,
        frame_type: u8,
    },
    ApplicationClose(u16),
    HandshakeDone,
    Datagram {
        len: u16,
    },
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Typed frames in one 1-RTT packet from one side (true: the client).
    Frames {
        from_client: bool,
        frames: Vec<FuzzFrame>,
    },
    /// Raw frame bytes in one 1-RTT packet.
    Raw { from_client: bool, bytes: Vec<u8> },
    /// The application opens a stream and writes `len` bytes (finishing
    /// it or not).
    Write {
        from_client: bool,
        bidi: bool,
        len: u16,
        fin: bool,
    },
    /// The application sends a datagram.
    SendDatagram { from_client: bool, len: u8 },
    /// Virtual time passes: the peers exchange what they have.
    Run { millis: u16 },
    /// A key update from one side (RFC 9001 §6).
    KeyUpdate { from_client: bool },
}

fn v(x: u64) -> VarInt {
    VarInt::from_u64(x).unwrap_or(VarInt::MAX)
}

fn encode(frame: &FuzzFrame, payload: &[u8], buf: &mut Vec<u8>) {
    let data = |len: usize| &payload[..len.min(payload.len())];
    let f = match *frame {
        FuzzFrame::Padding(n) => Frame::Padding(usize::from(n) + 1),
        FuzzFrame::Ping => Frame::Ping,
        FuzzFrame::Ack {
            largest,
            ref ranges,
            delay,
            ecn,
        } => {
            let mut top = u64::from(largest);
            let mut list = Vec::new();
            for &(gap, len) in ranges.iter().take(64) {
                let low = top.saturating_sub(u64::from(len));
                list.push(low..=top);
                match low.checked_sub(u64::from(gap) + 2) {
                    Some(next) => top = next,
                    None => break,
                }
            }
            if list.is_empty() {
                list.push(top..=top);
            }
            let ecn = ecn.map(|(a, b, c)| quiver_proto::frame::EcnCounts {
                ect0: v(a.into()),
                ect1: v(b.into()),
                ce: v(c.into()),
            });
            encode_ack(list, v(delay.into()), ecn, buf);
            return;
        }
        FuzzFrame::ResetStream {
            id,
            code,
            final_size,
        } => Frame::ResetStream(ResetStream {
            id: v(id.into()),
            error_code: v(code.into()),
            final_size: v(final_size.into()),
        }),
        FuzzFrame::StopSending { id, code } => Frame::StopSending(StopSending {
            id: v(id.into()),
            error_code: v(code.into()),
        }),
        FuzzFrame::Crypto { offset, len } => Frame::Crypto(Crypto {
            offset: v(offset.into()),
            data: data(len.into()),
        }),
        FuzzFrame::NewToken { len } => Frame::NewToken(NewToken {
            token: data(usize::from(len).max(1)),
        }),
        FuzzFrame::Stream {
            id,
            offset,
            len,
            fin,
        } => Frame::Stream(Stream {
            id: v(id.into()),
            offset: v(offset.into()),
            fin,
            data: data(len.into()),
        }),
        FuzzFrame::MaxData(x) => Frame::MaxData(MaxData(v(x.into()))),
        FuzzFrame::MaxStreamData { id, max } => Frame::MaxStreamData(MaxStreamData {
            id: v(id.into()),
            max: v(max.into()),
        }),
        FuzzFrame::MaxStreams { bidi, count } => Frame::MaxStreams(MaxStreams {
            dir: if bidi { Dir::Bi } else { Dir::Uni },
            count: v(count.into()),
        }),
        FuzzFrame::DataBlocked(x) => Frame::DataBlocked(DataBlocked(v(x.into()))),
        FuzzFrame::StreamDataBlocked { id, limit } => Frame::StreamDataBlocked(StreamDataBlocked {
            id: v(id.into()),
            limit: v(limit.into()),
        }),
        FuzzFrame::StreamsBlocked { bidi, limit } => Frame::StreamsBlocked(StreamsBlocked {
            dir: if bidi { Dir::Bi } else { Dir::Uni },
            limit: v(limit.into()),
        }),
        FuzzFrame::NewConnectionId {
            sequence,
            retire_prior_to,
            len,
            byte,
        } => {
            let len = usize::from(len % 21);
            let id = ConnectionId::new(&[byte; 20][..len.max(1)]).unwrap();
            Frame::NewConnectionId(NewConnectionId {
                sequence: v(sequence.into()),
                retire_prior_to: v(retire_prior_to.into()),
                id,
                reset_token: [byte ^ 0x5a; 16],
            })
        }
        FuzzFrame::RetireConnectionId(seq) => Frame::RetireConnectionId(RetireConnectionId {
            sequence: v(seq.into()),
        }),
        FuzzFrame::PathChallenge(d) => Frame::PathChallenge(PathChallenge(d)),
        FuzzFrame::PathResponse(d) => Frame::PathResponse(PathResponse(d)),
        FuzzFrame::ConnectionClose { code, frame_type } => {
            Frame::ConnectionClose(ConnectionClose {
                error_code: v(code.into()),
                frame_type: FrameType::from(v(frame_type.into())),
                reason: data(8),
            })
        }
        FuzzFrame::ApplicationClose(code) => Frame::ApplicationClose(ApplicationClose {
            error_code: v(code.into()),
            reason: data(4),
        }),
        FuzzFrame::HandshakeDone => Frame::HandshakeDone,
        FuzzFrame::Datagram { len } => Frame::Datagram(Datagram {
            data: data(len.into()),
        }),
    };
    f.encode(buf);
}

fn pki() -> TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(TestPki::new).clone()
}

fn transport() -> TransportConfig {
    TransportConfig {
        max_datagram_frame_size: Some(1200),
        ..TransportConfig::default()
    }
}

/// The close reason must not blame ourselves for what the peer sent.
fn check_close(reason: Option<&ConnectionError>) {
    if let Some(ConnectionError::TransportError(e)) = reason {
        assert_ne!(
            e.code,
            TransportErrorCode::INTERNAL_ERROR,
            "closed with INTERNAL_ERROR: {e}"
        );
    }
}

fuzz_target!(|ops: Vec<Op>| {
    // Inputs with an odd number of operations get a server that does not
    // advertise min_ack_delay: the client then skips packet numbers to
    // draw its ACKs (`connection/ack_elicit.rs`), and the hostile server's
    // ACKs meet the check for skipped numbers.
    let mut server = transport();
    if ops.len() % 2 == 1 {
        server.min_ack_delay = None;
    }
    let mut pair = Pair::with_pki(Seed(7), LinkConfig::default(), transport(), server, pki());
    let (client, _) = pair.connect_and_wait(Duration::from_secs(5));
    let payload = [0xa5u8; 1200];
    for op in ops.iter().take(64) {
        match op {
            Op::Frames {
                from_client,
                frames,
            } => {
                let mut buf = Vec::new();
                for frame in frames.iter().take(32) {
                    let before = buf.len();
                    encode(frame, &payload, &mut buf);
                    if buf.len() > 1000 {
                        buf.truncate(before);
                        break;
                    }
                }
                if buf.is_empty() {
                    continue;
                }
                let conn = if *from_client {
                    pair.client_conn(client)
                } else {
                    pair.server_conn()
                };
                conn.send_raw_frames_for_test(ONE_RTT, buf);
            }
            Op::Raw { from_client, bytes } => {
                if bytes.is_empty() || bytes.len() > 1000 {
                    continue;
                }
                let conn = if *from_client {
                    pair.client_conn(client)
                } else {
                    pair.server_conn()
                };
                conn.send_raw_frames_for_test(ONE_RTT, bytes.clone());
            }
            Op::Write {
                from_client,
                bidi,
                len,
                fin,
            } => {
                let conn = if *from_client {
                    pair.client_conn(client)
                } else {
                    pair.server_conn()
                };
                let dir = if *bidi { Dir::Bi } else { Dir::Uni };
                if let Some(id) = conn.open_stream(dir) {
                    let _ = conn.write(id, &payload[..usize::from(*len) % payload.len()]);
                    if *fin {
                        let _ = conn.finish(id);
                    }
                }
            }
            Op::SendDatagram { from_client, len } => {
                let conn = if *from_client {
                    pair.client_conn(client)
                } else {
                    pair.server_conn()
                };
                let _ = conn
                    .send_datagram(bytes::Bytes::copy_from_slice(&payload[..usize::from(*len)]));
            }
            Op::Run { millis } => {
                let until = Duration::from_millis(u64::from(*millis % 2000) + 1);
                pair.run_until(until, |_| false);
            }
            Op::KeyUpdate { from_client } => {
                let conn = if *from_client {
                    pair.client_conn(client)
                } else {
                    pair.server_conn()
                };
                let _ = conn.force_key_update();
            }
        }
        pair.poke_client();
        pair.poke_server();
        pair.run_until(Duration::from_millis(5), |_| false);
        check_close(pair.client_conn(client).close_reason());
        check_close(pair.server_conn().close_reason());
    }
    pair.run_until(Duration::from_secs(1), |_| false);
    check_close(pair.client_conn(client).close_reason());
    check_close(pair.server_conn().close_reason());
});
