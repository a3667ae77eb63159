//! An HTTP/0.9 (ALPN hq-interop) client and server on AWS's s2n-quic, an
//! independent QUIC implementation, to run against `quiver serve` and
//! `quiver get` (interop/external/s2n.sh).
//!
//! s2n-peer client --ca CERT.pem --out DIR [--timeout SECS] [OPTIONS] URL...
//!   Fetches every URL (`https://HOST:PORT/PATH`; localhost is 127.0.0.1)
//!   over one connection, one bidirectional stream each, all at once, and
//!   saves each file as DIR/BASENAME. --timeout (default 10) is the idle
//!   timeout and the handshake's limit; the whole run gets three times
//!   it. Prints one line on stdout:
//!   `ok N files in T s`, `reset PATH CODE` (a stream was reset) or
//!   `failed: REASON`; exits non-zero unless every file arrived.
//!
//! s2n-peer server --listen ADDR --root DIR --cert CERT.pem --key KEY.pem [OPTIONS]
//!   Answers `GET /PATH\r\n` with the file under DIR and FIN, or resets
//!   the stream with 0x10 when there is no such file. Runs until killed.
//!
//! Options of both:
//!   --cipher LIST     TLS 1.3 suites offered/accepted, comma separated:
//!                     aes128gcm, aes256gcm, chacha20 (default: all three)
//!   --key-update N    start a 1-RTT key update after every N packets sent
//!                     under one key (see `limited` below)
//!   --keylog          log TLS secrets to the file named by SSLKEYLOGFILE
//!   -v                log connection events on stderr: the negotiated
//!                     suite, key updates, Retry, ECN, path changes, closes
//! Environment: S2N_TRACE=1 logs every frame sent and received, with its
//!   packet number and time, on stderr (how the ACK timing in
//!   interop/external/impaired.sh was measured).
//! Server only:
//!   --retry           answer every new connection attempt with a Retry
//!
//! What s2n-quic (1.91, with its rustls TLS provider) does not do, so there
//! are no options for it: session resumption and 0-RTT (the rustls
//! provider drops NewSessionTicket messages, and s2n-quic ignores 0-RTT
//! packets), a preferred address (neither offered as a server nor followed
//! as a client), active migration by the client, and QUIC v2. It follows
//! a client that moves (the server validates the new path, `-v` logs it).
//! It answers a peer's key update; it starts one of its own only near the
//! AEAD confidentiality limit, which --key-update lowers.

use bytes::Bytes;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CipherSuiteCommon, SupportedCipherSuite, Tls13CipherSuite};
use s2n_quic::provider::endpoint_limits::{ConnectionAttempt, Limiter, Outcome};
use s2n_quic::provider::event::{events, ConnectionInfo, ConnectionMeta, Subscriber};
use s2n_quic::provider::limits::Limits;
use s2n_quic::stream::{BidirectionalStream, Error as StreamError};
use s2n_quic::{client::Connect, Client, Server};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ALPN: &[u8] = b"hq-interop";
/// The stream error code of a missing file (as aioquic_peer.py's).
const NOT_FOUND: u32 = 0x10;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Default)]
struct Opts {
    ca: Option<String>,
    out: Option<String>,
    timeout: Option<u64>,
    listen: Option<String>,
    root: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    cipher: Option<String>,
    key_update: Option<u64>,
    retry: bool,
    keylog: bool,
    verbose: bool,
    urls: Vec<String>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--ca" => o.ca = Some(val()?),
            "--out" => o.out = Some(val()?),
            "--timeout" => o.timeout = Some(val()?.parse().map_err(|_| "bad --timeout")?),
            "--listen" => o.listen = Some(val()?),
            "--root" => o.root = Some(val()?),
            "--cert" => o.cert = Some(val()?),
            "--key" => o.key = Some(val()?),
            "--cipher" => o.cipher = Some(val()?),
            "--key-update" => o.key_update = Some(val()?.parse().map_err(|_| "bad --key-update")?),
            "--retry" => o.retry = true,
            "--keylog" => o.keylog = true,
            "-v" | "--verbose" => o.verbose = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            url => o.urls.push(url.to_string()),
        }
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = match args.first().map(String::as_str) {
        Some("client") => match parse(&args[1..]) {
            Ok(o) => rt.block_on(client(o)),
            Err(e) => usage(&e),
        },
        Some("server") => match parse(&args[1..]) {
            Ok(o) => match rt.block_on(server(o)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("server: {e}");
                    1
                }
            },
            Err(e) => usage(&e),
        },
        _ => usage("client or server?"),
    };
    std::process::exit(code);
}

