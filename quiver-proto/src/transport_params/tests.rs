use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::TransportErrorCode;

fn bytes(h: &str) -> Vec<u8> {
    hex::decode(h.replace(' ', "")).unwrap()
}

fn decode(side: Side, h: &str) -> Result<TransportParameters, TransportError> {
    TransportParameters::decode(side, &bytes(h))
}

fn encode(params: &TransportParameters, side: Side) -> String {
    let mut out = Vec::new();
    params.encode(side, &mut out);
    hex::encode(out)
}

#[track_caller]
fn assert_tp_error(side: Side, h: &str) {
    match decode(side, h) {
        Err(e) => assert_eq!(
            e.code,
            TransportErrorCode::TRANSPORT_PARAMETER_ERROR,
            "{h}: {e}"
        ),
        Ok(p) => panic!("{h} decoded as {p:?}"),
    }
}

fn cid(h: &str) -> ConnectionId {
    ConnectionId::new(&bytes(h)).unwrap()
}

/// A 16-byte token 0x00, 0x01, ..., 0x0f.
const TOKEN: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const TOKEN_HEX: &str = "000102030405060708090a0b0c0d0e0f";

// ---- hand-written vectors ----

#[test]
fn empty_is_defaults() {
    let p = decode(Side::Client, "").unwrap();
    assert_eq!(p, TransportParameters::default());
    assert_eq!(p.max_udp_payload_size, 65527);
    assert_eq!(p.ack_delay_exponent, 3);
    assert_eq!(p.max_ack_delay, Duration::from_millis(25));
    assert_eq!(p.active_connection_id_limit, 2);
    assert_eq!(p.max_idle_timeout, Duration::ZERO);
    assert_eq!(encode(&p, Side::Client), "");
    assert_eq!(encode(&p, Side::Server), "");
}

const CLIENT_HEX: &str = concat!(
    "01 04 80007530",                   // max_idle_timeout 30000
    "03 02 45c0",                       // max_udp_payload_size 1472
    "04 04 80100000",                   // initial_max_data 1 MiB
    "05 04 80040000",                   // initial_max_stream_data_bidi_local 256 KiB
    "06 04 80040000",                   // initial_max_stream_data_bidi_remote
    "07 04 80040000",                   // initial_max_stream_data_uni
    "08 01 10",                         // initial_max_streams_bidi 16
    "09 01 03",                         // initial_max_streams_uni 3
    "0a 01 08",                         // ack_delay_exponent 8
    "0b 01 0a",                         // max_ack_delay 10
    "0c 00",                            // disable_active_migration
    "0e 01 04",                         // active_connection_id_limit 4
    "0f 04 c1c2c3c4",                   // initial_source_connection_id
    "11 0c 00000001 00000001 6b3343cf", // version_information v1; [v1, v2]
    "20 04 8000ffff",                   // max_datagram_frame_size 65535
);

fn client_params() -> TransportParameters {
    TransportParameters {
        max_idle_timeout: Duration::from_secs(30),
        max_udp_payload_size: 1472,
        initial_max_data: 1 << 20,
        initial_max_stream_data_bidi_local: 1 << 18,
        initial_max_stream_data_bidi_remote: 1 << 18,
        initial_max_stream_data_uni: 1 << 18,
        initial_max_streams_bidi: 16,
        initial_max_streams_uni: 3,
        ack_delay_exponent: 8,
        max_ack_delay: Duration::from_millis(10),
        disable_active_migration: true,
        active_connection_id_limit: 4,
        initial_source_connection_id: Some(cid("c1c2c3c4")),
        version_information: Some(VersionInformation {
            chosen_version: 1,
            available_versions: vec![1, 0x6b33_43cf],
        }),
        max_datagram_frame_size: Some(65535),
        ..TransportParameters::default()
    }
}

#[test]
fn client_vector() {
    assert_eq!(decode(Side::Client, CLIENT_HEX).unwrap(), client_params());
    assert_eq!(
        encode(&client_params(), Side::Client),
        hex::encode(bytes(CLIENT_HEX))
    );
}

