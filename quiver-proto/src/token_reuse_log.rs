//! Where a server records the NEW_TOKEN tokens it has accepted, so that
//! each validates a client's address only once (RFC 9000 §8.1.4: tokens
//! from NEW_TOKEN frames "SHOULD NOT be accepted multiple times").
//!
//! A [`TokenReuseLog`] sits in [`crate::NewTokenConfig::reuse_log`] behind
//! an `Arc`. The default, [`InMemoryTokenReuseLog`], is created with each
//! [`crate::NewTokenConfig`], so each server (each configuration) keeps its
//! own: servers of a fleet that share the token key
//! ([`crate::EndpointConfig::with_fleet_key`]) accept each other's tokens,
//! and with their own logs one token passes once *per server*. Give them
//! one log to make it once per fleet: the same `Arc` for endpoints in one
//! process, or an implementation over a store the fleet shares.
//!
//! # Example: two servers, one log
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use quiver_proto::{InMemoryTokenReuseLog, NewTokenConfig, TokenReuseLog, TokenUse};
//!
//! let shared: Arc<dyn TokenReuseLog> = Arc::new(InMemoryTokenReuseLog::new(65_536));
//! // Each server's configuration (`ServerConfig::new_tokens`) takes the
//! // same log; their endpoints also share the fleet key.
//! let server_a = NewTokenConfig { reuse_log: shared.clone(), ..NewTokenConfig::default() };
//! let server_b = NewTokenConfig { reuse_log: shared, ..NewTokenConfig::default() };
//!
//! // What the endpoints do with a token's first use, at A, and a replay at B.
//! let used = TokenUse {
//!     nonce: [7; 12],
//!     issued: Duration::from_secs(1_800_000_000),
//!     lifetime: Duration::from_secs(86_400),
//!     now: Duration::from_secs(1_800_000_060),
//! };
//! assert!(server_a.reuse_log.check_and_record(&used).is_ok());
//! assert!(server_b.reuse_log.check_and_record(&used).is_err());
//! ```

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

/// Length of a token's unique id, [`TokenUse::nonce`].
pub const TOKEN_NONCE_LEN: usize = 12;

/// One use of a NEW_TOKEN token that the server found genuine, issued to
/// this client's IP address and not expired: what a [`TokenReuseLog`]
/// decides on. Times are on the endpoint's token clock: since the Unix
/// epoch once the runtime set the wall clock
/// ([`crate::Endpoint::set_wall_clock`], as the quiver runtime does, so
/// that servers of a fleet agree), otherwise since the endpoint's first
/// input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUse {
    /// The token's unique id: 96 random bits, authenticated by the token
    /// key (a client cannot choose them).
    pub nonce: [u8; TOKEN_NONCE_LEN],
    /// When the token was issued.
    pub issued: Duration,
    /// How long tokens stay valid ([`crate::NewTokenConfig::lifetime`]):
    /// after `issued + lifetime` the endpoint refuses the token as expired
    /// without asking the log, so a log can forget it then.
    pub lifetime: Duration,
    /// Now.
    pub now: Duration,
}

impl TokenUse {
    /// When the log can forget this token (it is refused as expired from
    /// then on).
    pub fn expires(&self) -> Duration {
        self.issued.saturating_add(self.lifetime)
    }
}

/// The token was used before: the endpoint treats the Initial as carrying
/// no token (RFC 9000 §8.1.3), so the client's address is validated some
/// other way (a Retry, or the anti-amplification limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("address-validation token used before")]
pub struct TokenReused;

/// Records which NEW_TOKEN tokens were accepted, so that each is accepted
/// once (RFC 9000 §8.1.4: "servers MUST ensure that replay of tokens is
/// prevented or limited"; NEW_TOKEN tokens "SHOULD NOT be accepted
/// multiple times").
///
/// The endpoint calls [`TokenReuseLog::check_and_record`] for each genuine
/// token in an Initial, on the path that handles datagrams: it must answer
/// at once, in bounded time and memory, and never block on the network.
/// A log shared by a fleet through a remote store can answer from a local
/// view it keeps in step in the background: it may then let a replay
/// through within the delay of that view (RFC 9000 §8.1.4 asks that replay
/// be "prevented or limited"), and it may refuse a fresh token, which only
/// costs that client a Retry.
///
/// ```
/// use std::sync::Arc;
/// use quiver_proto::{TokenReuseLog, TokenReused, TokenUse};
///
/// /// A fleet-wide set with an atomic insert-if-absent and expiry, such as
/// /// a key-value store's "set if not exists, with a time to live".
/// trait FleetSet: Send + Sync + std::fmt::Debug {
///     fn insert_new(&self, key: [u8; 12], forget_after: std::time::Duration) -> bool;
/// }
///
/// #[derive(Debug)]
/// struct FleetLog(Arc<dyn FleetSet>);
///
/// impl TokenReuseLog for FleetLog {
///     fn check_and_record(&self, token: &TokenUse) -> Result<(), TokenReused> {
///         let left = token.expires().saturating_sub(token.now);
///         if self.0.insert_new(token.nonce, left) { Ok(()) } else { Err(TokenReused) }
///     }
/// }
/// ```
pub trait TokenReuseLog: Send + Sync + fmt::Debug {
    /// Checks whether `token` was used before and records it as used, in
    /// one atomic step (two servers given the same token at once accept it
    /// at most once between them). `Ok` when it is fresh.
    fn check_and_record(&self, token: &TokenUse) -> Result<(), TokenReused>;
}

