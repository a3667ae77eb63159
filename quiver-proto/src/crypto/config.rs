//! TLS configuration for QUIC (RFC 9001 §4): rustls client and server
//! configurations restricted to what QUIC allows.
//!
//! Every configuration built here uses rustls's `ring` provider and TLS 1.3
//! only: "Clients MUST NOT offer TLS versions older than 1.3" (RFC 9001
//! §4.2). The [`from_rustls`](ClientConfig::from_rustls) escape hatches
//! accept any rustls configuration that can carry QUIC.
//!
//! Certificate validity and ticket ages are checked against a clock that
//! rustls reads through its [`TimeProvider`]; by default the system clock.
//! Pass a provider of your own with `with_time_provider` to keep a session
//! fully deterministic.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionStore, Resumption};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ProducesTickets, ResolvesServerCert, StoresServerSessions, WebPkiClientVerifier,
};
use rustls::time_provider::TimeProvider;
use rustls::{DigitallySignedStruct, KeyLog, RootCertStore, SignatureScheme};

use super::resumption::{
    DEFAULT_SESSION_STORE_SIZE, DEFAULT_TICKETS_PER_CONNECTION, memory_session_store,
};
use super::{CipherSuite, KxGroup};
use crate::TransportError;

/// The only `max_early_data_size` a QUIC server may send when it accepts
/// 0-RTT: "the max_early_data_size parameter [...] MUST be 0xffffffff"
/// (RFC 9001 §4.6.1).
pub const QUIC_MAX_EARLY_DATA_SIZE: u32 = 0xffff_ffff;

/// Why a TLS configuration or session could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// rustls rejected the configuration, key or certificate; for example
    /// TLS 1.3 is not enabled, no cipher suite supports QUIC, or the private
    /// key does not match the certificate.
    #[error("TLS configuration error: {0}")]
    Tls(#[from] rustls::Error),
    /// The client was given a server name that is neither a DNS name nor an
    /// IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// A server configuration offered early data with a size other than 0
    /// or [`QUIC_MAX_EARLY_DATA_SIZE`] (RFC 9001 §4.6.1).
    #[error("max_early_data_size must be 0 or 0xffffffff for QUIC, not {0:#x}")]
    InvalidEarlyDataSize(u32),
    /// A client certificate verifier could not be built from the roots.
    #[error("cannot build client certificate verifier: {0}")]
    Verifier(String),
    /// Our own transport parameters are invalid (RFC 9000 §18.2).
    #[error("invalid local transport parameters: {0}")]
    TransportParameters(TransportError),
}

/// The crypto provider every quiver configuration uses: ring's, with the
/// key exchange groups `groups` (default [`KxGroup::ALL`]: the hybrid
/// X25519MLKEM768 first, from aws-lc-rs) and the cipher suites `suites`
/// in that order of preference (default [`CipherSuite::ALL`]:
/// TLS_AES_128_GCM_SHA256 first, as browsers offer them, not rustls's
/// AES-256-first order; ARCHITECTURE.md, "Cipher suite order").
fn provider(suites: Option<&[CipherSuite]>, groups: Option<&[KxGroup]>) -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = suites
        .unwrap_or(&CipherSuite::ALL)
        .iter()
        .map(|suite| rustls::SupportedCipherSuite::Tls13(suite.tls13()))
        .collect();
    provider.kx_groups = groups
        .unwrap_or(&KxGroup::ALL)
        .iter()
        .map(|group| group.rustls())
        .collect();
    Arc::new(provider)
}

/// TLS 1.3 only (RFC 9001 §4.2).
const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// How the client checks the server's certificate.
#[derive(Debug)]
enum ServerVerification {
    Roots(RootCertStore),
    Custom(Arc<dyn ServerCertVerifier>),
    Insecure,
}

/// A QUIC client's TLS configuration: a shared, immutable
/// `rustls::ClientConfig` that is known to support QUIC.
///
/// Cheap to clone; one configuration serves any number of connections.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    inner: Arc<rustls::ClientConfig>,
}

impl ClientConfig {
    /// Starts a configuration that verifies server certificates against
    /// `roots` (WebPKI path validation and server name checks).
    pub fn with_root_certificates(roots: RootCertStore) -> ClientConfigBuilder {
        ClientConfigBuilder::new(ServerVerification::Roots(roots))
    }

