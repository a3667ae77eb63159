//! The sending part of a stream (RFC 9000 §3.1) and the buffer of data
//! written by the application until the peer acknowledges it.

use std::collections::VecDeque;
use std::ops::Range;

use super::flow_control::SendCredit;
use super::{FinishError, StreamChunk, StreamId, WriteError};
use crate::coding::VarInt;
use crate::frame::{StreamHeader, max_stream_data};
use crate::range_set::RangeSet;

/// States of the sending part of a stream (RFC 9000 §3.1, Figure 2).
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub(super) enum SendState {
    /// Created; nothing sent yet.
    Ready,
    /// Some data sent.
    Send,
    /// The FIN has been sent; only retransmissions remain.
    DataSent,
    /// All data and the FIN acknowledged: terminal.
    DataRecvd,
    /// RESET_STREAM sent (or queued).
    ResetSent,
    /// RESET_STREAM acknowledged: terminal.
    ResetRecvd,
}

/// Data written by the application, from the lowest unacknowledged offset
/// to the end of what was written.
#[derive(Debug, Default)]
pub(super) struct SendBuffer {
    /// Bytes at offsets `base..base + data.len()`.
    data: VecDeque<u8>,
    /// Every offset below this is acknowledged and freed.
    base: u64,
    /// Every offset below this has been sent at least once.
    unsent: u64,
    /// Acknowledged ranges above `base`.
    acked: RangeSet,
    /// Ranges declared lost and not acknowledged since, to send again.
    retransmit: RangeSet,
}

impl SendBuffer {
    /// The offset after the last byte written.
    pub(super) fn end(&self) -> u64 {
        self.base + self.data.len() as u64
    }

    /// Bytes held: written and not yet acknowledged.
    pub(super) fn buffered(&self) -> u64 {
        self.data.len() as u64
    }

    fn push(&mut self, bytes: &[u8]) {
        self.data.extend(bytes);
    }

    /// Appends `offset..offset + len` (all still buffered) to `out`.
    fn copy_to(&self, offset: u64, len: usize, out: &mut Vec<u8>) {
        let start = (offset - self.base) as usize;
        let (a, b) = self.data.as_slices();
        let end = start + len;
        if start < a.len() {
            out.extend_from_slice(&a[start..end.min(a.len())]);
        }
        if end > a.len() {
            out.extend_from_slice(&b[start.saturating_sub(a.len())..end - a.len()]);
        }
    }

    /// Marks `range` acknowledged; returns how many bytes were freed.
    fn on_ack(&mut self, range: Range<u64>) -> u64 {
        let start = range.start.max(self.base);
        if start >= range.end {
            return 0;
        }
        self.acked.insert(start..range.end);
        self.retransmit.remove(start..range.end);
        let mut freed = 0;
        while let Some(first) = self.acked.first() {
            if first.start > self.base {
                break;
            }
            self.acked.pop_min();
            let n = first.end - self.base;
            self.data.drain(..n as usize);
            self.base = first.end;
            freed += n;
        }
        freed
    }

    /// Queues the unacknowledged part of `range` for retransmission.
    fn on_lost(&mut self, range: Range<u64>) {
        let start = range.start.max(self.base);
        if start >= range.end {
            return;
        }
        self.retransmit.insert(start..range.end);
        for acked in self.acked.iter() {
            if acked.start >= range.end {
                break;
            }
            self.retransmit.remove(acked);
        }
    }

    /// Frees everything (after a reset).
    fn clear(&mut self) {
        self.data = VecDeque::new();
        self.acked.clear();
        self.retransmit.clear();
    }
}

/// Why a stream wrote no frame.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub(super) enum Skip {
    /// Not even a frame header fits in the space left.
    NoRoom,
    /// New data waits for connection-level credit.
    ConnBlocked,
    /// Nothing to send until the application writes, credit arrives or
    /// data is lost.
    Idle,
}

