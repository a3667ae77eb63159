//! Stateless reset tokens and packets (RFC 9000 §10.3).

use rand::RngCore;

use crate::ConnectionId;

/// The shortest packet a stateless reset can be (RFC 9000 §10.3: 5 bytes of
/// header-like prefix plus the 16-byte token).
const MIN_RESET_LEN: usize = 21;

/// The endpoint's stateless reset key, made once per endpoint: building a
/// `ring::hmac::Key` hashes the secret into its inner and outer pads (two
/// SHA-256 blocks), half the cost of a token, and an endpoint makes several
/// tokens per connection (one per connection ID it issues).
#[derive(Debug)]
pub(crate) struct ResetKey(ring::hmac::Key);

impl ResetKey {
    /// The key for the endpoint secret `secret` (`EndpointConfig::reset_key`).
    pub(crate) fn new(secret: &[u8; 32]) -> Self {
        Self(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    /// The stateless reset token for one of our connection IDs: an HMAC of
    /// the ID under the endpoint's key, so any instance sharing the key can
    /// regenerate it without state (RFC 9000 §10.3.2).
    pub(crate) fn token(&self, cid: &ConnectionId) -> [u8; 16] {
        let tag = ring::hmac::sign(&self.0, cid);
        let mut token = [0u8; 16];
        token.copy_from_slice(&tag.as_ref()[..16]);
        token
    }
}

/// The stateless reset token for `cid` under the secret `key`, for tests
/// that play another instance sharing the secret.
#[cfg(test)]
pub(crate) fn reset_token(key: &[u8; 32], cid: &ConnectionId) -> [u8; 16] {
    ResetKey::new(key).token(cid)
}

/// A stateless reset answering a `received_len`-byte packet sent to `cid`,
/// or `None` if that packet is too small to answer without risking a loop.
pub(crate) fn build(
    key: &ResetKey,
    cid: &ConnectionId,
    received_len: usize,
    rng: &mut impl RngCore,
) -> Option<Vec<u8>> {
    // RFC 9000 §10.3.3: "An endpoint MUST ensure that every Stateless Reset
    // that it sends is smaller than the packet that triggered it"; below 21
    // bytes it would not look like a packet at all.
    if received_len <= MIN_RESET_LEN {
        return None;
    }
    // §10.3: answers to packets of 43 bytes or less are one byte shorter;
    // otherwise a size that does not reveal itself, never larger than the
    // trigger (and so never an amplification).
    let len = if received_len <= 43 {
        received_len - 1
    } else {
        let extra = (rng.next_u32() % 16) as usize;
        (42 + extra).min(received_len - 1)
    };
    let mut packet = vec![0u8; len];
    rng.fill_bytes(&mut packet[..len - 16]);
    // Short header form: 0b01 in the top bits, the rest unpredictable.
    packet[0] = 0x40 | (packet[0] & 0x3f);
    packet[len - 16..].copy_from_slice(&key.token(cid));
    Some(packet)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn stateless_reset_is_smaller_than_trigger_and_ends_in_token() {
        let key = ResetKey::new(&[7u8; 32]);
        let cid = ConnectionId::new(&[1; 8]).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        assert!(build(&key, &cid, 21, &mut rng).is_none());
        for received in [22, 30, 43, 44, 100, 1200] {
            let p = build(&key, &cid, received, &mut rng).unwrap();
            assert!(
                p.len() < received && p.len() >= 21,
                "{received} -> {}",
                p.len()
            );
            assert_eq!(p[0] & 0xc0, 0x40);
            assert_eq!(&p[p.len() - 16..], &key.token(&cid));
        }
    }

    #[test]
    fn reset_tokens_differ_per_cid_and_key() {
        let a = ConnectionId::new(&[1; 8]).unwrap();
        let b = ConnectionId::new(&[2; 8]).unwrap();
        assert_ne!(reset_token(&[0; 32], &a), reset_token(&[0; 32], &b));
        assert_ne!(reset_token(&[0; 32], &a), reset_token(&[1; 32], &a));
        assert_eq!(reset_token(&[0; 32], &a), reset_token(&[0; 32], &a));
    }

    /// The token is HMAC-SHA256(secret, connection ID) truncated to 16
    /// bytes, whichever way the key is kept: servers of a fleet sharing the
    /// secret (and earlier versions) must make the same tokens
    /// (RFC 9000 §10.3.2).
    #[test]
    fn reset_token_is_truncated_hmac_sha256_of_the_cid() {
        let secret = [0x5a; 32];
        let cid = ConnectionId::new(&[9, 8, 7, 6, 5, 4, 3, 2]).unwrap();
        let key = ResetKey::new(&secret);
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            &cid,
        );
        assert_eq!(key.token(&cid)[..], tag.as_ref()[..16]);
        // The same key object serves every ID.
        let other = ConnectionId::new(&[1; 4]).unwrap();
        assert_eq!(key.token(&other), reset_token(&secret, &other));
        assert_ne!(key.token(&other), key.token(&cid));
    }
}
