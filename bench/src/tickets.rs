//! Session stores for `--resume`, shared by both stacks (both use rustls):
//! the client's store counts the tickets it receives, so a connection is
//! closed only once it delivered a ticket for the next one (the server
//! sends NewSessionTicket after the handshake, RFC 8446 §4.6.1); the
//! server's counts the sessions it resumed, so the bench can check that
//! every timed handshake of quinn's really was a resumed one (quiver's
//! connections say so themselves).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};

/// rustls's bounded in-memory client store, counting TLS 1.3 tickets.
#[derive(Debug)]
pub struct ClientTickets {
    inner: ClientSessionMemoryCache,
    received: AtomicUsize,
    arrived: tokio::sync::Notify,
}

impl ClientTickets {
    /// An empty store for up to 32 tickets.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: ClientSessionMemoryCache::new(32),
            received: AtomicUsize::new(0),
            arrived: tokio::sync::Notify::new(),
        })
    }

    /// Tickets received so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// Waits (at most 10 s) until more than `seen` tickets were received.
    pub async fn wait_beyond(&self, seen: usize) -> anyhow::Result<()> {
        let wait = async {
            loop {
                let notified = self.arrived.notified();
                if self.received() > seen {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .map_err(|_| anyhow::anyhow!("no session ticket within 10 s"))
    }
}

impl ClientSessionStore for ClientTickets {
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

/// rustls's bounded in-memory server session cache (stateful tickets, the
/// default of both stacks), counting the sessions a client resumed.
#[derive(Debug)]
pub struct ServerSessions {
    inner: Arc<ServerSessionMemoryCache>,
    resumed: AtomicUsize,
}

impl ServerSessions {
    /// An empty cache of 256 sessions (rustls's default size).
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: ServerSessionMemoryCache::new(256),
            resumed: AtomicUsize::new(0),
        })
    }

    /// Sessions resumed so far.
    pub fn resumed(&self) -> usize {
        self.resumed.load(Ordering::SeqCst)
    }
}

impl StoresServerSessions for ServerSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let found = self.inner.take(key);
        if found.is_some() {
            self.resumed.fetch_add(1, Ordering::SeqCst);
        }
        found
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}