#[test]
fn server_vector() {
    let h = concat!(
        "00 08 8394c8f03e515708", // original_destination_connection_id
        "02 10 000102030405060708090a0b0c0d0e0f", // stateless_reset_token
        "0d 2d",                  // preferred_address, 45 bytes
        "c0000201 01bb",          // 192.0.2.1:443
        "20010db8000000000000000000000001 01bb", // [2001:db8::1]:443
        "04 a1a2a3a4",            // CID
        "101112131415161718191a1b1c1d1e1f", // token
        "0f 00",                  // initial_source_connection_id: empty... (invalid with PA)
    );
    // A zero-length initial_source_connection_id with a preferred address
    // is rejected (RFC 9000 §18.2).
    assert_tp_error(Side::Server, h);

    let h = h.replace("0f 00", "0f 02 5a5b 10 03 d1d2d3");
    let p = decode(Side::Server, &h).unwrap();
    let expected = TransportParameters {
        original_destination_connection_id: Some(cid("8394c8f03e515708")),
        stateless_reset_token: Some(TOKEN),
        preferred_address: Some(PreferredAddress {
            address_v4: Some(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 443)),
            address_v6: Some(SocketAddrV6::new(
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                443,
                0,
                0,
            )),
            connection_id: cid("a1a2a3a4"),
            stateless_reset_token: core::array::from_fn(|i| 0x10 + i as u8),
        }),
        initial_source_connection_id: Some(cid("5a5b")),
        retry_source_connection_id: Some(cid("d1d2d3")),
        ..TransportParameters::default()
    };
    assert_eq!(p, expected);
    assert_eq!(encode(&p, Side::Server), hex::encode(bytes(&h)));

    // As a client, the server-only parameters are not written.
    assert_eq!(encode(&p, Side::Client), "0f025a5b");
}

#[test]
fn preferred_address_one_family() {
    let pa = PreferredAddress {
        address_v4: None,
        address_v6: Some(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 4433, 0, 0)),
        connection_id: cid("01"),
        stateless_reset_token: TOKEN,
    };
    let p = TransportParameters {
        preferred_address: Some(pa),
        ..TransportParameters::default()
    };
    let h = encode(&p, Side::Server);
    assert_eq!(
        h,
        format!(
            "0d2a{}{}{}{}",
            "00000000 0000".replace(' ', ""),
            "00000000000000000000000000000001 1151".replace(' ', ""),
            "0101",
            TOKEN_HEX
        )
    );
    assert_eq!(decode(Side::Server, &h).unwrap(), p);
}

#[test]
fn explicit_defaults_and_long_varints_accepted() {
    // Non-shortest varint encodings are fine (RFC 9000 §16), as are
    // explicitly sent default values.
    let p = decode(
        Side::Client,
        "03 08 c00000000000fff7  0a 01 03  0b 02 4019  0e 04 80000002  01 01 00",
    )
    .unwrap();
    assert_eq!(p, TransportParameters::default());
    // Boundary values that are still valid.
    let p = decode(
        Side::Client,
        "03 02 44b0  0a 01 14  0b 02 7fff  08 08 d000000000000000  09 08 d000000000000000",
    )
    .unwrap();
    assert_eq!(p.max_udp_payload_size, 1200);
    assert_eq!(p.ack_delay_exponent, 20);
    assert_eq!(p.max_ack_delay, Duration::from_millis(16383));
    assert_eq!(p.initial_max_streams_bidi, 1 << 60);
    assert_eq!(p.initial_max_streams_uni, 1 << 60);
}

#[test]
fn zero_length_cids_and_datagram_zero() {
    let p = decode(Side::Server, "00 00  0f 00  10 00  20 01 00").unwrap();
    assert_eq!(
        p.original_destination_connection_id,
        Some(ConnectionId::EMPTY)
    );
    assert_eq!(p.initial_source_connection_id, Some(ConnectionId::EMPTY));
    assert_eq!(p.retry_source_connection_id, Some(ConnectionId::EMPTY));
    assert_eq!(p.max_datagram_frame_size, Some(0));
    assert_eq!(
        encode(&p, Side::Server),
        "00000f00100020 0100".replace(' ', "")
    );
    // 20-byte CIDs are the longest allowed.
    let h = format!("0f 14 {}", "ab".repeat(20));
    assert_eq!(
        decode(Side::Client, &h)
            .unwrap()
            .initial_source_connection_id
            .unwrap()
            .len(),
        20
    );
}

// ---- GREASE and unknown ids ----

