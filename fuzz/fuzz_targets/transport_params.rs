//! Transport parameter decoding, as sent by either side: whatever is accepted
//! re-encodes and decodes to an equal value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_proto::Side;
use quiver_proto::transport_params::TransportParameters;

fuzz_target!(|data: &[u8]| {
    for side in [Side::Client, Side::Server] {
        let Ok(params) = TransportParameters::decode(side, data) else {
            continue;
        };
        assert_eq!(params.validate(), Ok(()));
        let mut buf = Vec::new();
        params.encode(side, &mut buf);
        match TransportParameters::decode(side, &buf) {
            Ok(again) => assert_eq!(params, again, "{side:?}: {buf:02x?}"),
            Err(e) => panic!("{side:?}: re-encoded {params:?} rejected: {e:?} ({buf:02x?})"),
        }
    }
});
