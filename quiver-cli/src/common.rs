//! What the network commands share: certificates, TLS settings, URLs and
//! the one-line wording of every failure.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use quiver::{ConnectionError, ReadError, TransportErrorCode, WriteError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The application protocol of HTTP/0.9 in the QUIC interop runner.
pub const HQ_ALPN: &str = "hq-interop";
/// HTTP/3 (RFC 9114 §3.1).
pub const H3_ALPN: &str = "h3";

/// Stream reset codes of `quiver serve`: HTTP/0.9 has no status line, so
/// failures are stream resets, with codes after the HTTP statuses.
pub const RESET_BAD_REQUEST: u32 = 400;
pub const RESET_NOT_FOUND: u32 = 404;
pub const RESET_INTERNAL: u32 = 500;

/// A certificate chain and its key.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// A fresh self-signed certificate for `localhost` and `127.0.0.1`/`::1`.
pub fn self_signed() -> anyhow::Result<(Identity, String, String)> {
    let names = ["localhost", "127.0.0.1", "::1"]
        .map(str::to_owned)
        .to_vec();
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| anyhow!("cannot make a self-signed certificate: {e}"))?;
    let cert_pem = ck.cert.pem();
    let key_pem = ck.signing_key.serialize_pem();
    let identity = Identity {
        chain: vec![ck.cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
    };
    Ok((identity, cert_pem, key_pem))
}

