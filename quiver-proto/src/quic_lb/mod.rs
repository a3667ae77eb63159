//! Routable connection IDs per QUIC-LB, draft-ietf-quic-load-balancers
//! (the copy in the project's shared RFC folder is the editor's version
//! `draft-ietf-quic-load-balancers-latest`, dated 29 May 2026, whose change
//! log runs to "since draft-ietf-quic-load-balancers-21"; section numbers
//! below are that copy's, written "§N").
//!
//! A server encodes its server ID in every connection ID it issues, so a
//! load balancer that shares the configuration routes packets to it even
//! after the client migrates. [`QuicLbCidGenerator`] is the server half, a
//! [`CidGenerator`] for [`Endpoint::set_cid_generator`](crate::Endpoint::set_cid_generator);
//! [`QuicLbDecoder`] is the load balancer half, which extracts the server ID.
//!
//! # Format (§3, §5.2)
//!
//! First octet: 3 config rotation bits, then 5 bits that either self-encode
//! the length of the rest of the ID or are random (§3.3). Then the server ID
//! and the nonce, in the clear when the configuration has no key, else
//! encrypted with AES-128-ECB in one pass when they total 16 octets (§5.4.1)
//! or with a four-pass Feistel network otherwise (§5.4.2).
//!
//! # Nonces (§5.4, §9.6)
//!
//! Each generator keeps a counter from a random start drawn from its seeded
//! ChaCha20 stream (quiver-proto never reads a global RNG): the nth ID uses
//! nonce `start + n` modulo 2^(8 × nonce length), so nonces are unique
//! until the counter has gone all the way round (§9.6 "SHOULD start with a
//! random nonce value"). With a key, the encryption hides the counter.
//! Without one, §5.4 requires nonces with "no observable relationship" to
//! earlier ones, so the counter is passed through the same Feistel network
//! under a private key drawn from the seed: a permutation, hence still
//! unique, and unlinkable without that key. When every nonce has been used
//! the generator falls back to unroutable IDs (config rotation `0b111`,
//! length self-encoded, random bytes: §3.2, §9.6) rather than reuse one.
//!
//! Uniqueness is per generator: a server that restarts under the same
//! configuration draws a new random start, so a nonce from before the
//! restart can recur with probability about (IDs issued) / 2^(8 × nonce
//! length) per ID. §9.6 leaves that to the configuration agent (new keys
//! before nonces run short); keep one generator per configuration for the
//! life of the process. The plaintext-mode permutation is the draft's
//! four-round Feistel network, so on short nonces it is only as strong as
//! §9.7 says that construction is; it hides the counter from observers,
//! it is not meant to resist a key-recovery effort.
//!
//! # What else a fleet shares
//!
//! Routing is one of three things the servers behind a load balancer
//! share. The others: keys, so that any server recognises another's
//! stateless resets and accepts its Retry and NEW_TOKEN tokens
//! ([`EndpointConfig::with_fleet_key`](crate::EndpointConfig::with_fleet_key));
//! and, when the application supplies one, the log of used NEW_TOKEN
//! tokens ([`TokenReuseLog`](crate::TokenReuseLog) in
//! [`NewTokenConfig::reuse_log`](crate::NewTokenConfig::reuse_log)), so that
//! a token validates a client once in the whole fleet rather than once per
//! server (RFC 9000 §8.1.4).
//!
//! # Load balancers that route on QUIC-LB IDs
//!
//! This copy of the draft names no implementation. The one open-source
//! QUIC-LB code we found in use is Google's QUICHE
//! (`quiche/quic/load_balancer/`: an encoder and the load balancer's
//! `LoadBalancerDecoder`), on which Envoy's QUIC-LB connection ID
//! generator (`envoy.quic.connection_id_generator.quic_lb`) is built. The
//! QUICHE copy we read checks draft-14's vectors: two config bits and the
//! old `expand` layout (revision -19 changed it, change log E.4). So a
//! decoder of that age routes quiver's IDs only in plaintext mode with
//! config rotation 0 (the test `draft14_decoder_agrees_only_on_plaintext_rotation_zero`
//! shows where the revisions agree and where not); encrypted IDs need a
//! decoder of this revision, such as [`QuicLbDecoder`]. Interoperability
//! here rests on the draft's own test vectors, every one of which is
//! checked in this module's tests.
//!
//! # Example
//!
//! ```
//! use quiver_proto::endpoint::CidGenerator;
//! use quiver_proto::quic_lb::{QuicLbCidGenerator, QuicLbConfig, QuicLbDecoder};
//!
//! let key = [0x8f; 16];
//! // Config rotation 1, 3-octet server IDs, 6-octet nonces, encrypted.
//! let config = QuicLbConfig::new(1, 3, 6, Some(key)).unwrap();
//! let mut server = QuicLbCidGenerator::new(config.clone(), &[0xab, 0xcd, 0xef], [7; 32]).unwrap();
//! let cid = server.generate();
//! assert_eq!(cid.len(), config.cid_len());
//! assert_eq!(cid[0] >> 5, 1);
//!
//! let mut lb = QuicLbDecoder::new();
//! lb.add(config);
//! assert_eq!(lb.server_id(&cid).unwrap(), [0xab, 0xcd, 0xef]);
//! ```