    /// Starts a configuration that verifies server certificates with a
    /// verifier of the caller's own.
    pub fn with_server_cert_verifier(verifier: Arc<dyn ServerCertVerifier>) -> ClientConfigBuilder {
        ClientConfigBuilder::new(ServerVerification::Custom(verifier))
    }

    /// Starts a configuration that accepts **any** server certificate for
    /// any name.
    ///
    /// **For tests and command-line debugging only**: it offers no
    /// protection against an active attacker. The handshake signature is
    /// still checked against the presented certificate with the provider's
    /// supported signature schemes, so the server must hold the key of the
    /// certificate it sends, but nothing ties that certificate to the
    /// server's name or to a trusted authority.
    pub fn with_insecure_no_verification() -> ClientConfigBuilder {
        ClientConfigBuilder::new(ServerVerification::Insecure)
    }

    /// Wraps a rustls configuration built elsewhere, after checking that it
    /// can carry QUIC: TLS 1.3 enabled and a cipher suite with QUIC support
    /// (RFC 9001 §4.2).
    ///
    /// rustls has no public accessor for the enabled versions, so this
    /// creates (and drops) a throwaway QUIC client connection to let rustls
    /// perform its own check.
    pub fn from_rustls(config: Arc<rustls::ClientConfig>) -> Result<Self, ConfigError> {
        let probe_name = ServerName::try_from("quiver.invalid").expect("valid DNS name");
        rustls::quic::ClientConnection::new(
            Arc::clone(&config),
            rustls::quic::Version::V1,
            probe_name,
            Vec::new(),
        )?;
        Ok(Self { inner: config })
    }

    /// The wrapped rustls configuration.
    pub fn rustls(&self) -> &Arc<rustls::ClientConfig> {
        &self.inner
    }
}

/// Builds a [`ClientConfig`]; start from one of [`ClientConfig`]'s
/// constructors.
#[derive(Debug)]
pub struct ClientConfigBuilder {
    verification: ServerVerification,
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn_protocols: Vec<Vec<u8>>,
    key_log: Option<Arc<dyn KeyLog>>,
    time_provider: Option<Arc<dyn TimeProvider>>,
    early_data: bool,
    cipher_suites: Option<Vec<CipherSuite>>,
    kx_groups: Option<Vec<KxGroup>>,
    /// `None`: resumption disabled.
    session_store: Option<Arc<dyn ClientSessionStore>>,
}

impl ClientConfigBuilder {
    fn new(verification: ServerVerification) -> Self {
        Self {
            verification,
            client_auth: None,
            alpn_protocols: Vec::new(),
            key_log: None,
            time_provider: None,
            early_data: false,
            cipher_suites: None,
            kx_groups: None,
            session_store: Some(memory_session_store(DEFAULT_SESSION_STORE_SIZE)),
        }
    }

    /// Offers only these key exchange groups, most preferred first
    /// (default [`KxGroup::ALL`]: X25519MLKEM768, with an X25519 share
    /// beside it, then X25519, P-256, P-384). The ClientHello carries a key
    /// share for the first (and, for the hybrid, for X25519); a server
    /// that wants another answers with a HelloRetryRequest (RFC 8446
    /// §4.1.4).
    pub fn kx_groups(mut self, groups: &[KxGroup]) -> Self {
        self.kx_groups = Some(groups.to_vec());
        self
    }