#[test]
fn reserved_ids() {
    assert_eq!(
        TransportParameterId::reserved(0),
        Some(TransportParameterId(27))
    );
    assert_eq!(
        TransportParameterId::reserved(1),
        Some(TransportParameterId(58))
    );
    let max_n = (VarInt::MAX.into_inner() - 27) / 31;
    assert!(TransportParameterId::reserved(max_n).is_some());
    assert_eq!(TransportParameterId::reserved(max_n + 1), None);
    assert!(TransportParameterId(27).is_reserved());
    assert!(TransportParameterId(31 * 1000 + 27).is_reserved());
    assert!(!TransportParameterId(26).is_reserved());
    assert!(!TransportParameterId::MAX_DATAGRAM_FRAME_SIZE.is_reserved());
    for random in [0, 1, 12345, u64::MAX, u64::MAX / 31] {
        let g = Grease::new(random, b"x");
        assert!(g.id().is_reserved());
        assert!(g.id().0 <= VarInt::MAX.into_inner());
    }
}

#[test]
fn id_names() {
    assert_eq!(
        TransportParameterId::MAX_ACK_DELAY.to_string(),
        "MAX_ACK_DELAY"
    );
    assert_eq!(
        TransportParameterId(0x20).name(),
        Some("MAX_DATAGRAM_FRAME_SIZE")
    );
    assert_eq!(
        TransportParameterId(27).to_string(),
        "reserved transport parameter 0x1b"
    );
    assert_eq!(
        TransportParameterId(0x21).to_string(),
        "unknown transport parameter 0x21"
    );
    assert!(TransportParameterId::PREFERRED_ADDRESS.is_server_only());
    assert!(!TransportParameterId::INITIAL_SOURCE_CONNECTION_ID.is_server_only());
}

#[test]
fn grease_and_unknown_ids_skipped() {
    let p = decode(
        Side::Client,
        concat!(
            "1b 03 abcdef",                  // 27 = 31*0+27
            "04 01 05",                      // initial_max_data 5
            "40 3a 00",                      // 58 = 31*1+27, 2-byte id, empty
            "1b 00",                         // reserved id again: not a duplicate error
            "80 00 12 34 02 ffff",           // unknown 0x1234
            "21 01 00",                      // unknown 0x21
            "c0 00 00 00 00 00 ff 00 01 41", // unknown, 8-byte id
        ),
    )
    .unwrap();
    assert_eq!(
        p,
        TransportParameters {
            initial_max_data: 5,
            ..TransportParameters::default()
        }
    );
    // Unknown ids with values that would be invalid for a known id are
    // still ignored, even when sent by a client.
    assert!(decode(Side::Client, "1b 01 ff  3d 00").is_ok());
}

#[test]
fn encode_with_grease() {
    let params = client_params();
    let g = Grease::new(7, &[0xde, 0xad]);
    assert_eq!(g.id(), TransportParameterId(31 * 7 + 27));
    let mut out = Vec::new();
    params.encode_with_grease(Side::Client, g, &mut out);
    // 31 * 7 + 27 = 244 = 0x40f4 as a varint.
    assert_eq!(hex::encode(&out[..5]), "40f402dead");
    assert_eq!(
        TransportParameters::decode(Side::Client, &out).unwrap(),
        params
    );
}

// ---- validation: one test per rule ----

#[test]
fn rejects_duplicate_known_id() {
    assert_tp_error(Side::Client, "04 01 05 04 01 05");
    assert_tp_error(Side::Client, "0c 00 0c 00");
    assert_tp_error(Side::Server, "0f 00 0f 00");
    assert_tp_error(Side::Client, "20 01 00 20 01 00");
    assert_tp_error(Side::Client, "11 04 00000001 11 04 00000001");
}

#[test]
fn rejects_truncated_input() {
    assert_tp_error(Side::Client, "40"); // id cut short
    assert_tp_error(Side::Client, "04"); // no length
    assert_tp_error(Side::Client, "04 40"); // length cut short
    assert_tp_error(Side::Client, "04 02 05"); // value shorter than length
    assert_tp_error(Side::Client, "1b 05 0000"); // even for a reserved id
}