mod cipher;
#[cfg(test)]
mod tests;

use std::fmt;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use self::cipher::{Aes, feistel_decrypt, feistel_encrypt};
use crate::ConnectionId;
use crate::endpoint::CidGenerator;

/// The config rotation codepoint for IDs no configuration can route (§3.2).
pub const UNROUTABLE_CONFIG_ROTATION: u8 = 0b111;

/// A configuration that cannot be used, or an ID that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuicLbError {
    /// Config rotation bits are 3 bits; `0b111` is reserved (§3.1).
    #[error("config rotation {0} is reserved or not a 3-bit value (0..=6)")]
    ConfigRotation(u8),
    /// The server ID must be at least one octet (§5.1, §5.3).
    #[error("server ID length must be at least 1 octet")]
    ServerIdTooShort,
    /// The nonce must be at least four octets (§5.3).
    #[error("nonce length {0} is below the minimum of 4 octets")]
    NonceTooShort(usize),
    /// Server ID and nonce must total at most 19 octets (§5.3).
    #[error("server ID ({server_id_len}) and nonce ({nonce_len}) lengths exceed 19 octets")]
    TooLong {
        /// The configured server ID length.
        server_id_len: usize,
        /// The configured nonce length.
        nonce_len: usize,
    },
    /// A server ID whose length is not the configuration's.
    #[error("server ID of {got} octets for a configuration of {expected}")]
    ServerIdLength {
        /// The configuration's server ID length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A nonce whose length is not the configuration's.
    #[error("nonce of {got} octets for a configuration of {expected}")]
    NonceLength {
        /// The configuration's nonce length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The ID's config rotation bits match no configuration, or are `0b111`
    /// (§4.1).
    #[error("no configuration for config rotation {0}")]
    UnknownConfig(u8),
    /// The ID is too short for its configuration (§4.1).
    #[error("connection ID of {got} octets, configuration needs {needed}")]
    CidTooShort {
        /// Octets the configuration needs, first octet included.
        needed: usize,
        /// The ID's length.
        got: usize,
    },
}

/// One QUIC-LB configuration (§5.3): config rotation bits, server ID and
/// nonce lengths, and an optional AES-128 key.
///
/// ```
/// use quiver_proto::quic_lb::{QuicLbConfig, QuicLbError};
///
/// let plain = QuicLbConfig::new(0, 3, 4, None).unwrap();
/// assert_eq!(plain.cid_len(), 8);
/// assert_eq!(QuicLbConfig::new(7, 3, 4, None), Err(QuicLbError::ConfigRotation(7)));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct QuicLbConfig {
    config_rotation: u8,
    server_id_len: usize,
    nonce_len: usize,
    key: Option<[u8; 16]>,
    self_encode_length: bool,
}

