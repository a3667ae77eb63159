//! Behaviour of the streams module: two [`StreamsState`]s, a client and a
//! server, exchange frames encoded into packets and decoded with
//! [`frame::Iter`].

use std::time::{Duration, Instant};

use super::*;
use crate::frame::{self, Frame};
use crate::{TransportError, TransportErrorCode};

mod chunks;
mod errors;
mod flows;

const MTU: usize = 1200;
const RTT: Duration = Duration::from_millis(10);

fn v(x: u64) -> VarInt {
    VarInt::from_u64(x).unwrap()
}

fn params(config: &StreamsConfig) -> TransportParameters {
    let mut tp = TransportParameters::default();
    config.apply_to(&mut tp);
    tp
}

/// What one packet carried, for acknowledgement or loss.
#[derive(Debug, Default, Clone)]
struct Packet {
    payload: Vec<u8>,
    chunks: Vec<StreamChunk>,
    controls: Vec<ControlFrame>,
}

/// Builds the next packet `st` would send: control frames, then STREAM
/// frames. `None` if there is nothing to send.
fn build(st: &mut StreamsState) -> Option<Packet> {
    let mut p = Packet::default();
    let n = st.write_control_frames(&mut p.payload, MTU, &mut p.controls);
    st.write_stream_frames(&mut p.payload, MTU - n, &mut p.chunks);
    (!p.payload.is_empty()).then_some(p)
}

/// Hands every frame of `payload` to `st`.
fn deliver(st: &mut StreamsState, payload: &[u8]) -> Result<(), TransportError> {
    for frame in frame::Iter::new(payload) {
        match frame? {
            Frame::Stream(f) => st.on_stream_frame(&f)?,
            Frame::ResetStream(f) => st.on_reset_stream(&f)?,
            Frame::StopSending(f) => st.on_stop_sending(&f)?,
            Frame::MaxData(f) => st.on_max_data(&f),
            Frame::MaxStreamData(f) => st.on_max_stream_data(&f)?,
            Frame::MaxStreams(f) => st.on_max_streams(&f),
            Frame::DataBlocked(f) => st.on_data_blocked(&f),
            Frame::StreamDataBlocked(f) => st.on_stream_data_blocked(&f)?,
            Frame::StreamsBlocked(f) => st.on_streams_blocked(&f),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    Ok(())
}

fn ack(st: &mut StreamsState, p: &Packet) {
    p.chunks.iter().for_each(|c| st.on_stream_chunk_acked(c));
    p.controls.iter().for_each(|c| st.on_control_acked(c));
}

fn lose(st: &mut StreamsState, p: &Packet) {
    p.chunks.iter().for_each(|c| st.on_stream_chunk_lost(c));
    p.controls.iter().for_each(|c| st.on_control_lost(c));
}

/// Frame types in a payload, in order.
fn frame_types(payload: &[u8]) -> Vec<u64> {
    frame::Iter::new(payload)
        .map(|f| f.unwrap().ty().value())
        .collect()
}

/// Reads everything available: the bytes, and whether the end was reached.
fn read_all(st: &mut StreamsState, now: Instant, id: StreamId) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match st.read(now, RTT, id, &mut buf) {
            Ok(Some(n)) => out.extend_from_slice(&buf[..n]),
            Ok(None) => return (out, true),
            Err(ReadError::Blocked) => return (out, false),
            Err(e) => panic!("read {id}: {e}"),
        }
    }
}

/// A client and a server with a virtual clock.
struct Pair {
    client: StreamsState,
    server: StreamsState,
    now: Instant,
    /// Packets sent so far by both sides.
    sent: usize,
    /// Frame types of every packet: (sent by the client, types).
    trace: Vec<(bool, Vec<u64>)>,
}

impl Pair {
    fn new(client: &StreamsConfig, server: &StreamsConfig) -> Self {
        let (ctp, stp) = (params(client), params(server));
        let mut c = StreamsState::new(Side::Client, client, &ctp);
        let mut s = StreamsState::new(Side::Server, server, &stp);
        c.set_peer_params(&stp);
        s.set_peer_params(&ctp);
        Self {
            client: c,
            server: s,
            now: crate::recovery::test_epoch(),
            sent: 0,
            trace: Vec::new(),
        }
    }

    fn default_pair() -> Self {
        Self::new(&StreamsConfig::default(), &StreamsConfig::default())
    }

    fn sides(&mut self, from_client: bool) -> (&mut StreamsState, &mut StreamsState) {
        if from_client {
            (&mut self.client, &mut self.server)
        } else {
            (&mut self.server, &mut self.client)
        }
    }

    /// Sends one packet each way if there is one, acknowledging it at once
    /// unless `drop` says the packet (numbered across both sides) is lost.
    /// Returns whether anything was sent.
    fn step(&mut self, drop: &mut impl FnMut(usize) -> bool) -> bool {
        let mut any = false;
        for from_client in [true, false] {
            let n = self.sent;
            let (from, _) = self.sides(from_client);
            let Some(p) = build(from) else { continue };
            any = true;
            self.trace.push((from_client, frame_types(&p.payload)));
            let (from, to) = self.sides(from_client);
            if drop(n) {
                lose(from, &p);
            } else {
                deliver(to, &p.payload).unwrap();
                ack(from, &p);
            }
            self.sent += 1;
        }
        self.now += Duration::from_millis(1);
        any
    }

    /// Exchanges packets until both sides are quiet.
    fn settle(&mut self) {
        self.settle_with(&mut |_| false);
    }

    fn settle_with(&mut self, drop: &mut impl FnMut(usize) -> bool) {
        for _ in 0..100_000 {
            if !self.step(drop) {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn events(st: &mut StreamsState) -> Vec<StreamEvent> {
        std::iter::from_fn(|| st.poll_event()).collect()
    }

    /// Whether a packet from the given side carried frame type `ty`.
    fn sent_frame(&self, from_client: bool, ty: u64) -> bool {
        self.trace
            .iter()
            .any(|(c, types)| *c == from_client && types.contains(&ty))
    }
}

/// `len` bytes that differ per stream.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(0x9e37)) as u8)
        .collect()
}

/// A STREAM frame, as the peer would send it.
fn stream_frame(id: StreamId, offset: u64, data: &[u8], fin: bool) -> Vec<u8> {
    let mut out = Vec::new();
    frame::Stream {
        id: id.to_varint(),
        offset: v(offset),
        fin,
        data,
    }
    .encode(&mut out);
    out
}
