//! Version negotiation within a connection (RFC 9368, RFC 9369 §4) and
//! greasing of the QUIC bit (RFC 9287).
//!
//! * **Compatible negotiation** (RFC 9368 §2.3): a server that prefers
//!   another version the client offered answers a first flight of the
//!   client's Chosen Version ("original version") in that version; the
//!   endpoint decides before creating the connection, which keeps the
//!   original version's Initial read keys ([`VersionState::original_initial`])
//!   until Initial keys are discarded (RFC 9369 §4.1). A client switches on
//!   the first server packet of another version it offered, before the
//!   ServerHello is read (the TLS session then derives keys with that
//!   version's labels, see `TlsSession::set_version`).
//! * **Incompatible negotiation** (RFC 9000 §6.2, RFC 9368 §2.1): a client
//!   receiving a Version Negotiation packet that lists a version it offers
//!   asks the endpoint for a new attempt in that version
//!   ([`Connection::take_version_restart`]); the endpoint replaces the
//!   connection behind the same handle.
//! * **Downgrade prevention** (RFC 9368 §4): both sides validate the peer's
//!   `version_information` ([`Connection::validate_version_information`]).

use crate::crypto::Keys;
use crate::endpoint::ClientConfig;
use crate::packet::PacketType;
use crate::packet::header::PartialPacket;
use crate::transport_params::{TransportParameters, VersionInformation};
use crate::{TransportError, TransportErrorCode, Version};

use super::Connection;
use super::spaces::SpaceId;

/// A client's second attempt after Version Negotiation: what the endpoint
/// needs to start it.
#[derive(Debug, Clone)]
pub(crate) struct Restart {
    /// The client configuration of the first attempt.
    pub(crate) config: ClientConfig,
    /// The server name of the first attempt.
    pub(crate) server_name: String,
    /// The version to try (RFC 9368 §2.1: "a mutually supported version").
    pub(crate) version: Version,
}

/// What a connection knows about its version's negotiation.
#[derive(Debug, Default)]
pub(crate) struct VersionState {
    /// The version of the client's first flight in this attempt: the
    /// client's Chosen Version (RFC 9368 §2), which RFC 9369 §4.1 calls the
    /// original version. `None` means the connection's version.
    pub(crate) original: Option<Version>,
    /// Client: the versions offered in our version_information, most
    /// preferred first (RFC 9368 §3). Server: the versions we support, in
    /// our order of preference.
    pub(crate) available: Vec<Version>,
    /// Client: this attempt follows a Version Negotiation packet (RFC 9368
    /// §4: such an attempt ignores further ones and must see the server's
    /// version_information).
    pub(crate) after_vn: bool,
    /// Server after a compatible switch: the original version's Initial
    /// keys, to read the client's Initials sent before it learned our
    /// choice (RFC 9369 §4.1).
    pub(crate) original_initial: Option<Keys>,
    /// Client: the configuration to restart with after Version Negotiation.
    pub(crate) client: Option<Box<(ClientConfig, String)>>,
    /// Client: a restart asked for, for the endpoint to carry out.
    pub(crate) restart: Option<Restart>,
}

/// Whether a first flight of `from` converts to one of `to` (RFC 9368
/// §2.2). RFC 9369 §4: "version 2 meets the definition in [QUIC-VN] of a
/// compatible version with version 1, and version 1 is compatible with
/// version 2"; every version is compatible with itself.
pub(crate) fn compatible(from: Version, to: Version) -> bool {
    matches!(
        (from, to),
        (Version::V1 | Version::V2, Version::V1 | Version::V2)
    )
}

/// The version a client picks from a list of the server's (a Version
/// Negotiation packet, RFC 9368 §2.1): the first of `ours` (in our order
/// of preference) that the server lists.
pub(crate) fn select(
    ours: &[Version],
    theirs: impl Iterator<Item = u32> + Clone,
) -> Option<Version> {
    ours.iter()
        .copied()
        .find(|v| theirs.clone().any(|n| n == v.number()))
}

/// The version_information a side sends: `chosen` and its list.
pub(crate) fn version_information(chosen: Version, available: &[Version]) -> VersionInformation {
    let mut list: Vec<u32> = available.iter().map(|v| v.number()).collect();
    // RFC 9368 §3: a client's Chosen Version "MUST be included in this
    // list"; harmless in a server's.
    if !list.contains(&chosen.number()) {
        list.insert(0, chosen.number());
    }
    VersionInformation {
        chosen_version: chosen.number(),
        available_versions: list,
    }
}

