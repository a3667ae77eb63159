//! NEW_TOKEN address-validation tokens against quinn (RFC 9000 §8.1.3):
//! a quinn server's token, kept by the quiver client's token store, lets
//! the next connection skip quinn's Retry; a quiver server's token, kept by
//! quinn's `TokenMemoryCache`, lets quinn's next connection skip ours.
//!
//! quinn is built without its `bloom` feature here, so its server sends no
//! tokens and ignores them by default; the quinn server below asks for one
//! token per connection and keeps used ones in a small `TokenLog` (quinn's
//! replay check, RFC 9000 §8.1.4).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quiver_interop::{Pki, bounded};
use tokio::sync::Notify;

const LOCALHOST: &str = "127.0.0.1:0";

/// quinn's replay log: each token nonce once.
#[derive(Default)]
struct OnceLog(Mutex<HashSet<u128>>);

impl quinn::TokenLog for OnceLog {
    fn check_and_insert(
        &self,
        nonce: u128,
        _issued: SystemTime,
        _lifetime: Duration,
    ) -> Result<(), quinn::TokenReuseError> {
        if self.0.lock().unwrap().insert(nonce) {
            Ok(())
        } else {
            Err(quinn::TokenReuseError)
        }
    }
}

/// A quiver token store that says when a token arrives.
#[derive(Debug, Default)]
struct NotifyingStore {
    inner: quiver::InMemoryTokenStore,
    arrived: Notify,
}

impl quiver::TokenStore for NotifyingStore {
    fn insert(&self, server_name: &str, token: Bytes) {
        self.inner.insert(server_name, token);
        self.arrived.notify_one();
    }
    fn take(&self, server_name: &str) -> Option<Bytes> {
        self.inner.take(server_name)
    }
}

/// A quinn token store (its default cache) that says when a token arrives.
struct QuinnNotifyingStore {
    inner: quinn::TokenMemoryCache,
    arrived: Notify,
}

impl quinn::TokenStore for QuinnNotifyingStore {
    fn insert(&self, server_name: &str, token: Bytes) {
        self.inner.insert(server_name, token);
        self.arrived.notify_one();
    }
    fn take(&self, server_name: &str) -> Option<Bytes> {
        self.inner.take(server_name)
    }
}

/// quinn server → quiver client: the token from quinn's NEW_TOKEN frame
/// goes in the quiver client's next Initial, and quinn validates the
/// address with it (no Retry).
#[tokio::test]
async fn quinn_servers_token_validates_quivers_next_connection() {
    bounded(async {
        let pki = Pki::new();
        let crypto = QuicServerConfig::try_from(pki.rustls_server(false)).unwrap();
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut tokens = quinn::ValidationTokenConfig::default();
        tokens.sent(1).log(Arc::new(OnceLog::default()));
        config.validation_token_config(tokens);
        let server = quinn::Endpoint::server(config, LOCALHOST.parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();

        let store = Arc::new(NotifyingStore::default());
        let mut client_config = pki.quiver_client(false, quiver::TransportConfig::default());
        client_config = quiver::ClientConfig::from_proto(quiver::proto::ClientConfig {
            token_store: Some(store.clone()),
            ..client_config.proto().clone()
        });
        let mut client = quiver::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        client.set_default_client_config(client_config);

        // A server that makes unvalidated clients answer a Retry.
        let server_task = tokio::spawn(async move {
            let mut validated_without_retry = Vec::new();
            let mut conns = Vec::new();
            while let Some(incoming) = server.accept().await {
                if !incoming.remote_address_validated() && incoming.may_retry() {
                    incoming.retry().unwrap();
                    continue;
                }
                validated_without_retry.push(incoming.may_retry());
                conns.push(incoming.accept().unwrap().await.unwrap());
                if conns.len() == 2 {
                    return validated_without_retry;
                }
            }
            validated_without_retry
        });

        let first = client.connect(addr, "localhost").unwrap().await.unwrap();
        store.arrived.notified().await;
        let second = client.connect(addr, "localhost").unwrap().await.unwrap();
        // The first connection went through a Retry; the second did not.
        assert_eq!(server_task.await.unwrap(), vec![false, true]);
        drop((first, second));
    })
    .await;
}

/// quiver server → quinn client: quinn keeps our token and returns it; our
/// server (Retry for every unvalidated client, like `quiver serve
/// --retry`) accepts the second connection without a Retry.
#[tokio::test]
async fn quiver_servers_token_validates_quinns_next_connection() {
    bounded(async {
        let pki = Pki::new();
        let server = quiver::Endpoint::server(
            pki.quiver_server(false, quiver::TransportConfig::default()),
            LOCALHOST.parse().unwrap(),
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        let store = Arc::new(QuinnNotifyingStore {
            inner: quinn::TokenMemoryCache::default(),
            arrived: Notify::new(),
        });
        let crypto = QuicClientConfig::try_from(pki.rustls_client(false)).unwrap();
        let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
        client_config.token_store(store.clone());
        let mut client = quinn::Endpoint::client(LOCALHOST.parse().unwrap()).unwrap();
        client.set_default_client_config(client_config);

        let server = Arc::new(server);
        let accepting = server.clone();
        let server_task = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Some(incoming) = accepting.accept().await {
                if !incoming.remote_address_validated() {
                    incoming.retry().unwrap();
                    continue;
                }
                conns.push(incoming.accept().await.unwrap());
                if conns.len() == 2 {
                    return conns;
                }
            }
            conns
        });

        let first = client.connect(addr, "localhost").unwrap().await.unwrap();
        store.arrived.notified().await;
        let second = client.connect(addr, "localhost").unwrap().await.unwrap();
        let conns = server_task.await.unwrap();
        assert_eq!(conns.len(), 2);
        let stats = server.stats();
        assert_eq!(stats.retried_by_application, 1, "{stats:?}");
        assert_eq!(stats.new_tokens_accepted, 1, "{stats:?}");
        // The second connection works.
        second
            .send_datagram(Bytes::from_static(b"with a token"))
            .unwrap();
        assert_eq!(
            &conns[1].read_datagram().await.unwrap()[..],
            b"with a token"
        );
        drop(first);
    })
    .await;
}
