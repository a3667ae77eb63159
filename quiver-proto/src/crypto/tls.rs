//! The TLS 1.3 handshake carried in CRYPTO frames (RFC 9001 §4), on
//! `rustls::quic`.
//!
//! A [`TlsSession`] is fed the in-order CRYPTO stream bytes of each
//! encryption level with [`read_handshake`](TlsSession::read_handshake) and
//! yields, through [`poll_output`](TlsSession::poll_output), the bytes to
//! send per level and the keys of each new level, in the order they must be
//! applied. Reassembling CRYPTO frames, buffering data that arrives for a
//! level TLS has not reached yet (RFC 9001 §4.1.3), and discarding keys
//! (RFC 9001 §4.9) are left to the connection.
//!
//! Errors follow RFC 9001 §4.8: a TLS alert becomes the transport error
//! CRYPTO_ERROR 0x0100 + alert. Invalid transport parameters in the
//! peer's `quic_transport_parameters` extension are a
//! TRANSPORT_PARAMETER_ERROR (RFC 9000 §7.4, RFC 9001 §8.2).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::quic::KeyChange;

use super::config::{ClientConfig, ConfigError, ServerConfig};
use super::{DirectionalKeys, KeyUpdateSecrets, Keys, rustls_version};
use crate::transport_params::TransportParameters;
use crate::{Side, TransportError, TransportErrorCode, Version};

mod client_hello;
#[cfg(test)]
mod tests;
mod version_switch;

pub use client_hello::{ClientHelloInfo, client_hello_length, parse_client_hello};

/// The `internal_error` TLS alert (RFC 8446 §6.2), reported when rustls
/// fails without naming an alert.
const ALERT_INTERNAL_ERROR: u8 = 80;

/// Offset of the `legacy_session_id` length byte in a ClientHello
/// handshake message: type (1), length (3), legacy_version (2), random (32).
const SESSION_ID_LEN_OFFSET: usize = 4 + 2 + 32;

/// A TLS encryption level (RFC 9001 §4.1.3, Table 1), which selects the
/// packet type and keys that protect data.
///
/// CRYPTO frames are carried at [`Initial`](Self::Initial),
/// [`Handshake`](Self::Handshake) and [`OneRtt`](Self::OneRtt), never at
/// [`ZeroRtt`](Self::ZeroRtt) (RFC 9001 §4.1.3). Initial and Handshake
/// each have their own packet number space; 0-RTT and 1-RTT share the
/// application data space.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Initial packets, protected with keys derived from the client's
    /// Destination Connection ID (RFC 9001 §5.2).
    Initial,
    /// 0-RTT packets, protected with the early traffic secret (RFC 9001
    /// §4.6). Never carries CRYPTO frames.
    ZeroRtt,
    /// Handshake packets, protected with the handshake traffic secrets.
    Handshake,
    /// 1-RTT (short header) packets, protected with the application
    /// traffic secrets.
    OneRtt,
}