fn vn_error(reason: &'static str) -> TransportError {
    TransportError::new(TransportErrorCode::VERSION_NEGOTIATION_ERROR, reason)
}

/// What a client switch replaced, to undo it if the packet that caused it
/// turns out not to be authentic.
pub(super) struct SwitchUndo {
    version: Version,
    initial: Option<Keys>,
}

impl Connection {
    /// The version of the client's first flight in this attempt.
    pub(crate) fn original_version(&self) -> Version {
        self.vn.original.unwrap_or(self.version)
    }

    /// Whether a long-header packet of `p.version` belongs here, switching
    /// a client to the server's choice on its first packet of another
    /// offered version (RFC 9369 §4.1). `Err` drops the packet; `Ok(Some)`
    /// holds what to restore if it fails authentication.
    pub(super) fn accept_packet_version(
        &mut self,
        p: &PartialPacket,
    ) -> Result<Option<SwitchUndo>, ()> {
        let Some(v) = p.version else {
            return Ok(None);
        };
        if v == self.version {
            return Ok(None);
        }
        if self.side.is_server() {
            // RFC 9369 §4.1: the server "MUST NOT discard its original
            // version Initial receive keys until it successfully processes a
            // Handshake packet with the negotiated version"; "Both endpoints
            // MUST send Handshake and 1-RTT packets using the negotiated
            // version. An endpoint MUST drop packets using any other
            // version."
            let original = p.ty == PacketType::Initial
                && v == self.original_version()
                && self.vn.original_initial.is_some();
            return if original { Ok(None) } else { Err(()) };
        }
        // Client: RFC 9369 §4.1, "The client learns the negotiated version
        // by observing the first long header Version field that differs from
        // the original version". Only an Initial can carry the ServerHello,
        // and only before it was read (Handshake keys not yet derived).
        let switch = p.ty == PacketType::Initial
            && self.version == self.original_version()
            && self.vn.available.contains(&v)
            && compatible(self.version, v)
            && self.space(SpaceId::Handshake).keys.is_none()
            && self.tls.set_version(v);
        if !switch {
            return Err(());
        }
        tracing::debug!(from = ?self.version, to = ?v, "compatible version negotiation");
        let undo = SwitchUndo {
            version: self.version,
            initial: self.space_mut(SpaceId::Initial).keys.take(),
        };
        self.version = v;
        // RFC 9001 §5.2: Initial keys from the DCID of our first Initial (or
        // the Retry's Source CID), with the new version's salt (RFC 9369
        // §3.3.1). RFC 9369 §4.1: "Once the client has learned the
        // negotiated version, it SHOULD send subsequent Initial packets
        // using that version."
        let cid = self.retry_src_cid.unwrap_or(self.orig_dst_cid);
        self.space_mut(SpaceId::Initial).keys =
            Some(crate::crypto::initial_keys(v, &cid, self.side));
        Ok(Some(undo))
    }

    /// Undoes a switch made for a packet that failed authentication.
    pub(super) fn undo_version_switch(&mut self, undo: SwitchUndo) {
        self.version = undo.version;
        self.tls.set_version(undo.version);
        self.space_mut(SpaceId::Initial).keys = undo.initial;
    }

    /// The keys to read a packet of `version` in `space` with.
    pub(super) fn read_keys(&self, space: SpaceId, version: Option<Version>) -> Option<&Keys> {
        if space == SpaceId::Initial && version.is_some_and(|v| v != self.version) {
            // Gone with the negotiated version's Initial keys (RFC 9001
            // §4.9.1: on the first Handshake packet processed).
            if self.space(space).discarded {
                return None;
            }
            return self.vn.original_initial.as_ref();
        }
        self.space(space).keys.as_ref()
    }

