//! Client and server configurations: TLS (through quiver-proto's QUIC
//! crypto builders) plus transport settings.

use std::sync::Arc;

use quiver_proto::crypto::{self, ConfigError};
use quiver_proto::{
    AdmissionConfig, InMemoryTokenStore, NewTokenConfig, TokenReuseLog, TokenStore,
    TransportConfig, Version,
};
use rustls::RootCertStore;
use rustls::client::ClientSessionStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How a client checks the server's certificate.
#[derive(Debug)]
enum Verification {
    Roots(RootCertStore),
    Insecure,
}

/// Settings for outgoing connections: TLS and transport.
///
/// ```
/// let config = quiver::ClientConfig::insecure()
///     .alpn_protocols(&[b"hq-interop"])
///     .build()
///     .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) inner: quiver_proto::ClientConfig,
}

impl ClientConfig {
    /// Verifies servers against `roots`.
    pub fn with_root_certificates(roots: RootCertStore) -> ClientConfigBuilder {
        ClientConfigBuilder::new(Verification::Roots(roots))
    }

    /// Verifies servers against the platform's trusted certificates.
    /// Certificates the platform store holds but rustls cannot parse are
    /// skipped; fails only if none could be loaded.
    #[cfg(feature = "native-roots")]
    pub fn with_native_roots() -> Result<ClientConfigBuilder, ConfigError> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(ConfigError::Verifier(format!(
                "no usable platform root certificates ({} errors)",
                found.errors.len()
            )));
        }
        Ok(Self::with_root_certificates(roots))
    }

    /// Accepts **any** server certificate. For tests and command-line
    /// debugging only: it gives no protection against an active attacker.
    pub fn insecure() -> ClientConfigBuilder {
        ClientConfigBuilder::new(Verification::Insecure)
    }

    /// Wraps a configuration built with quiver-proto directly.
    pub fn from_proto(inner: quiver_proto::ClientConfig) -> Self {
        Self { inner }
    }

    /// The quiver-proto configuration.
    pub fn proto(&self) -> &quiver_proto::ClientConfig {
        &self.inner
    }

    /// Replaces the transport settings.
    pub fn set_transport_config(&mut self, transport: TransportConfig) {
        self.inner.transport = Arc::new(transport);
    }
}

/// Builds a [`ClientConfig`]: start from one of its constructors.
#[derive(Debug)]
pub struct ClientConfigBuilder {
    verification: Verification,
    alpn: Vec<Vec<u8>>,
    keylog: bool,
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    transport: TransportConfig,
    version: Version,
    available_versions: Vec<Version>,
    token_store: Option<Arc<dyn TokenStore>>,
    cipher_suites: Option<Vec<crypto::CipherSuite>>,
    kx_groups: Option<Vec<crypto::KxGroup>>,
    /// `None`: the default store; `Some(None)`: resumption disabled.
    session_store: Option<Option<Arc<dyn ClientSessionStore>>>,
    early_data: bool,
}

impl ClientConfigBuilder {
    fn new(verification: Verification) -> Self {
        Self {
            verification,
            alpn: Vec::new(),
            keylog: false,
            client_auth: None,
            transport: TransportConfig::default(),
            version: Version::V1,
            available_versions: Vec::new(),
            token_store: Some(Arc::new(InMemoryTokenStore::default())),
            cipher_suites: None,
            kx_groups: None,
            session_store: None,
            early_data: false,
        }
    }

    /// Sends 0-RTT data when resuming a session whose ticket allows it
    /// (RFC 9001 §4.6; default: off); see
    /// [`Connecting::into_0rtt`](crate::Connecting::into_0rtt), which also
    /// says what happens when the server rejects it and why only requests
    /// safe to replay belong in 0-RTT.
    pub fn early_data(mut self, enabled: bool) -> Self {
        self.early_data = enabled;
        self
    }

    /// Keeps session tickets in `store`, keyed by server name, and resumes
    /// sessions from it (RFC 9001 §4.5). Share one store (for example
    /// [`crypto::memory_session_store`]) between configurations and
    /// endpoints to let them resume each other's sessions. Default: a
    /// bounded in-memory store of this configuration's own
    /// ([`crypto::DEFAULT_SESSION_STORE_SIZE`] tickets).
    pub fn session_store(mut self, store: Arc<dyn ClientSessionStore>) -> Self {
        self.session_store = Some(Some(store));
        self
    }

    /// With `false`, keeps no tickets: every handshake is a full one.
    pub fn resumption(mut self, enabled: bool) -> Self {
        self.session_store = if enabled { None } else { Some(None) };
        self
    }

