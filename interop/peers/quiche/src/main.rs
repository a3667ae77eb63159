//! `quiche-peer`: an HTTP/0.9 (ALPN `hq-interop`) and HTTP/3 (ALPN `h3`,
//! quiche's own `quiche::h3`; `h3.rs`) client and server on Cloudflare's
//! quiche, an implementation independent of quiver, for
//! `interop/external/quiche.sh`. quiche is sans-IO: a std UdpSocket, its
//! read timeout taken from `conn.timeout()`, drives it.
//!
//!   quiche-peer client --ca CERT.pem --out DIR [--timeout SECS] [--h3]
//!       [--cipher chacha20] [--resume | --0rtt] [--key-update] URL...
//!   quiche-peer server --listen ADDR --root DIR --cert CERT.pem
//!       --key KEY.pem [--retry]
//!
//! The client speaks HTTP/0.9, or HTTP/3 with `--h3`; the server offers
//! both ALPNs and answers each connection in the one it negotiated.
//!
//! The client fetches every URL on one connection (with --resume or
//! --0rtt: the first URL, then the others on a second connection that
//! resumes the first one's session, its requests in 0-RTT with --0rtt),
//! saves each as DIR/basename and prints one line: `ok N files in T s`
//! (with --resume/--0rtt followed by `resumed R1,R2 0rtt A`, 1/0 each),
//! `reset PATH CODE` or `failed: REASON`; it exits non-zero unless ok.
//! The server answers each `GET /path` with the file's bytes and FIN, or
//! resets the stream (code 0x10) when there is no such file; it logs a
//! line per connection, request and Retry on stderr.
//!
//! What quiche does not offer: choosing TLS 1.3 cipher suites (BoringSSL
//! has no API for it; --cipher chacha20 re-runs the client with AES-NI
//! masked through OPENSSL_ia32cap, so BoringSSL offers ChaCha20-Poly1305
//! first), starting a key update (it answers the peer's), and ECN.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

mod h3;

const ALPN: &[u8] = b"hq-interop";
const MAX_DATAGRAM: usize = 1350;
/// The stream reset code for a file that is not there.
const RESET_NOT_FOUND: u64 = 0x10;
/// BoringSSL's ssl_early_data_accepted, from `early_data_reason()`.
const EARLY_DATA_ACCEPTED: u32 = 2;
/// Masks AES-NI (CPUID.1:ECX bit 25, bit 57 of BoringSSL's first word).
const NO_AESNI: &str = "~0x200000000000000";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("client") => client(&args[1..]),
        Some("server") => server(&args[1..]).map(|()| String::new()),
        _ => Err("usage: quiche-peer client|server ...".into()),
    };
    match result {
        Ok(line) => {
            if !line.is_empty() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(line) => {
            println!("{line}");
            ExitCode::FAILURE
        }
    }
}

/// `--flag value` and `--switch` options, then the positional arguments.
struct Opts {
    values: HashMap<String, String>,
    switches: Vec<String>,
    rest: Vec<String>,
}

impl Opts {
    fn parse(args: &[String], switches: &[&str]) -> Result<Self, String> {
        let mut o = Opts {
            values: HashMap::new(),
            switches: Vec::new(),
            rest: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if switches.contains(&a.as_str()) {
                o.switches.push(a.clone());
            } else if let Some(name) = a.strip_prefix("--") {
                let v = it.next().ok_or(format!("failed: --{name} needs a value"))?;
                o.values.insert(name.to_owned(), v.clone());
            } else {
                o.rest.push(a.clone());
            }
        }
        Ok(o)
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
    fn need(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or(format!("failed: --{name} is required"))
    }
    fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0; N];
    SystemRandom::new().fill(&mut b).expect("no randomness");
    b
}

/// Waits up to `timeout` (forever with None) for a datagram, then takes
/// what else is queued (at most 64 in all), handing each to `f`.
fn recv_batch(
    sock: &UdpSocket,
    timeout: Option<Duration>,
    buf: &mut [u8],
    mut f: impl FnMut(&mut [u8], SocketAddr),
) -> std::io::Result<()> {
    match timeout {
        Some(t) if t < Duration::from_millis(1) => sock.set_nonblocking(true)?,
        t => sock.set_read_timeout(t)?,
    }
    for _ in 0..64 {
        match sock.recv_from(buf) {
            Ok((n, from)) => f(&mut buf[..n], from),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => {
                sock.set_nonblocking(false)?;
                return Err(e);
            }
        }
        sock.set_nonblocking(true)?;
    }
    sock.set_nonblocking(false)
}