    /// RFC 9368 §4: validates the peer's version_information.
    pub(super) fn validate_version_information(
        &self,
        params: &TransportParameters,
    ) -> Result<(), TransportError> {
        let vi = params.version_information.as_ref();
        if self.side.is_server() {
            // "Servers MAY complete the handshake even if the Version
            // Information is missing." "[If] the client's Chosen Version is
            // not set to [the version of the Long Header packets that
            // carried the transport parameters], the server MUST close the
            // connection with a version negotiation error."
            if vi.is_some_and(|vi| vi.chosen_version != self.original_version().number()) {
                return Err(vn_error(
                    "client's Chosen Version is not the version in use",
                ));
            }
            return Ok(());
        }
        let Some(vi) = vi else {
            // "If a client has reacted to a Version Negotiation packet and
            // the server's Version Information was missing, the client MUST
            // close the connection with a version negotiation error." And
            // after a compatible switch the server's choice cannot be
            // confirmed ("clients MUST validate that the server's Chosen
            // Version is equal to the Negotiated Version").
            if self.vn.after_vn || self.version != self.original_version() {
                return Err(vn_error("server sent no version_information"));
            }
            return Ok(());
        };
        // "If a client receives Version Information where the server's
        // Chosen Version was not sent by the client as part of its Available
        // Versions, the client MUST close the connection with a version
        // negotiation error."
        if !self
            .vn
            .available
            .iter()
            .any(|v| v.number() == vi.chosen_version)
        {
            return Err(vn_error("server chose a version we did not offer"));
        }
        // "clients MUST validate that the server's Chosen Version is equal
        // to the Negotiated Version; if they do not match, the client MUST
        // close the connection with a version negotiation error."
        if vi.chosen_version != self.version.number() {
            return Err(vn_error(
                "server's Chosen Version is not the version in use",
            ));
        }
        if self.vn.after_vn {
            // "If the client received and acted on a Version Negotiation
            // packet, the client MUST validate the server's Available
            // Versions field [...] the client would have selected the same
            // version if it received a Version Negotiation packet that
            // listed the versions in the server's Available Versions field,
            // plus the Negotiated Version. [...] if the client reacted to a
            // Version Negotiation packet and the server's Available Versions
            // field is empty, the client MUST close the connection".
            if vi.available_versions.is_empty() {
                return Err(vn_error("server's Available Versions is empty"));
            }
            let listed = vi
                .available_versions
                .iter()
                .copied()
                .chain([self.version.number()]);
            if select(&self.vn.available, listed) != Some(self.original_version()) {
                return Err(vn_error("version downgrade detected"));
            }
        }
        Ok(())
    }

    /// RFC 9000 §6.2, RFC 9368 §2.1 and §4: a client's answer to a Version
    /// Negotiation packet whose connection IDs match ours, listing
    /// `versions`. Returns whether the packet was acted on.
    pub(super) fn on_version_list(&mut self, versions: impl Iterator<Item = u32> + Clone) -> bool {
        // RFC 9368 §4: "A client that makes a connection attempt based on
        // information received from a Version Negotiation packet MUST
        // ignore any Version Negotiation packets it receives in response to
        // that connection attempt." "Clients MUST ignore any received
        // Version Negotiation packets that contain the Original Version."
        // (RFC 9000 §6.2 likewise for the version the client selected.)
        let original = self.original_version().number();
        if self.vn.after_vn || self.vn.restart.is_some() || versions.clone().any(|v| v == original)
        {
            return false;
        }
        // RFC 9368 §2.1: "the client SHALL search for a version it supports
        // in the list provided by the server. If it doesn't find one, it
        // SHALL abort the connection attempt. Otherwise, it SHALL select a
        // mutually supported version and send a new first flight with that
        // version".
        let chosen = select(&self.vn.available, versions);
        match (chosen, self.vn.client.as_deref()) {
            (Some(version), Some((config, server_name))) => {
                tracing::debug!(?version, "restarting after Version Negotiation");
                self.vn.restart = Some(Restart {
                    config: config.clone(),
                    server_name: server_name.clone(),
                    version,
                });
            }
            _ => {
                self.on_fatal(super::ConnectionError::VersionMismatch);
                self.state = super::State::Drained;
                self.timers.stop_all();
                self.endpoint_events
                    .push_back(super::EndpointEvent::Drained);
            }
        }
        true
    }

    /// A restart the connection asked for after Version Negotiation: the
    /// endpoint replaces it with a new attempt behind the same handle.
    pub(crate) fn take_version_restart(&mut self) -> Option<Restart> {
        self.vn.restart.take()
    }