    /// Offers only `suites`, most preferred first (by default all of
    /// [`CipherSuite::ALL`] in that order: TLS_AES_128_GCM_SHA256 first, as
    /// browsers do), as the QUIC interop runner's `chacha20` case
    /// does with `[CipherSuite::ChaCha20Poly1305Sha256]`. An empty list
    /// fails in [`build`](Self::build).
    ///
    /// ```
    /// use quiver_proto::crypto::{CipherSuite, ClientConfig};
    /// let config = ClientConfig::with_insecure_no_verification()
    ///     .cipher_suites(&[CipherSuite::ChaCha20Poly1305Sha256])
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.rustls().crypto_provider().cipher_suites.len(), 1);
    /// ```
    pub fn cipher_suites(mut self, suites: &[CipherSuite]) -> Self {
        self.cipher_suites = Some(suites.to_vec());
        self
    }

    /// Keeps session tickets in `store` (keyed by server name) and resumes
    /// from it (RFC 9001 §4.5). Endpoints using the same configuration
    /// share its store; separately built configurations do not resume each
    /// other's sessions even on one store (rustls ties a session to the
    /// verifier that checked it). The default is a store of this
    /// configuration's own,
    /// [`memory_session_store`](super::memory_session_store)`(`[`DEFAULT_SESSION_STORE_SIZE`]`)`.
    pub fn with_session_store(mut self, store: Arc<dyn ClientSessionStore>) -> Self {
        self.session_store = Some(store);
        self
    }

    /// Neither keeps tickets nor resumes: every handshake is a full one.
    pub fn without_resumption(mut self) -> Self {
        self.session_store = None;
        self
    }

    /// Presents `chain` (end-entity certificate first) and proves
    /// possession of `key` when the server asks for a client certificate.
    /// The key is checked in [`build`](Self::build).
    pub fn with_client_auth_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_auth = Some((chain, key));
        self
    }

    /// The application protocols to offer, most preferred first.
    ///
    /// When any are offered, a handshake in which the server selects none
    /// fails with `no_application_protocol` (CRYPTO_ERROR 0x178; RFC 9001
    /// §8.1: "endpoints MUST immediately close a connection [...] with a
    /// no_application_protocol TLS alert [...] if an application protocol
    /// is not negotiated").
    pub fn alpn_protocols(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn_protocols = protocols;
        self
    }

    /// Logs the handshake and traffic secrets to `key_log` (for example
    /// `rustls::KeyLogFile`, which honours `SSLKEYLOGFILE`), for debugging
    /// with packet analysers.
    pub fn with_key_log(mut self, key_log: Arc<dyn KeyLog>) -> Self {
        self.key_log = Some(key_log);
        self
    }

    /// Checks certificate validity and ticket ages against `time` instead
    /// of the system clock.
    pub fn with_time_provider(mut self, time: Arc<dyn TimeProvider>) -> Self {
        self.time_provider = Some(time);
        self
    }

    /// Attempts 0-RTT when resuming a session whose ticket allows it
    /// (RFC 9001 §4.6.1).
    pub fn enable_early_data(mut self) -> Self {
        self.early_data = true;
        self
    }

    /// Builds the configuration.
    pub fn build(self) -> Result<ClientConfig, ConfigError> {
        let provider = provider(self.cipher_suites.as_deref(), self.kx_groups.as_deref());
        let builder = match self.time_provider {
            Some(time) => rustls::ClientConfig::builder_with_details(Arc::clone(&provider), time),
            None => rustls::ClientConfig::builder_with_provider(Arc::clone(&provider)),
        }
        .with_protocol_versions(TLS13_ONLY)?;
        let builder =
            match self.verification {
                ServerVerification::Roots(roots) => builder.with_root_certificates(roots),
                ServerVerification::Custom(verifier) => builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier),
                ServerVerification::Insecure => builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoServerVerification {
                        algorithms: provider.signature_verification_algorithms,
                    })),
            };
        let mut config = match self.client_auth {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn_protocols;
        config.enable_early_data = self.early_data;
        config.resumption = match self.session_store {
            Some(store) => Resumption::store(store),
            None => Resumption::disabled(),
        };
        if let Some(key_log) = self.key_log {
            config.key_log = key_log;
        }
        ClientConfig::from_rustls(Arc::new(config))
    }
}

/// Accepts any server certificate; checks only that the handshake
/// signature was made with the presented certificate's key.
struct NoServerVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for NoServerVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoServerVerification")
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Where the server's certificate comes from.
#[derive(Debug)]
enum ServerCert {
    Single(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    Resolver(Arc<dyn ResolvesServerCert>),
}

/// How the server treats client certificates.
#[derive(Debug)]
enum ClientAuth {
    None,
    Roots {
        roots: RootCertStore,
        required: bool,
    },
    Custom(Arc<dyn ClientCertVerifier>),
}

/// A QUIC server's TLS configuration: a shared, immutable
/// `rustls::ServerConfig` that is known to support QUIC.
///
/// Cheap to clone; one configuration serves any number of connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    inner: Arc<rustls::ServerConfig>,
    /// When `inner` allows early data: the same configuration (sharing its
    /// session storage and ticketer, so tickets stay valid) with early
    /// data off, for connections that refuse 0-RTT.
    no_early_data: Option<Arc<rustls::ServerConfig>>,
    /// The largest transport limits (RFC 9000 §7.4.1's list) advertised by
    /// a connection that may have issued tickets allowing 0-RTT under this
    /// configuration; see [`ServerConfig::early_data_keeps`].
    early_data_floor: Arc<std::sync::Mutex<[u64; 7]>>,
}