/// Ends a connection whose work is done, with a transport-level NO_ERROR
/// CONNECTION_CLOSE rather than an application close.
///
/// quiche 0.24 loops on an application close made before its handshake is
/// confirmed while its Handshake space still owes a probe: it writes no
/// CONNECTION_CLOSE into Handshake packets (RFC 9000 §10.2.3 wants it
/// turned into APPLICATION_ERROR there) and so never starts its closing
/// period, and `send()` hands out empty-of-close Handshake packets without
/// end. Seen in the handshakeloss case (30% loss): HANDSHAKE_DONE lost,
/// the response received, and the client sent 150,000 Handshake packets a
/// second until `timeout` killed it. A transport close goes into the
/// Handshake packet and starts the closing period.
fn close_done(conn: &mut quiche::Connection) {
    conn.close(false, 0x0, b"done").ok();
}

/// Most datagrams one `flush` sends: a guard against a `send()` that never
/// says Done (see `close_done`).
const FLUSH_MAX: usize = 512;

/// Sends what quiche has to send (the socket blocks when full), at most
/// [`FLUSH_MAX`] datagrams.
fn flush(sock: &UdpSocket, conn: &mut quiche::Connection) {
    let mut out = [0; MAX_DATAGRAM];
    for _ in 0..FLUSH_MAX {
        match conn.send(&mut out) {
            Ok((n, info)) => {
                if let Err(e) = sock.send_to(&out[..n], info.to) {
                    eprintln!("send: {e}");
                }
            }
            Err(quiche::Error::Done) => return,
            Err(e) => {
                eprintln!("quiche send: {e}");
                conn.close(false, 0x1, b"send failed").ok();
                return;
            }
        }
    }
}

/// With SSLKEYLOGFILE set, appends the connection's TLS secrets there.
fn keylog(conn: &mut quiche::Connection) {
    if let Some(path) = std::env::var_os("SSLKEYLOGFILE") {
        if let Ok(f) = File::options().create(true).append(true).open(path) {
            conn.set_keylog(Box::new(f));
        }
    }
}

fn expire(conn: &mut quiche::Connection) {
    if conn.timeout() == Some(Duration::ZERO) {
        conn.on_timeout();
    }
}

fn describe_close(conn: &quiche::Connection) -> String {
    let err = conn
        .peer_error()
        .map(|e| ("by peer", e))
        .or(conn.local_error().map(|e| ("locally", e)));
    match err {
        Some((who, e)) => format!(
            "connection closed {who}: {}{:#x} \"{}\"",
            if e.is_app { "application error " } else { "" },
            e.error_code,
            String::from_utf8_lossy(&e.reason)
        ),
        None if conn.is_timed_out() => "idle timeout".into(),
        None => "connection closed".into(),
    }
}

// ---------------------------------------------------------------- client

struct Fetch {
    path: String,
    file: PathBuf,
    out: Option<File>,
    done: bool,
}

impl Fetch {
    /// Appends response bytes to the file (made at the first bytes).
    fn append(&mut self, data: &[u8]) -> Result<(), String> {
        if self.out.is_none() {
            self.out = Some(
                File::create(&self.file)
                    .map_err(|e| format!("failed: {}: {e}", self.file.display()))?,
            );
        }
        self.out
            .as_mut()
            .unwrap()
            .write_all(data)
            .map_err(|e| format!("failed: write: {e}"))
    }

    /// The response is whole: closes the file (an empty one is made).
    fn finish(&mut self) -> Result<(), String> {
        self.append(&[])?;
        self.out.take();
        self.done = true;
        Ok(())
    }
}

/// What a client speaks on its streams: HTTP/0.9 ([`Hq`]) or HTTP/3
/// (`h3::Client`).
trait Requester {
    /// Sends the requests for `fetches[next..]` that the connection takes
    /// now; returns the index of the first one not sent.
    fn request(
        &mut self,
        conn: &mut quiche::Connection,
        fetches: &mut [Fetch],
        next: usize,
    ) -> Result<usize, String>;