impl fmt::Debug for QuicLbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicLbConfig")
            .field("config_rotation", &self.config_rotation)
            .field("server_id_len", &self.server_id_len)
            .field("nonce_len", &self.nonce_len)
            .field("encrypted", &self.key.is_some())
            .field("self_encode_length", &self.self_encode_length)
            .finish()
    }
}

impl QuicLbConfig {
    /// A configuration, checked against the draft's limits: config rotation
    /// 0..=6 (§3.1: `0b111` is reserved), server ID at least 1 octet (§5.1),
    /// nonce at least 4 octets (§5.3), together at most 19 (§5.3). The
    /// first octet's low 5 bits are random unless
    /// [`with_self_encoded_length`](Self::with_self_encoded_length) is set.
    pub fn new(
        config_rotation: u8,
        server_id_len: usize,
        nonce_len: usize,
        key: Option<[u8; 16]>,
    ) -> Result<Self, QuicLbError> {
        // §3.1: "A configuration MUST NOT use the reserved identifier 0b111".
        if config_rotation >= UNROUTABLE_CONFIG_ROTATION {
            return Err(QuicLbError::ConfigRotation(config_rotation));
        }
        // §5.3: "The server ID length MUST be at least 1 octet."
        if server_id_len < 1 {
            return Err(QuicLbError::ServerIdTooShort);
        }
        // §5.3: "The nonce length MUST be at least 4 octets."
        if nonce_len < 4 {
            return Err(QuicLbError::NonceTooShort(nonce_len));
        }
        // §5.3: "the server ID and nonce lengths MUST sum to 19 octets or
        // less" (so the ID fits QUIC v1's 20 octets).
        if server_id_len + nonce_len > 19 {
            return Err(QuicLbError::TooLong {
                server_id_len,
                nonce_len,
            });
        }
        Ok(Self {
            config_rotation,
            server_id_len,
            nonce_len,
            key,
            self_encode_length: false,
        })
    }

    /// Whether the first octet's low 5 bits carry the length of the rest of
    /// the ID (§3.3), as in the draft's test vectors; otherwise they are
    /// random.
    pub fn with_self_encoded_length(mut self, yes: bool) -> Self {
        self.self_encode_length = yes;
        self
    }

    /// The config rotation bits.
    pub fn config_rotation(&self) -> u8 {
        self.config_rotation
    }

    /// The server ID length in octets.
    pub fn server_id_len(&self) -> usize {
        self.server_id_len
    }

    /// Whether IDs are encrypted (single-pass AES or the four-pass
    /// Feistel, §5.4), rather than carrying the server ID in plaintext.
    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// The nonce length in octets.
    pub fn nonce_len(&self) -> usize {
        self.nonce_len
    }

    /// The length of the IDs: first octet, server ID and nonce. Set
    /// `EndpointConfig::local_cid_len` to this.
    pub fn cid_len(&self) -> usize {
        1 + self.server_id_len + self.nonce_len
    }

    fn plaintext_len(&self) -> usize {
        self.server_id_len + self.nonce_len
    }

    fn codec(&self) -> Codec {
        Codec {
            aes: self.key.as_ref().map(Aes::new),
            plaintext_len: self.plaintext_len(),
        }
    }
}

/// The keyed transform of server ID and nonce.
#[derive(Debug, Clone)]
struct Codec {
    aes: Option<Aes>,
    plaintext_len: usize,
}

impl Codec {
    fn encrypt(&self, text: &mut [u8]) {
        match &self.aes {
            // §5.4: "If there is no key in the configuration, the Connection
            // ID is complete."
            None => {}
            // §5.4.1: 16 octets "MUST use a single-pass encryption".
            Some(aes) if self.plaintext_len == 16 => {
                let block: &mut [u8; 16] = text.try_into().expect("16 octets");
                aes.encrypt_block(block);
            }
            // §5.4.2: any other length "MUST follow the algorithm below".
            Some(aes) => feistel_encrypt(aes, text),
        }
    }