impl ServerConfig {
    /// Starts a configuration that presents `chain` (end-entity certificate
    /// first) with its private `key` to every client, whatever name it
    /// asks for. The key is checked against the certificate in
    /// [`build`](ServerConfigBuilder::build).
    pub fn with_single_cert(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> ServerConfigBuilder {
        ServerConfigBuilder::new(ServerCert::Single(chain, key))
    }

    /// Starts a configuration that picks a certificate per ClientHello
    /// (for example by SNI, `rustls::server::ResolvesServerCertUsingSni`).
    pub fn with_cert_resolver(resolver: Arc<dyn ResolvesServerCert>) -> ServerConfigBuilder {
        ServerConfigBuilder::new(ServerCert::Resolver(resolver))
    }

    /// Wraps a rustls configuration built elsewhere, after checking that it
    /// can carry QUIC: TLS 1.3 enabled, a cipher suite with QUIC support
    /// (RFC 9001 §4.2), and `max_early_data_size` of 0 or 0xffffffff
    /// (RFC 9001 §4.6.1).
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Result<Self, ConfigError> {
        let size = config.max_early_data_size;
        if size != 0 && size != QUIC_MAX_EARLY_DATA_SIZE {
            return Err(ConfigError::InvalidEarlyDataSize(size));
        }
        // rustls has no public accessor for the enabled versions: let it
        // check by creating (and dropping) a QUIC server connection, which
        // does no cryptographic work.
        rustls::quic::ServerConnection::new(
            Arc::clone(&config),
            rustls::quic::Version::V1,
            Vec::new(),
        )?;
        let no_early_data = (size != 0).then(|| {
            let mut copy = (*config).clone();
            copy.max_early_data_size = 0;
            Arc::new(copy)
        });
        Ok(Self {
            inner: config,
            no_early_data,
            early_data_floor: Arc::default(),
        })
    }

    /// The wrapped rustls configuration.
    pub fn rustls(&self) -> &Arc<rustls::ServerConfig> {
        &self.inner
    }

    /// The rustls configuration for a connection that may (`early_data`)
    /// or may not accept 0-RTT.
    pub(crate) fn rustls_for(&self, early_data: bool) -> &Arc<rustls::ServerConfig> {
        match &self.no_early_data {
            Some(off) if !early_data => off,
            _ => &self.inner,
        }
    }

    /// RFC 9000 §7.4.1: "a server that accepts 0-RTT data MUST NOT set
    /// values for the following parameters [...] that are smaller than the
    /// remembered values". rustls cannot tell which ticket a client holds
    /// before it has accepted, so the server refuses 0-RTT on a connection
    /// whose `limits` (active_connection_id_limit, initial_max_data, the
    /// three initial_max_stream_data and two initial_max_streams values)
    /// are below any advertised before under this configuration, whose
    /// tickets may carry them. Returns whether 0-RTT may be accepted, and
    /// records `limits` otherwise. Lowering the limits for good therefore
    /// ends 0-RTT under this configuration: build a new one (a new session
    /// store) with the new limits.
    pub(crate) fn early_data_keeps(&self, limits: [u64; 7]) -> bool {
        let mut floor = self
            .early_data_floor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if limits
            .iter()
            .zip(floor.iter())
            .any(|(now, before)| now < before)
        {
            return false;
        }
        *floor = limits;
        true
    }

    /// Whether tickets issued under this configuration allow 0-RTT
    /// (RFC 9001 §4.6.1).
    pub fn early_data(&self) -> bool {
        self.inner.max_early_data_size != 0
    }
}

/// Builds a [`ServerConfig`]; start from one of [`ServerConfig`]'s
/// constructors.
#[derive(Debug)]
pub struct ServerConfigBuilder {
    cert: ServerCert,
    client_auth: ClientAuth,
    alpn_protocols: Vec<Vec<u8>>,
    key_log: Option<Arc<dyn KeyLog>>,
    time_provider: Option<Arc<dyn TimeProvider>>,
    early_data: bool,
    cipher_suites: Option<Vec<CipherSuite>>,
    kx_groups: Option<Vec<KxGroup>>,
    tickets: usize,
    ticketer: Option<Arc<dyn ProducesTickets>>,
    session_storage: Option<Arc<dyn StoresServerSessions>>,
}

impl ServerConfigBuilder {
    fn new(cert: ServerCert) -> Self {
        Self {
            cipher_suites: None,
            kx_groups: None,
            cert,
            client_auth: ClientAuth::None,
            alpn_protocols: Vec::new(),
            key_log: None,
            time_provider: None,
            early_data: false,
            tickets: DEFAULT_TICKETS_PER_CONNECTION,
            ticketer: None,
            session_storage: None,
        }
    }

