//! 0-RTT (RFC 9001 §4.6, RFC 9000 §12.3, §17.2.3).
//!
//! # Client
//!
//! A client whose configuration enables early data and that resumes with
//! a ticket allowing it gets 0-RTT keys with its ClientHello. Until the
//! handshake completes it sends stream data in 0-RTT packets (application
//! data space, long header), under the transport parameters remembered
//! with the ticket (RFC 9000 §7.4.1: "When sending frames in 0-RTT
//! packets, a client MUST only use remembered transport parameters").
//! Its 0-RTT keys go when 1-RTT keys are installed (RFC 9001 §4.9.3).
//! DATAGRAM frames go in 0-RTT too, sized by the remembered
//! `max_datagram_frame_size` (RFC 9221 §3); those of rejected 0-RTT
//! packets are not sent again (RFC 9221 §5: datagrams are never
//! retransmitted).
//!
//! If the server rejects 0-RTT, "all 0-RTT packets [are] lost" (RFC 9001
//! §4.6.2): quiver takes them out of flight without a congestion response
//! and the stream data they carried is sent again in 1-RTT, on the same
//! streams. That is the transport resending rather than the application
//! (RFC 9001 §4.6.2 asks the client to reset its streams because what it
//! assumed may no longer hold); quiver resends only when nothing it
//! assumed can have changed: a single application protocol offered (so
//! the same one) and none of the limits of RFC 9000 §7.4.1 smaller than
//! remembered. Otherwise the connection fails with
//! [`ConnectionError::ZeroRttRejected`] (the server sees NO_ERROR), so the
//! application can connect again and resend after the handshake.
//!
//! # Server
//!
//! The server reads the 0-RTT packets of a client that resumed a session
//! whose ticket allowed early data.
//!
//! TLS decides whether 0-RTT is accepted while it reads the ClientHello
//! (rustls accepts it when the server configuration allows early data,
//! the ticket is fresh and stateful, and ALPN and cipher suite match; the
//! endpoint may refuse it per connection, see
//! [`Endpoint::set_early_data`](crate::Endpoint::set_early_data)); only an
//! accepted handshake yields 0-RTT read keys. 0-RTT packets share the
//! application data packet number space with 1-RTT ones (RFC 9000 §12.3)
//! and are acknowledged in 1-RTT packets. What they carry is bounded by
//! the server's own flow-control limits, as any stream data is. 0-RTT
//! datagrams that arrive before the Initial that makes their attempt
//! (reordered, or the Initial lost) wait in the endpoint, a bounded
//! number for a bounded time, and are read once it is accepted (RFC 9000
//! §5.2.2; `endpoint/early.rs`).
//!
//! RFC 9001 §4.9.3: "a server MAY discard 0-RTT keys as soon as it
//! receives a 1-RTT packet"; quiver does, so a 0-RTT packet reordered
//! behind the first 1-RTT one is dropped and the client resends its
//! contents in 1-RTT when it is declared lost.

use std::time::Instant;

use super::close::CloseReason;
use super::recv::Decrypted;
use super::spaces::SpaceId;
use super::{Connection, ConnectionError};
use crate::crypto::DirectionalKeys;
use crate::packet::header::PartialPacket;
use crate::transport_params::TransportParameters;
use crate::{TransportError, TransportErrorCode};

/// 0-RTT state: the server's read keys, the client's write keys.
#[derive(Debug, Default)]
pub(super) struct ZeroRtt {
    /// The 0-RTT keys, while they may be used.
    pub(super) keys: Option<DirectionalKeys>,
    /// Whether TLS accepted early data (server: when it decided; client:
    /// when the handshake completed).
    accepted: bool,
    /// Whether the keys were looked for.
    decided: bool,
    /// Client: whether any 0-RTT packet was sent.
    pub(super) sent: bool,
    /// Client: whether 0-RTT keys were installed.
    offered: bool,
    /// Client: the parameters remembered with the ticket that 0-RTT was
    /// sent under.
    remembered: Option<Box<TransportParameters>>,
}

