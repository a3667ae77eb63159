//! Table 3 of RFC 9000 §12.4 as code: which packet types may carry each
//! frame type (the "Pkts" column) and the special rules of the "Spec" column,
//! extended with DATAGRAM (RFC 9221).

use super::FrameType;
use crate::packet::PacketType;

/// Whether a frame of type `ty` may appear in a packet of type `packet`,
/// following the "Pkts" column of RFC 9000 Table 3 (and RFC 9221 §5 for
/// DATAGRAM). Unknown frame types and packets without frames (Retry,
/// Version Negotiation) always give `false`.
///
/// RFC 9000 §12.4: "An endpoint MUST treat receipt of a frame in a packet
/// type that is not permitted as a connection error of type
/// PROTOCOL_VIOLATION." See [`is_allowed_strict`] for the optional 0-RTT
/// prohibitions of §12.5.
pub fn is_allowed(ty: FrameType, packet: PacketType) -> bool {
    match packet {
        // RFC 9000 Table 3: "IH" for PADDING, PING, ACK and CRYPTO; "ih" for
        // CONNECTION_CLOSE: "Only a CONNECTION_CLOSE frame of type 0x1c can
        // appear in Initial or Handshake packets."
        // RFC 9000 §12.5: "CONNECTION_CLOSE frames signaling application
        // errors (type 0x1d) MUST only appear in the application data packet
        // number space."
        PacketType::Initial | PacketType::Handshake => matches!(
            ty,
            FrameType::PADDING
                | FrameType::PING
                | FrameType::ACK
                | FrameType::ACK_ECN
                | FrameType::CRYPTO
                | FrameType::CONNECTION_CLOSE
        ),
        // RFC 9000 Table 3: every frame with a "0" in its Pkts column, i.e.
        // all but ACK, CRYPTO, NEW_TOKEN, PATH_RESPONSE and HANDSHAKE_DONE.
        // draft-ietf-quic-ack-frequency-12 §3: "ACK_FREQUENCY and
        // IMMEDIATE_ACK frames cannot be sent in 0-RTT packets" (min_ack_delay
        // is not remembered), so they are 1-RTT only.
        // RFC 9221 §5: DATAGRAM frames "MUST be protected with either 0-RTT
        // or 1-RTT keys".
        PacketType::ZeroRtt => {
            ty.is_known()
                && !matches!(
                    ty,
                    FrameType::ACK
                        | FrameType::ACK_ECN
                        | FrameType::CRYPTO
                        | FrameType::NEW_TOKEN
                        | FrameType::PATH_RESPONSE
                        | FrameType::HANDSHAKE_DONE
                        | FrameType::ACK_FREQUENCY
                        | FrameType::IMMEDIATE_ACK
                )
        }
        // RFC 9000 §12.4: "Note that all frames can appear in 1-RTT packets."
        PacketType::OneRtt => ty.is_known(),
        // RFC 9000 §12.4: "Version Negotiation, Stateless Reset, and Retry
        // packets do not contain frames."
        PacketType::Retry | PacketType::VersionNegotiation => false,
    }
}

/// [`is_allowed`], additionally rejecting RETIRE_CONNECTION_ID in 0-RTT.
///
/// RFC 9000 §12.5: "it is not possible to send the following frames in
/// 0-RTT packets for various reasons: ACK, CRYPTO, HANDSHAKE_DONE, NEW_TOKEN,
/// PATH_RESPONSE, and RETIRE_CONNECTION_ID. A server MAY treat receipt of
/// these frames in 0-RTT packets as a connection error of type
/// PROTOCOL_VIOLATION." Table 3 forbids all of them in 0-RTT except
/// RETIRE_CONNECTION_ID, which it lists as "__01"; a server that wants the
/// stricter §12.5 rule uses this function.
pub fn is_allowed_strict(ty: FrameType, packet: PacketType) -> bool {
    is_allowed(ty, packet)
        && !(packet == PacketType::ZeroRtt && ty == FrameType::RETIRE_CONNECTION_ID)
}