fn usage(e: &str) -> i32 {
    eprintln!("{e}\nusage: s2n-peer client --ca CERT --out DIR [--timeout S] [OPTIONS] URL...");
    eprintln!(
        "       s2n-peer server --listen ADDR --root DIR --cert CERT --key KEY [--retry] [OPTIONS]"
    );
    eprintln!("options: --cipher aes128gcm,aes256gcm,chacha20  --key-update N  --keylog  -v");
    2
}

/// s2n-quic starts a key update when the packets sent under the current
/// key come within KEY_UPDATE_WINDOW (10,000, s2n-quic-core's
/// `crypto::application::limited`) of the suite's AEAD confidentiality
/// limit (2^23 packets for AES-GCM). It has no switch for it, but the
/// rustls provider takes the limit from rustls' QUIC packet key, so a
/// suite whose keys report `10_000 + N` updates after every N packets.
///
/// Keep the updates more than a PTO apart. s2n-quic derives the keys of
/// the next phase only when a timer of about a PTO fires after an update
/// (`KeySet::derive_and_store_next_key` in s2n-quic-core's
/// `crypto::application::keyset`); an update it starts before that goes
/// out with the next phase bit but under the keys of two phases ago,
/// which an RFC 9001 peer cannot open (§6.4: "Packets with higher packet
/// numbers MUST be protected with either the same or newer packet
/// protection keys"). Two s2n-quic endpoints do not notice (both sides
/// hold the same stale keys); quiver drops those packets until the timer
/// has fired and a PTO probe arrives under the right keys. With the real
/// limit (about 8 million packets) this cannot happen.
mod limited {
    use rustls::crypto::cipher::{AeadKey, Iv};
    use rustls::quic::{Algorithm, HeaderProtectionKey, PacketKey, Tag};

    pub const WINDOW: u64 = 10_000;

    pub struct Alg(pub &'static dyn Algorithm, pub u64);
    struct Key(Box<dyn PacketKey>, u64);

    impl Algorithm for Alg {
        fn packet_key(&self, key: AeadKey, iv: Iv) -> Box<dyn PacketKey> {
            Box::new(Key(self.0.packet_key(key, iv), self.1))
        }
        fn header_protection_key(&self, key: AeadKey) -> Box<dyn HeaderProtectionKey> {
            self.0.header_protection_key(key)
        }
        fn aead_key_len(&self) -> usize {
            self.0.aead_key_len()
        }
    }

    impl PacketKey for Key {
        fn encrypt_in_place(
            &self,
            pn: u64,
            header: &[u8],
            payload: &mut [u8],
        ) -> Result<Tag, rustls::Error> {
            self.0.encrypt_in_place(pn, header, payload)
        }
        fn decrypt_in_place<'a>(
            &self,
            pn: u64,
            header: &[u8],
            payload: &'a mut [u8],
        ) -> Result<&'a [u8], rustls::Error> {
            self.0.decrypt_in_place(pn, header, payload)
        }
        fn tag_len(&self) -> usize {
            self.0.tag_len()
        }
        fn confidentiality_limit(&self) -> u64 {
            self.1.min(self.0.confidentiality_limit())
        }
        fn integrity_limit(&self) -> u64 {
            self.0.integrity_limit()
        }
    }
}