/// Something the connection must do as a result of TLS processing, in the
/// order [`TlsSession::poll_output`] returns it.
///
/// # Ordering
///
/// Apply outputs strictly in order. `Data` always belongs to the level
/// TLS was writing at when it was produced: data produced before a key
/// change is sent at the old level, data after it at the new one
/// (RFC 9001 §4.1.3: "When TLS provides handshake bytes to be sent, they
/// are appended to the handshake bytes for the current encryption level").
///
/// * Client: `Data(Initial)` (ClientHello) → after the ServerHello,
///   `HandshakeKeys` → after the server's Finished, `Data(Handshake)`
///   (the client's Finished, possibly with its certificate) →
///   `OneRttKeys`. Later `Data(OneRtt)` is post-handshake data.
/// * Server: after the ClientHello, `Data(Initial)` (ServerHello) →
///   `HandshakeKeys` → `Data(Handshake)` (EncryptedExtensions through
///   Finished) → `OneRttKeys`; after the client's Finished possibly
///   `Data(OneRtt)` (NewSessionTicket).
///
/// A server has 1-RTT keys before the handshake completes; it can send
/// 0.5-RTT data with them but "MUST NOT process incoming 1-RTT protected
/// packets before the TLS handshake is complete" (RFC 9001 §5.7), i.e.
/// while [`TlsSession::is_handshaking`] is true.
///
/// Discarding keys is up to the connection: Initial keys when the client
/// first sends, or the server first receives, a Handshake packet (RFC 9001
/// §4.9.1), Handshake keys when the handshake is confirmed (RFC 9001
/// §4.9.2).
#[derive(Debug)]
pub enum TlsOutput {
    /// Handshake bytes to append to the CRYPTO stream of `level`.
    Data {
        /// The level whose CRYPTO stream carries the bytes.
        level: Level,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Keys for the Handshake level, in both directions. Every later
    /// `Data` until [`OneRttKeys`](Self::OneRttKeys) is at
    /// [`Level::Handshake`], and the peer's next CRYPTO data is expected
    /// there too.
    HandshakeKeys(Keys),
    /// Keys for 1-RTT packets (key phase 0), in both directions, and the
    /// secrets for key updates: the first
    /// [`KeyUpdateSecrets::next_packet_keys`] gives key phase 1
    /// (RFC 9001 §6).
    OneRttKeys {
        /// Packet and header keys of key phase 0.
        keys: Keys,
        /// Secrets from which later key phases are derived.
        update: KeyUpdateSecrets,
    },
}

/// A failure that ended the handshake: the transport error and rustls's
/// description of it.
#[derive(Debug, Clone)]
struct Failure {
    error: TransportError,
    detail: String,
}

/// One side of a QUIC TLS 1.3 handshake (RFC 9001 §4), wrapping a
/// `rustls::quic::Connection`.
///
/// Carries our transport parameters in the `quic_transport_parameters`
/// extension and decodes and validates the peer's as soon as rustls has
/// them (RFC 9001 §8.2). After every
/// [`read_handshake`](Self::read_handshake) (and after creating a client),
/// drain [`poll_output`](Self::poll_output).
pub struct TlsSession {
    conn: rustls::quic::Connection,
    side: Side,
    version: Version,
    /// Outputs produced by rustls but not yet polled, in order.
    pending: VecDeque<TlsOutput>,
    /// The level new handshake bytes from rustls belong to.
    write_level: Level,
    /// Whether rustls has produced Handshake keys.
    handshake_keys: bool,
    /// The peer's transport parameters, raw and decoded.
    peer_params_raw: Option<Vec<u8>>,
    peer_params: Option<TransportParameters>,
    /// Server: the first bytes of the Initial CRYPTO stream, kept until the
    /// ClientHello's `legacy_session_id` length can be checked.
    client_hello_prefix: Option<Vec<u8>>,
    /// Set once the handshake has failed; every later read returns it.
    failure: Option<Failure>,
    /// Client offering other versions: what a switch needs (see
    /// [`set_version`](Self::set_version)).
    switch: Option<version_switch::VersionSwitch>,
    /// Client: how many application protocols it offers.
    offered_alpns: usize,
}

impl TlsSession {
    /// Starts a client handshake with `server_name` (a DNS name, sent as
    /// SNI and checked against the certificate, or an IP address),
    /// carrying `params` (RFC 9001 §8.2).
    ///
    /// The ClientHello is ready in [`poll_output`](Self::poll_output) at
    /// [`Level::Initial`] right away.
    pub fn client(
        config: &ClientConfig,
        version: Version,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Self, ConfigError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| ConfigError::InvalidServerName(server_name.to_owned()))?;
        let params = encode_params(Side::Client, params)?;
        let conn = rustls::quic::ClientConnection::new(
            Arc::clone(config.rustls()),
            rustls_version(version),
            name,
            params,
        )?;
        let mut session = Self::from_connection(conn.into(), Side::Client, version);
        session.offered_alpns = config.rustls().alpn_protocols.len();
        Ok(session)
    }

