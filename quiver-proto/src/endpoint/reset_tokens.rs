//! The peer's stateless reset tokens, for datagrams that route nowhere
//! (RFC 9000 §10.3.1): one table for the whole endpoint, so a datagram costs
//! one look-up whatever the number of connections, instead of a comparison
//! with every connection's tokens.
//!
//! **Keyed by token alone, not by (remote address, token).** §10.3.1 has
//! the endpoint compare a datagram with "all stateless reset tokens
//! associated with the remote address on which the datagram was received",
//! but a peer behind a NAT that rebinds sends its reset from an address we
//! never sent to, and a source address is no authenticator (any off-path
//! sender can put any address on a UDP datagram): the 16-byte token is. A
//! hit is then confirmed by the connection itself, in constant time over
//! the few tokens it checks (`Connection::is_stateless_reset`).
//!
//! **Keys are transformed tokens.** §10.3.1: "endpoints MUST perform the
//! comparison without leaking information about the value of the token
//! ... Another approach would be to store and compare the transformed
//! values of stateless reset tokens instead of the raw token values, where
//! the transformation is defined as a cryptographically secure pseudorandom
//! function using a secret key (e.g., ... HMAC)". A hash-table look-up
//! compares keys with an early exit, so the table holds the token
//! encrypted with AES-128 under a secret key, never a token. A block
//! cipher is a pseudorandom permutation, and on a 16-byte domain
//! indistinguishable from a pseudorandom function (the PRP/PRF switching
//! lemma: distinguishing advantage q²/2¹²⁹ for q queries), so it meets the
//! RFC's requirement; with AES instructions one block costs a few
//! nanoseconds, where HMAC-SHA256 (two SHA-256 compressions and ring's
//! set-up) was the costliest step for a junk datagram. The same property
//! lets the table use the fast seeded hasher: its keys are a PRF's
//! outputs, which a peer choosing tokens cannot steer into collisions.
//!
//! Which tokens are here is the connections' business: only those of
//! connection IDs in use and not retired (§10.3.1: "An endpoint MUST NOT
//! check for any stateless reset tokens associated with connection IDs it
//! has not used or for connection IDs that have been retired"), announced
//! with `EndpointEvent::ResetToken` and withdrawn with
//! `EndpointEvent::RetireResetToken`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit};

use super::hash::SeededState;
use crate::connection::ConnectionHandle;

/// A token as the table stores it: encrypted under the table's key. A
/// connection's slot keeps these too, so that withdrawing its tokens when
/// it goes costs nothing more.
pub(super) type Transformed = [u8; 16];

/// Transformed peer reset tokens → the connection that checks them.
pub(super) struct ResetTokens {
    key: Aes128,
    map: HashMap<Transformed, ConnectionHandle, SeededState>,
}

impl std::fmt::Debug for ResetTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetTokens")
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl ResetTokens {
    /// An empty table; its AES key derives from the endpoint's secret
    /// (HMAC-SHA256 with a label, once, so that it is independent of the
    /// reset tokens the same secret makes).
    pub(super) fn new(secret: &[u8; 32], hasher: SeededState) -> Self {
        let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&derive, b"quiver reset token table");
        let key: [u8; 16] = tag.as_ref()[..16].try_into().expect("32-byte tag");
        Self {
            key: Aes128::new(&key.into()),
            map: HashMap::with_hasher(hasher),
        }
    }

    /// The table's key for `token`: one AES-128 block encryption.
    pub(super) fn transform(&self, token: &[u8; 16]) -> Transformed {
        let mut block = (*token).into();
        self.key.encrypt_block(&mut block);
        block.into()
    }

    /// Starts checking the token `key` was transformed from for `handle`.
    /// Returns `false` if another connection already checks it (peers
    /// choose their tokens; one that repeats a token across its connections
    /// only makes those resets go unrecognised, and the first connection
    /// keeps it).
    pub(super) fn insert(&mut self, key: Transformed, handle: ConnectionHandle) -> bool {
        match self.map.entry(key) {
            Entry::Occupied(e) => *e.get() == handle,
            Entry::Vacant(e) => {
                e.insert(handle);
                true
            }
        }
    }

    /// Stops checking the token `key` was transformed from for `handle`.
    pub(super) fn remove(&mut self, key: &Transformed, handle: ConnectionHandle) {
        if self.map.get(key) == Some(&handle) {
            self.map.remove(key);
        }
    }

    /// The connection whose peer may have sent `datagram` as a stateless
    /// reset: the one checking the token its last 16 bytes would be. To be
    /// confirmed by the connection.
    pub(super) fn lookup(&self, datagram: &[u8]) -> Option<ConnectionHandle> {
        // §10.3: a reset is at least 21 bytes ("short header packets that
        // are smaller than 21 bytes are never valid").
        if self.map.is_empty() || datagram.len() < 21 {
            return None;
        }
        let tail: &[u8; 16] = datagram[datagram.len() - 16..].try_into().ok()?;
        self.map.get(&self.transform(tail)).copied()
    }

    /// Tokens checked.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_connection_by_the_datagram_tail() {
        let mut t = ResetTokens::new(&[7; 32], SeededState::new(1));
        let (a, b) = (ConnectionHandle(1), ConnectionHandle(2));
        let (one, two) = (t.transform(&[1; 16]), t.transform(&[2; 16]));
        assert_ne!(one, [1; 16], "the table never holds a token itself");
        assert!(t.insert(one, a));
        assert!(t.insert(two, b));
        // A repeated token stays with the first connection.
        assert!(!t.insert(one, b));
        assert!(t.insert(one, a));
        let mut datagram = vec![0x40; 30];
        datagram[14..].copy_from_slice(&[2; 16]);
        assert_eq!(t.lookup(&datagram), Some(b));
        assert_eq!(t.lookup(&datagram[..20]), None, "too short for a reset");
        datagram[29] ^= 1;
        assert_eq!(t.lookup(&datagram), None);
        // Removal only by the owner.
        t.remove(&one, b);
        assert_eq!(t.len(), 2);
        t.remove(&one, a);
        t.remove(&two, b);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn transform_is_keyed_by_the_endpoint_secret() {
        let (a, b) = (
            ResetTokens::new(&[7; 32], SeededState::new(1)),
            ResetTokens::new(&[8; 32], SeededState::new(1)),
        );
        let token = [0x5a; 16];
        assert_eq!(a.transform(&token), a.transform(&token));
        assert_ne!(a.transform(&token), b.transform(&token));
        assert_ne!(a.transform(&token), a.transform(&[0x5b; 16]));
    }
}