    /// The application protocols to offer, most preferred first.
    pub fn alpn_protocols(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Logs TLS secrets to the file named by `SSLKEYLOGFILE` (when set),
    /// for packet analysers.
    pub fn keylog(mut self, enabled: bool) -> Self {
        self.keylog = enabled;
        self
    }

    /// Presents this certificate chain (end-entity first) when the server
    /// asks for client authentication.
    pub fn client_auth(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_auth = Some((chain, key));
        self
    }

    /// Transport settings (default: [`TransportConfig::default`]).
    pub fn transport(mut self, transport: TransportConfig) -> Self {
        self.transport = transport;
        self
    }

    /// The QUIC version to start with (default: v1).
    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// The versions offered in version_information, most preferred first
    /// (RFC 9368 §3; default: none but the start version, which is always
    /// offered): the server may switch to one of them (compatible
    /// negotiation), and a Version Negotiation packet makes the client
    /// retry in the first it lists.
    pub fn available_versions(mut self, versions: &[Version]) -> Self {
        self.available_versions = versions.to_vec();
        self
    }

    /// Where tokens from servers' NEW_TOKEN frames are kept for the next
    /// connection to the same server (RFC 9000 §8.1.3; default: a bounded
    /// [`InMemoryTokenStore`] of this configuration). Pass one store to
    /// several configurations or endpoints to share it; `None` keeps none.
    pub fn token_store(mut self, store: Option<Arc<dyn TokenStore>>) -> Self {
        self.token_store = store;
        self
    }

    /// Offers only these TLS cipher suites, most preferred first (default:
    /// all that QUIC can use, [`crypto::CipherSuite::ALL`]: AES-128-GCM
    /// first, as browsers offer them; RFC 9001 §5.3).
    pub fn cipher_suites(mut self, suites: &[crypto::CipherSuite]) -> Self {
        self.cipher_suites = Some(suites.to_vec());
        self
    }

    /// Offers only these TLS key exchange groups, most preferred first
    /// (default: the hybrid post-quantum X25519MLKEM768, then X25519,
    /// P-256, P-384).
    pub fn kx_groups(mut self, groups: &[crypto::KxGroup]) -> Self {
        self.kx_groups = Some(groups.to_vec());
        self
    }

    /// Builds the configuration.
    pub fn build(self) -> Result<ClientConfig, ConfigError> {
        let mut builder = match self.verification {
            Verification::Roots(roots) => crypto::ClientConfig::with_root_certificates(roots),
            Verification::Insecure => crypto::ClientConfig::with_insecure_no_verification(),
        }
        .alpn_protocols(self.alpn);
        if self.keylog {
            builder = builder.with_key_log(Arc::new(rustls::KeyLogFile::new()));
        }
        if let Some((chain, key)) = self.client_auth {
            builder = builder.with_client_auth_cert(chain, key);
        }
        if let Some(suites) = &self.cipher_suites {
            builder = builder.cipher_suites(suites);
        }
        if let Some(groups) = &self.kx_groups {
            builder = builder.kx_groups(groups);
        }
        if self.early_data {
            builder = builder.enable_early_data();
        }
        match self.session_store {
            None => {}
            Some(Some(store)) => builder = builder.with_session_store(store),
            Some(None) => builder = builder.without_resumption(),
        }
        let crypto = builder.build()?;
        Ok(ClientConfig {
            inner: quiver_proto::ClientConfig {
                crypto: Arc::new(crypto),
                transport: Arc::new(self.transport),
                version: self.version,
                available_versions: self.available_versions,
                token_store: self.token_store,
            },
        })
    }
}

/// Settings for accepted connections: TLS and transport.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(crate) inner: quiver_proto::ServerConfig,
}