/// Writes a self-signed certificate and its key to a private directory
/// under the system's temporary directory; returns the paths.
pub fn write_self_signed(cert_pem: &str, key_pem: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = std::env::temp_dir().join(format!("quiver-serve-{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    fs::write(&cert, cert_pem).with_context(|| format!("cannot write {}", cert.display()))?;
    write_private(&key, key_pem.as_bytes())
        .with_context(|| format!("cannot write {}", key.display()))?;
    Ok((cert, key))
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    fs::write(path, data)
}

/// The certificates of a PEM file (at least one).
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let data =
        fs::read(path).map_err(|e| anyhow!("cannot read certificate {}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("cannot parse certificate {}: {e:?}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let data = fs::read(path).map_err(|e| anyhow!("cannot read key {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&data)
        .map_err(|e| anyhow!("cannot parse private key {}: {e:?}", path.display()))
}

/// Server TLS settings offering the protocols in `alpn` (in order of
/// preference), with `keylog` honouring SSLKEYLOGFILE, accepting only
/// `ciphers` when given.
pub fn server_config(
    identity: Identity,
    alpn: &[&[u8]],
    keylog: bool,
    transport: quiver::TransportConfig,
    ciphers: Option<&Ciphers>,
) -> anyhow::Result<quiver::ServerConfig> {
    server_config_with(identity, alpn, keylog, transport, ciphers, false)
}

/// [`server_config`], issuing tickets that allow 0-RTT when `early_data`
/// (each connection still decides, `Incoming::set_early_data`).
pub fn server_config_with(
    identity: Identity,
    alpn: &[&[u8]],
    keylog: bool,
    transport: quiver::TransportConfig,
    ciphers: Option<&Ciphers>,
    early_data: bool,
) -> anyhow::Result<quiver::ServerConfig> {
    let mut builder = quiver::ServerConfig::with_single_cert(identity.chain, identity.key)
        .alpn_protocols(alpn)
        .keylog(keylog)
        .transport(transport)
        .early_data(early_data);
    if let Some(ciphers) = ciphers {
        builder = builder.cipher_suites(&ciphers.0);
    }
    builder
        .build()
        .map_err(|e| anyhow!("invalid certificate or key: {e}"))
}

/// A `--cipher` list, in order of preference (a newtype so that clap takes
/// it as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ciphers(pub Vec<quiver::CipherSuite>);

/// Parses `--cipher`: TLS 1.3 cipher suites separated by commas, each
/// `aes128gcm`, `aes256gcm` or `chacha20` (RFC 9001 §5.3).
pub fn parse_ciphers(s: &str) -> Result<Ciphers, String> {
    let mut suites = Vec::new();
    for name in s.split(',') {
        let suite: quiver::CipherSuite = name.parse().map_err(|e| format!("{e}"))?;
        if suites.contains(&suite) {
            return Err(format!("{suite} is listed twice"));
        }
        suites.push(suite);
    }
    Ok(Ciphers(suites))
}

/// Binds a server endpoint and returns it with its local address, with a
/// clear message when the port is taken.
pub fn bind_server(
    config: quiver::ServerConfig,
    addr: SocketAddr,
) -> anyhow::Result<(quiver::Endpoint, SocketAddr)> {
    let endpoint = quiver::Endpoint::server(config, addr)
        .map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    let local = endpoint
        .local_addr()
        .map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    Ok((endpoint, local))
}

/// Binds a server endpoint on `addr` that also listens on `preferred` and
/// advertises it as its preferred address (RFC 9000 §9.6); returns it with
/// both local addresses.
pub fn bind_server_with_preferred_address(
    config: quiver::ServerConfig,
    addr: SocketAddr,
    preferred: SocketAddr,
    versions: Option<&[quiver::proto::Version]>,
    local_cid_len: Option<usize>,
    fleet_key: Option<&[u8]>,
) -> anyhow::Result<(quiver::Endpoint, SocketAddr, SocketAddr)> {
    if preferred.ip().is_unspecified() {
        bail!("--preferred-address {preferred}: name one IP address, not a wildcard");
    }
    let socket =
        quiver::udp::UdpSocket::bind(addr).map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    let preferred_socket = quiver::udp::UdpSocket::bind(preferred)
        .map_err(|e| anyhow!("cannot listen on {preferred}: {e}"))?;
    // The stateless-reset and token key: secret, from the system's
    // secure random source (through rustls's provider).
    let mut seed = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut seed)
        .map_err(|_| anyhow!("no secure random source"))?;
    let mut endpoint_config = endpoint_config(seed, fleet_key);
    if let Some(versions) = versions {
        endpoint_config.supported_versions = versions.to_vec();
    }
    if let Some(len) = local_cid_len {
        endpoint_config.local_cid_len = len;
    }
    let endpoint = quiver::Endpoint::with_preferred_addresses(
        endpoint_config,
        config,
        socket,
        vec![preferred_socket],
    )
    .map_err(|e| anyhow!("cannot listen on {preferred}: {e}"))?;
    let local = endpoint
        .local_addr()
        .map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    let preferred = endpoint
        .preferred_addresses()
        .ok()
        .and_then(|a| a.first().copied())
        .ok_or_else(|| anyhow!("cannot listen on {preferred}"))?;
    Ok((endpoint, local, preferred))
}

/// Like [`bind_server`], with the QUIC versions to accept in our order of
/// preference (RFC 9368 §2.3: a client offering several gets the first of
/// ours it lists); `None` keeps the default (v1, then v2). With
/// `local_cid_len`, our connection IDs have that length; with `fleet_key`,
/// the reset and token keys derive from that shared secret.
pub fn bind_server_with_versions(
    config: quiver::ServerConfig,
    addr: SocketAddr,
    versions: Option<&[quiver::proto::Version]>,
    local_cid_len: Option<usize>,
    fleet_key: Option<&[u8]>,
) -> anyhow::Result<(quiver::Endpoint, SocketAddr)> {
    if versions.is_none() && local_cid_len.is_none() && fleet_key.is_none() {
        return bind_server(config, addr);
    }
    let mut reset_key = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut reset_key)
        .map_err(|_| anyhow!("no secure random source"))?;
    let mut endpoint_config = endpoint_config(reset_key, fleet_key);
    if let Some(versions) = versions {
        endpoint_config.supported_versions = versions.to_vec();
    }
    if let Some(len) = local_cid_len {
        endpoint_config.local_cid_len = len;
    }
    let socket =
        quiver::udp::UdpSocket::bind(addr).map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    let endpoint = quiver::Endpoint::with_config(endpoint_config, Some(config), socket)
        .map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    let local = endpoint
        .local_addr()
        .map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    Ok((endpoint, local))
}

/// Endpoint settings with the random `key`, or keys derived from the
/// fleet's shared secret (`EndpointConfig::with_fleet_key`).
fn endpoint_config(key: [u8; 32], fleet_key: Option<&[u8]>) -> quiver::EndpointConfig {
    match fleet_key {
        Some(secret) => quiver::EndpointConfig::with_fleet_key(secret),
        None => quiver::EndpointConfig::new(key),
    }
}

/// A `--versions` list, in order (a newtype so that clap takes it as one
/// value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions(pub Vec<quiver::proto::Version>);

/// Parses `--versions`: QUIC versions separated by commas, each `v1`,
/// `v2` or a wire number (`0x6b3343cf`), without repeats.
pub fn parse_versions(s: &str) -> Result<Versions, String> {
    use quiver::proto::Version;
    let mut versions = Vec::new();
    for part in s.split(',').map(str::trim) {
        let number = match part.to_ascii_lowercase().as_str() {
            "v1" | "1" => Some(Version::V1.number()),
            "v2" => Some(Version::V2.number()),
            other => other
                .strip_prefix("0x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok()),
        };
        let version = number
            .and_then(Version::from_number)
            .ok_or_else(|| format!("unknown QUIC version {part:?} (v1 or v2)"))?;
        if versions.contains(&version) {
            return Err(format!("QUIC version {part} listed twice"));
        }
        versions.push(version);
    }
    Ok(Versions(versions))
}

/// The client's Available Versions (RFC 9368 §3: "ordered by descending
/// preference") for `versions`, whose first is the version the client
/// starts in: v2 ahead of v1, the rest in the order given. A client that
/// starts in v1 so that any server can read its first flight still prefers
/// v2, and says so, or a server that follows the client's order (aioquic's
/// does) would keep v1.
pub fn upgrades_first(versions: &[quiver::proto::Version]) -> Vec<quiver::proto::Version> {
    let mut ordered = versions.to_vec();
    ordered.sort_by_key(|v| *v != quiver::proto::Version::V2);
    ordered
}

/// A client endpoint of the address family of `remote`.
pub fn bind_client(remote: SocketAddr) -> anyhow::Result<quiver::Endpoint> {
    let local: SocketAddr = if remote.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid address")
    } else {
        "[::]:0".parse().expect("valid address")
    };
    quiver::Endpoint::client(local).map_err(|e| anyhow!("cannot open a UDP socket: {e}"))
}

/// Resolves `host:port`, preferring IPv4.
pub async fn resolve(host: &str, port: u16, timeout: Duration) -> anyhow::Result<SocketAddr> {
    let lookup = tokio::net::lookup_host((host, port));
    let addrs: Vec<SocketAddr> = tokio::time::timeout(timeout, lookup)
        .await
        .map_err(|_| anyhow!("cannot resolve {host}: timed out"))?
        .map_err(|e| anyhow!("cannot resolve {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| anyhow!("cannot resolve {host}: no address"))
}

/// Connects and waits for the handshake, at most `timeout`.
pub async fn connect(
    endpoint: &quiver::Endpoint,
    config: &quiver::ClientConfig,
    addr: SocketAddr,
    server_name: &str,
    timeout: Duration,
) -> anyhow::Result<quiver::Connection> {
    let connecting = endpoint
        .connect_with(config, addr, server_name)
        .map_err(|e| anyhow!("cannot connect to {addr}: {e}"))?;
    match tokio::time::timeout(timeout, connecting).await {
        Err(_) => bail!("timed out"),
        // An ICMP error for our first flight (RFC 9000 §14.2.1): say who.
        Ok(Err(ConnectionError::Unreachable(kind))) => {
            bail!("{}", describe_unreachable(kind, addr))
        }
        Ok(Err(e)) => bail!("{}", describe_connection_error(&e)),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// Transport settings whose idle timeout is `idle`, with the congestion
/// controller `cc` (`None`: the default).
pub fn transport(idle: Duration, cc: Option<Cc>) -> quiver::TransportConfig {
    with_cc(
        quiver::TransportConfig {
            max_idle_timeout: Some(idle),
            ..Default::default()
        },
        cc,
    )
}

/// `transport` with the congestion controller `cc` (`None`: unchanged).
pub fn with_cc(mut transport: quiver::TransportConfig, cc: Option<Cc>) -> quiver::TransportConfig {
    if let Some(cc) = cc {
        transport.congestion = cc.factory();
    }
    transport
}

/// A congestion controller for `--cc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cc {
    /// CUBIC (RFC 9438) with HyStart++ (RFC 9406).
    Cubic,
    /// NewReno (RFC 9002 §7.3).
    #[value(name = "newreno")]
    NewReno,
    /// BBRv3 (draft-ietf-ccwg-bbr), paced at its bandwidth estimate.
    Bbr,
}

impl Cc {
    /// The controller's factory for `TransportConfig::congestion`.
    pub fn factory(self) -> std::sync::Arc<dyn quiver::proto::congestion::ControllerFactory> {
        use quiver::proto::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
        match self {
            Self::Cubic => std::sync::Arc::new(CubicConfig::default()),
            Self::NewReno => std::sync::Arc::new(NewRenoConfig::default()),
            Self::Bbr => std::sync::Arc::new(BbrConfig::default()),
        }
    }
}

fn reason_suffix(reason: &[u8]) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" (reason {:?})", String::from_utf8_lossy(reason))
    }
}

/// `APPLICATION_ERROR (0xc)`, `CRYPTO_ERROR (0x12a, TLS alert BadCertificate)`.
fn describe_code(code: TransportErrorCode) -> String {
    if let Some(alert) = code.tls_alert() {
        let name = rustls::AlertDescription::from(alert);
        return format!("CRYPTO_ERROR ({:#x}, TLS alert {name:?})", code.0);
    }
    match code.name() {
        Some(name) => format!("{name} ({:#x})", code.0),
        None => format!("{:#x}", code.0),
    }
}

/// The wording of the one `error:` line for a connection that ended.
pub fn describe_connection_error(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed { code, reason } => format!(
            "connection closed by peer: application error {:#x}{}",
            code.into_inner(),
            reason_suffix(reason)
        ),
        ConnectionError::ConnectionClosed { code, reason, .. } => format!(
            "connection closed by peer: transport error {}{}",
            describe_code(*code),
            reason_suffix(reason)
        ),
        ConnectionError::TransportError(t) => {
            let certificate = t.reason == "peer presented no certificate"
                || t.reason.starts_with("invalid peer certificate");
            if certificate {
                format!(
                    "certificate rejected: {}: {}; {CERTIFICATE_HINT}",
                    t.reason,
                    describe_code(t.code)
                )
            } else {
                format!("connection failed: {}: {}", t.reason, describe_code(t.code))
            }
        }
        ConnectionError::LocallyClosed => "connection closed locally".to_owned(),
        ConnectionError::TimedOut => "timed out".to_owned(),
        ConnectionError::Reset => "stateless reset".to_owned(),
        ConnectionError::VersionMismatch => "no QUIC version in common with the server".to_owned(),
        ConnectionError::Refused => "connection refused by peer".to_owned(),
        ConnectionError::Unreachable(kind) => kind.to_string(),
        ConnectionError::ZeroRttRejected => {
            "0-RTT rejected and the server's settings changed: connect again".to_owned()
        }
    }
}

/// What ends the line of a rejected certificate.
pub const CERTIFICATE_HINT: &str = "hint: pass --ca PEM, or --insecure for a test server";

/// The wording for a server address an ICMP error said is unreachable.
pub fn describe_unreachable(kind: quiver::Unreachable, addr: SocketAddr) -> String {
    match kind {
        quiver::Unreachable::Port => format!("connection refused by {addr}"),
        quiver::Unreachable::Host => format!("host unreachable: {addr}"),
        quiver::Unreachable::Prohibited => format!("destination prohibited: {addr}"),
    }
}

/// The wording for a failed read of the response to `path`.
pub fn describe_read_error(path: &str, e: &ReadError) -> String {
    match e {
        ReadError::Reset(code) => describe_reset(path, code.into_inner()),
        ReadError::ConnectionLost(c) => describe_connection_error(c),
        ReadError::ClosedStream => format!("{path}: stream closed"),
    }
}

/// The wording for a failed write of the request for `path`.
pub fn describe_write_error(path: &str, e: &WriteError) -> String {
    match e {
        WriteError::Stopped(code) => format!(
            "{path}: server stopped reading the request (code {:#x})",
            code.into_inner()
        ),
        WriteError::ConnectionLost(c) => describe_connection_error(c),
        WriteError::ClosedStream => format!("{path}: stream closed"),
    }
}

/// The wording for a response stream reset with `code` before any byte of
/// the file arrived. HTTP/0.9 has no status line: servers of the interop
/// runner's kind say "not found" by resetting the stream with a code of
/// their own choosing, so any code but ours for a bad request or an
/// internal error reads as a missing file.
pub fn describe_reset(path: &str, code: u64) -> String {
    match u32::try_from(code) {
        Ok(RESET_BAD_REQUEST) => format!("bad request for {path} (stream reset {code:#x})"),
        Ok(RESET_INTERNAL) => format!("server failed to send {path} (stream reset {code:#x})"),
        _ => format!("no such file {path} (stream reset {code:#x})"),
    }
}

/// A URL of `quiver get`: `https://HOST[:PORT]/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl std::str::FromStr for Url {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let bad = |why: &str| anyhow!("malformed URL {s:?}: {why}");
        let rest = s
            .strip_prefix("https://")
            .ok_or_else(|| bad("expected https://HOST[:PORT]/PATH"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("expected ':' after ']'"))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.contains([':', '@', ' ']) && !authority.starts_with('[') {
            return Err(bad("invalid host"));
        }
        let port = match port {
            None => 443,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(bad("invalid port")),
            },
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("spaces or control characters in the path"));
        }
        // Query and fragment are not files.
        let path = path.split(['?', '#']).next().unwrap_or("/").to_owned();
        if path.split('/').any(|c| c == "..") {
            return Err(bad("'..' in the path"));
        }
        Ok(Url {
            host: host.to_owned(),
            port,
            path,
        })
    }
}

