//! Byte-level codecs shared by every wire structure: a bounds-checked reader,
//! writer helpers on [`bytes::BufMut`], and QUIC variable-length integers.

mod reader;
mod varint;

pub use reader::{Reader, UnexpectedEnd};
pub use varint::{VarInt, VarIntBoundsExceeded};
