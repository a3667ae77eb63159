//! Placeholder: the bridge between the connection and the streams module
//! (being written separately). Replaced when streams land.

use std::time::Instant;

use super::Connection;
use super::sent::Retransmits;
use crate::TransportError;
use crate::frame::Frame;
use crate::transport_params::TransportParameters;

/// Stream content of a sent packet.
pub(crate) type StreamRetransmits = Vec<()>;

impl Connection {
    pub(crate) fn streams_on_frame(
        &mut self,
        _now: Instant,
        _f: Frame<'_>,
    ) -> Result<(), TransportError> {
        Ok(())
    }
    pub(crate) fn streams_set_peer_params(&mut self, _p: &TransportParameters) {}
    pub(crate) fn streams_on_acked(&mut self, _s: StreamRetransmits) {}
    pub(crate) fn streams_on_lost(&mut self, _s: StreamRetransmits) {}
    pub(crate) fn streams_requeue_for_probe(&mut self) {}
    pub(crate) fn streams_has_control_frames(&self) -> bool {
        false
    }
    pub(crate) fn streams_has_data(&self) -> bool {
        false
    }
    pub(crate) fn streams_write_control(
        &mut self,
        _buf: &mut Vec<u8>,
        _limit: usize,
        _r: &mut Retransmits,
    ) -> bool {
        false
    }
    pub(crate) fn streams_write_data(
        &mut self,
        _buf: &mut Vec<u8>,
        _limit: usize,
        _r: &mut Retransmits,
    ) -> bool {
        false
    }
}
