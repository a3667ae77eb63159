//! Where a client keeps the address-validation tokens servers give it in
//! NEW_TOKEN frames, for the Initial of its next connection to the same
//! server (RFC 9000 §8.1.3).
//!
//! A [`TokenStore`] sits in [`crate::ClientConfig::token_store`] behind an
//! `Arc`: every connection made with that configuration (or a clone of it),
//! from any endpoint, shares it.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

/// Tokens kept per server name, taken once each.
///
/// RFC 9000 §8.1.3: "A client MUST NOT include a token that is not
/// applicable to the server that it is connecting to", so tokens are
/// keyed by the server name the connection verifies; and "Clients SHOULD
/// NOT reuse a token from a NEW_TOKEN frame for different connection
/// attempts", so [`TokenStore::take`] removes the token it returns.
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// Keeps `token`, received on a connection to `server_name`.
    fn insert(&self, server_name: &str, token: Bytes);
    /// A token for a new connection to `server_name`, removed from the
    /// store.
    fn take(&self, server_name: &str) -> Option<Bytes>;
}

/// Tokens longer than this are not kept (ours are 37 bytes; a server's
/// token must fit an Initial beside the ClientHello anyway).
pub const MAX_STORED_TOKEN_LEN: usize = 512;

/// The default [`TokenStore`]: in memory, bounded to `max_servers` server
/// names (the least recently used is forgotten) and `tokens_per_server`
/// tokens each (the oldest is dropped), each at most
/// [`MAX_STORED_TOKEN_LEN`] bytes.
#[derive(Debug)]
pub struct InMemoryTokenStore {
    max_servers: usize,
    tokens_per_server: usize,
    /// Least recently used first.
    servers: Mutex<VecDeque<(Box<str>, VecDeque<Bytes>)>>,
}

impl InMemoryTokenStore {
    /// A store for `max_servers` server names of `tokens_per_server` tokens
    /// each (both at least 1).
    pub fn new(max_servers: usize, tokens_per_server: usize) -> Self {
        Self {
            max_servers: max_servers.max(1),
            tokens_per_server: tokens_per_server.max(1),
            servers: Mutex::new(VecDeque::new()),
        }
    }
}

impl Default for InMemoryTokenStore {
    /// 256 servers, 2 tokens each: at most 256 KB.
    fn default() -> Self {
        Self::new(256, 2)
    }
}

impl TokenStore for InMemoryTokenStore {
    fn insert(&self, server_name: &str, token: Bytes) {
        if token.is_empty() || token.len() > MAX_STORED_TOKEN_LEN {
            return;
        }
        let Ok(mut servers) = self.servers.lock() else {
            return;
        };
        let mut entry = match servers.iter().position(|(n, _)| &**n == server_name) {
            Some(i) => servers.remove(i).unwrap_or_default(),
            None => (server_name.into(), VecDeque::new()),
        };
        if entry.1.len() >= self.tokens_per_server {
            entry.1.pop_front();
        }
        entry.1.push_back(token);
        if servers.len() >= self.max_servers {
            servers.pop_front();
        }
        servers.push_back(entry);
    }

    fn take(&self, server_name: &str) -> Option<Bytes> {
        let mut servers = self.servers.lock().ok()?;
        let i = servers.iter().position(|(n, _)| &**n == server_name)?;
        // The newest token: the most likely still valid.
        let token = servers[i].1.pop_back();
        if servers[i].1.is_empty() {
            servers.remove(i);
        }
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9000 §8.1.3: per server, each token used once.
    #[test]
    fn tokens_are_per_server_taken_once_and_bounded() {
        let store = InMemoryTokenStore::new(2, 2);
        store.insert("a", Bytes::from_static(b"a1"));
        store.insert("a", Bytes::from_static(b"a2"));
        store.insert("a", Bytes::from_static(b"a3"));
        assert_eq!(store.take("b"), None);
        assert_eq!(store.take("a").as_deref(), Some(&b"a3"[..]));
        assert_eq!(store.take("a").as_deref(), Some(&b"a2"[..]));
        assert_eq!(store.take("a"), None);
        // Two servers at most: the least recently used goes.
        store.insert("a", Bytes::from_static(b"a"));
        store.insert("b", Bytes::from_static(b"b"));
        store.insert("c", Bytes::from_static(b"c"));
        assert_eq!(store.take("a"), None);
        assert!(store.take("b").is_some() && store.take("c").is_some());
        // Empty and oversized tokens are not kept.
        store.insert("d", Bytes::new());
        store.insert("d", Bytes::from(vec![0; MAX_STORED_TOKEN_LEN + 1]));
        assert_eq!(store.take("d"), None);
    }
}