impl FrameType {
    /// Whether a packet containing this frame is ack-eliciting.
    ///
    /// RFC 9000 §13.2 and RFC 9002 §2: "All frames other than ACK, PADDING,
    /// and CONNECTION_CLOSE are considered ack-eliciting" (the "N" mark of
    /// Table 3). DATAGRAM is ack-eliciting (RFC 9221 §5.2), and so would be
    /// any extension frame (RFC 9000 §19.21: extension frames "MUST cause an
    /// ACK frame to be sent").
    pub fn is_ack_eliciting(self) -> bool {
        !matches!(
            self,
            FrameType::ACK
                | FrameType::ACK_ECN
                | FrameType::PADDING
                | FrameType::CONNECTION_CLOSE
                | FrameType::APPLICATION_CLOSE
        )
    }

    /// Whether a packet containing this frame counts toward bytes in flight.
    ///
    /// RFC 9002 §2: "Packets are considered in flight when they are
    /// ack-eliciting or contain a PADDING frame." So only ACK and
    /// CONNECTION_CLOSE do not count. (Table 3's "C" mark names ACK alone;
    /// a CONNECTION_CLOSE-only packet is sent when closing, after which
    /// congestion control no longer matters, and RFC 9002's definition is the
    /// one recovery implements.)
    pub fn counts_in_flight(self) -> bool {
        self.is_ack_eliciting() || self == FrameType::PADDING
    }

    /// Whether this is a probing frame (the "P" mark of Table 3).
    ///
    /// RFC 9000 §9.1: "PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID, and
    /// PADDING frames are 'probing frames', and all other frames are
    /// 'non-probing frames'."
    pub fn is_probing(self) -> bool {
        matches!(
            self,
            FrameType::PATH_CHALLENGE
                | FrameType::PATH_RESPONSE
                | FrameType::NEW_CONNECTION_ID
                | FrameType::PADDING
        )
    }

