//! `quiver serve`: files over HTTP/0.9 (ALPN `hq-interop`), as the QUIC
//! interop runner uses it: the client sends `GET /path\r\n` on a
//! bidirectional stream and finishes it; the server answers with the
//! file's bytes and finishes, or resets the stream when it cannot. The
//! same files are offered over HTTP/3 (ALPN `h3`, `serve_h3.rs`).

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail};
use quiver::{Connecting, Incoming, RecvStream, SendStream, VarInt};

use crate::common::{self, H3_ALPN, Identity, RESET_BAD_REQUEST, RESET_INTERNAL, RESET_NOT_FOUND};
use crate::files::resolve;
use crate::{serve_fleet, serve_h3};

/// The longest request line read.
const MAX_REQUEST: usize = 8 * 1024;
/// Bytes read from a file and written to a stream at once.
const CHUNK: usize = 64 * 1024;

/// Serve files over HTTP/0.9 (ALPN hq-interop) and HTTP/3 (ALPN h3) on
/// QUIC.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: SocketAddr,
    /// Also listen on ADDR (e.g. 127.0.0.1:4434 or [::1]:4434; port 0
    /// picks one) and offer it to clients as the server's preferred
    /// address (RFC 9000 §9.6): clients that accept it move there after
    /// the handshake. Clients move only within the address family they
    /// connected with.
    #[arg(long, value_name = "ADDR")]
    preferred_address: Option<SocketAddr>,
    /// Directory whose files are served (nothing outside it is).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Certificate chain (PEM); without it a self-signed certificate for
    /// localhost and 127.0.0.1 is made and written to a temporary file.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// Answer every attempt whose address is not yet validated with a
    /// Retry (RFC 9000 §8.1.2).
    #[arg(long)]
    retry: bool,
    /// Close every connection with this application error code as soon
    /// as its ClientHello has been read (decimal or 0x-hex).
    #[arg(long, value_name = "CODE", value_parser = parse_code)]
    close_after_hello: Option<VarInt>,
    /// Log TLS secrets to the file named by SSLKEYLOGFILE.
    #[arg(long)]
    keylog: bool,
    /// Refuse 0-RTT. By default the server's session tickets allow it on
    /// HTTP/0.9 and HTTP/3 alike, and requests that come in it are
    /// answered in 0.5-RTT data. Every request this server answers only
    /// reads a file (GET and HEAD; any other method is 405 and changes
    /// nothing), so a replayed one (RFC 9001 §9.2, RFC 8470 §1) does no
    /// more than send a file again.
    #[arg(long = "no-0rtt")]
    no_0rtt: bool,
    /// Application protocol to accept (only this one); without it,
    /// hq-interop and h3. `h3` is served as HTTP/3, any other as HTTP/0.9.
    #[arg(long)]
    alpn: Option<String>,
    /// QUIC versions to accept, separated by commas, in our order of
    /// preference (`v2,v1` upgrades v1 clients that offer v2, RFC 9368
    /// §2.3); default `v1,v2`. Others get Version Negotiation.
    #[arg(long, value_name = "LIST", value_parser = common::parse_versions)]
    versions: Option<common::Versions>,
    /// TLS cipher suites to accept, separated by commas: `aes128gcm`,
    /// `aes256gcm`, `chacha20` (default: all three).
    #[arg(long, value_name = "LIST", value_parser = common::parse_ciphers)]
    cipher: Option<common::Ciphers>,
    /// Print a line per connection and request on stderr.
    #[arg(short, long)]
    verbose: bool,
    /// Congestion controller (default: quiver's default).
    #[arg(long, value_enum)]
    cc: Option<common::Cc>,
    /// Send the disable_active_migration transport parameter (RFC 9000
    /// §18.2): clients must not move to a new address of their own while
    /// talking to --listen (a NAT that moves one anyway is validated and
    /// followed, §9). Moving to --preferred-address stays allowed.
    #[arg(long)]
    disable_active_migration: bool,
    #[command(flatten)]
    fleet: serve_fleet::FleetArgs,
    #[command(flatten)]
    qlog: common::QlogArgs,
}

fn parse_code(s: &str) -> Result<VarInt, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("not a number: {e}"))?;
    VarInt::from_u64(v).map_err(|_| "larger than 2^62 - 1".to_owned())
}

