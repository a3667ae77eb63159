//! Stateless reset tokens and packets (RFC 9000 §10.3).

use rand::RngCore;

use crate::ConnectionId;

/// The shortest packet a stateless reset can be (RFC 9000 §10.3: 5 bytes of
/// header-like prefix plus the 16-byte token).
const MIN_RESET_LEN: usize = 21;

/// The stateless reset token for one of our connection IDs: an HMAC of the
/// ID under the endpoint's key, so any instance sharing the key can
/// regenerate it without state (RFC 9000 §10.3.2).
pub(crate) fn reset_token(key: &[u8; 32], cid: &ConnectionId) -> [u8; 16] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, cid);
    let mut token = [0u8; 16];
    token.copy_from_slice(&tag.as_ref()[..16]);
    token
}

/// A stateless reset answering a `received_len`-byte packet sent to `cid`,
/// or `None` if that packet is too small to answer without risking a loop.
pub(crate) fn build(
    key: &[u8; 32],
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
    packet[len - 16..].copy_from_slice(&reset_token(key, cid));
    Some(packet)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn stateless_reset_is_smaller_than_trigger_and_ends_in_token() {
        let key = [7u8; 32];
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
            assert_eq!(&p[p.len() - 16..], &reset_token(&key, &cid));
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
}
