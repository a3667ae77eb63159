//! Address-validation tokens carried by Retry packets (RFC 9000 §8.1.2).
//!
//! A token proves the client received our Retry at its address. It holds
//! when it was issued, the client's original Destination Connection ID and
//! the Source Connection ID of our Retry, and is authenticated with an HMAC
//! over those and the client's address under a key derived from the
//! endpoint's token secret (RFC 9000 §8.1.4: tokens must be "difficult to
//! guess"). Issue times are read from a [`TokenClock`]: wall-clock
//! milliseconds when the runtime set the wall clock
//! ([`super::Endpoint::set_wall_clock`]), so servers of a fleet sharing the
//! key accept each other's tokens; otherwise milliseconds since the
//! endpoint's first input.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ring::hmac;

use crate::ConnectionId;
use crate::coding::Reader;

/// How long a Retry token stays valid. RFC 9000 §8.1.3: "A token SHOULD
/// have an expiration time"; a Retry token is returned within one RTT.
pub(crate) const RETRY_TOKEN_LIFETIME: Duration = Duration::from_secs(10);

/// First byte of our tokens: the format and that it came from a Retry.
const RETRY_TOKEN_MARKER: u8 = 0x52;
const TAG_LEN: usize = 16;

/// What a valid Retry token tells the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryToken {
    /// The client's original Destination Connection ID.
    pub(crate) orig_dst_cid: ConnectionId,
    /// The Source Connection ID of the Retry (the client's current DCID).
    pub(crate) retry_src_cid: ConnectionId,
}

/// Maps the endpoint's `Instant`s to the millisecond timestamps tokens
/// carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenClock {
    epoch: Instant,
    /// Milliseconds at `epoch`: since the Unix epoch when the wall clock
    /// was set, 0 otherwise.
    base_ms: u64,
}

impl TokenClock {
    /// A clock reading `base_ms` at `epoch`.
    pub(crate) fn new(epoch: Instant, base_ms: u64) -> Self {
        Self { epoch, base_ms }
    }

    /// Milliseconds at `now` (never before the epoch).
    pub(crate) fn millis(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_millis();
        self.base_ms
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
}

/// Signs and checks tokens.
#[derive(Debug)]
pub(crate) struct TokenKey {
    key: hmac::Key,
}

impl TokenKey {
    /// The Retry token key derived from the endpoint's token secret.
    pub(crate) fn new(secret: &[u8; 32]) -> Self {
        // A key of its own, derived from the token secret (by default the
        // stateless reset key).
        let derive = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let token_secret = hmac::sign(&derive, b"quiver retry token key");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, token_secret.as_ref()),
        }
    }

    /// A token for `remote` after a Retry with Source CID `retry_src_cid`,
    /// issued at `now_ms` (a [`TokenClock`] reading).
    pub(crate) fn issue(&self, now_ms: u64, remote: SocketAddr, token: &RetryToken) -> Vec<u8> {
        let issued = now_ms;
        let mut out = Vec::with_capacity(1 + 8 + 2 + 40 + TAG_LEN);
        out.push(RETRY_TOKEN_MARKER);
        out.extend_from_slice(&issued.to_be_bytes());
        out.push(token.orig_dst_cid.len() as u8);
        out.extend_from_slice(&token.orig_dst_cid);
        out.push(token.retry_src_cid.len() as u8);
        out.extend_from_slice(&token.retry_src_cid);
        let tag = self.tag(remote, &out);
        out.extend_from_slice(&tag);
        out
    }

    /// The token's contents if it is authentic, was issued to `remote`,
    /// has not expired and names `dst_cid` as the Retry's Source CID.
    pub(crate) fn validate(
        &self,
        now_ms: u64,
        remote: SocketAddr,
        dst_cid: &ConnectionId,
        token: &[u8],
    ) -> Option<RetryToken> {
        let body_len = token.len().checked_sub(TAG_LEN)?;
        let (body, tag) = token.split_at(body_len);
        // Truncated tags are compared without an early exit.
        let expected = self.tag(remote, body);
        let diff = expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return None;
        }
        let mut r = Reader::new(body);
        if r.u8().ok()? != RETRY_TOKEN_MARKER {
            return None;
        }
        let issued = u64::from_be_bytes(r.array().ok()?);
        let orig_dst_cid = ConnectionId::decode_len_prefixed(&mut r).ok()??;
        let retry_src_cid = ConnectionId::decode_len_prefixed(&mut r).ok()??;
        if !r.is_empty() || retry_src_cid != *dst_cid {
            return None;
        }
        let age = Duration::from_millis(now_ms.saturating_sub(issued));
        if age > RETRY_TOKEN_LIFETIME {
            return None;
        }
        Some(RetryToken {
            orig_dst_cid,
            retry_src_cid,
        })
    }

    fn tag(&self, remote: SocketAddr, body: &[u8]) -> [u8; TAG_LEN] {
        let full = hmac::sign(&self.key, &Self::mac_input(remote, body));
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        tag
    }

    fn mac_input(remote: SocketAddr, body: &[u8]) -> Vec<u8> {
        let mut input = Vec::with_capacity(19 + body.len());
        match remote.ip() {
            std::net::IpAddr::V4(ip) => input.extend_from_slice(&ip.octets()),
            std::net::IpAddr::V6(ip) => input.extend_from_slice(&ip.octets()),
        }
        input.extend_from_slice(&remote.port().to_be_bytes());
        input.extend_from_slice(body);
        input
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(b: u8) -> ConnectionId {
        ConnectionId::new(&[b; 8]).unwrap()
    }

    #[test]
    fn retry_token_roundtrips_for_the_same_address_only() {
        let t0 = 1_000_000;
        let key = TokenKey::new(&[9; 32]);
        let addr: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let content = RetryToken {
            orig_dst_cid: cid(1),
            retry_src_cid: cid(2),
        };
        let token = key.issue(t0, addr, &content);
        assert_eq!(key.validate(t0, addr, &cid(2), &token), Some(content));
        // Another address, another Retry CID, a forged byte, expiry.
        let other: SocketAddr = "192.0.2.1:4001".parse().unwrap();
        assert_eq!(key.validate(t0, other, &cid(2), &token), None);
        assert_eq!(key.validate(t0, addr, &cid(3), &token), None);
        let mut forged = token.clone();
        forged[3] ^= 1;
        assert_eq!(key.validate(t0, addr, &cid(2), &forged), None);
        let late = t0 + RETRY_TOKEN_LIFETIME.as_millis() as u64 + 1;
        assert_eq!(key.validate(late, addr, &cid(2), &token), None);
        // Another key.
        let other_key = TokenKey::new(&[8; 32]);
        assert_eq!(other_key.validate(t0, addr, &cid(2), &token), None);
        assert_eq!(key.validate(t0, addr, &cid(2), &[]), None);
    }
}