/// Loads --cert/--key, or makes a self-signed identity (returned with
/// its PEM certificate and key, to write out).
pub fn identity(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<(Identity, Option<(String, String)>)> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok((
            Identity {
                chain: common::load_certs(cert)?,
                key: common::load_key(key)?,
            },
            None,
        )),
        (None, None) => {
            let (identity, cert_pem, key_pem) = common::self_signed()?;
            Ok((identity, Some((cert_pem, key_pem))))
        }
        _ => bail!("--cert and --key go together"),
    }
}

/// Runs the server until interrupted.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let root = args
        .root
        .canonicalize()
        .map_err(|e| anyhow!("cannot serve {}: {e}", args.root.display()))?;
    if !root.is_dir() {
        bail!("cannot serve {}: not a directory", root.display());
    }
    let (identity, generated) = identity(args.cert.as_deref(), args.key.as_deref())?;
    let alpns: Vec<&[u8]> = match &args.alpn {
        Some(alpn) => vec![alpn.as_bytes()],
        None => serve_h3::default_alpns().to_vec(),
    };
    // 0-RTT on both protocols: see `--no-0rtt`.
    let early_data = !args.no_0rtt;
    let config = common::server_config_with(
        identity,
        &alpns,
        args.keylog,
        args.qlog.apply(common::with_cc(
            quiver::TransportConfig {
                disable_active_migration: args.disable_active_migration,
                ..Default::default()
            },
            args.cc,
        ))?,
        args.cipher.as_ref(),
        early_data,
    )?;
    let mut config = config;
    config.set_admission_config(args.fleet.admission());
    let cid_len = args.fleet.local_cid_len();
    let fleet_key = args.fleet.fleet_key()?;
    let versions = args.versions.as_ref().map(|v| v.0.as_slice());
    let (endpoint, local, preferred) = match args.preferred_address {
        Some(preferred) => {
            let (endpoint, local, preferred) = common::bind_server_with_preferred_address(
                config,
                args.listen,
                preferred,
                versions,
                cid_len,
                fleet_key.as_deref(),
            )?;
            (endpoint, local, Some(preferred))
        }
        None => {
            let (endpoint, local) = common::bind_server_with_versions(
                config,
                args.listen,
                versions,
                cid_len,
                fleet_key.as_deref(),
            )?;
            (endpoint, local, None)
        }
    };
    if let Some((cert_pem, key_pem)) = generated {
        let (cert, _key) = common::write_self_signed(&cert_pem, &key_pem)?;
        println!(
            "certificate: {} (self-signed for localhost and 127.0.0.1)",
            cert.display()
        );
    }
    if let Some(preferred) = preferred {
        println!("preferred address: {preferred}");
    }
    if let Some(line) = args.fleet.apply(&endpoint)? {
        println!("{line}");
    }
    println!("listening on {local}, serving {}", root.display());
    let root: Arc<Path> = root.into();
    let verbose = args.verbose;
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(incoming) = incoming else { break };
        let remote = incoming.remote_address();
        if args.retry && !incoming.remote_address_validated() {
            match incoming.retry() {
                Ok(()) => {
                    if verbose {
                        eprintln!("{remote}: retry");
                    }
                    continue;
                }
                Err(e) => {
                    // Validated already, or answered already (the
                    // endpoint acknowledged a PING-only Initial that came
                    // before the ClientHello, and the client would
                    // discard a Retry now): accept. Admission control's
                    // automatic Retry still came before any answer.
                    let incoming = e.into_incoming();
                    accept(incoming, &args, &root, verbose);
                    continue;
                }
            }
        }
        if verbose {
            match incoming.server_name() {
                Some(name) => eprintln!("{remote}: connection attempt for {name}"),
                None => eprintln!("{remote}: connection attempt"),
            }
        }
        accept(incoming, &args, &root, verbose);
    }
    endpoint.close(VarInt::from_u32(0), b"server shutting down");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), endpoint.wait_idle()).await;
    Ok(())
}

fn accept(incoming: Incoming, args: &Args, root: &Arc<Path>, verbose: bool) {
    if let Some(code) = args.close_after_hello {
        // Accepting reads the ClientHello; the close follows before any
        // handshake flight is sent, while the handshake is in flight.
        incoming.accept_and_close(code, b"refused");
        return;
    }
    tokio::spawn(connection(incoming.accept(), root.clone(), verbose));
}

