//! A client's handshake moving to another QUIC version after its
//! ClientHello left: compatible version negotiation (RFC 9368 §2.3,
//! RFC 9369 §4.1).
//!
//! rustls fixes the QUIC version, which picks the HKDF labels of the
//! Handshake and 1-RTT keys (RFC 9369 §3.3.2), when the session is
//! created; a client learns the server's choice only from the Version field
//! of the packet carrying the ServerHello (RFC 9369 §4.1: "The client
//! learns the negotiated version by observing the first long header Version
//! field that differs from the original version"). The TLS messages are the
//! same in both versions, only the key labels differ. So a client that
//! offers other versions gives rustls a per-connection copy of its
//! configuration whose `KeyLog` captures the traffic secrets (and forwards
//! them to the configured log), and after a switch derives the keys itself
//! with [`TrafficSecret`].

use std::sync::{Arc, Mutex, PoisonError};

use rustls::KeyLog;

use crate::Version;
use crate::crypto::{CipherSuite, KeyUpdateSecrets, Keys, TrafficSecret};

/// The traffic secrets of one handshake (RFC 8446 §7.1), as logged.
#[derive(Default)]
pub(super) struct Captured {
    client_handshake: Option<Vec<u8>>,
    server_handshake: Option<Vec<u8>>,
    client_application: Option<Vec<u8>>,
    server_application: Option<Vec<u8>>,
}

impl Drop for Captured {
    fn drop(&mut self) {
        for s in [
            &mut self.client_handshake,
            &mut self.server_handshake,
            &mut self.client_application,
            &mut self.server_application,
        ]
        .into_iter()
        .flatten()
        {
            s.fill(0);
        }
    }
}

/// A `KeyLog` keeping one connection's secrets and forwarding everything
/// to the configured log.
struct CaptureLog {
    inner: Arc<dyn KeyLog>,
    captured: Arc<Mutex<Captured>>,
}

impl std::fmt::Debug for CaptureLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureLog").finish_non_exhaustive()
    }
}

impl KeyLog for CaptureLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if self.inner.will_log(label) {
            self.inner.log(label, client_random, secret);
        }
        let mut c = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = match label {
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut c.client_handshake,
            "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut c.server_handshake,
            "CLIENT_TRAFFIC_SECRET_0" => &mut c.client_application,
            "SERVER_TRAFFIC_SECRET_0" => &mut c.server_application,
            _ => return,
        };
        *slot = Some(secret.to_vec());
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

/// The state a client needs to switch versions mid-handshake.
pub(super) struct VersionSwitch {
    /// The version rustls derives keys for.
    pub(super) rustls_version: Version,
    captured: Arc<Mutex<Captured>>,
}

impl VersionSwitch {
    /// A copy of `config` that captures this connection's secrets, and the
    /// switch reading them.
    pub(super) fn new(
        config: &Arc<rustls::ClientConfig>,
        rustls_version: Version,
    ) -> (Arc<rustls::ClientConfig>, Self) {
        let captured = Arc::new(Mutex::new(Captured::default()));
        let mut copy = (**config).clone();
        copy.key_log = Arc::new(CaptureLog {
            inner: Arc::clone(&config.key_log),
            captured: Arc::clone(&captured),
        });
        let switch = Self {
            rustls_version,
            captured,
        };
        (Arc::new(copy), switch)
    }

    fn secrets(
        &self,
        suite: CipherSuite,
        version: Version,
        application: bool,
    ) -> Option<(TrafficSecret, TrafficSecret)> {
        let c = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
        let (local, remote) = if application {
            (&c.client_application, &c.server_application)
        } else {
            (&c.client_handshake, &c.server_handshake)
        };
        let local = TrafficSecret::new(suite, version, local.as_deref()?).ok()?;
        let remote = TrafficSecret::new(suite, version, remote.as_deref()?).ok()?;
        Some((local, remote))
    }

    /// Handshake keys of `version` (RFC 9001 §5.1, RFC 9369 §3.3.2).
    pub(super) fn handshake_keys(&self, suite: CipherSuite, version: Version) -> Option<Keys> {
        let (local, remote) = self.secrets(suite, version, false)?;
        Some(Keys {
            local: local.keys(),
            remote: remote.keys(),
        })
    }

    /// 1-RTT keys of `version`, and the secrets of the next key phase
    /// (RFC 9001 §6.1): like rustls's, already advanced past these keys.
    pub(super) fn one_rtt_keys(
        &self,
        suite: CipherSuite,
        version: Version,
    ) -> Option<(Keys, KeyUpdateSecrets)> {
        let (local, remote) = self.secrets(suite, version, true)?;
        let keys = Keys {
            local: local.keys(),
            remote: remote.keys(),
        };
        let update = KeyUpdateSecrets::from_traffic_secrets(local.next(), remote.next());
        Some((keys, update))
    }
}