    /// RFC 9287 §3.1: whether to clear the QUIC bit of the next packet.
    /// Only once the peer's transport parameters were processed and they
    /// include grease_quic_bit ("An endpoint MUST NOT set the QUIC Bit to
    /// 0 without knowing whether the peer supports the extension"; "A
    /// server MUST set the QUIC Bit to 0 only after processing transport
    /// parameters from a client"); then on a random eighth of packets
    /// ("SHOULD set the QUIC Bit to an unpredictable value").
    pub(super) fn clear_quic_bit(&mut self) -> bool {
        use rand::Rng;
        self.peer_params.as_ref().is_some_and(|p| p.grease_quic_bit) && self.rng.random_ratio(1, 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: u32 = 1;
    const V2: u32 = 0x6b33_43cf;
    const RESERVED: u32 = 0x1a2a_3a4a;

    #[test]
    fn select_follows_our_preference() {
        // RFC 9368 §2.1: a version we support from the server's list.
        let both = [Version::V2, Version::V1];
        assert_eq!(select(&both, [V1, V2].into_iter()), Some(Version::V2));
        assert_eq!(select(&both, [RESERVED, V1].into_iter()), Some(Version::V1));
        assert_eq!(select(&[Version::V1], [V2, RESERVED].into_iter()), None);
        assert_eq!(select(&both, [].into_iter()), None);
    }

    #[test]
    fn version_information_lists_the_chosen_version() {
        // RFC 9368 §3: the client's Chosen Version "MUST be included".
        let vi = version_information(Version::V2, &[Version::V1]);
        assert_eq!(vi.chosen_version, V2);
        assert_eq!(vi.available_versions, [V2, V1]);
        let vi = version_information(Version::V1, &[Version::V2, Version::V1]);
        assert_eq!(vi.available_versions, [V2, V1]);
    }

    #[test]
    fn v1_and_v2_are_compatible_both_ways() {
        // RFC 9369 §4.
        for a in Version::SUPPORTED {
            for b in Version::SUPPORTED {
                assert!(compatible(a, b));
            }
        }
    }

    fn params(vi: Option<(u32, &[u32])>) -> TransportParameters {
        TransportParameters {
            version_information: vi.map(|(chosen_version, available)| VersionInformation {
                chosen_version,
                available_versions: available.to_vec(),
            }),
            ..TransportParameters::default()
        }
    }

    fn code(r: Result<(), TransportError>) -> Option<TransportErrorCode> {
        r.err().map(|e| e.code)
    }

    const VNE: Option<TransportErrorCode> = Some(TransportErrorCode::VERSION_NEGOTIATION_ERROR);

    /// RFC 9368 §4, the client's checks of the server's Version Information.
    #[test]
    fn client_validates_the_servers_version_information() {
        let mut pair = crate::connection::tests::Pair::new();
        let handle = pair.connect();
        let conn = pair.client.connection(handle).unwrap();
        assert_eq!(conn.vn.available, [Version::V1]);
        let check = |c: &Connection, vi| code(c.validate_version_information(&params(vi)));
        assert_eq!(check(conn, Some((V1, &[V1, V2]))), None);
        // "MAY" complete without it when no Version Negotiation happened.
        assert_eq!(check(conn, None), None);
        // A Chosen Version we did not offer.
        assert_eq!(check(conn, Some((V2, &[V2]))), VNE);
        // Offered, but not the version in use.
        conn.vn.available = vec![Version::V1, Version::V2];
        assert_eq!(check(conn, Some((V2, &[V2]))), VNE);

        // After Version Negotiation, with v2 preferred: the attempt in v1
        // passes only if the server does not support v2.
        conn.vn.available = vec![Version::V2, Version::V1];
        conn.vn.after_vn = true;
        assert_eq!(check(conn, None), VNE, "missing after VN");
        assert_eq!(check(conn, Some((V1, &[]))), VNE, "empty after VN");
        assert_eq!(check(conn, Some((V1, &[V1]))), None);
        assert_eq!(check(conn, Some((V1, &[V1, RESERVED]))), None);
        assert_eq!(check(conn, Some((V1, &[V2, V1]))), VNE, "downgrade");
    }

    /// RFC 9368 §4, the server's check of the client's Chosen Version.
    #[test]
    fn server_validates_the_clients_chosen_version() {
        let mut pair = crate::connection::tests::Pair::new();
        pair.connect();
        pair.drive();
        let handle = pair.server.connection_handles()[0];
        let conn = pair.server.connection(handle).unwrap();
        let check = |c: &Connection, vi| code(c.validate_version_information(&params(vi)));
        assert_eq!(check(conn, Some((V1, &[V1]))), None);
        assert_eq!(check(conn, None), None, "servers MAY go on without it");
        assert_eq!(check(conn, Some((V2, &[V2, V1]))), VNE);
        // Our own, sent in the handshake: chosen v1, every version we
        // support.
        let ours = conn.local_params.version_information.clone().unwrap();
        assert_eq!(ours.chosen_version, V1);
        assert_eq!(ours.available_versions, [V1, V2]);
    }
}