    /// Like [`client`](Self::client), for a client that offers other
    /// versions compatible with `version` (RFC 9368 §2.3) and may have to
    /// [`set_version`](Self::set_version) once it sees the server's.
    pub fn client_offering(
        config: &ClientConfig,
        version: Version,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Self, ConfigError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| ConfigError::InvalidServerName(server_name.to_owned()))?;
        let params = encode_params(Side::Client, params)?;
        let (rustls_config, switch) = version_switch::VersionSwitch::new(config.rustls(), version);
        let conn = rustls::quic::ClientConnection::new(
            rustls_config,
            rustls_version(version),
            name,
            params,
        )?;
        let mut session = Self::from_connection(conn.into(), Side::Client, version);
        session.switch = Some(switch);
        session.offered_alpns = config.rustls().alpn_protocols.len();
        Ok(session)
    }

    /// Client: moves the handshake to `version` before the ServerHello is
    /// read, so that the Handshake and 1-RTT keys are derived with its
    /// labels (RFC 9369 §3.3.2, §4.1). Returns false, changing nothing,
    /// if the session was not made by
    /// [`client_offering`](Self::client_offering) or Handshake keys exist.
    pub fn set_version(&mut self, version: Version) -> bool {
        if self.switch.is_none() || self.handshake_keys {
            return false;
        }
        self.version = version;
        true
    }

    /// Starts a server handshake carrying `params` (RFC 9001 §8.2); feed it
    /// the client's Initial CRYPTO data.
    pub fn server(
        config: &ServerConfig,
        version: Version,
        params: &TransportParameters,
    ) -> Result<Self, ConfigError> {
        Self::server_with(config, version, params, true)
    }

    /// Like [`server`](Self::server); with `early_data` false, 0-RTT is
    /// rejected even when the configuration allows it (RFC 9001 §4.6.2).
    pub fn server_with(
        config: &ServerConfig,
        version: Version,
        params: &TransportParameters,
        early_data: bool,
    ) -> Result<Self, ConfigError> {
        let params = encode_params(Side::Server, params)?;
        let conn = rustls::quic::ServerConnection::new(
            Arc::clone(config.rustls_for(early_data)),
            rustls_version(version),
            params,
        )?;
        Ok(Self::from_connection(conn.into(), Side::Server, version))
    }

    fn from_connection(conn: rustls::quic::Connection, side: Side, version: Version) -> Self {
        let mut session = Self {
            conn,
            side,
            version,
            pending: VecDeque::new(),
            write_level: Level::Initial,
            handshake_keys: false,
            peer_params_raw: None,
            peer_params: None,
            client_hello_prefix: (side == Side::Server).then(Vec::new),
            failure: None,
            switch: None,
            offered_alpns: 0,
        };
        // A resuming client already has the remembered parameters (RFC 9000
        // §7.4.1); they were validated when first received, and a failure
        // here is recorded and reported by the first `read_handshake`.
        let _ = session.update_peer_params();
        session.collect_output();
        session
    }

    /// Which side of the handshake this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The QUIC version whose TLS details (labels, extension) are used.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Passes CRYPTO stream bytes received at `level` to TLS, in stream
    /// order and without gaps or repeats.
    ///
    /// `level` must be [`read_level`](Self::read_level): the connection
    /// buffers data for later levels until TLS moves there (RFC 9001
    /// §4.1.3). Errors:
    ///
    /// * a TLS failure: CRYPTO_ERROR 0x0100 + the alert rustls raised
    ///   (RFC 9001 §4.8); when rustls raised none, the alert TLS over TCP
    ///   would send (decode_error for malformed messages) or 0x0150
    ///   (internal_error);
    ///   [`error_detail`](Self::error_detail) has rustls's description.
    ///   This includes a missing transport parameters extension, which
    ///   rustls answers with missing_extension, 0x016d (RFC 9001 §8.2).
    /// * invalid peer transport parameters: TRANSPORT_PARAMETER_ERROR
    ///   (RFC 9000 §7.4).
    /// * data at any other level than `read_level()`: PROTOCOL_VIOLATION.
    ///   CRYPTO frames are not allowed in 0-RTT packets (RFC 9000 §12.4),
    ///   and new data at an earlier level "MUST [be treated] as a connection
    ///   error of type PROTOCOL_VIOLATION" (RFC 9001 §4.1.3).
    /// * server: a ClientHello with a non-empty legacy_session_id:
    ///   PROTOCOL_VIOLATION (RFC 9001 §8.4).
    ///
    /// After an error the session is dead and every later call returns the
    /// same error.
    pub fn read_handshake(&mut self, level: Level, data: &[u8]) -> Result<(), TransportError> {
        if let Some(failure) = &self.failure {
            return Err(failure.error.clone());
        }
        if level != self.read_level() {
            return Err(self.fail(
                TransportError::protocol_violation("CRYPTO data at unexpected encryption level"),
                format!(
                    "CRYPTO data at {level:?}, TLS is reading at {:?}",
                    self.read_level()
                ),
            ));
        }
        if level == Level::Initial {
            self.check_legacy_session_id(data)?;
        }
        if let Err(e) = self.conn.read_hs(data) {
            let alert = self
                .conn
                .alert()
                .map_or_else(|| fallback_alert(&e), u8::from);
            let error = TransportError::new(TransportErrorCode::crypto(alert), reason_for(&e));
            return Err(self.fail(error, e.to_string()));
        }
        self.update_peer_params()?;
        self.collect_output();
        Ok(())
    }

    /// The next thing to send or install, or `None` when TLS has nothing
    /// more until it reads again. See [`TlsOutput`] for the ordering rules.
    pub fn poll_output(&mut self) -> Option<TlsOutput> {
        self.pending.pop_front()
    }

    /// The level at which TLS expects the peer's next CRYPTO data:
    /// Initial until Handshake keys are produced, then Handshake until the
    /// handshake completes, then 1-RTT (RFC 9001 §4.1.3).
    pub fn read_level(&self) -> Level {
        if !self.conn.is_handshaking() {
            Level::OneRtt
        } else if self.handshake_keys {
            Level::Handshake
        } else {
            Level::Initial
        }
    }

    /// The level at which TLS's next handshake bytes will be sent.
    pub fn write_level(&self) -> Level {
        self.write_level
    }

    /// Whether the handshake is still in progress. Once false, the
    /// handshake is complete (RFC 9001 §4.1.1) and the peer's transport
    /// parameters are authenticated (RFC 9001 §4.1.3, §8.2).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Which kind of handshake this is (full or resumed, RFC 8446 §2),
    /// once known: on a server after the ClientHello, on a client after
    /// the ServerHello.
    pub fn handshake_kind(&self) -> Option<super::HandshakeKind> {
        self.conn
            .handshake_kind()
            .map(super::HandshakeKind::from_rustls)
    }

    /// Client: how many application protocols it offers (with more than
    /// one, a handshake may settle on another than a resumed session's).
    pub fn offered_alpns(&self) -> usize {
        self.offered_alpns
    }

    /// The negotiated application protocol (RFC 9001 §8.1), once known.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The negotiated cipher suite (RFC 9001 §5.3), once the ServerHello
    /// has been sent or read.
    pub fn cipher_suite(&self) -> Option<super::CipherSuite> {
        let suite = self.conn.negotiated_cipher_suite()?;
        super::CipherSuite::from_rustls(suite.tls13()?)
    }

    /// The key exchange group the handshake used, once chosen.
    pub fn kx_group(&self) -> Option<super::KxGroup> {
        super::KxGroup::from_rustls(self.conn.negotiated_key_exchange_group()?)
    }

    /// Server: the name the client asked for with SNI, available after the
    /// ClientHello has been read. Always `None` on a client.
    pub fn server_name(&self) -> Option<&str> {
        match &self.conn {
            rustls::quic::Connection::Server(conn) => conn.server_name(),
            rustls::quic::Connection::Client(_) => None,
        }
    }

    /// The peer's transport parameters, decoded and validated, once rustls
    /// has received them: a server has them after the ClientHello, a client
    /// after EncryptedExtensions. They are authenticated only once the
    /// handshake completes (RFC 9001 §8.2). Checking the connection IDs in
    /// them (RFC 9000 §7.3) is for the connection.
    pub fn peer_transport_params(&self) -> Option<&TransportParameters> {
        self.peer_params.as_ref()
    }

    /// The certificate chain the peer presented, end-entity first.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The 0-RTT keys, if 0-RTT is possible: on a client after the
    /// ClientHello when resuming with early data enabled, on a server after
    /// accepting early data (RFC 9001 §4.1.4, §4.6.1). Only the `local`
    /// direction is used by a client, only the remote one by a server.
    pub fn zero_rtt_keys(&self) -> Option<DirectionalKeys> {
        self.conn.zero_rtt_keys().map(DirectionalKeys::from)
    }

    /// Fills `out` with keying material exported from the session
    /// (RFC 8446 §7.5, RFC 5705), once the handshake has completed.
    pub fn export_keying_material(
        &self,
        out: &mut [u8],
        label: &[u8],
        context: Option<&[u8]>,
    ) -> Result<(), rustls::Error> {
        self.conn.export_keying_material(out, label, context)?;
        Ok(())
    }

    /// rustls's description of the failure that ended the handshake, for
    /// logs; the transport error's reason is a fixed summary.
    pub fn error_detail(&self) -> Option<&str> {
        self.failure.as_ref().map(|f| f.detail.as_str())
    }

    /// The wrapped rustls connection.
    pub fn rustls(&self) -> &rustls::quic::Connection {
        &self.conn
    }

    /// Records a failure, logs it, and returns its error.
    fn fail(&mut self, error: TransportError, detail: String) -> TransportError {
        tracing::debug!(side = ?self.side, %error, detail, "TLS handshake failed");
        self.failure = Some(Failure {
            error: error.clone(),
            detail,
        });
        error
    }

    /// RFC 9001 §8.4: "A server SHOULD treat the receipt of a TLS
    /// ClientHello with a non-empty legacy_session_id field as a connection
    /// error of type PROTOCOL_VIOLATION." rustls does not check this, so the
    /// server looks at the start of the Initial CRYPTO stream itself.
    fn check_legacy_session_id(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let Some(prefix) = &mut self.client_hello_prefix else {
            return Ok(());
        };
        let want = SESSION_ID_LEN_OFFSET + 1 - prefix.len();
        prefix.extend_from_slice(&data[..want.min(data.len())]);
        if prefix.len() <= SESSION_ID_LEN_OFFSET {
            return Ok(());
        }
        // Only a ClientHello (type 1) is judged here; anything else is
        // left to rustls to reject.
        let non_empty = prefix[0] == 1 && prefix[SESSION_ID_LEN_OFFSET] != 0;
        self.client_hello_prefix = None;
        if non_empty {
            return Err(self.fail(
                TransportError::protocol_violation("ClientHello with legacy_session_id"),
                "ClientHello has a non-empty legacy_session_id (RFC 9001 §8.4)".to_owned(),
            ));
        }
        Ok(())
    }

    /// Decodes the peer's transport parameters when rustls exposes them
    /// or they change (a resuming client first sees the remembered ones).
    fn update_peer_params(&mut self) -> Result<(), TransportError> {
        let Some(raw) = self.conn.quic_transport_parameters() else {
            return Ok(());
        };
        if self.peer_params_raw.as_deref() == Some(raw) {
            return Ok(());
        }
        let raw = raw.to_vec();
        match TransportParameters::decode(self.side.peer(), &raw) {
            Ok(params) => {
                self.peer_params = Some(params);
                self.peer_params_raw = Some(raw);
                Ok(())
            }
            Err(error) => {
                let detail = format!("peer transport parameters rejected: {}", error.reason);
                Err(self.fail(error, detail))
            }
        }
    }

    /// Moves everything rustls has to send, and its key changes, into
    /// `pending`, attributing data to the level it was written at.
    fn collect_output(&mut self) {
        loop {
            let mut data = Vec::new();
            let change = self.conn.write_hs(&mut data);
            if !data.is_empty() {
                self.pending.push_back(TlsOutput::Data {
                    level: self.write_level,
                    data,
                });
            }
            match change {
                Some(KeyChange::Handshake { keys }) => {
                    self.write_level = Level::Handshake;
                    self.handshake_keys = true;
                    let keys = match self.switched() {
                        Some((switch, suite)) => switch.handshake_keys(suite, self.version),
                        None => Some(keys.into()),
                    };
                    self.push_keys(keys.map(TlsOutput::HandshakeKeys));
                }
                Some(KeyChange::OneRtt { keys, next }) => {
                    self.write_level = Level::OneRtt;
                    let out = match self.switched() {
                        Some((switch, suite)) => switch.one_rtt_keys(suite, self.version),
                        None => Some((keys.into(), next.into())),
                    };
                    self.push_keys(
                        out.map(|(keys, update)| TlsOutput::OneRttKeys { keys, update }),
                    );
                }
                // rustls returns without a key change only once its queue
                // is empty.
                None => return,
            }
        }
    }
}

