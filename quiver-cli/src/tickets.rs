//! A client session store that tells when tickets arrive, so `get
//! --resume` and `perf client --resume` start a connection only once the
//! previous one gave them a ticket to resume with (the server sends its
//! NewSessionTicket after the handshake, RFC 8446 §4.6.1).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;

/// rustls's bounded in-memory store, counting the TLS 1.3 tickets it
/// receives.
#[derive(Debug)]
pub struct TicketStore {
    inner: ClientSessionMemoryCache,
    received: AtomicUsize,
    arrived: tokio::sync::Notify,
}

impl TicketStore {
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

    /// Waits until more than `seen` tickets have been received in all, for
    /// at most `limit`; returns whether they were.
    pub async fn wait_beyond(&self, seen: usize, limit: Duration) -> bool {
        let wait = async {
            loop {
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

impl ClientSessionStore for TicketStore {
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