#[test]
fn rejects_integer_not_filling_length() {
    assert_tp_error(Side::Client, "04 00"); // empty
    assert_tp_error(Side::Client, "04 02 05 00"); // trailing byte
    assert_tp_error(Side::Client, "04 01 40"); // varint needs 2 bytes
    assert_tp_error(Side::Client, "01 03 80 00 01"); // varint needs 4 bytes
    assert_tp_error(Side::Client, "20 02 00 00");
}

#[test]
fn rejects_small_max_udp_payload_size() {
    assert_tp_error(Side::Client, "03 02 44af"); // 1199
    assert_tp_error(Side::Client, "03 01 00");
}

#[test]
fn rejects_large_ack_delay_exponent() {
    assert_tp_error(Side::Client, "0a 01 15"); // 21
    assert_tp_error(Side::Client, "0a 02 412c"); // 300: does not fit a u8
}

#[test]
fn rejects_large_max_ack_delay() {
    assert_tp_error(Side::Client, "0b 04 80004000"); // 2^14
    assert_tp_error(Side::Client, "0b 08 c000000000ffffff");
}

#[test]
fn rejects_small_active_connection_id_limit() {
    assert_tp_error(Side::Client, "0e 01 01");
    assert_tp_error(Side::Client, "0e 01 00");
}

#[test]
fn rejects_too_many_streams() {
    assert_tp_error(Side::Client, "08 08 d000000000000001"); // 2^60 + 1
    assert_tp_error(Side::Server, "09 08 d000000000000001");
    assert_tp_error(Side::Client, "09 08 ffffffffffffffff");
}

#[test]
fn rejects_bad_stateless_reset_token_length() {
    assert_tp_error(Side::Server, &format!("02 0f {}", &TOKEN_HEX[2..]));
    assert_tp_error(Side::Server, &format!("02 11 {TOKEN_HEX}00"));
    assert_tp_error(Side::Server, "02 00");
}

#[test]
fn rejects_malformed_preferred_address() {
    let good = format!(
        "0d 2a 7f000001 1151 {} 1151 01 aa {TOKEN_HEX}",
        "00".repeat(16)
    );
    assert!(decode(Side::Server, &good).is_ok());
    // Truncated token.
    assert_tp_error(
        Side::Server,
        &format!(
            "0d 29 7f000001 1151 {} 1151 01 aa {}",
            "00".repeat(16),
            &TOKEN_HEX[2..]
        ),
    );
    // Trailing byte.
    assert_tp_error(
        Side::Server,
        &format!(
            "0d 2b 7f000001 1151 {} 1151 01 aa {TOKEN_HEX} 00",
            "00".repeat(16)
        ),
    );
    // CID length byte claims more than there is.
    assert_tp_error(
        Side::Server,
        &format!(
            "0d 2a 7f000001 1151 {} 1151 05 aa {TOKEN_HEX}",
            "00".repeat(16)
        ),
    );
    // Too short to hold the addresses.
    assert_tp_error(Side::Server, "0d 04 7f000001");
    assert_tp_error(Side::Server, "0d 00");
}

#[test]
fn rejects_preferred_address_with_zero_length_cid() {
    let h = format!(
        "0d 29 7f000001 1151 {} 1151 00 {TOKEN_HEX}",
        "00".repeat(16)
    );
    assert_tp_error(Side::Server, &h);
}

#[test]
fn rejects_preferred_address_when_server_cid_is_zero_length() {
    let pa = format!(
        "0d 2a 7f000001 1151 {} 1151 01 aa {TOKEN_HEX}",
        "00".repeat(16)
    );
    assert!(decode(Side::Server, &format!("{pa} 0f 01 bb")).is_ok());
    assert_tp_error(Side::Server, &format!("{pa} 0f 00"));
    assert_tp_error(Side::Server, &format!("0f 00 {pa}"));
}

#[test]
fn rejects_server_only_parameters_from_client() {
    let pa = format!(
        "0d 2a 7f000001 1151 {} 1151 01 aa {TOKEN_HEX}",
        "00".repeat(16)
    );
    let token = format!("02 10 {TOKEN_HEX}");
    for h in [
        "00 01 aa",
        token.as_str(),
        pa.as_str(),
        "10 01 aa",
        "00 00",
        "10 00",
    ] {
        assert!(decode(Side::Server, h).is_ok(), "{h}");
        assert_tp_error(Side::Client, h);
    }
}

