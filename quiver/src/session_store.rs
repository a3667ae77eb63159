//! A client session store that tells when tickets arrive. A client that
//! wants its next connection to resume (RFC 9001 §4.5) must wait for the
//! previous one to deliver a ticket: the server sends NewSessionTicket
//! after the handshake (RFC 8446 §4.6.1), so a connection closed right
//! after its handshake may leave nothing to resume with.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;

/// rustls's bounded in-memory client session store, counting the TLS 1.3
/// tickets it receives. Give it to
/// [`ClientConfigBuilder::session_store`](crate::ClientConfigBuilder::session_store)
/// and wait with [`CountingSessionStore::wait_beyond`] before the next
/// connection.
///
/// ```no_run
/// # async fn demo(client: quiver::Endpoint, server: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use quiver::CountingSessionStore;
///
/// let store = CountingSessionStore::new(32);
/// // ... a client configuration built with `.session_store(store.clone())` ...
/// let first = client.connect(server, "localhost")?.await?;
/// // The next connection can resume once a ticket came in.
/// let resumable = store.wait_beyond(0, Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CountingSessionStore {
    inner: ClientSessionMemoryCache,
    received: AtomicUsize,
    arrived: tokio::sync::Notify,
}

impl CountingSessionStore {
    /// An empty store keeping tickets for up to `capacity` server names.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: ClientSessionMemoryCache::new(capacity),
            received: AtomicUsize::new(0),
            arrived: tokio::sync::Notify::new(),
        })
    }

    /// Tickets received so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// Waits until more than `seen` tickets have been received in all, for
    /// at most `limit`; returns whether they were.
    pub async fn wait_beyond(&self, seen: usize, limit: Duration) -> bool {
        let wait = async {
            loop {
                // Registered before the check, so a ticket arriving in
                // between still wakes us.
                let notified = self.arrived.notified();
                if self.received() > seen {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

impl ClientSessionStore for CountingSessionStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(name, group);
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(name)
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(name, value);
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.inner.remove_tls12_session(name);
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.inner.insert_tls13_ticket(name, value);
        self.received.fetch_add(1, Ordering::SeqCst);
        self.arrived.notify_waiters();
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(name)
    }
}
