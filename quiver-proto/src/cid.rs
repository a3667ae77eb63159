//! Connection IDs (RFC 9000 §5.1): opaque, up to 20 bytes in QUIC v1/v2.

use std::fmt;

use crate::coding::{Reader, UnexpectedEnd};

/// The longest connection ID QUIC versions 1 and 2 allow (RFC 9000 §17.2).
pub const MAX_CID_SIZE: usize = 20;

/// A connection ID of 0 to 20 bytes, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    len: u8,
    bytes: [u8; MAX_CID_SIZE],
}

impl ConnectionId {
    /// The zero-length connection ID.
    pub const EMPTY: Self = Self {
        len: 0,
        bytes: [0; MAX_CID_SIZE],
    };

    /// A connection ID holding `bytes`, or `None` if longer than 20 bytes.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_CID_SIZE {
            return None;
        }
        let mut out = Self::EMPTY;
        out.len = bytes.len() as u8;
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(out)
    }

    /// Reads a one-byte length then that many bytes, rejecting lengths over 20.
    pub fn decode_len_prefixed(r: &mut Reader<'_>) -> Result<Option<Self>, UnexpectedEnd> {
        let len = usize::from(r.u8()?);
        let bytes = r.bytes(len)?;
        Ok(Self::new(bytes))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether this is the zero-length connection ID.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::ops::Deref for ConnectionId {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("<empty>");
        }
        for b in self.iter() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