#[test]
fn rejects_long_connection_ids() {
    let long = "ab".repeat(21);
    assert_tp_error(Side::Server, &format!("00 15 {long}"));
    assert_tp_error(Side::Client, &format!("0f 15 {long}"));
    assert_tp_error(Side::Server, &format!("10 15 {long}"));
    assert_tp_error(
        Side::Server,
        &format!(
            "0d 3e 7f000001 1151 {} 1151 15 {long} {TOKEN_HEX}",
            "00".repeat(16)
        ),
    );
}

#[test]
fn rejects_non_empty_disable_active_migration() {
    assert_tp_error(Side::Client, "0c 01 00");
    assert_tp_error(Side::Server, "0c 02 0000");
}

#[test]
fn rejects_malformed_version_information() {
    assert_tp_error(Side::Client, "11 00");
    assert_tp_error(Side::Client, "11 03 000001");
    assert_tp_error(Side::Client, "11 05 00000001 00");
    assert_tp_error(Side::Client, "11 04 00000000"); // chosen version 0
    assert_tp_error(Side::Server, "11 08 00000001 00000000"); // available 0
    let p = decode(Side::Server, "11 04 6b3343cf").unwrap();
    assert_eq!(
        p.version_information,
        Some(VersionInformation {
            chosen_version: 0x6b33_43cf,
            available_versions: vec![]
        })
    );
}

#[test]
fn client_chosen_version_must_be_available() {
    // RFC 9368 §4: "If a server receives Version Information where the
    // Chosen Version is not included in Available Versions, it MUST treat
    // it as a parsing failure."
    assert_tp_error(Side::Client, "11 08 00000001 6b3343cf");
    assert_tp_error(Side::Client, "11 04 00000001");
    // A server's Available Versions need not hold its Chosen Version.
    let p = decode(Side::Server, "11 08 00000001 6b3343cf").unwrap();
    assert_eq!(
        p.version_information.unwrap().available_versions,
        [0x6b33_43cf]
    );
    // Reserved versions (0x?a?a?a?a) may appear (§3).
    assert!(decode(Side::Client, "11 0c 00000001 1a2a3a4a 00000001").is_ok());
}

#[test]
fn grease_quic_bit() {
    // RFC 9287 §3: sent "with an empty value"; a non-empty value is a
    // TRANSPORT_PARAMETER_ERROR. Either side may send it.
    for side in [Side::Client, Side::Server] {
        let p = decode(side, "80002ab2 00").unwrap();
        assert!(p.grease_quic_bit);
        assert_tp_error(side, "80002ab2 01 00");
        assert_tp_error(side, "80002ab2 00 80002ab2 00");
        let params = TransportParameters {
            grease_quic_bit: true,
            ..TransportParameters::default()
        };
        // 0x2ab2 is a two-byte varint.
        assert_eq!(encode(&params, side), "6ab200");
        assert!(decode(side, "6ab2 00").unwrap().grease_quic_bit);
    }
    assert!(!decode(Side::Client, "").unwrap().grease_quic_bit);
}

#[test]
fn validate_rejects_unencodable_local_values() {
    let ok = TransportParameters::default();
    assert_eq!(ok.validate(), Ok(()));
    let cases = [
        TransportParameters {
            initial_max_data: 1 << 62,
            ..ok.clone()
        },
        TransportParameters {
            max_idle_timeout: Duration::MAX,
            ..ok.clone()
        },
        TransportParameters {
            max_datagram_frame_size: Some(u64::MAX),
            ..ok.clone()
        },
        TransportParameters {
            max_ack_delay: Duration::from_secs(17),
            ..ok.clone()
        },
        TransportParameters {
            ack_delay_exponent: 21,
            ..ok.clone()
        },
        TransportParameters {
            active_connection_id_limit: 1,
            ..ok.clone()
        },
        TransportParameters {
            max_udp_payload_size: 1199,
            ..ok.clone()
        },
        TransportParameters {
            initial_max_streams_uni: (1 << 60) + 1,
            ..ok.clone()
        },
    ];
    for p in cases {
        let e = p.validate().unwrap_err();
        assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
    }
}

// ---- property tests ----

fn arb_side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Client), Just(Side::Server)]
}

