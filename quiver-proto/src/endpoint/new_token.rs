//! Address-validation tokens a server hands out in NEW_TOKEN frames for
//! the client's future connections (RFC 9000 §8.1.3), and the filter that
//! keeps each from being used more than once (§8.1.4).
//!
//! A token is `0x4e || nonce (12) || AES-256-GCM(issue time in ms) || tag
//! (16)`, 37 bytes. The type byte and the client's IP address (not its
//! port: §8.1.3, a client's port often changes between connections) are
//! the AEAD's associated data, so a token is checked against the address it
//! arrives from and cannot pass for a Retry token or the reverse (Retry
//! tokens start with another byte, and are HMACs under another key). The
//! key is derived from the endpoint's token secret, so every server of a
//! fleet configured with the same secret accepts the others' tokens
//! ([`crate::EndpointConfig::with_fleet_key`]).
//!
//! What a fleet shares: the key (by configuration) and, only when given
//! one, the log of used tokens ([`NewTokenConfig::reuse_log`], a
//! [`crate::TokenReuseLog`]). Each [`NewTokenConfig::default`] makes its
//! own in-memory log, so by default a token passes once per server; a
//! fleet whose servers share one log accepts it once in all.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use ring::aead;
use ring::hmac;

use crate::TokenReuseLog;
use crate::token_reuse_log::{InMemoryTokenReuseLog, TOKEN_NONCE_LEN, TokenUse};

/// First byte of a NEW_TOKEN token (a Retry token starts with 0x52).
pub(crate) const NEW_TOKEN_MARKER: u8 = 0x4e;
const NONCE_LEN: usize = TOKEN_NONCE_LEN;
const TIME_LEN: usize = 8;
const TAG_LEN: usize = 16;
/// Length of every token we issue.
pub(crate) const NEW_TOKEN_LEN: usize = 1 + NONCE_LEN + TIME_LEN + TAG_LEN;

/// Whether and how a server issues NEW_TOKEN tokens; part of
/// [`super::ServerConfig`].
#[derive(Debug, Clone)]
pub struct NewTokenConfig {
    /// Send one NEW_TOKEN frame on each connection once the handshake is
    /// confirmed (retransmitted until acknowledged, RFC 9000 §13.3), and
    /// accept the tokens in Initials. On by default.
    pub enabled: bool,
    /// How long a token stays valid (RFC 9000 §8.1.3: "A token SHOULD have
    /// an expiration time"). 24 hours by default.
    pub lifetime: Duration,
    /// Where accepted tokens are recorded so that each is accepted once
    /// (RFC 9000 §8.1.4). By default a new [`InMemoryTokenReuseLog`] of
    /// 32,768 tokens per generation (about 1.2 MB at most) for each
    /// configuration: clones of this configuration share it, and so do the
    /// endpoints using them. Servers of a fleet that share a log (the same
    /// `Arc`, or an implementation over a shared store) accept a token once
    /// in all; with their own logs, once each.
    pub reuse_log: Arc<dyn TokenReuseLog>,
}

impl Default for NewTokenConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lifetime: Duration::from_secs(24 * 60 * 60),
            reuse_log: Arc::new(InMemoryTokenReuseLog::default()),
        }
    }
}

impl NewTokenConfig {
    /// No tokens issued, none accepted.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// This configuration, recording used tokens in `log` (for example one
    /// shared by the servers of a fleet).
    pub fn with_reuse_log(self, log: Arc<dyn TokenReuseLog>) -> Self {
        Self {
            reuse_log: log,
            ..self
        }
    }
}

/// Why a NEW_TOKEN token did not validate the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Not ours, altered, or issued to another IP address.
    Invalid,
    /// Older than the configured lifetime.
    Expired,
}

/// Seals and opens NEW_TOKEN tokens.
pub(crate) struct NewTokenKey {
    key: aead::LessSafeKey,
}

impl std::fmt::Debug for NewTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewTokenKey")
    }
}

impl NewTokenKey {
    /// The key derived from the endpoint's token secret.
    pub(crate) fn new(secret: &[u8; 32]) -> Self {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let key = hmac::sign(&derive, b"quiver new token key");
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, key.as_ref())
            .expect("32 bytes is an AES-256 key");
        Self {
            key: aead::LessSafeKey::new(unbound),
        }
    }

    /// A token for the client at `remote`, issued at `now_ms`. The nonce is
    /// random: 96 bits make a repeat negligible for far more tokens than a
    /// key issues (RFC 9000 §8.1.4: tokens must be hard to guess).
    pub(crate) fn issue(&self, now_ms: u64, remote: SocketAddr, rng: &mut impl RngCore) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(NEW_TOKEN_LEN);
        out.push(NEW_TOKEN_MARKER);
        out.extend_from_slice(&nonce);
        let mut time = now_ms.to_be_bytes();
        let (aad, len) = associated_data(remote.ip());
        // Sealing 8 bytes with a valid key cannot fail.
        if let Ok(tag) = self.key.seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&aad[..len]),
            &mut time,
        ) {
            out.extend_from_slice(&time);
            out.extend_from_slice(tag.as_ref());
        }
        out
    }

    /// Checks a token from `remote` at `now_ms`: its use (nonce and times,
    /// for the reuse log) when it is ours, issued to this IP address, and
    /// younger than `lifetime`.
    pub(crate) fn open(
        &self,
        now_ms: u64,
        remote: SocketAddr,
        lifetime: Duration,
        token: &[u8],
    ) -> Result<TokenUse, Rejection> {
        if token.len() != NEW_TOKEN_LEN || token[0] != NEW_TOKEN_MARKER {
            return Err(Rejection::Invalid);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&token[1..1 + NONCE_LEN]);
        let mut sealed = [0u8; TIME_LEN + TAG_LEN];
        sealed.copy_from_slice(&token[1 + NONCE_LEN..]);
        let (aad, len) = associated_data(remote.ip());
        let plain = self
            .key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&aad[..len]),
                &mut sealed,
            )
            .map_err(|_| Rejection::Invalid)?;
        let mut time = [0u8; TIME_LEN];
        time.copy_from_slice(plain);
        let issued = u64::from_be_bytes(time);
        let age = Duration::from_millis(now_ms.saturating_sub(issued));
        if age > lifetime {
            return Err(Rejection::Expired);
        }
        Ok(TokenUse {
            nonce,
            issued: Duration::from_millis(issued),
            lifetime,
            now: Duration::from_millis(now_ms),
        })
    }
}