    /// Saves what arrived of the answers; returns how many finished.
    fn receive(
        &mut self,
        conn: &mut quiche::Connection,
        fetches: &mut [Fetch],
        buf: &mut [u8],
    ) -> Result<usize, String>;
}

/// HTTP/0.9: `GET /path` and FIN on a stream; the answer is the stream.
#[derive(Default)]
struct Hq {
    /// Request stream → index into the fetches.
    streams: HashMap<u64, usize>,
    next_stream: u64,
}

impl Requester for Hq {
    fn request(
        &mut self,
        conn: &mut quiche::Connection,
        fetches: &mut [Fetch],
        mut next: usize,
    ) -> Result<usize, String> {
        while next < fetches.len() && conn.peer_streams_left_bidi() > 0 {
            let req = format!("GET {}\r\n", fetches[next].path);
            match conn.stream_send(self.next_stream, req.as_bytes(), true) {
                Ok(n) if n == req.len() => {}
                Ok(_) | Err(quiche::Error::Done) => break, // no credit yet: retried
                Err(e) => return Err(format!("failed: request {}: {e}", fetches[next].path)),
            }
            self.streams.insert(self.next_stream, next);
            next += 1;
            self.next_stream += 4;
        }
        Ok(next)
    }

    fn receive(
        &mut self,
        conn: &mut quiche::Connection,
        fetches: &mut [Fetch],
        buf: &mut [u8],
    ) -> Result<usize, String> {
        let mut finished = 0;
        for s in conn.readable() {
            let Some(&i) = self.streams.get(&s) else {
                continue;
            };
            let f = &mut fetches[i];
            loop {
                match conn.stream_recv(s, buf) {
                    Ok((n, fin)) => {
                        f.append(&buf[..n])?;
                        if fin {
                            f.finish()?;
                            finished += 1;
                            break;
                        }
                    }
                    Err(quiche::Error::Done) => break,
                    Err(quiche::Error::StreamReset(code)) => {
                        return Err(format!("reset {} {code:#x}", f.path))
                    }
                    Err(e) => return Err(format!("failed: {}: {e}", f.path)),
                }
            }
        }
        Ok(finished)
    }
}

/// What one connection ended with.
struct Outcome {
    resumed: bool,
    early_accepted: bool,
    session: Option<Vec<u8>>,
}