fn arb_cid(min: usize) -> impl Strategy<Value = ConnectionId> {
    proptest::collection::vec(any::<u8>(), min..=20).prop_map(|b| ConnectionId::new(&b).unwrap())
}

/// Any varint value, biased towards each encoded size.
fn arb_varint() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..64,
        64u64..16384,
        16384u64..(1 << 30),
        (1u64 << 30)..=VarInt::MAX.into_inner(),
    ]
}

fn arb_preferred_address() -> impl Strategy<Value = PreferredAddress> {
    let v4 = proptest::option::of((any::<[u8; 4]>(), any::<u16>()))
        .prop_map(|a| a.map(|(ip, port)| SocketAddrV4::new(ip.into(), port)));
    let v6 = proptest::option::of((any::<[u8; 16]>(), any::<u16>()))
        .prop_map(|a| a.map(|(ip, port)| SocketAddrV6::new(ip.into(), port, 0, 0)));
    (v4, v6, arb_cid(1), any::<[u8; 16]>()).prop_map(|(v4, v6, cid, token)| PreferredAddress {
        // An all-zero address and port means "none" on the wire.
        address_v4: v4.filter(|a| !(a.ip().is_unspecified() && a.port() == 0)),
        address_v6: v6.filter(|a| !(a.ip().is_unspecified() && a.port() == 0)),
        connection_id: cid,
        stateless_reset_token: token,
    })
}

fn arb_version_information() -> impl Strategy<Value = VersionInformation> {
    // RFC 9368 §4: a client's Chosen Version is among its Available
    // Versions; putting it there first suits both sides.
    (1u32.., proptest::collection::vec(1u32.., 0..6)).prop_map(
        |(chosen_version, mut available_versions)| {
            available_versions.insert(0, chosen_version);
            VersionInformation {
                chosen_version,
                available_versions,
            }
        },
    )
}

fn arb_params() -> impl Strategy<Value = TransportParameters> {
    let a = (
        proptest::option::of(arb_cid(0)),
        arb_varint(),
        proptest::option::of(any::<[u8; 16]>()),
        1200..=VarInt::MAX.into_inner(),
        arb_varint(),
        arb_varint(),
        arb_varint(),
        arb_varint(),
    );
    let b = (
        0..=(1u64 << 60),
        0..=(1u64 << 60),
        0u8..=20,
        0u64..(1 << 14),
        any::<bool>(),
        proptest::option::of(arb_preferred_address()),
        2..=VarInt::MAX.into_inner(),
        proptest::option::of(arb_cid(0)),
        proptest::option::of(arb_cid(0)),
        proptest::option::of(arb_version_information()),
        proptest::option::of(arb_varint()),
    );
    // min_ack_delay as a fraction (per mille) of max_ack_delay, so it never
    // exceeds it (draft-ietf-quic-ack-frequency-12 §3).
    let c = (any::<bool>(), proptest::option::of(0u64..=1000));
    (a, b, c).prop_map(
        |((odcid, idle, token, udp, data, bl, br, uni), b, (gqb, mind))| {
            let (sb, su, ade, mad, dam, pa, acl, iscid, rscid, vi, dg) = b;
            // A server with a zero-length CID may not offer a preferred address.
            let iscid = iscid.filter(|c| pa.is_none() || !c.is_empty());
            TransportParameters {
                original_destination_connection_id: odcid,
                max_idle_timeout: Duration::from_millis(idle),
                stateless_reset_token: token,
                max_udp_payload_size: udp,
                initial_max_data: data,
                initial_max_stream_data_bidi_local: bl,
                initial_max_stream_data_bidi_remote: br,
                initial_max_stream_data_uni: uni,
                initial_max_streams_bidi: sb,
                initial_max_streams_uni: su,
                ack_delay_exponent: ade,
                max_ack_delay: Duration::from_millis(mad),
                disable_active_migration: dam,
                preferred_address: pa,
                active_connection_id_limit: acl,
                initial_source_connection_id: iscid,
                retry_source_connection_id: rscid,
                version_information: vi,
                max_datagram_frame_size: dg,
                grease_quic_bit: gqb,
                min_ack_delay: mind.map(|pm| Duration::from_micros(mad * pm)),
            }
        },
    )
}