/// Bytes per second as a human figure, e.g. `941.3 Mbit/s`.
pub fn throughput(bytes: u64, seconds: f64) -> String {
    let bits = bytes as f64 * 8.0 / seconds.max(1e-9);
    if bits >= 1e9 {
        format!("{:.2} Gbit/s", bits / 1e9)
    } else if bits >= 1e6 {
        format!("{:.1} Mbit/s", bits / 1e6)
    } else {
        format!("{:.1} kbit/s", bits / 1e3)
    }
}

/// A byte count: a number with an optional suffix, `k`/`M`/`G` (powers of
/// 1000) or `KiB`/`MiB`/`GiB` (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count"))?;
    let unit: u64 = match suffix {
        "" | "B" => 1,
        "k" | "K" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("unknown unit {suffix:?} (k, M, G, KiB, MiB, GiB)")),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u: Url = "https://localhost:4433/a/b.txt".parse().unwrap();
        assert_eq!(
            u,
            Url {
                host: "localhost".into(),
                port: 4433,
                path: "/a/b.txt".into()
            }
        );
        let u: Url = "https://[::1]:9/".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        let u: Url = "https://example.com".parse().unwrap();
        assert_eq!((u.port, u.path.as_str()), (443, "/"));
        for bad in [
            "http://x/",
            "https://:4/",
            "https://x:0/",
            "https://x:99999/",
            "https://x:y/",
            "https://x/a b",
            "https://x/../etc/passwd",
            "https://[::1/",
            "localhost:4433/x",
        ] {
            assert!(bad.parse::<Url>().is_err(), "{bad}");
        }
    }

    // RFC 9368 §3: the client's Available Versions in descending
    // preference; `--versions v1,v2` starts in v1 and asks for v2.
    #[test]
    fn client_offers_v2_ahead_of_the_version_it_starts_in() {
        use quiver::proto::Version::{V1, V2};
        let offered = |list: &str| upgrades_first(&parse_versions(list).unwrap().0);
        assert_eq!(offered("v1,v2"), [V2, V1]);
        assert_eq!(offered("v2,v1"), [V2, V1]);
        assert_eq!(offered("v1"), [V1]);
        assert_eq!(offered("v2"), [V2]);
    }

    #[test]
    fn byte_counts_parse() {
        assert_eq!(parse_bytes("50000000"), Ok(50_000_000));
        assert_eq!(parse_bytes("100M"), Ok(100_000_000));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert!(parse_bytes("1X").is_err());
        assert!(parse_bytes("").is_err());
    }

    #[test]
    fn errors_are_worded_as_documented() {
        let e = ConnectionError::ApplicationClosed {
            code: quiver::VarInt::from_u32(0x2a),
            reason: bytes::Bytes::from_static(b"refused"),
        };
        assert_eq!(
            describe_connection_error(&e),
            "connection closed by peer: application error 0x2a (reason \"refused\")"
        );
        let e = ConnectionError::ConnectionClosed {
            code: TransportErrorCode::APPLICATION_ERROR,
            frame_type: None,
            reason: bytes::Bytes::new(),
        };
        assert_eq!(
            describe_connection_error(&e),
            "connection closed by peer: transport error APPLICATION_ERROR (0xc)"
        );
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            describe_unreachable(quiver::Unreachable::Port, addr),
            "connection refused by 127.0.0.1:9"
        );
        assert_eq!(
            describe_unreachable(quiver::Unreachable::Host, addr),
            "host unreachable: 127.0.0.1:9"
        );
        assert_eq!(
            describe_reset("/x", 404),
            "no such file /x (stream reset 0x194)"
        );
        // Another server's code for "not found" reads the same way.
        assert_eq!(
            describe_reset("/x", 0x10),
            "no such file /x (stream reset 0x10)"
        );
    }
}

