//! A fast keyed hasher for the endpoint's per-datagram maps: connection
//! handles and our own connection IDs. std's SipHash costs more than the
//! rest of a routing decision; these maps only ever hold keys we chose (a
//! handle we numbered, a connection ID from our generator), so flooding
//! them with colliding keys is not open to a peer, and a per-endpoint
//! random seed keeps the layout unpredictable all the same. Maps whose keys
//! a peer picks (the client-chosen Initial destination IDs) keep std's
//! hasher.

use std::hash::{BuildHasher, Hasher};

/// Builds [`FoldHasher`]s from one seed. Public for maps keyed by values
/// the local side chose (connection handles in the `quiver` runtime);
/// never for keys a peer picks.
#[derive(Debug, Clone, Copy)]
pub struct SeededState {
    seed: u64,
}

impl SeededState {
    /// A state whose hashers start from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
}

impl Default for SeededState {
    fn default() -> Self {
        Self::new(0x243f_6a88_85a3_08d3)
    }
}

impl BuildHasher for SeededState {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher { state: self.seed }
    }
}

/// Mixes each 64-bit word in with a folded 128-bit multiply (the low and
/// high halves of the product XORed), as foldhash and wyhash do.
#[derive(Debug, Clone, Copy)]
pub struct FoldHasher {
    state: u64,
}

/// The fractional part of the golden ratio: odd, with well-spread bits.
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.write_u64(word);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.write_u64(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.state = folded_multiply(self.state ^ i, MULTIPLIER);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        // One more round so the last word reaches the high bits hashbrown
        // takes its control bytes from.
        folded_multiply(self.state, MULTIPLIER ^ 0x5851_f42d_4c95_7f2d)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::ConnectionId;

    #[test]
    fn distinct_keys_spread_and_seeds_matter() {
        let state = SeededState::new(7);
        let hashes: HashSet<u64> = (0..10_000u64)
            .map(|i| state.hash_one(ConnectionId::new(&i.to_be_bytes()).unwrap()))
            .collect();
        assert_eq!(hashes.len(), 10_000);
        // The top 7 bits (hashbrown's control bytes) take every value.
        let tops: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tops.len(), 128);
        let cid = ConnectionId::new(b"abcdefgh").unwrap();
        assert_ne!(state.hash_one(cid), SeededState::new(8).hash_one(cid));
        let a = ConnectionId::new(b"ab").unwrap();
        let b = ConnectionId::new(b"ab\0").unwrap();
        assert_ne!(state.hash_one(a), state.hash_one(b));
    }
}