/// What the peer sees of `p` sent by `side`: a client drops server-only
/// parameters.
fn as_sent_by(side: Side, p: &TransportParameters) -> TransportParameters {
    let mut p = p.clone();
    if side == Side::Client {
        p.original_destination_connection_id = None;
        p.stateless_reset_token = None;
        p.preferred_address = None;
        p.retry_source_connection_id = None;
    }
    p
}

/// A sequence of parameters with ids near or at known ones and arbitrary
/// values, to reach the per-parameter parsers more often than random bytes.
fn arb_param_sequence() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![
        0u64..0x22,
        Just(27u64),
        Just(0x2ab2u64),
        Just(0xff04de1bu64),
        arb_varint()
    ];
    let value = proptest::collection::vec(any::<u8>(), 0..48);
    proptest::collection::vec((id, value, any::<bool>()), 0..12).prop_map(|params| {
        let mut out = Vec::new();
        for (id, value, lie) in params {
            VarInt::from_u64(id).unwrap().encode(&mut out);
            // Sometimes claim a wrong length.
            let len = if lie {
                value.len() as u64 + 1
            } else {
                value.len() as u64
            };
            VarInt::from_u64(len).unwrap().encode(&mut out);
            out.extend_from_slice(&value);
        }
        out
    })
}

proptest! {
    #[test]
    fn roundtrip(params in arb_params(), side in arb_side()) {
        let mut wire = Vec::new();
        params.encode(side, &mut wire);
        let decoded = TransportParameters::decode(side, &wire).unwrap();
        prop_assert_eq!(decoded, as_sent_by(side, &params));
    }

    #[test]
    fn roundtrip_with_grease(
        params in arb_params(),
        side in arb_side(),
        random in any::<u64>(),
        value in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut wire = Vec::new();
        params.encode_with_grease(side, Grease::new(random, &value), &mut wire);
        let decoded = TransportParameters::decode(side, &wire).unwrap();
        prop_assert_eq!(decoded, as_sent_by(side, &params));
    }

    #[test]
    fn decode_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        side in arb_side(),
    ) {
        let _ = TransportParameters::decode(side, &bytes);
    }

    #[test]
    fn decode_parameter_sequences(bytes in arb_param_sequence(), side in arb_side()) {
        // Never panics; whatever is accepted re-encodes to the same thing.
        if let Ok(p) = TransportParameters::decode(side, &bytes) {
            prop_assert_eq!(p.validate(), Ok(()));
            let mut wire = Vec::new();
            p.encode(side, &mut wire);
            prop_assert_eq!(TransportParameters::decode(side, &wire).unwrap(), p);
        } else {
            let e = TransportParameters::decode(side, &bytes).unwrap_err();
            prop_assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
        }
    }
}

// ---- min_ack_delay (draft-ietf-quic-ack-frequency-12 §3) ----

#[test]
fn min_ack_delay_vector_in_microseconds() {
    // Id 0xff04de1b needs an 8-byte varint; 1000 us is 0x43e8.
    let h = "c0000000ff04de1b 02 43e8";
    let p = decode(Side::Client, h).unwrap();
    assert_eq!(p.min_ack_delay, Some(Duration::from_micros(1000)));
    assert_eq!(encode(&p, Side::Client), h.replace(' ', ""));
    assert_eq!(TransportParameters::default().min_ack_delay, None);
}

#[test]
fn min_ack_delay_above_max_ack_delay_is_transport_parameter_error() {
    // draft-ietf-quic-ack-frequency-12 §3: "MUST treat receipt of a
    // min_ack_delay that is greater than the max_ack_delay as a connection
    // error of type TRANSPORT_PARAMETER_ERROR." Default max_ack_delay 25 ms.
    assert_tp_error(Side::Server, "c0000000ff04de1b 04 800061a9"); // 25001 us
    let p = decode(Side::Server, "c0000000ff04de1b 04 800061a8").unwrap(); // 25000 us
    assert_eq!(p.min_ack_delay, Some(Duration::from_millis(25)));
    // With max_ack_delay 1 ms, 1001 us is too much.
    assert_tp_error(Side::Server, "0b 01 01  c0000000ff04de1b 02 43e9");
    // Repeated, like every known id (RFC 9000 §7.4).
    assert_tp_error(
        Side::Server,
        "c0000000ff04de1b 01 01  c0000000ff04de1b 01 01",
    );
}
