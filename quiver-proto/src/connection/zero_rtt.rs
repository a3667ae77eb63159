//! 0-RTT on the server side (RFC 9001 §4.6, RFC 9000 §12.3, §17.2.3):
//! reading the 0-RTT packets of a client that resumed a session whose
//! ticket allowed early data.
//!
//! TLS decides whether 0-RTT is accepted while it reads the ClientHello
//! (rustls accepts it when the server configuration allows early data,
//! the ticket is fresh and stateful, and ALPN and cipher suite match; the
//! endpoint may refuse it per connection, see
//! [`Endpoint::set_early_data`](crate::Endpoint::set_early_data)); only an
//! accepted handshake yields 0-RTT read keys. 0-RTT packets share the
//! application data packet number space with 1-RTT ones (RFC 9000 §12.3)
//! and are acknowledged in 1-RTT packets. What they carry is bounded by
//! the server's own flow-control limits, as any stream data is.
//!
//! RFC 9001 §4.9.3: "a server MAY discard 0-RTT keys as soon as it
//! receives a 1-RTT packet"; quiver does, so a 0-RTT packet reordered
//! behind the first 1-RTT one is dropped and the client resends its
//! contents in 1-RTT when it is declared lost.

use std::time::Instant;

use super::Connection;
use super::recv::Decrypted;
use super::spaces::SpaceId;
use crate::crypto::DirectionalKeys;
use crate::packet::header::PartialPacket;

/// The server's 0-RTT read state.
#[derive(Debug, Default)]
pub(super) struct ZeroRtt {
    /// The client's 0-RTT keys, while they may be used.
    keys: Option<DirectionalKeys>,
    /// Whether TLS accepted early data (set once, when it decided).
    accepted: bool,
    /// Whether the decision was looked for (after the ClientHello).
    decided: bool,
}

impl Connection {
    /// Server, after TLS read the ClientHello: installs the 0-RTT read
    /// keys if TLS accepted early data. Called after every TLS step; acts
    /// once.
    pub(super) fn install_zero_rtt_keys(&mut self) {
        if self.side.is_client() || self.zero_rtt.decided || self.tls.handshake_kind().is_none() {
            return;
        }
        self.zero_rtt.decided = true;
        self.zero_rtt.keys = self.tls.zero_rtt_keys();
        self.zero_rtt.accepted = self.zero_rtt.keys.is_some();
        if self.zero_rtt.accepted {
            tracing::debug!("0-RTT accepted");
        }
    }

    /// Whether a 0-RTT packet can be read now (server with keys).
    pub(super) fn can_read_zero_rtt(&self) -> bool {
        self.zero_rtt.keys.is_some()
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
        if self.zero_rtt.keys.take().is_some() {
            tracing::debug!("0-RTT keys discarded");
        }
    }

    /// Server: whether this connection accepted the client's 0-RTT data
    /// (known once the ClientHello was read).
    pub fn is_zero_rtt_accepted(&self) -> bool {
        self.zero_rtt.accepted
    }
}
