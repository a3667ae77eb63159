//! Packets the endpoint sends without connection state: a CONNECTION_CLOSE
//! in an Initial (refusal, invalid token; RFC 9000 §10.2.3 last paragraph,
//! §8.1.2), an ACK in an Initial (a client's probe that arrived without
//! its ClientHello) and Retry (§17.2.5).

use crate::crypto::{initial_keys, retry_integrity_tag};
use crate::frame::{ConnectionClose, FrameType};
use crate::packet::TruncatedPacketNumber;
use crate::packet::header::{self, Header};
use crate::{ConnectionId, Side, TransportErrorCode, VarInt, Version};

const TAG_LEN: usize = 16;

/// A server Initial carrying only CONNECTION_CLOSE with `code`, protected
/// with the Initial keys of the client's `client_dst_cid`, numbered `pn`
/// (0 unless the endpoint already sent the client an Initial: RFC 9000
/// §12.3, a packet number is never reused in a space).
pub(crate) fn initial_close(
    version: Version,
    (client_dst_cid, client_src_cid): (&ConnectionId, &ConnectionId),
    server_cid: &ConnectionId,
    pn: u64,
    code: TransportErrorCode,
    reason: &str,
) -> Vec<u8> {
    initial(
        version,
        (client_dst_cid, client_src_cid),
        server_cid,
        pn,
        |buf| {
            ConnectionClose {
                error_code: VarInt::from_u64_unchecked(code.0),
                frame_type: FrameType::PADDING,
                reason: reason.as_bytes(),
            }
            .encode(buf)
        },
    )
}

/// A server Initial numbered 0 carrying only an ACK of the client's
/// Initial `acked` (RFC 9000 §13.2.1: an ack-eliciting packet is
/// acknowledged), for a probe that arrived without its ClientHello.
pub(crate) fn initial_ack(
    version: Version,
    (client_dst_cid, client_src_cid): (&ConnectionId, &ConnectionId),
    server_cid: &ConnectionId,
    acked: u64,
) -> Vec<u8> {
    initial(
        version,
        (client_dst_cid, client_src_cid),
        server_cid,
        0,
        |buf| crate::frame::encode_ack([acked..=acked], VarInt::from_u32(0), None, buf),
    )
}

/// A server Initial numbered `pn` with the frames `write` puts in it.
fn initial(
    version: Version,
    (client_dst_cid, client_src_cid): (&ConnectionId, &ConnectionId),
    server_cid: &ConnectionId,
    pn: u64,
    write: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let keys = initial_keys(version, client_dst_cid, Side::Server);
    let number = TruncatedPacketNumber::encode(pn, None);
    let mut buf = Vec::with_capacity(128);
    let partial = Header::Initial {
        version,
        dst_cid: *client_src_cid,
        src_cid: *server_cid,
        token: &[],
        number,
    }
    .encode(&mut buf);
    write(&mut buf);
    // RFC 9001 §5.4.2: room for the header-protection sample.
    let min_end = partial.pn_offset + 4;
    if buf.len() < min_end {
        buf.resize(min_end, 0);
    }
    let payload_len = buf.len() - partial.header_end();
    buf.resize(buf.len() + TAG_LEN, 0);
    partial.finish(&mut buf, payload_len + TAG_LEN);
    let header_len = partial.header_len();
    // Sealing a freshly built packet with valid keys cannot fail.
    let _ = keys.local.packet.seal(pn, &mut buf, header_len);
    let _ = keys.local.header.apply(&mut buf, partial.pn_offset);
    buf
}

/// A Retry packet sending the client to `retry_src_cid` with `token`
/// (RFC 9000 §17.2.5), with its integrity tag (RFC 9001 §5.8).
pub(crate) fn retry(
    version: Version,
    client_dst_cid: &ConnectionId,
    client_src_cid: &ConnectionId,
    retry_src_cid: &ConnectionId,
    token: &[u8],
    unused_bits: u8,
) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(64 + token.len());
    header::encode_retry(
        &mut buf,
        version,
        client_src_cid,
        retry_src_cid,
        token,
        unused_bits,
    );
    let tag = retry_integrity_tag(version, client_dst_cid, &buf).ok()?;
    buf.extend_from_slice(&tag);
    Some(buf)
}