/// The type byte and the IP address (IPv4-mapped IPv6 addresses as IPv4,
/// so a dual-stack socket and a v4 socket agree), in a fixed buffer.
fn associated_data(ip: IpAddr) -> ([u8; 18], usize) {
    let mut aad = [0u8; 18];
    aad[0] = NEW_TOKEN_MARKER;
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            aad[1] = 4;
            aad[2..6].copy_from_slice(&v4.octets());
            (aad, 6)
        }
        IpAddr::V6(v6) => {
            aad[1] = 6;
            aad[2..18].copy_from_slice(&v6.octets());
            (aad, 18)
        }
    }
}

impl super::Endpoint {
    /// Whether the NEW_TOKEN `token` in an Initial from `remote` validates
    /// the client's address: ours, for this IP, not expired, not used
    /// before (by the configuration's reuse log, which servers of a fleet
    /// may share). Counted in [`super::EndpointStats`] either way.
    pub(super) fn check_new_token(
        &mut self,
        now: std::time::Instant,
        remote: SocketAddr,
        token: &[u8],
    ) -> bool {
        let now_ms = self.token_now(now);
        let Some(config) = self.server.as_ref().map(|s| &s.new_tokens) else {
            return false;
        };
        if !config.enabled {
            return false;
        }
        let stats = &mut self.admission.stats;
        match self
            .new_token_key
            .open(now_ms, remote, config.lifetime, token)
        {
            Ok(used) => {
                // RFC 9000 §8.1.4: tokens from NEW_TOKEN "SHOULD NOT be
                // accepted multiple times"; the log may be the fleet's.
                if config.reuse_log.check_and_record(&used).is_ok() {
                    stats.new_tokens_accepted += 1;
                    true
                } else {
                    stats.new_tokens_reused += 1;
                    false
                }
            }
            Err(Rejection::Invalid) => {
                stats.new_tokens_invalid += 1;
                false
            }
            Err(Rejection::Expired) => {
                stats.new_tokens_expired += 1;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn rng() -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(5)
    }

    const DAY: Duration = Duration::from_secs(86_400);

    /// RFC 9000 §8.1.3: bound to the IP address but not the port, with an
    /// expiry; §8.1.4: unforgeable.
    #[test]
    fn new_token_binds_ip_not_port_and_expires() {
        let key = NewTokenKey::new(&[1; 32]);
        let addr: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let t0 = 5_000_000;
        let token = key.issue(t0, addr, &mut rng());
        assert_eq!(token.len(), NEW_TOKEN_LEN);
        let used = key.open(t0, addr, DAY, &token).unwrap();
        assert_eq!(used.nonce[..], token[1..1 + NONCE_LEN]);
        assert_eq!(used.issued, Duration::from_millis(t0));
        assert_eq!((used.lifetime, used.now), (DAY, used.issued));
        let other_port: SocketAddr = "192.0.2.1:5555".parse().unwrap();
        assert!(key.open(t0 + 1000, other_port, DAY, &token).is_ok());
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:4000".parse().unwrap();
        assert!(key.open(t0, mapped, DAY, &token).is_ok());
        let other_ip: SocketAddr = "192.0.2.2:4000".parse().unwrap();
        assert_eq!(key.open(t0, other_ip, DAY, &token), Err(Rejection::Invalid));
        let late = t0 + DAY.as_millis() as u64 + 1;
        assert_eq!(key.open(late, addr, DAY, &token), Err(Rejection::Expired));
        for i in 0..token.len() {
            let mut forged = token.clone();
            forged[i] ^= 0x10;
            assert_eq!(key.open(t0, addr, DAY, &forged), Err(Rejection::Invalid));
        }
        let other_key = NewTokenKey::new(&[2; 32]);
        assert_eq!(
            other_key.open(t0, addr, DAY, &token),
            Err(Rejection::Invalid)
        );
        assert_eq!(key.open(t0, addr, DAY, &[]), Err(Rejection::Invalid));
        assert_eq!(
            key.open(t0, addr, DAY, &token[..NEW_TOKEN_LEN - 1]),
            Err(Rejection::Invalid)
        );
    }
}
