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
    /// until the given time (RFC 9001 §6.5).
    pub(crate) previous_remote: Option<(PacketKey, Instant)>,
    /// The first packet number sent with the current keys: an update is
    /// only confirmed once one of those is acknowledged (RFC 9001 §6.1).
    pub(crate) first_pn_in_phase: Option<u64>,
    /// Whether a packet of the current phase has been acknowledged.
    pub(crate) phase_acked: bool,
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
    /// §6.3); the old remote key stays until `discard_old_at`.
    pub(crate) fn update(&mut self, discard_old_at: Instant) {
        self.next_remote();
        let (local, remote) = self.next.take().expect("derived above");
        let old_remote = std::mem::replace(&mut self.remote, remote);
        self.local = local;
        self.previous_remote = Some((old_remote, discard_old_at));
        self.key_phase = !self.key_phase;
        self.first_pn_in_phase = None;
        self.phase_acked = false;
    }

    /// Drops the previous remote key once its time is up.
    pub(crate) fn expire_previous(&mut self, now: Instant) {
        if self
            .previous_remote
            .as_ref()
            .is_some_and(|(_, t)| *t <= now)
        {
            self.previous_remote = None;
        }
    }
}
