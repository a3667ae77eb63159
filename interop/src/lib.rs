//! Test support for the interop tests in `tests/`: a small PKI (a CA, a
//! server certificate for "localhost", a client certificate), TLS
//! configurations for quiver and plain rustls ones for quinn, and a time
//! bound for every test.

#![warn(missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The application protocol both sides use.
pub const ALPN: &[u8] = b"hq-interop";

/// How long any one test may take before it fails.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `f`, failing the test if it takes longer than [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(f: F) -> F::Output {
    match tokio::time::timeout(TEST_TIMEOUT, f).await {
        Ok(v) => v,
        Err(_) => panic!("test timed out after {TEST_TIMEOUT:?}"),
    }
}

/// A certificate chain and its key.
#[derive(Debug)]
pub struct Identity {
    /// End-entity certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// A CA with one server and one client certificate.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA's certificate, which both sides trust.
    pub ca: CertificateDer<'static>,
    /// The server's identity, for "localhost".
    pub server: Identity,
    /// The client's identity, for client authentication.
    pub client: Identity,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    /// Fresh keys and certificates.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "quiver interop CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |name: &str, purpose: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("leaf key");
            let mut params = CertificateParams::new(vec![name.to_owned()]).expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![purpose];
            let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
            Identity {
                chain: vec![cert.der().clone()],
                key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            }
        };
        Self {
            server: leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth),
            client: leaf("client.quiver.test", ExtendedKeyUsagePurpose::ClientAuth),
            ca: ca_cert.der().clone(),
        }
    }

    /// A store holding the CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("CA is a valid root");
        roots
    }

    /// quiver server settings; with `client_auth`, a client certificate
    /// signed by the CA is required.
    pub fn quiver_server(
        &self,
        client_auth: bool,
        transport: quiver::TransportConfig,
    ) -> quiver::ServerConfig {
        let mut b = quiver::ServerConfig::with_single_cert(
            self.server.chain.clone(),
            self.server.key.clone_key(),
        )
        .alpn_protocols(&[ALPN])
        .transport(transport);
        if client_auth {
            b = b.client_auth(self.roots(), true);
        }
        b.build().expect("quiver server config")
    }

    /// quiver client settings trusting the CA; with `client_cert`, it
    /// presents the client certificate.
    pub fn quiver_client(
        &self,
        client_cert: bool,
        transport: quiver::TransportConfig,
    ) -> quiver::ClientConfig {
        let mut b = quiver::ClientConfig::with_root_certificates(self.roots())
            .alpn_protocols(&[ALPN])
            .transport(transport);
        if client_cert {
            b = b.client_auth(self.client.chain.clone(), self.client.key.clone_key());
        }
        b.build().expect("quiver client config")
    }

    /// A rustls server configuration (for quinn).
    pub fn rustls_server(&self, client_auth: bool) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3");
        let builder = if client_auth {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(self.roots()),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(self.server.chain.clone(), self.server.key.clone_key())
            .expect("server certificate");
        config.alpn_protocols = vec![ALPN.to_vec()];
        config
    }

    /// A rustls client configuration trusting the CA (for quinn).
    pub fn rustls_client(&self, client_cert: bool) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(self.roots());
        let mut config = if client_cert {
            builder
                .with_client_auth_cert(self.client.chain.clone(), self.client.key.clone_key())
                .expect("client certificate")
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        config
    }
}

/// `len` bytes of a recognisable pattern (so shifted or repeated data
/// shows up as a mismatch).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 ^ seed)
        .collect()
}

/// A client session store (rustls's bounded in-memory one) that counts the
/// TLS 1.3 tickets it receives, so a test can wait until a connection's
/// tickets have arrived before resuming.
#[derive(Debug)]
pub struct CountingSessionStore {
    inner: rustls::client::ClientSessionMemoryCache,
    tickets: std::sync::atomic::AtomicUsize,
    arrived: tokio::sync::Notify,
}

impl Default for CountingSessionStore {
    fn default() -> Self {
        Self {
            inner: rustls::client::ClientSessionMemoryCache::new(32),
            tickets: std::sync::atomic::AtomicUsize::new(0),
            arrived: tokio::sync::Notify::new(),
        }
    }
}

impl CountingSessionStore {
    /// Tickets received so far.
    pub fn tickets(&self) -> usize {
        self.tickets.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until at least `n` tickets have been received in all.
    pub async fn wait_for_tickets(&self, n: usize) {
        loop {
            let notified = self.arrived.notified();
            if self.tickets() >= n {
                return;
            }
            notified.await;
        }
    }
}

type ServerName = rustls::pki_types::ServerName<'static>;

impl rustls::client::ClientSessionStore for CountingSessionStore {
    fn set_kx_hint(&self, name: ServerName, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(name, group);
    }

    fn kx_hint(&self, name: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(name)
    }

    fn set_tls12_session(&self, name: ServerName, value: rustls::client::Tls12ClientSessionValue) {
        self.inner.set_tls12_session(name, value);
    }

    fn tls12_session(
        &self,
        name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }

    fn remove_tls12_session(&self, name: &ServerName) {
        self.inner.remove_tls12_session(name);
    }

    fn insert_tls13_ticket(
        &self,
        name: ServerName,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.inner.insert_tls13_ticket(name, value);
        self.tickets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.arrived.notify_waiters();
    }

    fn take_tls13_ticket(
        &self,
        name: &ServerName,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(name)
    }
}

/// A server certificate verifier (WebPKI against the roots) that counts
/// the certificates it verified: a resumed handshake verifies none.
#[derive(Debug)]
pub struct CountingVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    verified: std::sync::atomic::AtomicUsize,
}

impl CountingVerifier {
    /// Verifies against `roots`.
    pub fn new(roots: RootCertStore) -> Arc<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
        Arc::new(Self {
            inner,
            verified: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Certificates verified so far.
    pub fn verified(&self) -> usize {
        self.verified.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl rustls::client::danger::ServerCertVerifier for CountingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verified
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