impl Connection {
    /// Server, after TLS read the ClientHello: installs the 0-RTT read
    /// keys if TLS accepted early data. Called after every TLS step; acts
    /// once.
    pub(super) fn install_zero_rtt_keys(&mut self) {
        if self.side.is_client() {
            self.install_client_zero_rtt_keys();
            return;
        }
        if self.zero_rtt.decided || self.tls.handshake_kind().is_none() {
            return;
        }
        self.zero_rtt.decided = true;
        self.zero_rtt.keys = self.tls.zero_rtt_keys();
        self.zero_rtt.accepted = self.zero_rtt.keys.is_some();
        if self.zero_rtt.accepted {
            tracing::debug!("0-RTT accepted");
        }
    }

    /// Client, with its ClientHello: 0-RTT keys when resuming with a
    /// ticket that allows early data, and the remembered parameters the
    /// streams then run under (RFC 9000 §7.4.1).
    fn install_client_zero_rtt_keys(&mut self) {
        if self.zero_rtt.decided {
            return;
        }
        self.zero_rtt.decided = true;
        let Some(keys) = self.tls.zero_rtt_keys() else {
            return;
        };
        let Some(params) = self.tls.peer_transport_params().cloned() else {
            return;
        };
        self.streams_set_peer_params(&params);
        self.zero_rtt.remembered = Some(Box::new(params));
        self.zero_rtt.keys = Some(keys);
        self.zero_rtt.offered = true;
        tracing::debug!("0-RTT keys ready");
    }

    /// Whether a 0-RTT packet can be read now (server with keys).
    pub(super) fn can_read_zero_rtt(&self) -> bool {
        self.side.is_server() && self.zero_rtt.keys.is_some()
    }

    /// The peer parameters DATAGRAMs are sized by: the handshake's, or
    /// while sending 0-RTT the remembered ones (RFC 9221 §3 and RFC 9000
    /// §7.4.1: 0-RTT uses only remembered values).
    pub(super) fn datagram_params(&self) -> Option<&TransportParameters> {
        match &self.peer_params {
            Some(p) => Some(p),
            None if self.sends_zero_rtt() => self.zero_rtt.remembered.as_deref(),
            None => None,
        }
    }

    /// Client: whether application data goes in 0-RTT packets now (keys,
    /// and the handshake not yet complete).
    pub(super) fn sends_zero_rtt(&self) -> bool {
        self.side.is_client() && !self.handshake_complete && self.zero_rtt.keys.is_some()
    }

    /// Client, once the handshake completed (1-RTT keys installed): drops
    /// the 0-RTT keys (RFC 9001 §4.9.3: "Clients SHOULD discard 0-RTT keys
    /// as soon as they install 1-RTT keys") and, if the server rejected
    /// 0-RTT, treats every 0-RTT packet as lost (RFC 9001 §4.6.2).
    pub(super) fn on_client_handshake_complete(&mut self, now: Instant) {
        if self.side.is_server() || self.zero_rtt.keys.take().is_none() {
            return;
        }
        let accepted = match self.tls.rustls() {
            rustls::quic::Connection::Client(c) => c.is_early_data_accepted(),
            rustls::quic::Connection::Server(_) => false,
        };
        self.zero_rtt.accepted = accepted;
        let remembered = self.zero_rtt.remembered.take();
        tracing::debug!(accepted, sent = self.zero_rtt.sent, "0-RTT decided");
        if accepted || !self.zero_rtt.sent {
            return;
        }
        self.requeue_zero_rtt_sent(now);
        // rustls does not say which protocol the ticket was for: with one
        // offered, it cannot have changed (or the handshake failed).
        let unchanged = self.tls.offered_alpns() <= 1
            && remembered.is_some_and(|old| {
                self.tls
                    .peer_transport_params()
                    .is_some_and(|new| limits_kept(&old, new))
            });
        if !unchanged {
            // RFC 9001 §4.6.2: "all connection characteristics that the
            // client assumed might be incorrect". The application is told
            // with its own error, to connect again; the server did nothing
            // wrong, so it sees NO_ERROR.
            tracing::debug!("0-RTT rejected and its assumptions changed: closing");
            self.on_fatal(ConnectionError::ZeroRttRejected);
            self.close_inner(
                now,
                CloseReason::Transport(TransportError::new(
                    TransportErrorCode::NO_ERROR,
                    "0-RTT rejected",
                )),
            );
        }
    }

