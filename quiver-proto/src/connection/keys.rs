//! 1-RTT packet protection keys and key updates (RFC 9001 §6).

use std::time::Instant;

use crate::crypto::{HeaderKey, KeyUpdateSecrets, PacketKey};

/// The 1-RTT keys of a connection.
#[derive(Debug)]
pub(crate) struct OneRttKeys {
    pub(crate) local_header: HeaderKey,
    pub(crate) remote_header: HeaderKey,
    pub(crate) local: PacketKey,
    pub(crate) remote: PacketKey,
    /// The current key phase bit (RFC 9001 §6.1).
    pub(crate) key_phase: bool,
    /// Secrets for the next generation.
    secrets: KeyUpdateSecrets,
    /// The next generation's keys, derived ahead so a peer-initiated update
    /// can be tried without delay (RFC 9001 §6.3).
    next: Option<(PacketKey, PacketKey)>,
    /// The previous generation's remote key, kept for reordered packets
    /// until the given time, or, after an update we started, until three
    /// PTOs after the peer's first packet in the new phase (RFC 9001 §6.1:
    /// "MUST retain old keys until it has successfully unprotected a packet
    /// sent using the new keys"; §6.5).
    pub(crate) previous_remote: Option<(PacketKey, Option<Instant>)>,
    /// The first packet number sent with the current keys: an update is
    /// only confirmed once one of those is acknowledged (RFC 9001 §6.1).
    pub(crate) first_pn_in_phase: Option<u64>,
    /// Whether a packet of the current phase has been acknowledged.
    pub(crate) phase_acked: bool,
    /// When that acknowledgment arrived (RFC 9001 §6.5: wait three PTOs
    /// after it before the next update).
    pub(crate) phase_acked_at: Option<Instant>,
    /// Packets sealed with the current local key (RFC 9001 §6.6).
    pub(crate) sent_in_phase: u64,
    /// The lowest packet number received in the current phase: below it,
    /// a packet with the other phase bit used the previous keys (§6.5).
    pub(crate) first_remote_pn_in_phase: Option<u64>,
}

impl OneRttKeys {
    pub(crate) fn new(
        local_header: HeaderKey,
        remote_header: HeaderKey,
        local: PacketKey,
        remote: PacketKey,
        secrets: KeyUpdateSecrets,
    ) -> Self {
        Self {
            local_header,
            remote_header,
            local,
            remote,
            key_phase: false,
            secrets,
            next: None,
            previous_remote: None,
            first_pn_in_phase: None,
            phase_acked: true,
            phase_acked_at: None,
            sent_in_phase: 0,
            first_remote_pn_in_phase: None,
        }
    }

    /// The next generation's remote key, derived on first use.
    pub(crate) fn next_remote(&mut self) -> &PacketKey {
        let secrets = &mut self.secrets;
        let (_, remote) = self.next.get_or_insert_with(|| {
            let pair = secrets.next_packet_keys();
            (pair.local, pair.remote)
        });
        remote
    }

    /// Switches both directions to the next generation (RFC 9001 §6.2,
    /// §6.3); the old remote key stays until `discard_old_at` (`None`: see
    /// [`Self::previous_remote`]).
    pub(crate) fn update(&mut self, discard_old_at: Option<Instant>) {
        self.next_remote();
        let (local, remote) = self.next.take().expect("derived above");
        let old_remote = std::mem::replace(&mut self.remote, remote);
        self.local = local;
        self.previous_remote = Some((old_remote, discard_old_at));
        self.key_phase = !self.key_phase;
        self.first_pn_in_phase = None;
        self.phase_acked = false;
        self.phase_acked_at = None;
        self.sent_in_phase = 0;
        self.first_remote_pn_in_phase = None;
    }

    /// Whether a packet with the other phase bit and number `pn` was
    /// protected with the previous keys (RFC 9001 §6.5: "A recovered
    /// packet number that is lower than any packet number from the
    /// current key phase uses the previous packet protection keys").
    pub(crate) fn is_previous_phase(&self, pn: u64) -> bool {
        self.previous_remote.is_some()
            && self.first_remote_pn_in_phase.is_none_or(|first| pn < first)
    }

    /// A packet `pn` was opened with the current keys; the previous keys,
    /// if kept open-ended, go at `discard_old_at`.
    pub(crate) fn on_current_phase_received(&mut self, pn: u64, discard_old_at: Instant) {
        self.first_remote_pn_in_phase =
            Some(self.first_remote_pn_in_phase.map_or(pn, |f| f.min(pn)));
        if let Some((_, at @ None)) = &mut self.previous_remote {
            *at = Some(discard_old_at);
        }
    }

    /// Drops the previous remote key once its time is up.
    pub(crate) fn expire_previous(&mut self, now: Instant) {
        if self
            .previous_remote
            .as_ref()
            .is_some_and(|(_, t)| t.is_some_and(|t| t <= now))
        {
            self.previous_remote = None;
        }
    }
}
