//! Connection ID generation, replaceable (RFC 9000 §5.1: IDs "MUST NOT
//! contain any information that can be used by an external observer ... to
//! correlate them with other connection IDs for the same connection").

use std::fmt::Debug;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::ConnectionId;

/// Makes the connection IDs an endpoint issues.
pub trait CidGenerator: Send + Debug {
    /// A fresh connection ID of the endpoint's configured length.
    fn generate(&mut self) -> ConnectionId;
}

/// Random IDs from a seeded ChaCha20 stream.
#[derive(Debug)]
pub struct RandomCidGenerator {
    len: usize,
    rng: ChaCha20Rng,
}

impl RandomCidGenerator {
    /// IDs of `len` bytes (at most 20), from `seed`.
    pub fn new(len: usize, seed: [u8; 32]) -> Self {
        Self {
            len: len.min(crate::MAX_CID_SIZE),
            rng: ChaCha20Rng::from_seed(seed),
        }
    }
}

impl CidGenerator for RandomCidGenerator {
    fn generate(&mut self) -> ConnectionId {
        let mut bytes = [0u8; crate::MAX_CID_SIZE];
        self.rng.fill_bytes(&mut bytes[..self.len]);
        ConnectionId::new(&bytes[..self.len]).expect("at most 20 bytes")
    }
}