/// aws-lc-rs with only the TLS 1.3 suites of --cipher, their QUIC keys
/// limited when --key-update is given.
fn crypto(o: &Opts) -> Result<Arc<CryptoProvider>, Error> {
    use aws_lc_rs::cipher_suite as cs;
    let names = o
        .cipher
        .as_deref()
        .unwrap_or("aes128gcm,aes256gcm,chacha20");
    let mut suites = vec![];
    for name in names.split(',') {
        let suite = match name {
            "aes128gcm" => cs::TLS13_AES_128_GCM_SHA256,
            "aes256gcm" => cs::TLS13_AES_256_GCM_SHA384,
            "chacha20" => cs::TLS13_CHACHA20_POLY1305_SHA256,
            _ => return Err(format!("unknown cipher {name}").into()),
        };
        let (SupportedCipherSuite::Tls13(s), Some(n)) = (suite, o.key_update) else {
            suites.push(suite);
            continue;
        };
        let quic: &'static limited::Alg = Box::leak(Box::new(limited::Alg(
            s.quic.unwrap(),
            limited::WINDOW + n.max(1),
        )));
        let s: &'static Tls13CipherSuite = Box::leak(Box::new(Tls13CipherSuite {
            common: CipherSuiteCommon {
                suite: s.common.suite,
                hash_provider: s.common.hash_provider,
                confidentiality_limit: s.common.confidentiality_limit,
            },
            hkdf_provider: s.hkdf_provider,
            aead_alg: s.aead_alg,
            quic: Some(quic),
        }));
        suites.push(SupportedCipherSuite::Tls13(s));
    }
    Ok(Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..aws_lc_rs::default_provider()
    }))
}

/// Logs connection events on stderr with -v.
struct Log {
    verbose: bool,
    /// S2N_TRACE is set: every frame is logged.
    trace: bool,
}

macro_rules! log {
    ($self:expr, $meta:expr, $($arg:tt)*) => {
        if $self.verbose {
            eprintln!("[{}] {}", $meta.id, format!($($arg)*));
        }
    };
}

impl Subscriber for Log {
    type ConnectionContext = ();
    fn create_connection_context(&mut self, _: &ConnectionMeta, _: &ConnectionInfo) {}

    fn on_key_update(&mut self, _: &mut (), meta: &ConnectionMeta, e: &events::KeyUpdate) {
        if let events::KeyType::OneRtt { generation, .. } = e.key_type {
            if generation == 0 {
                log!(self, meta, "1-RTT keys, cipher suite {:?}", e.cipher_suite);
            } else {
                log!(self, meta, "key update: generation {generation}");
            }
        }
    }
    fn on_handshake_status_updated(
        &mut self,
        _: &mut (),
        meta: &ConnectionMeta,
        e: &events::HandshakeStatusUpdated,
    ) {
        if let events::HandshakeStatus::Confirmed { .. } = e.status {
            log!(self, meta, "handshake confirmed");
        }
    }
    fn on_frame_sent(&mut self, _: &mut (), meta: &ConnectionMeta, e: &events::FrameSent) {
        if self.trace {
            eprintln!(
                "TRACE {:?} sent {:?} {:?}",
                meta.timestamp, e.packet_header, e.frame
            );
        }
    }
    fn on_frame_received(&mut self, _: &mut (), meta: &ConnectionMeta, e: &events::FrameReceived) {
        if self.trace {
            eprintln!(
                "TRACE {:?} recv {:?} {:?}",
                meta.timestamp, e.packet_header, e.frame
            );
        }
    }
    fn on_packet_received(
        &mut self,
        _: &mut (),
        meta: &ConnectionMeta,
        e: &events::PacketReceived,
    ) {
        if let events::PacketHeader::Retry { .. } = e.packet_header {
            log!(self, meta, "retry received");
        }
    }
    fn on_endpoint_packet_sent(
        &mut self,
        meta: &events::EndpointMeta,
        e: &events::EndpointPacketSent,
    ) {
        if let events::PacketHeader::Retry { .. } = e.packet_header {
            if self.verbose {
                eprintln!("[endpoint] retry sent ({:?})", meta.endpoint_type);
            }
        }
    }
    fn on_ecn_state_changed(
        &mut self,
        _: &mut (),
        meta: &ConnectionMeta,
        e: &events::EcnStateChanged,
    ) {
        log!(self, meta, "ecn state {:?}", e.state);
    }
    fn on_active_path_updated(
        &mut self,
        _: &mut (),
        meta: &ConnectionMeta,
        e: &events::ActivePathUpdated,
    ) {
        log!(
            self,
            meta,
            "active path moved: {} -> {}",
            e.previous.remote_addr,
            e.active.remote_addr
        );
    }
    fn on_connection_migration_denied(
        &mut self,
        _: &mut (),
        meta: &ConnectionMeta,
        e: &events::ConnectionMigrationDenied,
    ) {
        log!(self, meta, "migration denied: {:?}", e.reason);
    }
    fn on_connection_closed(
        &mut self,
        _: &mut (),
        meta: &ConnectionMeta,
        e: &events::ConnectionClosed,
    ) {
        log!(self, meta, "closed: {}", e.error);
    }
}

