//! Stream identifiers (RFC 9000 §2.1).

use std::fmt;

use crate::Side;
use crate::coding::VarInt;
use crate::frame::Dir;

/// A stream ID: a 62-bit integer whose two low bits give the stream type
/// (RFC 9000 §2.1, Table 1) and whose remaining bits count the streams of
/// that type.
///
/// ```
/// use quiver_proto::{Side, frame::Dir, streams::StreamId};
/// let id = StreamId::new(Side::Server, Dir::Uni, 2);
/// assert_eq!(id.into_inner(), 11); // 2 << 2 | 0x02 (uni) | 0x01 (server)
/// assert_eq!((id.initiator(), id.dir(), id.index()), (Side::Server, Dir::Uni, 2));
/// ```
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(u64);

impl StreamId {
    /// The `index`-th stream of its type opened by `initiator`.
    ///
    /// # Panics
    /// If the resulting ID would exceed 2^62-1 (`index` of 2^60 or more).
    pub fn new(initiator: Side, dir: Dir, index: u64) -> Self {
        assert!(index < 1 << 60, "stream index out of range");
        // RFC 9000 §2.1: "The least significant bit (0x01) of the stream ID
        // identifies the initiator ... The second least significant bit (0x02)
        // ... distinguishes between bidirectional streams (with the bit set to
        // 0) and unidirectional streams (with the bit set to 1)."
        let initiator_bit = match initiator {
            Side::Client => 0,
            Side::Server => 1,
        };
        let dir_bit = match dir {
            Dir::Bi => 0,
            Dir::Uni => 2,
        };
        Self(index << 2 | dir_bit | initiator_bit)
    }

    /// The stream ID carried in a frame.
    pub fn from_varint(v: VarInt) -> Self {
        Self(v.into_inner())
    }

    /// The ID as a varint, for encoding in a frame.
    pub fn to_varint(self) -> VarInt {
        // Constructed from a varint or from an index below 2^60.
        VarInt::from_u64_unchecked(self.0)
    }

    /// The numeric stream ID.
    pub fn into_inner(self) -> u64 {
        self.0
    }

    /// Which endpoint opened the stream.
    pub fn initiator(self) -> Side {
        if self.0 & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// Whether the stream is bidirectional or unidirectional.
    pub fn dir(self) -> Dir {
        if self.0 & 2 == 0 { Dir::Bi } else { Dir::Uni }
    }

    /// The stream's position among the streams of its type (0 for the
    /// first one opened).
    pub fn index(self) -> u64 {
        self.0 >> 2
    }
}

impl From<StreamId> for VarInt {
    fn from(id: StreamId) -> Self {
        id.to_varint()
    }
}

impl fmt::Display for StreamId {
    /// Shows the number and its type, e.g. `4 (client bidi)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.initiator() {
            Side::Client => "client",
            Side::Server => "server",
        };
        let dir = match self.dir() {
            Dir::Bi => "bidi",
            Dir::Uni => "uni",
        };
        write!(f, "{} ({who} {dir})", self.0)
    }
}

/// Index into per-direction arrays.
pub(super) fn dir_index(dir: Dir) -> usize {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_1_stream_types() {
        // RFC 9000 §2.1, Table 1.
        let cases = [
            (Side::Client, Dir::Bi, 0x00),
            (Side::Server, Dir::Bi, 0x01),
            (Side::Client, Dir::Uni, 0x02),
            (Side::Server, Dir::Uni, 0x03),
        ];
        for (side, dir, bits) in cases {
            for index in [0, 1, 7, (1 << 60) - 1] {
                let id = StreamId::new(side, dir, index);
                assert_eq!(id.into_inner() & 3, bits);
                assert_eq!(id.initiator(), side);
                assert_eq!(id.dir(), dir);
                assert_eq!(id.index(), index);
                assert_eq!(StreamId::from_varint(id.to_varint()), id);
            }
        }
        assert_eq!(
            StreamId::new(Side::Client, Dir::Bi, 1).to_string(),
            "4 (client bidi)"
        );
    }
}