/// The sending part of a stream.
#[derive(Debug)]
pub(super) struct SendStream {
    pub(super) state: SendState,
    pub(super) buf: SendBuffer,
    /// Stream-level credit; `used` tracks `buf.unsent`.
    pub(super) credit: SendCredit,
    /// The most the application may have buffered.
    buffer_limit: u64,
    /// The application called finish.
    finished: bool,
    /// A frame with the FIN bit is in flight or acknowledged.
    fin_sent: bool,
    fin_acked: bool,
    /// Error code and final size of our RESET_STREAM.
    pub(super) reset: Option<(VarInt, u64)>,
    /// Error code of the peer's STOP_SENDING.
    pub(super) stop_code: Option<VarInt>,
    /// A write was refused for lack of buffer space: signal Writable later.
    pub(super) want_writable: bool,
}

impl SendStream {
    /// A stream in the Ready state with the peer's initial credit.
    pub(super) fn new(credit: u64, buffer_limit: u64) -> Self {
        Self {
            state: SendState::Ready,
            buf: SendBuffer::default(),
            credit: SendCredit::new(credit),
            buffer_limit,
            finished: false,
            fin_sent: false,
            fin_acked: false,
            reset: None,
            stop_code: None,
            want_writable: false,
        }
    }

    /// Whether the state is terminal (RFC 9000 §3.1: "Data Recvd" and
    /// "Reset Recvd").
    pub(super) fn is_terminal(&self) -> bool {
        matches!(self.state, SendState::DataRecvd | SendState::ResetRecvd)
    }

    /// Whether the application may still write or finish.
    fn check_writable(&self) -> Result<(), WriteError> {
        if let Some(code) = self.stop_code {
            return Err(WriteError::Stopped(code));
        }
        if self.finished || self.reset.is_some() || self.is_terminal() {
            return Err(WriteError::ClosedStream);
        }
        Ok(())
    }