async fn connection(connecting: Connecting, root: Arc<Path>, verbose: bool) {
    // With 0-RTT accepted the connection is taken at once: its requests
    // are answered in 0.5-RTT data (RFC 9000 §7, RFC 9001 §5.7), before
    // the client's Finished arrives, within the anti-amplification limit
    // (RFC 9000 §8.1), a round trip earlier than after the handshake. A
    // handshake that then fails ends the streams.
    let (conn, zero_rtt) = match connecting.into_0rtt() {
        Ok((conn, _accepted)) => (conn, true),
        Err(connecting) => match connecting.await {
            Ok(conn) => (conn, false),
            Err(e) => {
                if verbose {
                    eprintln!(
                        "handshake failed: {}",
                        common::describe_connection_error(&e)
                    );
                }
                return;
            }
        },
    };
    let remote = conn.remote_address();
    let h3 = conn.alpn_protocol().as_deref() == Some(H3_ALPN.as_bytes());
    if verbose {
        let protocol = if h3 { "HTTP/3" } else { "HTTP/0.9" };
        let kind = match (zero_rtt, conn.is_resumed()) {
            (true, _) => "resumed, 0-RTT accepted",
            (false, true) => "resumed",
            (false, false) => "full handshake",
        };
        let suite = conn
            .cipher_suite()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let group = conn.kx_group().map(|g| g.to_string()).unwrap_or_default();
        eprintln!("{remote}: connected ({protocol}, {kind}, {suite}, {group})");
    }
    if h3 {
        return serve_h3::connection(conn, root, remote, verbose).await;
    }
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(request(send, recv, root.clone(), remote, verbose));
            }
            Err(e) => {
                if verbose {
                    eprintln!("{remote}: {}", common::describe_connection_error(&e));
                }
                return;
            }
        }
    }
}

/// The path of a request line `GET /path` (CRLF or LF optional).
fn parse_request(request: &[u8]) -> Option<&str> {
    let line = std::str::from_utf8(request).ok()?;
    let mut words = line.split_ascii_whitespace();
    if words.next()? != "GET" {
        return None;
    }
    let path = words.next()?;
    path.starts_with('/').then_some(path)
}

/// The request line: the bytes up to the first line feed, or up to the
/// end of the stream for a client that finishes without one. The
/// interop runner's clients finish the stream after the line, but a
/// server need not wait for that to answer. `None` for a line longer than
/// [`MAX_REQUEST`] or a stream that fails.
async fn read_request(recv: &mut RecvStream) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                let seen = request.len();
                request.extend_from_slice(&buf[..n]);
                if let Some(end) = request[seen..].iter().position(|&b| b == b'\n') {
                    request.truncate(seen + end);
                    return Some(request);
                }
                if request.len() > MAX_REQUEST {
                    return None;
                }
            }
            Ok(None) => return Some(request),
            Err(_) => return None,
        }
    }
}

async fn request(
    mut send: SendStream,
    mut recv: RecvStream,
    root: Arc<Path>,
    remote: SocketAddr,
    verbose: bool,
) {
    let reset = |send: &mut SendStream, code: u32| {
        let _ = send.reset(VarInt::from_u32(code));
    };
    let request = match read_request(&mut recv).await {
        Some(r) => r,
        None => {
            let _ = recv.stop(VarInt::from_u32(RESET_BAD_REQUEST));
            return reset(&mut send, RESET_BAD_REQUEST);
        }
    };
    let Some(path) = parse_request(&request) else {
        if verbose {
            eprintln!(
                "{remote}: bad request {:?}",
                String::from_utf8_lossy(&request)
            );
        }
        return reset(&mut send, RESET_BAD_REQUEST);
    };
    let Some(file) = resolve(&root, path) else {
        if verbose {
            eprintln!("{remote}: GET {path}: not found");
        }
        return reset(&mut send, RESET_NOT_FOUND);
    };
    let mut file = match std::fs::File::open(&file) {
        Ok(f) => f,
        Err(_) => return reset(&mut send, RESET_NOT_FOUND),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => return reset(&mut send, RESET_INTERNAL),
        };
        if send.write_all(&buf[..n]).await.is_err() {
            return;
        }
        sent += n as u64;
    }
    let _ = send.finish();
    if verbose {
        eprintln!("{remote}: GET {path}: {sent} bytes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(parse_request(b"GET /a.txt\r\n"), Some("/a.txt"));
        assert_eq!(parse_request(b"GET /\n"), Some("/"));
        assert_eq!(parse_request(b"GET /x"), Some("/x"));
        assert_eq!(parse_request(b"POST /x\r\n"), None);
        assert_eq!(parse_request(b"GET x\r\n"), None);
        assert_eq!(parse_request(b"\xff"), None);
    }
}