    /// Whether the frame's contents are flow controlled (the "F" mark of
    /// Table 3: STREAM only; RFC 9221 §5.3: DATAGRAM frames "do not
    /// contribute to any per-flow or connection-wide data limit").
    pub fn is_flow_controlled(self) -> bool {
        self.is_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9000 Table 3, transcribed: type range, name, Pkts, Spec. The
    /// "ih" of CONNECTION_CLOSE is split per type as the note prescribes,
    /// and RFC 9221's DATAGRAM rows are added (0-RTT and 1-RTT, ack-eliciting,
    /// congestion controlled, not probing).
    const TABLE_3: &[(u64, u64, &str, &str, &str)] = &[
        (0x00, 0x00, "PADDING", "IH01", "NP"),
        (0x01, 0x01, "PING", "IH01", ""),
        (0x02, 0x03, "ACK", "IH_1", "NC"),
        (0x04, 0x04, "RESET_STREAM", "__01", ""),
        (0x05, 0x05, "STOP_SENDING", "__01", ""),
        (0x06, 0x06, "CRYPTO", "IH_1", ""),
        (0x07, 0x07, "NEW_TOKEN", "___1", ""),
        (0x08, 0x0f, "STREAM", "__01", "F"),
        (0x10, 0x10, "MAX_DATA", "__01", ""),
        (0x11, 0x11, "MAX_STREAM_DATA", "__01", ""),
        (0x12, 0x13, "MAX_STREAMS", "__01", ""),
        (0x14, 0x14, "DATA_BLOCKED", "__01", ""),
        (0x15, 0x15, "STREAM_DATA_BLOCKED", "__01", ""),
        (0x16, 0x17, "STREAMS_BLOCKED", "__01", ""),
        (0x18, 0x18, "NEW_CONNECTION_ID", "__01", "P"),
        (0x19, 0x19, "RETIRE_CONNECTION_ID", "__01", ""),
        (0x1a, 0x1a, "PATH_CHALLENGE", "__01", "P"),
        (0x1b, 0x1b, "PATH_RESPONSE", "___1", "P"),
        (0x1c, 0x1c, "CONNECTION_CLOSE", "IH01", "N"),
        (0x1d, 0x1d, "CONNECTION_CLOSE", "__01", "N"),
        (0x1e, 0x1e, "HANDSHAKE_DONE", "___1", ""),
        (0x30, 0x31, "DATAGRAM", "__01", ""),
        // draft-ietf-quic-ack-frequency-12 §3 (not in 0-RTT), §4 and §5
        // (ack-eliciting, congestion controlled, non-probing per §8.4).
        (0x1f, 0x1f, "IMMEDIATE_ACK", "___1", ""),
        (0xaf, 0xaf, "ACK_FREQUENCY", "___1", ""),
    ];

    const PACKETS: [(char, PacketType); 4] = [
        ('I', PacketType::Initial),
        ('H', PacketType::Handshake),
        ('0', PacketType::ZeroRtt),
        ('1', PacketType::OneRtt),
    ];

    fn rows() -> impl Iterator<Item = (FrameType, &'static str, &'static str, &'static str)> {
        TABLE_3.iter().flat_map(|&(lo, hi, name, pkts, spec)| {
            (lo..=hi).map(move |t| (FrameType::try_from(t).unwrap(), name, pkts, spec))
        })
    }

    #[test]
    fn table_3_pkts_column_cell_by_cell() {
        for (ty, name, pkts, _) in rows() {
            assert_eq!(ty.name(), Some(name));
            for (i, (mark, packet)) in PACKETS.into_iter().enumerate() {
                let expected = pkts.as_bytes()[i] == mark as u8;
                assert_eq!(is_allowed(ty, packet), expected, "{ty} in {packet:?}");
            }
            assert!(!is_allowed(ty, PacketType::Retry));
            assert!(!is_allowed(ty, PacketType::VersionNegotiation));
        }
    }

    #[test]
    fn table_3_spec_column_cell_by_cell() {
        for (ty, _, _, spec) in rows() {
            // "N: Packets containing only frames with this marking are not
            // ack-eliciting" (the N of ACK is "NC").
            assert_eq!(ty.is_ack_eliciting(), !spec.contains('N'), "{ty}");
            assert_eq!(ty.is_probing(), spec.contains('P'), "{ty}");
            assert_eq!(ty.is_flow_controlled(), spec.contains('F'), "{ty}");
            // C marks ACK; RFC 9002 §2 also leaves CONNECTION_CLOSE out.
            let in_flight = !spec.contains('C') && !ty.name().unwrap().starts_with("CONNECTION");
            assert_eq!(ty.counts_in_flight(), in_flight, "{ty}");
        }
    }

    #[test]
    fn application_close_is_not_allowed_in_initial_or_handshake() {
        assert!(!is_allowed(
            FrameType::APPLICATION_CLOSE,
            PacketType::Initial
        ));
        assert!(!is_allowed(
            FrameType::APPLICATION_CLOSE,
            PacketType::Handshake
        ));
        assert!(is_allowed(FrameType::CONNECTION_CLOSE, PacketType::Initial));
        assert!(is_allowed(
            FrameType::CONNECTION_CLOSE,
            PacketType::Handshake
        ));
    }

    #[test]
    fn strict_check_also_rejects_retire_connection_id_in_zero_rtt() {
        assert!(is_allowed(
            FrameType::RETIRE_CONNECTION_ID,
            PacketType::ZeroRtt
        ));
        assert!(!is_allowed_strict(
            FrameType::RETIRE_CONNECTION_ID,
            PacketType::ZeroRtt
        ));
        assert!(is_allowed_strict(
            FrameType::RETIRE_CONNECTION_ID,
            PacketType::OneRtt
        ));
        for (ty, _, _, _) in rows() {
            for (_, packet) in PACKETS {
                if !(ty == FrameType::RETIRE_CONNECTION_ID && packet == PacketType::ZeroRtt) {
                    assert_eq!(is_allowed(ty, packet), is_allowed_strict(ty, packet));
                }
            }
        }
    }

    #[test]
    fn unknown_frame_types_are_allowed_nowhere() {
        for t in [0x20, 0x2f, 0x32, 0x40, 0xae, 0xb0, 0x3fff, (1 << 62) - 1] {
            let ty = FrameType::try_from(t).unwrap();
            assert!(!ty.is_known());
            for (_, packet) in PACKETS {
                assert!(!is_allowed(ty, packet), "{ty} in {packet:?}");
            }
        }
    }
}