    /// Decrypts `text`; with `server_id_len`, only as far as that prefix
    /// needs (three Feistel passes when it fits in `left_0`, §5.5.2).
    fn decrypt(&self, text: &mut [u8], server_id_len: Option<usize>) {
        match &self.aes {
            None => {}
            Some(aes) if self.plaintext_len == 16 => {
                let block: &mut [u8; 16] = text.try_into().expect("16 octets");
                aes.decrypt_block(block);
            }
            Some(aes) => {
                let full = server_id_len.is_none_or(|n| n > self.plaintext_len / 2);
                feistel_decrypt(aes, text, full)
            }
        }
    }
}

/// The first octet: config rotation in the top 3 bits (§3.1), then the
/// self-encoded length or 5 random bits (§3.3, §3.4).
fn first_octet(
    config_rotation: u8,
    rest_len: usize,
    self_encode: bool,
    rng: &mut ChaCha20Rng,
) -> u8 {
    let low = if self_encode {
        rest_len as u8 & 0x1f
    } else {
        // §3.3: "SHOULD choose the five bits so as to have no observable
        // relationship to previous connection IDs".
        (rng.next_u32() & 0x1f) as u8
    };
    config_rotation << 5 | low
}

/// Encodes one ID from `server_id` and `nonce` under `config`, with the
/// given first octet's low 5 bits when the length is not self-encoded:
/// deterministic, for tests and tools. Generators draw nonces themselves.
///
/// ```
/// use quiver_proto::quic_lb::{QuicLbConfig, encode};
///
/// // The draft's Appendix B.1 first vector.
/// let config = QuicLbConfig::new(0, 3, 4, None).unwrap().with_self_encoded_length(true);
/// let cid = encode(&config, &[0xc4, 0x60, 0x5e], &[0x45, 0x04, 0xcc, 0x4f], 0).unwrap();
/// assert_eq!(&cid[..], &[0x07, 0xc4, 0x60, 0x5e, 0x45, 0x04, 0xcc, 0x4f]);
/// ```
pub fn encode(
    config: &QuicLbConfig,
    server_id: &[u8],
    nonce: &[u8],
    low_bits: u8,
) -> Result<ConnectionId, QuicLbError> {
    check_server_id(config, server_id)?;
    if nonce.len() != config.nonce_len {
        return Err(QuicLbError::NonceLength {
            expected: config.nonce_len,
            got: nonce.len(),
        });
    }
    let mut buf = [0u8; crate::MAX_CID_SIZE];
    let len = config.cid_len();
    let low = if config.self_encode_length {
        (len - 1) as u8
    } else {
        low_bits & 0x1f
    };
    buf[0] = config.config_rotation << 5 | low;
    buf[1..1 + config.server_id_len].copy_from_slice(server_id);
    buf[1 + config.server_id_len..len].copy_from_slice(nonce);
    config.codec().encrypt(&mut buf[1..len]);
    Ok(ConnectionId::new(&buf[..len]).expect("at most 20 octets"))
}

fn check_server_id(config: &QuicLbConfig, server_id: &[u8]) -> Result<(), QuicLbError> {
    if server_id.len() != config.server_id_len {
        return Err(QuicLbError::ServerIdLength {
            expected: config.server_id_len,
            got: server_id.len(),
        });
    }
    Ok(())
}