    /// Buffers as much of `data` as the buffer limit allows, independently
    /// of flow-control credit.
    pub(super) fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        self.check_writable()?;
        let room = self.buffer_limit.saturating_sub(self.buf.buffered());
        // A stream's data can never pass 2^62-1 (RFC 9000 §19.8).
        let room = room.min(VarInt::MAX.into_inner() - self.buf.end());
        let n = (data.len() as u64).min(room) as usize;
        if n == 0 && !data.is_empty() {
            self.want_writable = true;
            return Err(WriteError::Blocked);
        }
        self.buf.push(&data[..n]);
        Ok(n)
    }

    /// Marks the end of the data: a FIN will follow the last byte.
    pub(super) fn finish(&mut self) -> Result<(), FinishError> {
        match self.check_writable() {
            Ok(()) => {
                self.finished = true;
                Ok(())
            }
            Err(WriteError::Stopped(code)) => Err(FinishError::Stopped(code)),
            Err(_) => Err(FinishError::ClosedStream),
        }
    }

    /// Abandons sending (RFC 9000 §3.1: from "Ready", "Send" or "Data
    /// Sent"). The final size is the data sent so far. Returns false if the
    /// stream was already reset or all its data acknowledged.
    pub(super) fn reset(&mut self, code: VarInt) -> bool {
        if !matches!(
            self.state,
            SendState::Ready | SendState::Send | SendState::DataSent
        ) {
            return false;
        }
        // RFC 9000 §4.5: "An endpoint MUST NOT send data on a stream at or
        // beyond the final size": the final size is the highest offset sent.
        self.reset = Some((code, self.buf.unsent));
        self.state = SendState::ResetSent;
        self.buf.clear();
        true
    }

    /// The peer's STOP_SENDING. RFC 9000 §3.5: "An endpoint that receives a
    /// STOP_SENDING frame MUST send a RESET_STREAM frame if the stream is in
    /// the "Ready" or "Send" state." We also reset from "Data Sent" (which
    /// §3.5 permits) rather than wait for acknowledgements. "An endpoint
    /// SHOULD copy the error code from the STOP_SENDING frame". Returns
    /// whether a RESET_STREAM is now due.
    pub(super) fn on_stop_sending(&mut self, code: VarInt) -> bool {
        if self.stop_code.is_none() && !self.is_terminal() {
            self.stop_code = Some(code);
        }
        self.reset(code)
    }

    /// Whether a FIN-only frame or retransmission is pending, or new data
    /// could go out given stream credit (connection credit aside).
    pub(super) fn has_sendable(&self) -> bool {
        if !matches!(
            self.state,
            SendState::Ready | SendState::Send | SendState::DataSent
        ) {
            return false;
        }
        !self.buf.retransmit.is_empty()
            || (self.buf.unsent < self.buf.end() && self.credit.available() > 0)
            || self.fin_due()
    }

    /// The FIN must (re)sent on its own: all data sent but no FIN in flight.
    fn fin_due(&self) -> bool {
        self.finished && !self.fin_sent && !self.fin_acked && self.buf.unsent == self.buf.end()
    }

    /// Whether the only thing to send is new data, which needs connection
    /// credit.
    pub(super) fn needs_new_credit(&self) -> bool {
        self.buf.retransmit.is_empty() && !self.fin_due() && self.buf.unsent < self.buf.end()
    }

    /// Whether new data waits for stream-level credit.
    pub(super) fn blocked_on_stream_credit(&self) -> bool {
        matches!(self.state, SendState::Ready | SendState::Send)
            && self.buf.unsent < self.buf.end()
            && self.credit.available() == 0
    }

    /// Appends one STREAM frame for stream `id` to `out` if one fits in
    /// `space` bytes: lost data first (RFC 9000 §13.3: "Application data
    /// sent in STREAM frames is retransmitted in new STREAM frames unless
    /// the endpoint has sent a RESET_STREAM for that stream"), then new
    /// data within stream credit and `conn_credit`. Returns what was sent
    /// and how many bytes of it were new (to charge connection credit).
    pub(super) fn write_frame(
        &mut self,
        id: StreamId,
        out: &mut Vec<u8>,
        space: usize,
        conn_credit: u64,
    ) -> Result<(StreamChunk, u64), Skip> {
        if !matches!(
            self.state,
            SendState::Ready | SendState::Send | SendState::DataSent
        ) {
            return Err(Skip::Idle);
        }
        let end = self.buf.end();
        let (offset, len, new) = if let Some(lost) = self.buf.retransmit.first() {
            let fits = fits(space, id, lost.start)?;
            let len = (lost.end - lost.start).min(fits as u64);
            if len == 0 {
                return Err(Skip::NoRoom);
            }
            (lost.start, len, false)
        } else {
            let offset = self.buf.unsent;
            let want = (end - offset).min(self.credit.available()).min(conn_credit);
            if want == 0 && !self.fin_due() {
                let conn_blocked = offset < end && self.credit.available() > 0;
                return Err(if conn_blocked {
                    Skip::ConnBlocked
                } else {
                    Skip::Idle
                });
            }
            let fits = fits(space, id, offset)?;
            let len = want.min(fits as u64);
            if len == 0 && want > 0 {
                return Err(Skip::NoRoom);
            }
            (offset, len, true)
        };
        let fin = self.finished && !self.fin_acked && offset + len == end;
        StreamHeader {
            id: id.to_varint(),
            offset: VarInt::from_u64_unchecked(offset),
            len: len as usize,
            fin,
            len_field: true,
        }
        .encode(out);
        self.buf.copy_to(offset, len as usize, out);
        if new {
            self.buf.unsent += len;
            self.credit.consume(len);
        } else {
            self.buf.retransmit.remove(offset..offset + len);
        }
        // RFC 9000 §3.1: "Sending the first STREAM ... frame causes a sending
        // part of a stream to enter the "Send" state"; once "a STREAM frame
        // containing the FIN bit is sent, the sending part of the stream
        // enters the "Data Sent" state."
        if self.state == SendState::Ready {
            self.state = SendState::Send;
        }
        if fin {
            self.fin_sent = true;
            self.state = SendState::DataSent;
        }
        let chunk = StreamChunk {
            id,
            offset,
            len,
            fin,
        };
        Ok((chunk, if new { len } else { 0 }))
    }

    /// A packet carrying `chunk` was acknowledged. Returns the bytes freed
    /// and whether all data and the FIN are now acknowledged (the stream
    /// just entered "Data Recvd", RFC 9000 §3.1).
    pub(super) fn on_ack(&mut self, chunk: &StreamChunk) -> (u64, bool) {
        if !matches!(self.state, SendState::Send | SendState::DataSent) {
            return (0, false);
        }
        let freed = self.buf.on_ack(chunk.offset..chunk.offset + chunk.len);
        if chunk.fin {
            self.fin_acked = true;
        }
        // RFC 9000 §3.1: "Once all stream data has been successfully
        // acknowledged, the sending part of the stream enters the "Data
        // Recvd" state, which is a terminal state."
        let done = self.fin_acked && self.buf.buffered() == 0 && self.buf.unsent == self.buf.end();
        if done {
            self.state = SendState::DataRecvd;
        }
        (freed, done)
    }

    /// A packet carrying `chunk` was declared lost. Returns whether
    /// anything needs sending again.
    pub(super) fn on_lost(&mut self, chunk: &StreamChunk) -> bool {
        if !matches!(self.state, SendState::Send | SendState::DataSent) {
            return false;
        }
        self.buf.on_lost(chunk.offset..chunk.offset + chunk.len);
        if chunk.fin && !self.fin_acked {
            self.fin_sent = false;
        }
        self.has_sendable()
    }

    /// Whether the application could write at least one byte.
    pub(super) fn has_room(&self) -> bool {
        self.buf.buffered() < self.buffer_limit
    }
}