fn client(args: &[String]) -> Result<String, String> {
    let o = Opts::parse(args, &["--resume", "--0rtt", "--key-update", "--h3"])?;
    if o.has("--key-update") {
        return Err(
            "failed: quiche has no API to start a key update (it only answers the peer's)".into(),
        );
    }
    match o.get("cipher") {
        None => {}
        Some("chacha20") if std::env::var_os("OPENSSL_ia32cap").is_none() => {
            // BoringSSL reads the CPU features once, at its first use:
            // run again with AES-NI masked, and it offers ChaCha20 first.
            let exe = std::env::current_exe().map_err(|e| format!("failed: {e}"))?;
            let out = Command::new(exe)
                .arg("client")
                .args(args)
                .env("OPENSSL_ia32cap", NO_AESNI)
                .output()
                .map_err(|e| format!("failed: {e}"))?;
            std::io::stderr().write_all(&out.stderr).ok();
            let line = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
            return if out.status.success() {
                Ok(line)
            } else {
                Err(line)
            };
        }
        Some("chacha20") => {}
        Some(other) => return Err(format!("failed: unknown cipher {other} (only chacha20)")),
    }
    let ca = o.need("ca")?;
    let dir = PathBuf::from(o.get("out").unwrap_or("."));
    let timeout: f64 = o
        .get("timeout")
        .unwrap_or("10")
        .parse()
        .map_err(|_| "failed: bad --timeout")?;
    let (resume, zero_rtt) = (o.has("--resume"), o.has("--0rtt"));
    if o.rest.is_empty() || ((resume || zero_rtt) && o.rest.len() < 2) {
        return Err("failed: no URLs (--resume/--0rtt need two or more)".into());
    }

    // https://HOST:PORT/PATH, all of one server.
    let mut server: Option<(String, u16)> = None;
    let mut fetches = Vec::new();
    for url in &o.rest {
        let rest = url
            .strip_prefix("https://")
            .ok_or(format!("failed: not an https URL: {url}"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse()
                    .map_err(|_| format!("failed: bad port in {url}"))?,
            ),
            None => (authority.to_owned(), 443),
        };
        if server.get_or_insert((host.clone(), port)) != &(host, port) {
            return Err("failed: all URLs must name one server".into());
        }
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        };
        let name = path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("index.html");
        fetches.push(Fetch {
            file: dir.join(name),
            path,
            out: None,
            done: false,
        });
    }
    let (host, port) = server.unwrap();
    let peer = if host == "localhost" {
        SocketAddr::from(([127, 0, 0, 1], port))
    } else {
        (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or(format!("failed: cannot resolve {host}"))?
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("failed: {}: {e}", dir.display()))?;

    let mut config =
        quiche::Config::new(quiche::PROTOCOL_VERSION).map_err(|e| format!("failed: {e}"))?;
    config.verify_peer(true);
    config
        .load_verify_locations_from_file(ca)
        .map_err(|e| format!("failed: --ca {ca}: {e}"))?;
    let http3 = o.has("--h3");
    let alpn = if http3 { h3::ALPN } else { ALPN };
    config.set_application_protos(&[alpn]).unwrap();
    config.set_max_idle_timeout((timeout * 1000.0) as u64);
    config.set_max_recv_udp_payload_size(MAX_DATAGRAM);
    config.set_max_send_udp_payload_size(MAX_DATAGRAM);
    config.set_initial_max_data(64 << 20);
    config.set_initial_max_stream_data_bidi_local(16 << 20);
    config.set_max_connection_window(64 << 20);
    config.set_max_stream_window(16 << 20);
    // HTTP/3's control and QPACK streams, from the server.
    config.set_initial_max_streams_uni(3);
    config.set_initial_max_stream_data_uni(1 << 20);
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        config.log_keys();
    }
    if zero_rtt {
        config.enable_early_data();
    }

    let start = Instant::now();
    let batches = if resume || zero_rtt {
        vec![0..1, 1..fetches.len()]
    } else {
        vec![0..fetches.len()]
    };
    let mut session = None;
    let mut outcomes = Vec::new();
    for (n, batch) in batches.iter().enumerate() {
        let want_ticket = n + 1 < batches.len();
        let mut requester: Box<dyn Requester> = if http3 {
            Box::new(h3::Client::new(&host))
        } else {
            Box::<Hq>::default()
        };
        let outcome = connection(
            &mut config,
            (&host, peer),
            &mut *requester,
            &mut fetches[batch.clone()],
            session.take(),
            want_ticket,
        )?;
        if want_ticket && outcome.session.is_none() {
            return Err("failed: no session ticket from the first connection".into());
        }
        session = outcome.session.clone();
        outcomes.push(outcome);
    }
    let mut line = format!(
        "ok {} files in {:.3} s",
        fetches.len(),
        start.elapsed().as_secs_f64()
    );
    if resume || zero_rtt {
        let r: Vec<&str> = outcomes
            .iter()
            .map(|o| if o.resumed { "1" } else { "0" })
            .collect();
        line += &format!(" resumed {}", r.join(","));
        if zero_rtt {
            line += if outcomes[1].early_accepted {
                " 0rtt 1"
            } else {
                " 0rtt 0"
            };
        }
    }
    Ok(line)
}

/// One connection fetching `fetches`, resuming `session` if given (and
/// sending its requests in 0-RTT when the config allows early data).
fn connection(
    config: &mut quiche::Config,
    (host, peer): (&str, SocketAddr),
    requester: &mut dyn Requester,
    fetches: &mut [Fetch],
    session: Option<Vec<u8>>,
    want_ticket: bool,
) -> Result<Outcome, String> {
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .unwrap();
    let sock = UdpSocket::bind(bind).map_err(|e| format!("failed: bind: {e}"))?;
    let local = sock.local_addr().unwrap();
    let scid = random::<16>();
    let scid = quiche::ConnectionId::from_ref(&scid);
    let mut conn = quiche::connect(Some(host), &scid, local, peer, config)
        .map_err(|e| format!("failed: {e}"))?;
    if let Some(s) = &session {
        conn.set_session(s)
            .map_err(|e| format!("failed: set_session: {e}"))?;
    }
    keylog(&mut conn);
    let result = fetch(&sock, &mut conn, requester, fetches, want_ticket);
    if result.is_err() && !conn.is_closed() {
        // Tell the server (a reset or a write error, say), then go.
        conn.close(false, 0x1, b"giving up").ok(); // transport-level: see close_done
        flush(&sock, &mut conn);
    }
    result?;
    Ok(Outcome {
        resumed: conn.is_resumed(),
        early_accepted: conn.early_data_reason() == EARLY_DATA_ACCEPTED,
        session: conn.session().map(<[u8]>::to_vec),
    })
}

