//! A small ClientHello reader for admission decisions: the server name
//! (SNI, RFC 6066 §3) and offered application protocols (ALPN, RFC 7301
//! §3.1) of a client, before committing any state to it.
//!
//! rustls's `Acceptor` does not apply to QUIC, so the server reads these
//! from the Initial CRYPTO stream itself. The reader is bounds-checked and
//! never panics; anything it cannot make sense of yields `None`, and the
//! real validation is left to rustls.

/// Handshake message type of a ClientHello (RFC 8446 §4).
const CLIENT_HELLO: u8 = 1;
/// `server_name` extension (RFC 6066 §3).
const EXT_SERVER_NAME: u16 = 0;
/// `application_layer_protocol_negotiation` extension (RFC 7301 §3.1).
const EXT_ALPN: u16 = 16;
/// `quic_transport_parameters` extension (RFC 9001 §8.2).
const EXT_QUIC_TRANSPORT_PARAMETERS: u16 = 57;
/// `host_name` entry of a ServerNameList (RFC 6066 §3).
const NAME_TYPE_HOST_NAME: u8 = 0;
/// Longest legacy_session_id (RFC 8446 §4.1.2).
const MAX_SESSION_ID_LEN: usize = 32;

/// What a server may want to know about a client before accepting it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHelloInfo {
    /// The `host_name` from the `server_name` extension, if sent.
    pub server_name: Option<String>,
    /// The offered application protocols, in the client's order of
    /// preference; empty if the ALPN extension is absent.
    pub alpn: Vec<Vec<u8>>,
    /// The raw `quic_transport_parameters` extension (RFC 9001 §8.2), for
    /// a server choosing a version from the client's version_information
    /// (RFC 9368 §2.3) before TLS runs; not validated here.
    pub quic_transport_parameters: Option<Vec<u8>>,
}

/// The total length (4-byte header included) of the ClientHello at the
/// start of `data`, once its header is there; `None` if `data` is shorter
/// than a handshake header or does not start with a ClientHello.
///
/// A ClientHello can span several Initial packets; wait until this many
/// bytes of the CRYPTO stream are in before calling
/// [`parse_client_hello`].
pub fn client_hello_length(data: &[u8]) -> Option<usize> {
    let mut r = Reader(data);
    (r.u8()? == CLIENT_HELLO).then_some(())?;
    Some(4 + r.u24()?)
}

/// Reads the server name and offered ALPN protocols from the ClientHello
/// at the start of `data`, the Initial CRYPTO stream from offset 0 (bytes
/// after the ClientHello are ignored).
///
/// Returns `None` if the message is incomplete (see
/// [`client_hello_length`]), is not a ClientHello, or is malformed: a
/// length that overruns its container, a repeated SNI or ALPN extension,
/// an empty protocol name, or a host name that is not ASCII.
pub fn parse_client_hello(data: &[u8]) -> Option<ClientHelloInfo> {
    let mut r = Reader(data);
    if r.u8()? != CLIENT_HELLO {
        return None;
    }
    let len = r.u24()?;
    // RFC 8446 §4.1.2: legacy_version, random, legacy_session_id,
    // cipher_suites, legacy_compression_methods, extensions.
    let mut body = Reader(r.take(len)?);
    body.take(2)?;
    body.take(32)?;
    if body.vec8()?.len() > MAX_SESSION_ID_LEN {
        return None;
    }
    body.vec16()?;
    body.vec8()?;
    let mut info = ClientHelloInfo::default();
    if body.is_empty() {
        return Some(info);
    }
    let mut exts = Reader(body.vec16()?);
    if !body.is_empty() {
        return None;
    }
    let (mut seen_sni, mut seen_alpn, mut seen_tp) = (false, false, false);
    while !exts.is_empty() {
        let ty = exts.u16()?;
        let ext = exts.vec16()?;
        match ty {
            EXT_SERVER_NAME => {
                // RFC 8446 §4.2: "There MUST NOT be more than one extension
                // of the same type in a given extension block."
                if std::mem::replace(&mut seen_sni, true) {
                    return None;
                }
                info.server_name = server_name(ext)?;
            }
            EXT_ALPN => {
                if std::mem::replace(&mut seen_alpn, true) {
                    return None;
                }
                info.alpn = alpn(ext)?;
            }
            EXT_QUIC_TRANSPORT_PARAMETERS => {
                if std::mem::replace(&mut seen_tp, true) {
                    return None;
                }
                info.quic_transport_parameters = Some(ext.to_vec());
            }
            _ => {}
        }
    }
    Some(info)
}

/// The `host_name` of a `server_name` extension body (RFC 6066 §3):
/// `Some(None)` when it holds no host name, `None` when malformed.
fn server_name(ext: &[u8]) -> Option<Option<String>> {
    let mut outer = Reader(ext);
    let mut list = Reader(outer.vec16()?);
    if !outer.is_empty() {
        return None;
    }
    let mut host = None;
    while !list.is_empty() {
        let name_type = list.u8()?;
        let name = list.vec16()?;
        if name_type == NAME_TYPE_HOST_NAME && host.is_none() {
            // RFC 6066 §3: HostName is "a byte string using ASCII encoding
            // without a trailing dot", at least one byte long.
            if name.is_empty() || !name.is_ascii() {
                return None;
            }
            host = Some(String::from_utf8(name.to_vec()).ok()?);
        }
    }
    Some(host)
}

/// The protocol names of an ALPN extension body (RFC 7301 §3.1), or
/// `None` when malformed.
fn alpn(ext: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut outer = Reader(ext);
    let mut list = Reader(outer.vec16()?);
    if !outer.is_empty() {
        return None;
    }
    let mut protocols = Vec::new();
    while !list.is_empty() {
        // RFC 7301 §3.1: "opaque ProtocolName<1..2^8-1>", "Empty strings
        // MUST NOT be included".
        let name = list.vec8()?;
        if name.is_empty() {
            return None;
        }
        protocols.push(name.to_vec());
    }
    Some(protocols)
}

/// A bounds-checked big-endian reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }

    /// A vector with a one-byte length prefix.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// A vector with a two-byte length prefix.
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}