    /// Sends `count` session tickets after each handshake (RFC 8446
    /// §4.6.1; default [`DEFAULT_TICKETS_PER_CONNECTION`]); 0 issues none,
    /// so no client can resume.
    pub fn session_tickets(mut self, count: usize) -> Self {
        self.tickets = count;
        self
    }

    /// Keeps the sessions that stateful tickets refer to in `storage`
    /// instead of a cache of this configuration's own (256 sessions), for
    /// example to share it between configurations. Configurations that
    /// share storage must agree on certificates and client authentication:
    /// a session of one resumes under the other.
    pub fn with_session_storage(mut self, storage: Arc<dyn StoresServerSessions>) -> Self {
        self.session_storage = Some(storage);
        self
    }

    /// Issues stateless tickets sealed by `ticketer` (for example
    /// `rustls::crypto::ring::Ticketer::new()`) instead of stateful ones.
    /// Such tickets can be replayed, so rustls accepts no 0-RTT with them
    /// (RFC 8446 §8).
    pub fn with_ticketer(mut self, ticketer: Arc<dyn ProducesTickets>) -> Self {
        self.ticketer = Some(ticketer);
        self
    }

    /// Requests a client certificate and checks it against `roots`
    /// (WebPKI path validation). With `required` false, clients that send
    /// no certificate are still accepted; one they do send must verify.
    pub fn with_client_roots(mut self, roots: RootCertStore, required: bool) -> Self {
        self.client_auth = ClientAuth::Roots { roots, required };
        self
    }

    /// Checks client certificates with a verifier of the caller's own,
    /// which also decides whether they are requested and mandatory.
    pub fn with_client_cert_verifier(mut self, verifier: Arc<dyn ClientCertVerifier>) -> Self {
        self.client_auth = ClientAuth::Custom(verifier);
        self
    }

    /// The application protocols the server accepts, most preferred first.
    ///
    /// When any are configured (or the client offers any), a client that
    /// offers none of them is refused with `no_application_protocol`
    /// (CRYPTO_ERROR 0x178, RFC 9001 §8.1).
    pub fn alpn_protocols(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn_protocols = protocols;
        self
    }

    /// Logs the handshake and traffic secrets to `key_log`, for debugging
    /// with packet analysers.
    pub fn with_key_log(mut self, key_log: Arc<dyn KeyLog>) -> Self {
        self.key_log = Some(key_log);
        self
    }

    /// Checks client certificate validity and ticket ages against `time`
    /// instead of the system clock.
    pub fn with_time_provider(mut self, time: Arc<dyn TimeProvider>) -> Self {
        self.time_provider = Some(time);
        self
    }

    /// Accepts only `suites` (the server picks by the client's order of
    /// preference among them); by default all of [`CipherSuite::ALL`]. A
    /// client offering none of them fails the handshake with
    /// `handshake_failure` (CRYPTO_ERROR 0x128).
    pub fn cipher_suites(mut self, suites: &[CipherSuite]) -> Self {
        self.cipher_suites = Some(suites.to_vec());
        self
    }

    /// Accepts only these key exchange groups, in this order of preference
    /// among those the client sent a key share for (default
    /// [`KxGroup::ALL`], the hybrid X25519MLKEM768 first).
    pub fn kx_groups(mut self, groups: &[KxGroup]) -> Self {
        self.kx_groups = Some(groups.to_vec());
        self
    }