impl TlsSession {
    /// After [`set_version`](Self::set_version) to another version than
    /// rustls's: the switch and the negotiated suite, to derive keys with.
    fn switched(&self) -> Option<(&version_switch::VersionSwitch, super::CipherSuite)> {
        let switch = self.switch.as_ref()?;
        if switch.rustls_version == self.version {
            return None;
        }
        let suite = self.conn.negotiated_cipher_suite()?;
        Some((switch, super::CipherSuite::from_rustls(suite.tls13()?)?))
    }

    /// Queues derived keys; without them (a secret was not logged, which
    /// rustls always does) the handshake cannot go on.
    fn push_keys(&mut self, out: Option<TlsOutput>) {
        match out {
            Some(out) => self.pending.push_back(out),
            None => {
                let _ = self.fail(
                    TransportError::new(
                        TransportErrorCode::crypto(ALERT_INTERNAL_ERROR),
                        "no traffic secret for the negotiated version",
                    ),
                    "traffic secret missing after a version switch".to_owned(),
                );
            }
        }
    }
}

impl fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("side", &self.side)
            .field("version", &self.version)
            .field("handshaking", &self.is_handshaking())
            .field("write_level", &self.write_level)
            .field("read_level", &self.read_level())
            .field("pending", &self.pending.len())
            .field("failed", &self.failure.is_some())
            .finish_non_exhaustive()
    }
}

