//! The endpoint's part in version negotiation (RFC 9368): client
//! connections offering versions, a second attempt after Version
//! Negotiation behind the same handle, and a server's choice among the
//! versions a client offers (compatible negotiation, §2.3).

use std::net::SocketAddr;
use std::time::Instant;

use rand::{Rng, RngCore};

use super::{ClientConfig, ConnectError, Endpoint, Incoming};
use crate::connection::version::{VersionState, compatible, version_information};
use crate::connection::{Connection, ConnectionHandle, ConnectionParams};
use crate::crypto::TlsSession;
use crate::transport_params::TransportParameters;
use crate::{ConnectionId, Side, Version};

impl ClientConfig {
    /// The versions offered in version_information, most preferred first:
    /// `available_versions`, with `version` included (RFC 9368 §3: the
    /// Chosen Version "MUST be included in this list").
    pub(crate) fn offered_versions(&self) -> Vec<Version> {
        let mut offered = self.available_versions.clone();
        if !offered.contains(&self.version) {
            offered.insert(0, self.version);
        }
        offered
    }
}

/// A client's connection attempt: its version, and whether it answers a
/// Version Negotiation packet (RFC 9368 §2.1).
#[derive(Debug, Clone, Copy)]
pub(super) struct Attempt {
    pub(super) version: Version,
    pub(super) after_vn: bool,
}

impl Endpoint {
    /// A client connection attempt.
    pub(super) fn client_connection(
        &mut self,
        now: Instant,
        config: &ClientConfig,
        (remote, server_name): (SocketAddr, &str),
        Attempt { version, after_vn }: Attempt,
        local_cid: ConnectionId,
    ) -> Result<Box<Connection>, ConnectError> {
        // RFC 9000 §7.2: the first Destination CID is unpredictable and at
        // least 8 bytes.
        let mut dcid = [0u8; 16];
        self.rng.fill_bytes(&mut dcid);
        let dcid = ConnectionId::new(&dcid).expect("16 bytes");
        let mut params = config.transport.transport_parameters(local_cid);
        // RFC 9000 §18.2: the largest UDP payload this endpoint accepts.
        params.max_udp_payload_size = self.config.max_udp_payload_size.into_inner().max(1200);
        let offered = config.offered_versions();
        // RFC 9368 §3, RFC 9369 §4: "Any QUIC endpoint that supports QUIC
        // version 2 MUST send [...] the version_information transport
        // parameter".
        params.version_information = Some(version_information(version, &offered));
        // A client that may be switched to another version by the server
        // (RFC 9368 §2.3) needs a TLS session that can follow.
        let may_switch = offered
            .iter()
            .any(|&v| v != version && compatible(version, v));
        let tls = if may_switch {
            TlsSession::client_offering(&config.crypto, version, server_name, &params)?
        } else {
            TlsSession::client(&config.crypto, version, server_name, &params)?
        };
        let mut conn = Box::new(Connection::new(ConnectionParams {
            side: Side::Client,
            version,
            config: config.transport.clone(),
            endpoint_config: self.config.clone(),
            tls,
            local_params: params,
            remote,
            local_cid,
            local_reset_token: self.reset_key.token(&local_cid),
            remote_cid: dcid,
            orig_dst_cid: dcid,
            address_validated: true,
            now,
            rng_seed: self.rng.random(),
            initial_keys: None,
            vn: VersionState {
                original: Some(version),
                available: offered,
                after_vn,
                client: Some(Box::new((config.clone(), server_name.to_owned()))),
                ..VersionState::default()
            },
        }));
        // RFC 9000 §8.1.3: a token from an earlier connection to this
        // server goes in our Initials, each token used once. Not in a new
        // attempt after Version Negotiation: tokens are for "any connection
        // attempt using the same version", and the version changed.
        if let Some(store) = &config.token_store {
            let token = (!after_vn).then(|| store.take(server_name)).flatten();
            conn.set_token_store(store.clone(), server_name, token);
        }
        Ok(conn)
    }

    /// Carries out a restart a client connection asked for after Version
    /// Negotiation (RFC 9368 §2.1): a new attempt in the version it chose,
    /// behind the same handle and connection ID, so the application sees one
    /// connection. A failure to build it (it cannot fail for a
    /// configuration that built the first attempt) leaves the old one to
    /// time out.
    pub(super) fn restart_if_asked(&mut self, now: Instant, handle: ConnectionHandle) {
        let Some(slot) = self.connections.slot_untouched(handle) else {
            return;
        };
        let Some(restart) = slot.conn.take_version_restart() else {
            return;
        };
        let Some(&local_cid) = slot.cids.first() else {
            return;
        };
        let remote = slot.conn.remote_address();
        let attempt = Attempt {
            version: restart.version,
            after_vn: true,
        };
        let server = (remote, restart.server_name.as_str());
        let Ok(conn) = self.client_connection(now, &restart.config, server, attempt, local_cid)
        else {
            return;
        };
        if let Some(slot) = self.connections.slot_untouched(handle) {
            slot.conn = conn;
        }
        self.connections.touch(handle);
    }

    /// The version a server answers `incoming` in (RFC 9368 §2.3): the
    /// first of ours, in our order of preference, that the client lists in
    /// its version_information and that its first flight converts to;
    /// otherwise the client's. The ClientHello must sit whole in the first
    /// Initial for its version_information to be read here (it does for
    /// quiver's clients and others without very large ones); the fallback
    /// is simply no upgrade.
    pub(super) fn negotiated_version(&self, incoming: &Incoming) -> Version {
        let original = incoming.version;
        // When the client's version comes first among those its first
        // flight converts to, it wins whatever the client offers (its
        // list must hold it, §3): no need to decrypt and parse again.
        let compatible_ours = || {
            self.config
                .supported_versions
                .iter()
                .copied()
                .filter(move |v| compatible(original, *v))
        };
        if compatible_ours().next() == Some(original) {
            return original;
        }
        let Some(raw) = incoming
            .client_hello()
            .and_then(|ch| ch.quic_transport_parameters)
        else {
            return original;
        };
        let Ok(params) = TransportParameters::decode(Side::Client, &raw) else {
            return original;
        };
        let Some(vi) = params.version_information else {
            return original;
        };
        // The client's Chosen Version must be the version in use; if not,
        // the connection's validation closes it (RFC 9368 §4), in the
        // client's version.
        if vi.chosen_version != original.number() {
            return original;
        }
        compatible_ours()
            .find(|v| vi.available_versions.contains(&v.number()))
            .unwrap_or(original)
    }

    /// A server connection's version state for `negotiated`, chosen for a
    /// first flight of `original`; the original version's Initial keys
    /// when they differ, and the Initial keys of the version in use.
    pub(super) fn server_version_state(
        &self,
        original: Version,
        negotiated: Version,
        orig_dst_cid: &ConnectionId,
        incoming_keys: crate::crypto::Keys,
    ) -> (VersionState, crate::crypto::Keys) {
        let mut state = VersionState {
            original: Some(original),
            available: self.config.supported_versions.clone(),
            ..VersionState::default()
        };
        if original == negotiated {
            return (state, incoming_keys);
        }
        // RFC 9369 §4.1: "The server MUST send all CRYPTO frames using the
        // negotiated version", and keeps the original version's Initial
        // receive keys.
        state.original_initial = Some(incoming_keys);
        let keys = crate::crypto::initial_keys(negotiated, orig_dst_cid, Side::Server);
        (state, keys)
    }
}