/// Drives `conn` until every file is saved and the connection closed.
fn fetch(
    sock: &UdpSocket,
    conn: &mut quiche::Connection,
    requester: &mut dyn Requester,
    fetches: &mut [Fetch],
    want_ticket: bool,
) -> Result<(), String> {
    let local = sock.local_addr().unwrap();
    let (mut next, mut done) = (0, 0);
    let mut closing_since: Option<Instant> = None;
    let mut buf = vec![0; 65535];
    flush(sock, conn);
    loop {
        // Requests, as the server's stream limit allows (in 0-RTT when
        // the connection is in early data).
        if conn.is_established() || conn.is_in_early_data() {
            next = requester.request(conn, fetches, next)?;
        }
        // Done: wait (a little) for a session ticket when one is wanted.
        if done == fetches.len() && !conn.is_closed() && !conn.is_draining() {
            let since = *closing_since.get_or_insert_with(Instant::now);
            if !want_ticket || conn.session().is_some() || since.elapsed() > Duration::from_secs(2)
            {
                close_done(conn);
            }
        }
        flush(sock, conn);
        if conn.is_closed() {
            break;
        }
        let mut wait = conn.timeout();
        if closing_since.is_some() && want_ticket {
            wait = Some(wait.map_or(Duration::from_millis(50), |w| {
                w.min(Duration::from_millis(50))
            }));
        }
        recv_batch(sock, wait, &mut buf, |pkt, from| {
            if let Err(e) = conn.recv(pkt, quiche::RecvInfo { from, to: local }) {
                eprintln!("quiche recv: {e}");
            }
        })
        .map_err(|e| format!("failed: recv: {e}"))?;
        expire(conn);
        done += requester.receive(conn, fetches, &mut buf)?;
    }
    if done < fetches.len() {
        let missing = fetches.iter().filter(|f| !f.done).count();
        return Err(format!(
            "failed: {} ({missing} of {} files missing)",
            describe_close(conn),
            fetches.len()
        ));
    }
    if conn.peer_error().is_some_and(|e| e.error_code != 0) {
        return Err(format!("failed: {}", describe_close(conn)));
    }
    Ok(())
}

// ---------------------------------------------------------------- server

/// A request stream: the request line as it arrives, then the answer.
#[derive(Default)]
struct Request {
    line: Vec<u8>,
    body: Option<Vec<u8>>,
    sent: usize,
    /// Answered whole, or reset.
    over: bool,
}

struct Peer {
    conn: quiche::Connection,
    from: SocketAddr,
    requests: HashMap<u64, Request>,
    logged: bool,
    /// The HTTP/3 connection, on a connection that negotiated `h3`.
    h3: Option<quiche::h3::Connection>,
}

