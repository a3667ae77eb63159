//! Key updates we start (RFC 9001 §6.1): on request, and before the AEAD
//! confidentiality limit; and the integrity limit on failed decryptions
//! (§6.6).

use std::time::Instant;

use super::Connection;
use super::spaces::SpaceId;
use crate::TransportError;

impl Connection {
    /// Starts a 1-RTT key update (RFC 9001 §6) as soon as it is allowed:
    /// once the handshake is confirmed (§6.1), a packet of the current key
    /// phase has been acknowledged (§6.1), and three PTOs have passed since
    /// that acknowledgment when the current phase came from an update
    /// (§6.5). Updates also happen on their own before the AEAD's
    /// confidentiality limit (§6.6).
    pub fn force_key_update(&mut self) {
        self.key_update_requested = true;
    }

    /// The current 1-RTT key phase bit, once 1-RTT keys exist.
    pub fn key_phase(&self) -> Option<bool> {
        self.one_rtt.as_ref().map(|k| k.key_phase)
    }

    /// Before writing 1-RTT packets: start an update that is due and
    /// allowed; close with AEAD_LIMIT_REACHED when the key must not be used
    /// any more and cannot be replaced (§6.6: "It is RECOMMENDED that
    /// endpoints immediately close the connection with a connection error
    /// of type AEAD_LIMIT_REACHED before reaching a state where key
    /// updates are not possible").
    pub(crate) fn maybe_update_keys(&mut self, now: Instant) {
        let Some(keys) = &self.one_rtt else {
            return;
        };
        let limit = keys.local.confidentiality_limit();
        // Update well before the limit: 7/8 of it, or what the
        // configuration asks (lower, for tests).
        let update_at = self
            .config
            .key_update_interval
            .unwrap_or(limit - limit / 8)
            .min(limit);
        let due = self.key_update_requested || keys.sent_in_phase >= update_at;
        if !due || !self.handshake_confirmed {
            return;
        }
        let pto = self.pto_duration(SpaceId::ApplicationData);
        let allowed = keys.phase_acked && keys.phase_acked_at.is_none_or(|at| now >= at + 3 * pto);
        if !allowed {
            if keys.sent_in_phase >= limit {
                self.on_transport_error(
                    now,
                    TransportError::aead_limit_reached(
                        "confidentiality limit without a key update",
                    ),
                );
            }
            return;
        }
        let Some(keys) = &mut self.one_rtt else {
            return;
        };
        // §6.1: new keys both ways; the old read keys stay until the peer's
        // first packet in the new phase, and three PTOs after it.
        keys.update(None);
        self.key_update_requested = false;
        self.stats.key_updates += 1;
        tracing::debug!(key_phase = keys.key_phase, "started a key update");
        self.qlog_key_updated(
            now,
            crate::qlog::KeyType::OneRtt,
            crate::qlog::KeyTrigger::LocalUpdate,
        );
    }

    /// A received packet failed authentication (RFC 9001 §6.6: "endpoints
    /// MUST count the number of received packets that fail authentication
    /// during the lifetime of a connection"; over the integrity limit, close
    /// with AEAD_LIMIT_REACHED).
    pub(crate) fn on_authentication_failure(&mut self, now: Instant) {
        self.stats.authentication_failures += 1;
        let limit = self.config.aead_integrity_limit.unwrap_or_else(|| {
            self.one_rtt
                .as_ref()
                .map_or(1 << 52, |k| k.local.integrity_limit())
        });
        if self.stats.authentication_failures > limit && !self.is_closed() {
            self.on_transport_error(
                now,
                TransportError::aead_limit_reached("integrity limit: too many forged packets"),
            );
        }
    }
}