/// `--qlog-dir DIR`, or the `QLOGDIR` environment variable: a qlog file
/// per connection.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct QlogArgs {
    /// Write each connection's qlog (JSON-SEQ, loads in qvis) to
    /// DIR/{odcid}_{client|server}.sqlog; the QLOGDIR environment variable
    /// does the same (the flag wins).
    #[arg(long, value_name = "DIR")]
    pub qlog_dir: Option<PathBuf>,
    /// Cap each qlog file at about MB megabytes: past it, only the
    /// connection's end is recorded (unlimited by default).
    #[arg(long, value_name = "MB")]
    pub qlog_max_mb: Option<u64>,
}

impl QlogArgs {
    /// The qlog factory to configure, if the flag or `QLOGDIR` asks for one.
    pub fn factory(
        &self,
    ) -> anyhow::Result<Option<std::sync::Arc<dyn quiver::proto::qlog::QlogFactory>>> {
        let dir = match &self.qlog_dir {
            Some(dir) => Some(quiver::qlog::QlogDir::new(dir)),
            None => quiver::qlog::QlogDir::from_env(),
        };
        match dir {
            None => Ok(None),
            Some(Ok(dir)) => {
                let dir = match self.qlog_max_mb {
                    Some(mb) => dir.max_file_bytes(mb.saturating_mul(1 << 20)),
                    None => dir,
                };
                Ok(Some(std::sync::Arc::new(dir)))
            }
            Some(Err(e)) => bail!("qlog directory: {e}"),
        }
    }

    /// `transport` with qlog on when asked for.
    pub fn apply(
        &self,
        mut transport: quiver::TransportConfig,
    ) -> anyhow::Result<quiver::TransportConfig> {
        if let Some(factory) = self.factory()? {
            transport.qlog = Some(factory);
        }
        Ok(transport)
    }
}