/// The default [`TokenReuseLog`]: in memory, two generations of at most
/// `capacity` used tokens each; when the current one is full, the older is
/// forgotten. A token is therefore refused until at least `capacity` other
/// tokens were accepted after it (and, past its lifetime, it is refused as
/// expired anyway). Memory stays bounded: two sets of at most `capacity`
/// 8-byte entries (about 1.2 MB for the default 32,768), and each check is
/// two hash look-ups and an insert under an uncontended lock.
pub struct InMemoryTokenReuseLog {
    capacity: usize,
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    current: HashSet<u64>,
    previous: HashSet<u64>,
}

/// Used tokens remembered per generation by default.
pub const DEFAULT_TOKEN_REUSE_CAPACITY: usize = 32_768;

impl InMemoryTokenReuseLog {
    /// An empty log remembering at least `capacity` (at least 1) tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            generations: Mutex::new(Generations::default()),
        }
    }

    /// Tokens remembered now (at most twice the capacity).
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.current.len() + g.previous.len()
    }

    /// Whether no token is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The sets stay consistent whatever panicked while holding the
        // lock (each step leaves them valid), so a poisoned lock is used.
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for InMemoryTokenReuseLog {
    fn default() -> Self {
        Self::new(DEFAULT_TOKEN_REUSE_CAPACITY)
    }
}

impl fmt::Debug for InMemoryTokenReuseLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryTokenReuseLog")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl TokenReuseLog for InMemoryTokenReuseLog {
    fn check_and_record(&self, token: &TokenUse) -> Result<(), TokenReused> {
        // Nonces are random and authenticated (only genuine tokens reach
        // here), so 64 of their bits identify them.
        let mut id = [0u8; 8];
        id.copy_from_slice(&token.nonce[..8]);
        let id = u64::from_le_bytes(id);
        let mut g = self.lock();
        if g.current.contains(&id) || g.previous.contains(&id) {
            return Err(TokenReused);
        }
        if g.current.len() >= self.capacity {
            let g = &mut *g;
            std::mem::swap(&mut g.current, &mut g.previous);
            g.current.clear();
        }
        g.current.insert(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::{RngCore, SeedableRng};

    use super::*;

    fn use_of(nonce: [u8; TOKEN_NONCE_LEN]) -> TokenUse {
        TokenUse {
            nonce,
            issued: Duration::from_secs(1),
            lifetime: Duration::from_secs(86_400),
            now: Duration::from_secs(2),
        }
    }

    /// RFC 9000 §8.1.4 (tokens SHOULD NOT be accepted more than once), in
    /// bounded memory.
    #[test]
    fn accepts_once_and_stays_bounded() {
        let log = InMemoryTokenReuseLog::new(4);
        let mut r = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let mut fresh = || {
            let mut n = [0u8; TOKEN_NONCE_LEN];
            r.fill_bytes(&mut n);
            use_of(n)
        };
        let first = fresh();
        assert_eq!(log.check_and_record(&first), Ok(()));
        assert_eq!(log.check_and_record(&first), Err(TokenReused));
        // Remembered while fewer than `capacity` others came after it.
        for _ in 0..4 {
            assert_eq!(log.check_and_record(&fresh()), Ok(()));
        }
        assert_eq!(log.check_and_record(&first), Err(TokenReused));
        for _ in 0..100 {
            let _ = log.check_and_record(&fresh());
            assert!(log.len() <= 8);
        }
        // Long forgotten.
        assert_eq!(log.check_and_record(&first), Ok(()));
    }

    /// Check and record are one step: of many servers (threads) given the
    /// same token at once, exactly one accepts it (§8.1.4 across a fleet
    /// sharing a log).
    #[test]
    fn concurrent_uses_of_one_token_pass_once() {
        let log = Arc::new(InMemoryTokenReuseLog::default());
        for round in 0..20u8 {
            let token = use_of([round; TOKEN_NONCE_LEN]);
            let accepted: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        let log = log.clone();
                        s.spawn(move || log.check_and_record(&token).is_ok())
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| usize::from(h.join().unwrap()))
                    .sum()
            });
            assert_eq!(accepted, 1, "round {round}");
        }
    }

    #[test]
    fn expiry_is_issue_time_plus_lifetime() {
        let t = use_of([1; TOKEN_NONCE_LEN]);
        assert_eq!(t.expires(), Duration::from_secs(86_401));
        let far = TokenUse {
            issued: Duration::MAX,
            ..t
        };
        assert_eq!(far.expires(), Duration::MAX);
    }
}
