//! The frame decoder on arbitrary packet payloads: every frame it accepts
//! re-encodes in exactly `encoded_len()` bytes and decodes back to an equal
//! frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_proto::coding::Reader;
use quiver_proto::frame::{Frame, Iter};

fuzz_target!(|data: &[u8]| {
    let mut consumed = 0;
    let mut buf = Vec::new();
    for f in Iter::new(data) {
        let Ok(f) = f else { break };
        buf.clear();
        f.encode(&mut buf);
        assert_eq!(buf.len(), f.encoded_len(), "encoded_len of {f:?}");
        consumed += buf.len();

        let mut r = Reader::new(&buf);
        let g = match Frame::decode(&mut r) {
            Ok(g) => g,
            Err(e) => panic!("re-encoded {f:?} does not decode: {e:?} ({buf:02x?})"),
        };
        assert!(r.is_empty(), "{f:?} re-decoded with bytes left over");
        assert_eq!(f, g);
        assert_eq!(f.ty(), g.ty());
        assert_eq!(f.is_ack_eliciting(), g.is_ack_eliciting());
        if let (Frame::Ack(a), Frame::Ack(b)) = (f, g) {
            assert_eq!(a.ranges().count(), a.range_count());
            assert_eq!(a.smallest(), b.smallest());
        }
    }
    // Shortest varints only shrink frames; the one thing that grows is the
    // Length field (at most 8 bytes) added to a STREAM or DATAGRAM frame
    // that had none, which only the last frame of a payload can be.
    assert!(consumed <= data.len() + 8);
});