/// The most data a frame at `offset` can carry in `space` bytes.
fn fits(space: usize, id: StreamId, offset: u64) -> Result<usize, Skip> {
    max_stream_data(
        space,
        id.to_varint(),
        VarInt::from_u64_unchecked(offset),
        true,
    )
    .ok_or(Skip::NoRoom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Side;
    use crate::frame::Dir;

    fn id() -> StreamId {
        StreamId::new(Side::Client, Dir::Bi, 0)
    }

    #[test]
    fn buffer_frees_data_once_acked_contiguously() {
        let mut s = SendStream::new(1000, 100);
        assert_eq!(s.write(&[7; 150]), Ok(100));
        assert_eq!(s.write(b"x"), Err(WriteError::Blocked));
        let mut out = Vec::new();
        let (a, _) = s.write_frame(id(), &mut out, 40, 1000).unwrap();
        let (b, _) = s.write_frame(id(), &mut out, 1000, 1000).unwrap();
        assert_eq!((a.offset, b.offset, a.len + b.len), (0, a.len, 100));
        assert_eq!(s.on_ack(&b), (0, false));
        assert_eq!(s.buf.buffered(), 100);
        assert_eq!(s.on_ack(&a), (100, false));
        assert!(s.has_room());
    }

    #[test]
    fn lost_data_is_resent_before_new_data_and_fin_follows() {
        let mut s = SendStream::new(1000, 1000);
        s.write(&[1; 50]).unwrap();
        let mut out = Vec::new();
        let (a, _) = s.write_frame(id(), &mut out, 30, 1000).unwrap();
        s.write(&[2; 10]).unwrap();
        s.finish().unwrap();
        assert!(s.on_lost(&a));
        let (r, new) = s.write_frame(id(), &mut out, 1000, 1000).unwrap();
        assert_eq!((r.offset, r.len, r.fin, new), (0, a.len, false, 0));
        let (n, new) = s.write_frame(id(), &mut out, 1000, 1000).unwrap();
        assert_eq!(
            (n.offset, n.len, n.fin, new),
            (a.len, 60 - a.len, true, 60 - a.len)
        );
        assert_eq!(s.state, SendState::DataSent);
        // The FIN is lost alone: it goes out again with the data it rode on.
        assert!(s.on_lost(&n));
        let (f, _) = s.write_frame(id(), &mut out, 1000, 1000).unwrap();
        assert!(f.fin);
        assert_eq!(s.on_ack(&r), (a.len, false));
        assert_eq!(s.on_ack(&f), (60 - a.len, true));
        assert!(s.is_terminal());
    }

    #[test]
    fn reset_final_size_is_data_sent_so_far() {
        let mut s = SendStream::new(10, 1000);
        s.write(&[0; 100]).unwrap();
        let mut out = Vec::new();
        s.write_frame(id(), &mut out, 1000, 1000).unwrap();
        assert!(s.blocked_on_stream_credit());
        assert!(s.on_stop_sending(VarInt::from_u32(9)));
        assert_eq!(s.reset, Some((VarInt::from_u32(9), 10)));
        assert_eq!(s.write(b"x"), Err(WriteError::Stopped(VarInt::from_u32(9))));
        assert!(!s.reset(VarInt::from_u32(1)));
        assert_eq!(s.buf.buffered(), 0);
    }
}
