//! Session stores for `--resume`, shared by both stacks (both use rustls):
//! the client's store ([`quiver::CountingSessionStore`]) counts the
//! tickets it receives, so a connection is closed only once it delivered a
//! ticket for the next one (the server sends NewSessionTicket after the
//! handshake, RFC 8446 §4.6.1); the server's counts the sessions it
//! resumed, so the bench can check that every timed handshake of quinn's
//! really was a resumed one (quiver's connections say so themselves).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use quiver::CountingSessionStore;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};

/// A client store for up to 32 tickets.
pub fn client_store() -> Arc<CountingSessionStore> {
    CountingSessionStore::new(32)
}

/// Waits (at most 10 s) until more than `seen` tickets were received.
pub async fn ticket_after(store: &CountingSessionStore, seen: usize) -> anyhow::Result<()> {
    if store.wait_beyond(seen, Duration::from_secs(10)).await {
        Ok(())
    } else {
        anyhow::bail!("no session ticket within 10 s")
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