fn limits(timeout: u64) -> Result<Limits, Error> {
    // Windows large enough for 10 MB at loopback speed; enough streams for
    // 500 files at once.
    Ok(Limits::new()
        .with_max_idle_timeout(Duration::from_secs(timeout))?
        .with_data_window(32 << 20)?
        .with_bidirectional_local_data_window(16 << 20)?
        .with_bidirectional_remote_data_window(16 << 20)?
        .with_max_open_local_bidirectional_streams(1000)?
        .with_max_open_remote_bidirectional_streams(1000)?
        .with_max_send_buffer_size(4 << 20)?
        .with_max_handshake_duration(Duration::from_secs(timeout))?)
}

fn need<'a>(v: &'a Option<String>, what: &str) -> Result<&'a str, Error> {
    v.as_deref()
        .ok_or_else(|| format!("{what} is required").into())
}

// ----- client -----

enum Failure {
    Reset(String, u64),
    Other(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Other(e.to_string())
    }
}

async fn client(o: Opts) -> i32 {
    // A program, not quiver-proto: the root clippy.toml's ban on reading
    // the clock does not apply.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let timeout = o.timeout.unwrap_or(10);
    let result = match tokio::time::timeout(Duration::from_secs(timeout * 3), fetch_all(&o)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Other(format!("timeout after {}s", timeout * 3))),
    };
    match result {
        Ok(n) => {
            println!("ok {n} files in {:.3} s", start.elapsed().as_secs_f64());
            0
        }
        Err(Failure::Reset(path, code)) => {
            println!("reset {path} {code:#x}");
            1
        }
        Err(Failure::Other(e)) => {
            println!("failed: {e}");
            1
        }
    }
}

/// Splits `https://HOST:PORT/PATH` into the server's address, its name,
/// and the path.
fn split_url(url: &str) -> Result<(SocketAddr, String, String), Failure> {
    let rest = url
        .strip_prefix("https://")
        .ok_or(format!("not https: {url}"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "443"));
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let ip = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let addr = SocketAddr::new(
        ip.parse().map_err(|_| format!("bad host {host}"))?,
        port.parse()?,
    );
    let path = if path.is_empty() { "/" } else { path };
    Ok((addr, host.to_string(), path.to_string()))
}

async fn fetch_all(o: &Opts) -> Result<usize, Failure> {
    let ca = need(&o.ca, "--ca")?;
    let out = PathBuf::from(need(&o.out, "--out")?);
    let mut targets = vec![];
    for url in &o.urls {
        targets.push(split_url(url)?);
    }
    let Some((addr, host, _)) = targets.first().cloned() else {
        return Err("no URL".into());
    };
    std::fs::create_dir_all(&out)?;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
        roots.add(cert.map_err(|e| format!("{ca}: {e}"))?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(crypto(o)?)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_fragment_size = None;
    if o.keylog {
        config.key_log = Arc::new(rustls::KeyLogFile::new());
    }
    #[allow(deprecated)]
    let tls = s2n_quic::provider::tls::rustls::Client::new(config);
    let mut client = Client::builder()
        .with_tls(tls)?
        .with_io("0.0.0.0:0")?
        .with_limits(limits(o.timeout.unwrap_or(10))?)?
        .with_event(Log {
            verbose: o.verbose,
            trace: std::env::var_os("S2N_TRACE").is_some(),
        })?
        .start()?;

    let conn = client
        .connect(Connect::new(addr).with_server_name(host.as_str()))
        .await?;
    let mut tasks = vec![];
    for (_, _, path) in targets {
        let handle = conn.handle();
        let out = out.clone();
        tasks.push(tokio::spawn(async move {
            let mut handle = handle;
            let stream = handle.open_bidirectional_stream().await?;
            fetch(stream, &path, &out).await
        }));
    }
    let mut result = Ok(tasks.len());
    for task in tasks {
        let r = task.await.map_err(Failure::from).and_then(|r| r);
        // A reset says more than the failures it causes elsewhere.
        match (&result, r) {
            (Err(Failure::Reset(..)), _) | (_, Ok(())) => {}
            (Err(Failure::Other(_)), Err(Failure::Other(_))) => {}
            (_, Err(e)) => result = Err(e),
        }
    }
    conn.handle().close(0u32.into());
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_millis(500), client.wait_idle()).await;
    result
}

