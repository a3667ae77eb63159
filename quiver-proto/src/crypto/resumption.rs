//! TLS session resumption for QUIC (RFC 9001 §4.5, RFC 8446 §2.2): the
//! client's ticket store, the server's ticket issuance, and which kind of
//! handshake a connection ran.
//!
//! A client that resumes skips the server's Certificate and
//! CertificateVerify: the server's Handshake flight shrinks to
//! EncryptedExtensions and Finished, and no certificate is verified.
//!
//! # Client
//!
//! Every [`ClientConfig`](super::ClientConfig) keeps the tickets it
//! receives in a [`rustls::client::ClientSessionStore`], keyed by server
//! name (the name passed to `connect`). By default each configuration has
//! its own bounded in-memory store ([`memory_session_store`] with
//! [`DEFAULT_SESSION_STORE_SIZE`]), or the store given to
//! [`with_session_store`](super::ClientConfigBuilder::with_session_store)
//! (a persistent one, or one of another size). Endpoints that use the same
//! configuration (it is a cheap clone) share its store and resume each
//! other's sessions. rustls resumes a session only under the certificate
//! verifier and client credentials that established it, so configurations
//! built separately do not resume each other's sessions even on one
//! store: a session verified under one trust policy never skips the
//! verification of another. TLS 1.3 tickets are single use: a store hands
//! each one out once (RFC 8446 §C.4 advises against reuse).
//!
//! # Server
//!
//! A server sends [`DEFAULT_TICKETS_PER_CONNECTION`] NewSessionTicket
//! messages after each handshake, in 1-RTT CRYPTO frames. By default the
//! tickets are *stateful*: the session is kept in a bounded in-memory
//! cache and the ticket is its random identifier, so a ticket can be used
//! only once and only with the configuration that issued it (or one
//! sharing its storage, see
//! [`with_session_storage`](super::ServerConfigBuilder::with_session_storage)).
//! A *stateless* ticketer
//! ([`with_ticketer`](super::ServerConfigBuilder::with_ticketer)) seals the
//! session into the ticket instead; rustls then refuses 0-RTT, because a
//! stateless ticket cannot be made single use (RFC 8446 §8).

use std::sync::Arc;

use rustls::client::{ClientSessionMemoryCache, ClientSessionStore};

/// How many sessions (TLS 1.3 tickets) a default client store keeps, over
/// all servers. rustls keeps at most 8 tickets per server name and evicts
/// the least recently used server when full, so memory stays bounded
/// whatever the servers send.
pub const DEFAULT_SESSION_STORE_SIZE: usize = 256;

/// How many tickets a server sends after each handshake by default: one
/// per connection the client may open before it hears from the server
/// again (tickets are single use).
pub const DEFAULT_TICKETS_PER_CONNECTION: usize = 2;

/// A bounded in-memory client session store holding up to `size` TLS 1.3
/// tickets (at least one server's worth), keyed by server name.
///
/// rustls evicts the least recently used server's tickets when full.
pub fn memory_session_store(size: usize) -> Arc<dyn ClientSessionStore> {
    Arc::new(ClientSessionMemoryCache::new(size))
}

/// Which kind of TLS handshake a connection ran (RFC 8446 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeKind {
    /// A full handshake: the server authenticated with its certificate.
    Full,
    /// A full handshake after a HelloRetryRequest (RFC 8446 §4.1.4), one
    /// round trip longer.
    FullWithHelloRetryRequest,
    /// A resumed handshake (PSK with (EC)DHE, RFC 8446 §2.2): no
    /// Certificate or CertificateVerify was sent; the server was
    /// authenticated by the connection whose ticket was used.
    Resumed,
}

impl HandshakeKind {
    pub(crate) fn from_rustls(kind: rustls::HandshakeKind) -> Self {
        match kind {
            rustls::HandshakeKind::Full => Self::Full,
            rustls::HandshakeKind::FullWithHelloRetryRequest => Self::FullWithHelloRetryRequest,
            rustls::HandshakeKind::Resumed => Self::Resumed,
        }
    }
}