impl ServerConfig {
    /// Presents `chain` (end-entity certificate first) with its private
    /// `key` to every client.
    pub fn with_single_cert(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> ServerConfigBuilder {
        ServerConfigBuilder {
            chain,
            key,
            alpn: Vec::new(),
            keylog: false,
            client_roots: None,
            transport: TransportConfig::default(),
            admission: AdmissionConfig::default(),
            new_tokens: NewTokenConfig::default(),
            cipher_suites: None,
            kx_groups: None,
            tickets: crypto::DEFAULT_TICKETS_PER_CONNECTION,
            early_data: false,
        }
    }

    /// Wraps a configuration built with quiver-proto directly.
    pub fn from_proto(inner: quiver_proto::ServerConfig) -> Self {
        Self { inner }
    }

    /// The quiver-proto configuration.
    pub fn proto(&self) -> &quiver_proto::ServerConfig {
        &self.inner
    }

    /// Replaces the transport settings.
    pub fn set_transport_config(&mut self, transport: TransportConfig) {
        self.inner.transport = Arc::new(transport);
    }

    /// Replaces the admission limits (connections, handshakes, automatic
    /// Retry; see [`AdmissionConfig`]).
    pub fn set_admission_config(&mut self, admission: AdmissionConfig) {
        self.inner.admission = admission;
    }

    /// Replaces the NEW_TOKEN settings (see [`NewTokenConfig`]).
    pub fn set_new_token_config(&mut self, new_tokens: NewTokenConfig) {
        self.inner.new_tokens = new_tokens;
    }
}

/// Builds a [`ServerConfig`]: start from [`ServerConfig::with_single_cert`].
#[derive(Debug)]
pub struct ServerConfigBuilder {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: Vec<Vec<u8>>,
    keylog: bool,
    client_roots: Option<(RootCertStore, bool)>,
    transport: TransportConfig,
    admission: AdmissionConfig,
    new_tokens: NewTokenConfig,
    cipher_suites: Option<Vec<crypto::CipherSuite>>,
    kx_groups: Option<Vec<crypto::KxGroup>>,
    tickets: usize,
    early_data: bool,
}

impl ServerConfigBuilder {
    /// Issues tickets that allow 0-RTT and accepts 0-RTT from clients
    /// resuming with them (RFC 9001 §4.6; default: off). Each connection
    /// may still refuse it ([`Incoming::set_early_data`](crate::Incoming::set_early_data)).
    ///
    /// **Replay**: 0-RTT data can be replayed by an attacker who captured
    /// it (RFC 9001 §9.2, RFC 8446 §8). The default stateful tickets are
    /// single use, which stops replays to this server (process), but not
    /// to other servers sharing a ticket key, or across restarts with a
    /// persistent store. Enable it only for requests that are safe to
    /// repeat (idempotent, like HTTP GET). A server that accepts 0-RTT
    /// must not lower its limits below those its tickets remember (RFC
    /// 9000 §7.4.1): connections whose limits are below any advertised
    /// before under the same TLS configuration refuse 0-RTT.
    pub fn early_data(mut self, enabled: bool) -> Self {
        self.early_data = enabled;
        self
    }

    /// Session tickets sent after each handshake, for clients to resume
    /// with (RFC 9001 §4.5; default
    /// [`crypto::DEFAULT_TICKETS_PER_CONNECTION`]); 0 disables resumption.
    pub fn session_tickets(mut self, count: usize) -> Self {
        self.tickets = count;
        self
    }