    /// Issues tickets that allow 0-RTT, with `max_early_data_size`
    /// 0xffffffff as RFC 9001 §4.6.1 requires.
    ///
    /// The caller remains responsible for the replay risks of 0-RTT
    /// (RFC 9001 §9.2) and for rejecting it when the remembered transport
    /// parameters no longer fit (RFC 9000 §7.4.1).
    pub fn enable_early_data(mut self) -> Self {
        self.early_data = true;
        self
    }

    /// Builds the configuration.
    pub fn build(self) -> Result<ServerConfig, ConfigError> {
        let provider = provider(self.cipher_suites.as_deref(), self.kx_groups.as_deref());
        let builder = match self.time_provider {
            Some(time) => rustls::ServerConfig::builder_with_details(Arc::clone(&provider), time),
            None => rustls::ServerConfig::builder_with_provider(Arc::clone(&provider)),
        }
        .with_protocol_versions(TLS13_ONLY)?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Custom(verifier) => builder.with_client_cert_verifier(verifier),
            ClientAuth::Roots { roots, required } => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| ConfigError::Verifier(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = match self.cert {
            ServerCert::Single(chain, key) => builder.with_single_cert(chain, key)?,
            ServerCert::Resolver(resolver) => builder.with_cert_resolver(resolver),
        };
        config.alpn_protocols = self.alpn_protocols;
        config.send_tls13_tickets = self.tickets;
        if let Some(storage) = self.session_storage {
            config.session_storage = storage;
        } else if self.tickets == 0 {
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        }
        if let Some(ticketer) = self.ticketer {
            config.ticketer = ticketer;
        }
        if self.early_data {
            config.max_early_data_size = QUIC_MAX_EARLY_DATA_SIZE;
        }
        if let Some(key_log) = self.key_log {
            config.key_log = key_log;
        }
        ServerConfig::from_rustls(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        (ck.cert.der().clone(), key)
    }

    #[test]
    fn built_configs_are_tls13_only_with_alpn() {
        let (cert, key) = self_signed();
        let server = ServerConfig::with_single_cert(vec![cert], key)
            .alpn_protocols(vec![b"h3".to_vec()])
            .enable_early_data()
            .build()
            .unwrap();
        assert_eq!(server.rustls().alpn_protocols, [b"h3".to_vec()]);
        assert_eq!(server.rustls().max_early_data_size, 0xffff_ffff);
        let client = ClientConfig::with_insecure_no_verification()
            .alpn_protocols(vec![b"h3".to_vec()])
            .build()
            .unwrap();
        assert_eq!(client.rustls().alpn_protocols, [b"h3".to_vec()]);
    }

    #[test]
    fn from_rustls_rejects_config_without_quic_cipher_suite() {
        // AES-128-GCM with its QUIC algorithm removed.
        let base = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
            .tls13()
            .unwrap();
        let suite: &'static rustls::Tls13CipherSuite =
            Box::leak(Box::new(rustls::Tls13CipherSuite {
                common: rustls::CipherSuiteCommon {
                    suite: base.common.suite,
                    hash_provider: base.common.hash_provider,
                    confidentiality_limit: base.common.confidentiality_limit,
                },
                hkdf_provider: base.hkdf_provider,
                aead_alg: base.aead_alg,
                quic: None,
            }));
        let provider = CryptoProvider {
            cipher_suites: vec![rustls::SupportedCipherSuite::Tls13(suite)],
            ..rustls::crypto::ring::default_provider()
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(TLS13_ONLY)
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        let err = ClientConfig::from_rustls(Arc::new(config)).unwrap_err();
        assert!(matches!(err, ConfigError::Tls(_)), "{err}");
    }

    #[test]
    fn from_rustls_rejects_partial_early_data_size() {
        let (cert, key) = self_signed();
        let mut config = rustls::ServerConfig::builder_with_provider(provider(None, None))
            .with_protocol_versions(TLS13_ONLY)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        config.max_early_data_size = 16384;
        let err = ServerConfig::from_rustls(Arc::new(config)).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidEarlyDataSize(16384)));
    }

    #[test]
    fn server_rejects_key_that_does_not_match_certificate() {
        let (cert, _) = self_signed();
        let (_, other_key) = self_signed();
        let err = ServerConfig::with_single_cert(vec![cert], other_key)
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::Tls(_)), "{err}");
    }
}