/// A [`CidGenerator`] whose IDs carry this server's ID under a QUIC-LB
/// configuration. See the [module docs](self) for how nonces are chosen.
///
/// ```
/// use quiver_proto::endpoint::CidGenerator;
/// use quiver_proto::quic_lb::{QuicLbCidGenerator, QuicLbConfig};
///
/// let config = QuicLbConfig::new(2, 2, 5, None).unwrap();
/// let mut g = QuicLbCidGenerator::new(config, &[0x12, 0x34], [1; 32]).unwrap();
/// let cid = g.generate();
/// assert_eq!(cid.len(), 8);
/// assert_eq!(&cid[1..3], &[0x12, 0x34]); // no key: the server ID is in the clear
/// ```
#[derive(Debug)]
pub struct QuicLbCidGenerator {
    config: QuicLbConfig,
    codec: Codec,
    server_id: Vec<u8>,
    rng: ChaCha20Rng,
    /// Private key for unlinkable plaintext nonces (no configured key).
    whitening: Option<Aes>,
    nonce_start: u128,
    /// Random leading octets of nonces longer than 16 octets.
    nonce_prefix: [u8; 2],
    /// Nonces issued so far.
    issued: u128,
}

impl QuicLbCidGenerator {
    /// A generator for `server_id` (of the configuration's length) under
    /// `config`, its randomness from `seed`.
    pub fn new(
        config: QuicLbConfig,
        server_id: &[u8],
        seed: [u8; 32],
    ) -> Result<Self, QuicLbError> {
        check_server_id(&config, server_id)?;
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut start = [0u8; 16];
        rng.fill_bytes(&mut start);
        let mut nonce_prefix = [0u8; 2];
        rng.fill_bytes(&mut nonce_prefix);
        let whitening = config.key.is_none().then(|| {
            let mut k = [0u8; 16];
            rng.fill_bytes(&mut k);
            Aes::new(&k)
        });
        let nonce_start = u128::from_be_bytes(start) & nonce_mask(config.nonce_len);
        Ok(Self {
            codec: config.codec(),
            config,
            server_id: server_id.to_vec(),
            rng,
            whitening,
            nonce_start,
            nonce_prefix,
            issued: 0,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &QuicLbConfig {
        &self.config
    }

    /// Whether every nonce has been used, so that only unroutable IDs come
    /// out (§9.6).
    pub fn exhausted(&self) -> bool {
        self.issued > nonce_mask(self.config.nonce_len)
    }

    fn next_nonce(&mut self, out: &mut [u8]) -> bool {
        if self.exhausted() {
            return false;
        }
        let mask = nonce_mask(self.config.nonce_len);
        let n = self.nonce_start.wrapping_add(self.issued) & mask;
        self.issued += 1;
        // Nonces longer than the 16-octet counter (17 or 18 octets, at most,
        // with a 1- or 2-octet server ID) keep a fixed random prefix.
        let split = out.len().saturating_sub(16);
        out[..split].copy_from_slice(&self.nonce_prefix[..split]);
        let low = out.len() - split;
        out[split..].copy_from_slice(&n.to_be_bytes()[16 - low..]);
        if let Some(aes) = &self.whitening {
            // §5.4: without a key, nonces MUST have "no observable
            // relationship" to earlier ones: a keyed permutation of the
            // counter keeps them unique too.
            feistel_encrypt(aes, out);
        }
        true
    }

    /// An unroutable ID (§3.2): config rotation `0b111`, the length
    /// self-encoded ("MUST"), random bytes after the first octet.
    fn unroutable(&mut self) -> ConnectionId {
        let len = self.config.cid_len();
        let mut buf = [0u8; crate::MAX_CID_SIZE];
        self.rng.fill_bytes(&mut buf[1..len]);
        buf[0] = UNROUTABLE_CONFIG_ROTATION << 5 | (len - 1) as u8;
        ConnectionId::new(&buf[..len]).expect("at most 20 octets")
    }
}

/// The largest nonce value of `len` octets (at most 18 here, §5.3).
fn nonce_mask(len: usize) -> u128 {
    if len >= 16 {
        u128::MAX
    } else {
        (1u128 << (8 * len)) - 1
    }
}

impl CidGenerator for QuicLbCidGenerator {
    fn generate(&mut self) -> ConnectionId {
        let (sid_len, len) = (self.config.server_id_len, self.config.cid_len());
        let mut buf = [0u8; crate::MAX_CID_SIZE];
        // §9.6: "MUST NOT reuse a nonce" and, when exhausted, use "the
        // 4-tuple routing config rotation codepoint".
        if !self.next_nonce(&mut buf[1 + sid_len..len]) {
            return self.unroutable();
        }
        buf[1..1 + sid_len].copy_from_slice(&self.server_id);
        self.codec.encrypt(&mut buf[1..len]);
        buf[0] = first_octet(
            self.config.config_rotation,
            len - 1,
            self.config.self_encode_length,
            &mut self.rng,
        );
        ConnectionId::new(&buf[..len]).expect("at most 20 octets")
    }
}

/// The load balancer's view: configurations by config rotation bits, and
/// server IDs out of connection IDs (§5.5).
///
/// ```
/// use quiver_proto::quic_lb::{QuicLbConfig, QuicLbDecoder, QuicLbError};
///
/// let mut lb = QuicLbDecoder::new();
/// lb.add(QuicLbConfig::new(0, 3, 4, None).unwrap());
/// let cid = [0x07, 0xc4, 0x60, 0x5e, 0x45, 0x04, 0xcc, 0x4f];
/// assert_eq!(lb.server_id(&cid).unwrap(), [0xc4, 0x60, 0x5e]);
/// assert_eq!(lb.server_id(&[0xe7; 8]), Err(QuicLbError::UnknownConfig(7)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct QuicLbDecoder {
    configs: [Option<(QuicLbConfig, Codec)>; 7],
}

impl QuicLbDecoder {
    /// A decoder with no configuration: every ID is unroutable (§3.2).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `config`, replacing any with the same config rotation bits.
    pub fn add(&mut self, config: QuicLbConfig) {
        let i = config.config_rotation as usize;
        let codec = config.codec();
        self.configs[i] = Some((config, codec));
    }

    /// Removes the configuration at `config_rotation`.
    pub fn remove(&mut self, config_rotation: u8) {
        if let Some(slot) = self.configs.get_mut(config_rotation as usize) {
            *slot = None;
        }
    }

    /// The server ID in `cid`, or why it is unroutable (§4.1). Uses three
    /// Feistel passes when the server ID is no longer than the nonce
    /// (§5.5.2).
    pub fn server_id(&self, cid: &[u8]) -> Result<Vec<u8>, QuicLbError> {
        let (config, plain) = self.decrypt(cid, true)?;
        Ok(plain[..config.server_id_len].to_vec())
    }

    /// Server ID and nonce of `cid`, fully decrypted (§5.5).
    pub fn decode(&self, cid: &[u8]) -> Result<(Vec<u8>, Vec<u8>), QuicLbError> {
        let (config, plain) = self.decrypt(cid, false)?;
        let (sid, nonce) = plain.split_at(config.server_id_len);
        Ok((sid.to_vec(), nonce.to_vec()))
    }

    fn decrypt(&self, cid: &[u8], sid_only: bool) -> Result<(&QuicLbConfig, Vec<u8>), QuicLbError> {
        let first = *cid
            .first()
            .ok_or(QuicLbError::CidTooShort { needed: 1, got: 0 })?;
        let rotation = first >> 5;
        // §4.1: 0b111 "is always unroutable", as is any unknown config.
        let (config, codec) = self
            .configs
            .get(rotation as usize)
            .and_then(Option::as_ref)
            .ok_or(QuicLbError::UnknownConfig(rotation))?;
        let needed = config.cid_len();
        if cid.len() < needed {
            return Err(QuicLbError::CidTooShort {
                needed,
                got: cid.len(),
            });
        }
        // §5.4 allows extra server-chosen octets after the nonce: ignored.
        let mut plain = cid[1..needed].to_vec();
        codec.decrypt(&mut plain, sid_only.then_some(config.server_id_len));
        Ok((config, plain))
    }
}