fn server(args: &[String]) -> Result<(), String> {
    let o = Opts::parse(args, &["--retry"])?;
    let listen: SocketAddr = o
        .need("listen")?
        .parse()
        .map_err(|_| "failed: bad --listen")?;
    let root = Path::new(o.need("root")?)
        .canonicalize()
        .map_err(|e| format!("failed: --root: {e}"))?;
    let retry = o.has("--retry");
    let mut config =
        quiche::Config::new(quiche::PROTOCOL_VERSION).map_err(|e| format!("failed: {e}"))?;
    config
        .load_cert_chain_from_pem_file(o.need("cert")?)
        .map_err(|e| format!("failed: --cert: {e}"))?;
    config
        .load_priv_key_from_pem_file(o.need("key")?)
        .map_err(|e| format!("failed: --key: {e}"))?;
    config.set_application_protos(&[ALPN, h3::ALPN]).unwrap();
    config.set_max_idle_timeout(30_000);
    config.set_max_recv_udp_payload_size(MAX_DATAGRAM);
    config.set_max_send_udp_payload_size(MAX_DATAGRAM);
    config.set_initial_max_data(1 << 20);
    config.set_initial_max_stream_data_bidi_remote(64 << 10);
    config.set_initial_max_streams_bidi(100);
    // An HTTP/3 client's control and QPACK streams.
    config.set_initial_max_streams_uni(8);
    config.set_initial_max_stream_data_uni(1 << 20);
    config.set_disable_active_migration(true);
    config.enable_early_data();
    config
        .set_ticket_key(&random::<48>())
        .map_err(|e| format!("failed: ticket key: {e}"))?;
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        config.log_keys();
    }
    // Connection IDs are derived from the client's first one, so its
    // retransmitted Initials and 0-RTT packets find the connection; the
    // same key authenticates Retry tokens.
    let key = hmac::Key::new(hmac::HMAC_SHA256, &random::<32>());

    let sock = UdpSocket::bind(listen).map_err(|e| format!("failed: bind {listen}: {e}"))?;
    let local = sock.local_addr().unwrap();
    println!("listening on {local}, serving {}", root.display());
    std::io::stdout().flush().ok();
    let mut peers: HashMap<Vec<u8>, Peer> = HashMap::new();
    let mut buf = vec![0; 65535];
    let mut out = [0; MAX_DATAGRAM];
    loop {
        let wait = peers.values().filter_map(|p| p.conn.timeout()).min();
        recv_batch(&sock, wait, &mut buf, |pkt, from| {
            let Ok(hdr) = quiche::Header::from_slice(pkt, quiche::MAX_CONN_ID_LEN) else {
                return;
            };
            let derived = hmac::sign(&key, &hdr.dcid).as_ref()[..quiche::MAX_CONN_ID_LEN].to_vec();
            let id = if peers.contains_key(hdr.dcid.as_ref()) {
                hdr.dcid.to_vec()
            } else {
                derived.clone()
            };
            if !peers.contains_key(&id) {
                if hdr.ty != quiche::Type::Initial {
                    return;
                }
                if !quiche::version_is_supported(hdr.version) {
                    if let Ok(n) = quiche::negotiate_version(&hdr.scid, &hdr.dcid, &mut out) {
                        sock.send_to(&out[..n], from).ok();
                    }
                    return;
                }
                let token = hdr.token.as_deref().unwrap_or_default();
                let (scid, odcid) = if !retry {
                    (derived, None)
                } else if token.is_empty() {
                    let new_token = mint_token(&key, &from, &hdr.dcid);
                    let scid = quiche::ConnectionId::from_ref(&derived);
                    if let Ok(n) = quiche::retry(
                        &hdr.scid,
                        &hdr.dcid,
                        &scid,
                        &new_token,
                        hdr.version,
                        &mut out,
                    ) {
                        eprintln!("{from}: retry");
                        sock.send_to(&out[..n], from).ok();
                    }
                    return;
                } else {
                    match validate_token(&key, &from, token) {
                        // The Retry's connection ID, kept.
                        Some(odcid) => (hdr.dcid.to_vec(), Some(odcid)),
                        None => {
                            eprintln!("{from}: invalid token, dropped");
                            return;
                        }
                    }
                };
                let odcid = odcid.map(quiche::ConnectionId::from_vec);
                let mut conn = match quiche::accept(
                    &quiche::ConnectionId::from_ref(&scid),
                    odcid.as_ref(),
                    local,
                    from,
                    &mut config,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("{from}: accept: {e}");
                        return;
                    }
                };
                keylog(&mut conn);
                eprintln!("{from}: connection attempt");
                peers.insert(
                    scid.clone(),
                    Peer {
                        conn,
                        from,
                        requests: HashMap::new(),
                        logged: false,
                        h3: None,
                    },
                );
                return recv_into(peers.get_mut(&scid).unwrap(), pkt, from, local);
            }
            recv_into(peers.get_mut(&id).unwrap(), pkt, from, local);
        })
        .map_err(|e| format!("failed: recv: {e}"))?;

        for p in peers.values_mut() {
            expire(&mut p.conn);
            if p.conn.is_established() && !p.logged {
                p.logged = true;
                let kind = match (
                    p.conn.is_resumed(),
                    p.conn.early_data_reason() == EARLY_DATA_ACCEPTED,
                ) {
                    (true, true) => "resumed, 0-RTT accepted",
                    (true, false) => "resumed",
                    _ => "full handshake",
                };
                eprintln!("{}: connected ({kind})", p.from);
            }
            if p.conn.is_established() || p.conn.is_in_early_data() {
                if p.conn.application_proto() == h3::ALPN {
                    h3::serve(p, &root);
                } else {
                    serve_streams(p, &root);
                }
            }
            flush(&sock, &mut p.conn);
        }
        peers.retain(|_, p| {
            if p.conn.is_closed() {
                eprintln!("closed: {}", describe_close(&p.conn));
            }
            !p.conn.is_closed()
        });
    }
}