    /// The application protocols accepted, most preferred first.
    pub fn alpn_protocols(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Logs TLS secrets to the file named by `SSLKEYLOGFILE` (when set).
    pub fn keylog(mut self, enabled: bool) -> Self {
        self.keylog = enabled;
        self
    }

    /// Asks clients for a certificate and verifies it against `roots`;
    /// with `required`, clients without one are refused.
    pub fn client_auth(mut self, roots: RootCertStore, required: bool) -> Self {
        self.client_roots = Some((roots, required));
        self
    }

    /// Transport settings (default: [`TransportConfig::default`]).
    pub fn transport(mut self, transport: TransportConfig) -> Self {
        self.transport = transport;
        self
    }

    /// Admission limits (default: [`AdmissionConfig::default`]).
    pub fn admission(mut self, admission: AdmissionConfig) -> Self {
        self.admission = admission;
        self
    }

    /// NEW_TOKEN tokens: on/off, lifetime, reuse log (default:
    /// [`NewTokenConfig::default`], on for 24 hours, a log of its own).
    pub fn new_tokens(mut self, new_tokens: NewTokenConfig) -> Self {
        self.new_tokens = new_tokens;
        self
    }

    /// Records accepted NEW_TOKEN tokens in `log`, so that servers sharing
    /// it (and the fleet key, [`EndpointConfig::with_fleet_key`]) accept
    /// each token once between them (RFC 9000 §8.1.4); by default each
    /// configuration has its own [`InMemoryTokenReuseLog`].
    ///
    /// [`EndpointConfig::with_fleet_key`]: quiver_proto::EndpointConfig::with_fleet_key
    /// [`InMemoryTokenReuseLog`]: crate::InMemoryTokenReuseLog
    pub fn token_reuse_log(mut self, log: Arc<dyn TokenReuseLog>) -> Self {
        self.new_tokens.reuse_log = log;
        self
    }

    /// Accepts only these TLS cipher suites (default: all that QUIC can
    /// use; RFC 9001 §5.3).
    pub fn cipher_suites(mut self, suites: &[crypto::CipherSuite]) -> Self {
        self.cipher_suites = Some(suites.to_vec());
        self
    }

    /// Accepts only these TLS key exchange groups, in this order of
    /// preference (default: X25519MLKEM768, X25519, P-256, P-384).
    pub fn kx_groups(mut self, groups: &[crypto::KxGroup]) -> Self {
        self.kx_groups = Some(groups.to_vec());
        self
    }

    /// Builds the configuration.
    pub fn build(self) -> Result<ServerConfig, ConfigError> {
        let mut builder = crypto::ServerConfig::with_single_cert(self.chain, self.key)
            .alpn_protocols(self.alpn)
            .session_tickets(self.tickets);
        if self.keylog {
            builder = builder.with_key_log(Arc::new(rustls::KeyLogFile::new()));
        }
        if let Some((roots, required)) = self.client_roots {
            builder = builder.with_client_roots(roots, required);
        }
        if let Some(suites) = &self.cipher_suites {
            builder = builder.cipher_suites(suites);
        }
        if let Some(groups) = &self.kx_groups {
            builder = builder.kx_groups(groups);
        }
        if self.early_data {
            builder = builder.enable_early_data();
        }
        Ok(ServerConfig {
            inner: quiver_proto::ServerConfig {
                crypto: Arc::new(builder.build()?),
                transport: Arc::new(self.transport),
                admission: self.admission,
                new_tokens: self.new_tokens,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_apply_alpn_keylog_and_client_auth() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = ck.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let mut roots = RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let server = ServerConfig::with_single_cert(vec![cert.clone()], key.clone_key())
            .alpn_protocols(&[b"h3", b"hq-interop"])
            .keylog(true)
            .client_auth(roots.clone(), true)
            .build()
            .unwrap();
        let rustls = server.proto().crypto.rustls();
        assert_eq!(
            rustls.alpn_protocols,
            [b"h3".to_vec(), b"hq-interop".to_vec()]
        );
        assert!(format!("{:?}", rustls.key_log).contains("KeyLogFile"));
        let client = ClientConfig::with_root_certificates(roots)
            .alpn_protocols(&[b"h3"])
            .keylog(true)
            .client_auth(vec![cert], key)
            .build()
            .unwrap();
        let rustls = client.proto().crypto.rustls();
        assert_eq!(rustls.alpn_protocols, [b"h3".to_vec()]);
        assert!(rustls.client_auth_cert_resolver.has_certs());
        assert!(format!("{:?}", rustls.key_log).contains("KeyLogFile"));
        let insecure = ClientConfig::insecure().build().unwrap();
        assert!(insecure.proto().crypto.rustls().alpn_protocols.is_empty());
    }

    #[test]
    fn builders_apply_tickets_early_data_and_resumption() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = ck.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let server = ServerConfig::with_single_cert(vec![cert.clone()], key.clone_key())
            .build()
            .unwrap();
        let rustls = server.proto().crypto.rustls();
        assert_eq!(
            rustls.send_tls13_tickets,
            crypto::DEFAULT_TICKETS_PER_CONNECTION
        );
        assert_eq!(rustls.max_early_data_size, 0);
        let server = ServerConfig::with_single_cert(vec![cert], key)
            .session_tickets(0)
            .early_data(true)
            .build()
            .unwrap();
        let rustls = server.proto().crypto.rustls();
        assert_eq!(rustls.send_tls13_tickets, 0);
        assert_eq!(rustls.max_early_data_size, crypto::QUIC_MAX_EARLY_DATA_SIZE);
        let off = ClientConfig::insecure().resumption(false).build().unwrap();
        assert!(
            format!("{:?}", off.proto().crypto.rustls().resumption)
                .contains("NoClientSessionStorage")
        );
        let store = crypto::memory_session_store(4);
        let shared = ClientConfig::insecure()
            .session_store(store.clone())
            .build()
            .unwrap();
        let debug = format!("{:?}", shared.proto().crypto.rustls().resumption);
        assert!(debug.contains("ClientSessionMemoryCache"), "{debug}");
    }

    /// Servers built with one log share it (a fleet accepts each NEW_TOKEN
    /// token once, RFC 9000 §8.1.4); without one, each has its own.
    #[test]
    fn builders_share_a_token_reuse_log_only_when_given_one() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = ck.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let log: Arc<dyn TokenReuseLog> = Arc::new(crate::InMemoryTokenReuseLog::new(16));
        let build = |log: Option<Arc<dyn TokenReuseLog>>| {
            let mut builder = ServerConfig::with_single_cert(vec![cert.clone()], key.clone_key());
            if let Some(log) = log {
                builder = builder.token_reuse_log(log);
            }
            builder.build().unwrap()
        };
        let (a, b) = (build(Some(log.clone())), build(Some(log.clone())));
        let reuse_log = |c: &ServerConfig| c.proto().new_tokens.reuse_log.clone();
        assert!(Arc::ptr_eq(&reuse_log(&a), &log));
        assert!(Arc::ptr_eq(&reuse_log(&b), &log));
        let (c, d) = (build(None), build(None));
        assert!(!Arc::ptr_eq(&reuse_log(&c), &reuse_log(&d)));
    }
}