async fn fetch(mut stream: BidirectionalStream, path: &str, out: &Path) -> Result<(), Failure> {
    let reset = |e: StreamError| match e {
        StreamError::StreamReset { error, .. } => {
            Failure::Reset(path.to_string(), u64::from(error))
        }
        e => Failure::Other(format!("{path}: {e}")),
    };
    stream
        .send(Bytes::from(format!("GET {path}\r\n")))
        .await
        .map_err(reset)?;
    stream.finish().map_err(reset)?;
    let mut body = vec![];
    while let Some(chunk) = stream.receive().await.map_err(reset)? {
        body.extend_from_slice(&chunk);
    }
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("index.html");
    std::fs::write(out.join(name), body)?;
    Ok(())
}

// ----- server -----

/// Retry for every attempt without a token (s2n-quic asks only about
/// those) with --retry; otherwise let all in.
struct Gate {
    retry: bool,
}

impl Limiter for Gate {
    fn on_connection_attempt(&mut self, _: &ConnectionAttempt) -> Outcome {
        if self.retry {
            Outcome::retry()
        } else {
            Outcome::allow()
        }
    }
}

async fn server(o: Opts) -> Result<(), Error> {
    let listen = need(&o.listen, "--listen")?;
    let root: Arc<Path> = std::fs::canonicalize(need(&o.root, "--root")?)?.into();
    let (cert, key) = (need(&o.cert, "--cert")?, need(&o.key, "--key")?);
    let certs = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(crypto(&o)?)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_fragment_size = None;
    // The rustls provider cannot deliver tickets (no resumption).
    config.send_tls13_tickets = 0;
    if o.keylog {
        config.key_log = Arc::new(rustls::KeyLogFile::new());
    }
    #[allow(deprecated)]
    let tls = s2n_quic::provider::tls::rustls::Server::new(config);
    let mut server = Server::builder()
        .with_tls(tls)?
        .with_io(listen)?
        .with_limits(limits(o.timeout.unwrap_or(30))?)?
        .with_endpoint_limits(Gate { retry: o.retry })?
        .with_event(Log {
            verbose: o.verbose,
            trace: std::env::var_os("S2N_TRACE").is_some(),
        })?
        .start()?;
    let verbose = o.verbose;
    if verbose {
        eprintln!("listening on {}", server.local_addr()?);
    }
    while let Some(mut conn) = server.accept().await {
        if verbose {
            let from = conn
                .remote_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string());
            eprintln!("[{}] connection from {from}", conn.id());
        }
        let root = root.clone();
        tokio::spawn(async move {
            while let Ok(Some(stream)) = conn.accept_bidirectional_stream().await {
                tokio::spawn(answer(stream, root.clone(), verbose));
            }
        });
    }
    Ok(())
}

/// The file under root named by `GET /PATH`, never one outside it.
fn lookup(root: &Path, request: &[u8]) -> Option<PathBuf> {
    let line = std::str::from_utf8(request).ok()?.lines().next()?;
    let path = line.strip_prefix("GET ")?.trim();
    let rel = Path::new(path.strip_prefix('/')?);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = std::fs::canonicalize(root.join(rel)).ok()?;
    (full.starts_with(root) && full.is_file()).then_some(full)
}

async fn answer(mut stream: BidirectionalStream, root: Arc<Path>, verbose: bool) {
    let mut request = vec![];
    loop {
        match stream.receive().await {
            Ok(Some(chunk)) if request.len() < 8192 => request.extend_from_slice(&chunk),
            Ok(None) => break,
            _ => return,
        }
    }
    let shown = String::from_utf8_lossy(&request).trim_end().to_string();
    let Some(file) = lookup(&root, &request) else {
        if verbose {
            eprintln!("{shown:?}: not found, stream reset {NOT_FOUND:#x}");
        }
        let _ = stream.reset(NOT_FOUND.into());
        return;
    };
    let Ok(data) = tokio::fs::read(&file).await.map(Bytes::from) else {
        let _ = stream.reset(NOT_FOUND.into());
        return;
    };
    if verbose {
        eprintln!("{shown}: {} bytes", data.len());
    }
    for start in (0..data.len()).step_by(64 << 10) {
        if stream
            .send(data.slice(start..data.len().min(start + (64 << 10))))
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = stream.close().await;
}