fn recv_into(p: &mut Peer, pkt: &mut [u8], from: SocketAddr, to: SocketAddr) {
    if let Err(e) = p.conn.recv(pkt, quiche::RecvInfo { from, to }) {
        eprintln!("{from}: quiche recv: {e}");
    }
}

/// Reads requests and writes answers as flow control allows.
fn serve_streams(p: &mut Peer, root: &Path) {
    let conn = &mut p.conn;
    let mut buf = [0; 4096];
    for s in conn.readable() {
        let req = p.requests.entry(s).or_default();
        let mut fin = false;
        loop {
            match conn.stream_recv(s, &mut buf) {
                Ok((n, f)) => {
                    fin |= f;
                    if req.line.len() < 8192 {
                        req.line.extend_from_slice(&buf[..n]);
                    }
                }
                Err(quiche::Error::Done) => break,
                Err(_) => {
                    // Reset by the client.
                    req.over = true;
                    break;
                }
            }
        }
        if req.over || req.body.is_some() || !(fin || req.line.contains(&b'\n')) {
            continue;
        }
        let line = String::from_utf8_lossy(&req.line)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        let path = line.strip_prefix("GET ").map(str::trim).unwrap_or("");
        match resolve(root, path).and_then(|f| std::fs::read(f).ok()) {
            Some(body) => {
                eprintln!("GET {path}: {} bytes", body.len());
                req.body = Some(body);
            }
            None => {
                eprintln!("GET {path}: not found");
                conn.stream_shutdown(s, quiche::Shutdown::Write, RESET_NOT_FOUND)
                    .ok();
                req.over = true;
            }
        }
    }
    // Answers: whatever the stream's credit takes now, the rest later.
    for (&s, req) in p.requests.iter_mut().filter(|(_, r)| !r.over) {
        let Some(body) = &req.body else { continue };
        match conn.stream_send(s, &body[req.sent..], true) {
            Ok(n) => req.sent += n,
            Err(quiche::Error::Done) => continue,
            Err(_) => req.sent = body.len(), // reset or stopped: given up
        }
        if req.sent == body.len() {
            req.over = true;
            req.body = None;
        }
    }
}

/// The file under `root` that `target` (`/a/b`) names, if any: no `..`,
/// and nothing that leads outside `root` through a link.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let rel = target.strip_prefix('/')?;
    let mut path = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let path = path.canonicalize().ok()?;
    (path.starts_with(root) && path.is_file()).then_some(path)
}

/// A Retry token: HMAC(address, time, original DCID) ‖ time ‖ DCID.
fn mint_token(key: &hmac::Key, from: &SocketAddr, odcid: &[u8]) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_be_bytes();
    let tag = hmac::sign(key, &[from.to_string().as_bytes(), &now, odcid].concat());
    [tag.as_ref(), &now, odcid].concat()
}

/// The original DCID of a token this server minted for `from` in the
/// last 30 seconds.
fn validate_token(key: &hmac::Key, from: &SocketAddr, token: &[u8]) -> Option<Vec<u8>> {
    if token.len() < 32 + 8 {
        return None;
    }
    let (tag, rest) = token.split_at(32);
    let (time, odcid) = rest.split_at(8);
    hmac::verify(
        key,
        &[from.to_string().as_bytes(), time, odcid].concat(),
        tag,
    )
    .ok()?;
    let minted = u64::from_be_bytes(time.try_into().ok()?);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    (now.saturating_sub(minted) <= 30).then(|| odcid.to_vec())
}