/// Validates and encodes our transport parameters for the extension.
fn encode_params(side: Side, params: &TransportParameters) -> Result<Vec<u8>, ConfigError> {
    params
        .validate()
        .map_err(ConfigError::TransportParameters)?;
    let mut buf = Vec::new();
    params.encode(side, &mut buf);
    Ok(buf)
}

/// The alert for a rustls error that rustls raised no alert for (it does
/// not for malformed input rejected before handshake processing): what a
/// TLS-over-TCP rustls connection would send, else internal_error.
fn fallback_alert(error: &rustls::Error) -> u8 {
    use rustls::{AlertDescription, Error as E};
    match error {
        E::InvalidMessage(e) => AlertDescription::from(*e).into(),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            AlertDescription::UnexpectedMessage.into()
        }
        E::InvalidCertificate(e) => AlertDescription::from(e.clone()).into(),
        _ => ALERT_INTERNAL_ERROR,
    }
}

/// Why a certificate was rejected, in words the user can act on (rustls's
/// own description may embed the certificate's names; this is the class).
fn certificate_reason(error: &rustls::CertificateError) -> &'static str {
    use rustls::CertificateError as C;
    match error {
        C::UnknownIssuer => "invalid peer certificate: unknown issuer",
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "invalid peer certificate: not valid for the server name"
        }
        C::Expired | C::ExpiredContext { .. } => "invalid peer certificate: expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "invalid peer certificate: not valid yet",
        C::Revoked => "invalid peer certificate: revoked",
        C::BadSignature => "invalid peer certificate: bad signature",
        C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "invalid peer certificate: unsupported signature algorithm"
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "invalid peer certificate: not for this purpose"
        }
        C::BadEncoding => "invalid peer certificate: bad encoding",
        C::UnhandledCriticalExtension => "invalid peer certificate: unhandled critical extension",
        _ => "invalid peer certificate",
    }
}

/// A fixed reason phrase for a rustls error (the reason travels to the
/// peer, so it names the class of failure only).
fn reason_for(error: &rustls::Error) -> &'static str {
    use rustls::Error as E;
    match error {
        E::NoApplicationProtocol => "no application protocol",
        E::InvalidCertificate(e) => certificate_reason(e),
        E::NoCertificatesPresented => "peer presented no certificate",
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            "unexpected TLS message"
        }
        E::InvalidMessage(_) => "malformed TLS message",
        E::PeerIncompatible(_) => "peer incompatible",
        E::PeerMisbehaved(_) => "peer misbehaved",
        E::DecryptError => "TLS decrypt error",
        E::AlertReceived(_) => "TLS alert received",
        _ => "TLS handshake failed",
    }
}