    /// Client: forgets every 0-RTT packet sent so far and queues their
    /// stream data again, without a congestion signal (nothing was lost to
    /// congestion: the server refused or never read them). Every
    /// application data packet sent before the handshake completed is a
    /// 0-RTT packet: the client sends no 1-RTT before then.
    pub(super) fn requeue_zero_rtt_sent(&mut self, now: Instant) {
        let mut sent = Vec::new();
        self.space_mut(SpaceId::ApplicationData)
            .sent
            .remove_range(0..=u64::MAX, &mut sent);
        let bytes: u64 = sent
            .iter()
            .filter(|(_, p)| p.in_flight)
            .map(|(_, p)| u64::from(p.size))
            .sum();
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(bytes);
        let s = self.space_mut(SpaceId::ApplicationData);
        s.ack_eliciting_in_flight = 0;
        s.loss_time = None;
        for (_, p) in sent {
            self.streams_on_lost(p.retransmits.stream);
        }
        self.set_loss_detection_timer(now);
    }

    /// Removes the protection of a 0-RTT packet in place (RFC 9001 §5),
    /// numbered in the application data space (RFC 9000 §12.3).
    pub(super) fn decrypt_zero_rtt(
        &mut self,
        now: Instant,
        p: &PartialPacket,
        packet: &mut [u8],
    ) -> Option<Decrypted> {
        let largest = self
            .space(SpaceId::ApplicationData)
            .largest_received
            .map(|(pn, _)| pn);
        let keys = self.zero_rtt.keys.as_ref()?;
        let pn_len = keys.header.remove(packet, p.pn_offset).ok()?;
        let header_len = p.pn_offset + pn_len;
        let pn = super::recv::expand(packet, p.pn_offset, pn_len, largest);
        let Ok(payload_len) = keys.packet.open(pn, packet, header_len) else {
            tracing::debug!(pn, "0-RTT packet failed authentication");
            self.on_authentication_failure(now);
            return None;
        };
        self.stats.zero_rtt_packets_received += 1;
        tracing::debug!(pn, "0-RTT packet read");
        Some(Decrypted {
            space: SpaceId::ApplicationData,
            pn,
            header_len,
            payload_len,
        })
    }

    /// RFC 9001 §4.9.3: the server drops its 0-RTT keys on the first 1-RTT
    /// packet it reads.
    pub(super) fn on_one_rtt_received(&mut self) {
        if self.side.is_server() && self.zero_rtt.keys.take().is_some() {
            tracing::debug!("0-RTT keys discarded");
        }
    }

    /// Whether 0-RTT was accepted: on a server, known once the
    /// ClientHello was read; on a client once the handshake completed.
    pub fn is_zero_rtt_accepted(&self) -> bool {
        self.zero_rtt.accepted
    }

    /// Client: whether the handshake offered 0-RTT (resuming with a
    /// ticket that allows it, early data enabled): application data
    /// written before the handshake completes goes in 0-RTT packets.
    pub fn is_zero_rtt_offered(&self) -> bool {
        self.zero_rtt.offered
    }
}

/// RFC 9000 §7.4.1: none of the limits 0-RTT was sent under is smaller in
/// the server's new parameters.
fn limits_kept(old: &TransportParameters, new: &TransportParameters) -> bool {
    new.active_connection_id_limit >= old.active_connection_id_limit
        && new.initial_max_data >= old.initial_max_data
        && new.initial_max_stream_data_bidi_local >= old.initial_max_stream_data_bidi_local
        && new.initial_max_stream_data_bidi_remote >= old.initial_max_stream_data_bidi_remote
        && new.initial_max_stream_data_uni >= old.initial_max_stream_data_uni
        && new.initial_max_streams_bidi >= old.initial_max_streams_bidi
        && new.initial_max_streams_uni >= old.initial_max_streams_uni
}
