//! `quiver get`: downloads every URL of one server on one connection,
//! all at once: over HTTP/3 (ALPN `h3`, `get_h3.rs`) when the server
//! offers it, else over HTTP/0.9 (ALPN `hq-interop`, `get_hq.rs`).

use std::collections::HashSet;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quiver::{CountingSessionStore, VarInt};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::common::{self, H3_ALPN, HQ_ALPN, Url};
use crate::{get_h3, get_hq};

/// Download files over HTTP/3 (ALPN h3) or HTTP/0.9 (ALPN hq-interop) on
/// QUIC.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trust the certificates in this PEM file (instead of the system's).
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Accept any server certificate (for testing only).
    #[arg(long)]
    insecure: bool,
    /// Server name to send and verify (default: the URLs' host).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Directory to save the files in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Log TLS secrets to the file named by SSLKEYLOGFILE.
    #[arg(long)]
    keylog: bool,
    /// Application protocol to offer (only this one); without it, h3 and
    /// hq-interop. `h3` is spoken as HTTP/3, any other as HTTP/0.9.
    #[arg(long)]
    alpn: Option<String>,
    /// Seconds to wait for the handshake, and for the server when it falls
    /// silent (the idle timeout).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
    /// Congestion controller (default: quiver's default); it governs what
    /// this client sends, the requests.
    #[arg(long, value_enum)]
    cc: Option<common::Cc>,
    /// Stay on the server's original address even when it offers a
    /// preferred address (RFC 9000 §9.6; by default the client validates
    /// the preferred address and moves there after the handshake).
    #[arg(long)]
    no_migrate: bool,
    /// Print on stderr the server's address once connected and, at the
    /// end, whether the connection moved to its preferred address.
    #[arg(short, long)]
    verbose: bool,
    /// Start a 1-RTT key update as soon as the handshake is confirmed
    /// (RFC 9001 §6; the QUIC interop runner's keyupdate case).
    #[arg(long)]
    key_update: bool,
    /// Print one JSON line on stdout, on success and on failure: the
    /// protocol, bytes, seconds and each file's outcome.
    #[arg(long)]
    json: bool,
    /// QUIC versions, separated by commas (`v1`, `v2`): start in the first
    /// and offer them all in version_information (RFC 9368), v2 ahead of
    /// v1 whichever we start in. `--versions v1,v2` (the interop runner's
    /// v2 case) starts in the version every server reads and asks for v2:
    /// a server that follows the client's preference (RFC 9368 §3 lets
    /// it; aioquic's does) upgrades as one with its own preference for v2
    /// does. The server may also answer with Version Negotiation, and we
    /// follow.
    #[arg(long, value_name = "LIST", value_parser = common::parse_versions)]
    versions: Option<common::Versions>,
    /// TLS cipher suites to offer, separated by commas, most preferred
    /// first: `aes128gcm`, `aes256gcm`, `chacha20` (default: all three in
    /// that order; `--cipher chacha20` is the interop runner's chacha20
    /// case). The
    /// suite used is printed with `-v`.
    #[arg(long, value_name = "LIST", value_parser = common::parse_ciphers)]
    cipher: Option<common::Ciphers>,
    /// Fetch the first URL on a first connection and, once it is done, the
    /// others on a second connection that resumes the first one's TLS
    /// session (RFC 9001 §4.5; the QUIC interop runner's resumption case).
    /// With `-v`, says whether each connection resumed.
    #[arg(long)]
    resume: bool,
    /// As `--resume`, and the second connection sends its requests in
    /// 0-RTT (RFC 9001 §4.6; the interop runner's zerortt case), offering
    /// only the protocol the first connection used. If the server rejects
    /// 0-RTT, the requests go again in 1-RTT. `-v` and `--json` say
    /// whether it was accepted. Only for requests safe to replay (GETs).
    #[arg(long = "0rtt")]
    zero_rtt: bool,
    /// `https://HOST[:PORT]/PATH`, all of one server.
    #[arg(value_name = "URL", required = true)]
    urls: Vec<String>,
    #[command(flatten)]
    qlog: common::QlogArgs,
}

/// A file saved whole.
#[derive(Debug)]
pub struct Fetched {
    /// Its size.
    pub bytes: u64,
    /// The HTTP status (HTTP/3 only).
    pub status: Option<u16>,
}

/// A file that could not be saved.
#[derive(Debug)]
pub struct Failed {
    /// The `error:` line, without the prefix.
    pub error: String,
    /// The HTTP status, if a response came (HTTP/3 only).
    pub status: Option<u16>,
}

impl Failed {
    /// A failure without a status.
    pub fn new(error: String) -> Self {
        Self {
            error,
            status: None,
        }
    }
}

/// The `--json` line.
#[derive(Debug, Default, Serialize)]
struct Report {
    ok: bool,
    /// The negotiated ALPN (`h3`, `hq-interop`), once connected.
    protocol: Option<String>,
    /// Files saved whole, and their bytes.
    saved: usize,
    bytes: u64,
    seconds: f64,
    /// The `error:` line's text, when it failed.
    error: Option<String>,
    files: Vec<FileReport>,
    /// The QUIC version the connection ended in (`V1`, `V2`).
    version: Option<String>,
    /// Per connection, in order: whether its handshake resumed an earlier
    /// session (with `--resume`, two connections).
    resumed: Vec<bool>,
    /// With `--0rtt`: whether the server accepted the second connection's
    /// 0-RTT (`null` when the ticket did not allow 0-RTT).
    zero_rtt: Option<bool>,
}

/// One URL's outcome in the `--json` line.
#[derive(Debug, Serialize)]
struct FileReport {
    url: String,
    /// Where it is (or would have been) saved.
    file: PathBuf,
    ok: bool,
    /// The HTTP status (HTTP/3 only).
    status: Option<u16>,
    bytes: u64,
    /// Why it was not saved (`not fetched` when another file failed
    /// first or the connection never came up).
    error: Option<String>,
}

/// Parses the URLs: all must name one server, and no two may be saved to
/// the same file.
fn plan(urls: &[String], out: &Path) -> anyhow::Result<Vec<(Url, PathBuf)>> {
    let mut plan = Vec::with_capacity(urls.len());
    let mut files = HashSet::new();
    for s in urls {
        let url: Url = s.parse()?;
        if let Some((first, _)) = plan.first() {
            let first: &Url = first;
            if (first.host.as_str(), first.port) != (url.host.as_str(), url.port) {
                bail!(
                    "all URLs must name the same server ({}:{} and {}:{})",
                    first.host,
                    first.port,
                    url.host,
                    url.port
                );
            }
        }
        let mut file = out.to_path_buf();
        let mut named = false;
        for part in url.path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            file.push(part);
            named = true;
        }
        if !named || url.path.ends_with('/') {
            file.push("index.html");
        }
        if !files.insert(file.clone()) {
            bail!("two URLs would be saved to {}", file.display());
        }
        plan.push((url, file));
    }
    Ok(plan)
}

fn client_config(
    args: &Args,
    timeout: Duration,
    store: Option<Arc<CountingSessionStore>>,
) -> anyhow::Result<quiver::ClientConfig> {
    let builder = if args.insecure {
        quiver::ClientConfig::insecure()
    } else if let Some(ca) = &args.ca {
        let mut roots = rustls::RootCertStore::empty();
        for cert in common::load_certs(ca)? {
            roots
                .add(cert)
                .map_err(|e| anyhow!("cannot use certificate {}: {e}", ca.display()))?;
        }
        quiver::ClientConfig::with_root_certificates(roots)
    } else {
        quiver::ClientConfig::with_native_roots()
            .map_err(|e| anyhow!("{e}; use --ca PEM or --insecure"))?
    };
    let builder = match store {
        Some(store) => builder.session_store(store),
        None => builder,
    }
    .early_data(args.zero_rtt);
    let builder = match args.versions.as_ref().map(|v| v.0.as_slice()) {
        Some(versions) => builder
            .version(versions[0])
            .available_versions(&common::upgrades_first(versions)),
        None => builder,
    };
    let builder = match &args.cipher {
        Some(ciphers) => builder.cipher_suites(&ciphers.0),
        None => builder,
    };
    let alpns: Vec<&[u8]> = match &args.alpn {
        Some(alpn) => vec![alpn.as_bytes()],
        None => vec![H3_ALPN.as_bytes(), HQ_ALPN.as_bytes()],
    };
    builder
        .alpn_protocols(&alpns)
        .keylog(args.keylog)
        // RFC 9000 §8.1.3: tokens from the server's NEW_TOKEN frames, for
        // every later connection made with this configuration (a second
        // connection to the same server skips its Retry).
        .token_store(Some(std::sync::Arc::new(
            quiver::InMemoryTokenStore::default(),
        )))
        .transport(args.qlog.apply(quiver::TransportConfig {
            migrate_to_preferred_address: !args.no_migrate,
            ..common::transport(timeout, args.cc)
        })?)
        .build()
        .map_err(|e| anyhow!("TLS configuration: {e}"))
}

/// Downloads every URL; the error is the one line to print. With
/// `--json` the JSON line is printed in both cases.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut report = Report::default();
    let result = download(&args, &mut report).await;
    report.seconds = start.elapsed().as_secs_f64();
    report.ok = result.is_ok();
    report.error = result.as_ref().err().map(ToString::to_string);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| anyhow!("internal error: {e}"))?
        );
    } else if result.is_ok() {
        println!(
            "saved {} file{}, {} bytes in {:.3} s ({})",
            report.saved,
            if report.saved == 1 { "" } else { "s" },
            report.bytes,
            report.seconds,
            common::throughput(report.bytes, report.seconds)
        );
        if let Some(version) = &report.version {
            println!("QUIC version: {version}");
        }
    }
    result
}

/// Connects and fetches, filling `report` as it goes.
async fn download(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let plan = plan(&args.urls, &args.out)?;
    report.files = plan
        .iter()
        .zip(&args.urls)
        .map(|((_, file), url)| FileReport {
            url: url.clone(),
            file: file.clone(),
            ok: false,
            status: None,
            bytes: 0,
            error: Some("not fetched".to_owned()),
        })
        .collect();
    let resume = args.resume || args.zero_rtt;
    let store = resume.then(|| CountingSessionStore::new(32));
    let config = client_config(args, timeout, store.clone())?;
    let (host, port) = (plan[0].0.host.clone(), plan[0].0.port);
    let server_name = args.server_name.clone().unwrap_or_else(|| host.clone());
    let addr = common::resolve(&host, port, timeout).await?;
    let endpoint = common::bind_client(addr)?;
    // With --resume: the first URL, then the rest on a resumed connection.
    let batches: Vec<std::ops::Range<usize>> = if resume {
        if plan.len() < 2 {
            bail!(
                "--resume needs at least two URLs (the first on a first connection, the rest on a resumed one)"
            );
        }
        vec![0..1, 1..plan.len()]
    } else {
        std::iter::once(0..plan.len()).collect()
    };
    let progress = progress_bar(plan.len());
    let mut result = Ok(());
    let mut first_alpn: Option<Vec<u8>> = None;
    let connections = batches.len();
    for (n, batch) in batches.into_iter().enumerate() {
        let (conn, accepted) = match (&first_alpn, args.zero_rtt) {
            (Some(alpn), true) => {
                let config = single_alpn(&config, alpn)?;
                connect_0rtt(&endpoint, &config, addr, &server_name, timeout).await?
            }
            _ => (
                common::connect(&endpoint, &config, addr, &server_name, timeout).await?,
                None,
            ),
        };
        if args.verbose {
            eprintln!("connected to {addr}");
            if let Some(suite) = conn.cipher_suite() {
                eprintln!("TLS cipher suite: {suite}");
            }
        }
        let outcome = fetch_batch(
            args,
            &conn,
            first_alpn.as_deref(),
            &plan[batch.clone()],
            batch.start,
            report,
            &progress,
        )
        .await;
        first_alpn = first_alpn.or_else(|| conn.alpn_protocol());
        // After the batch the handshake is over (or the connection is).
        if let Some(accepted) = accepted {
            report.zero_rtt = Some(accepted.await);
        }
        report.resumed.push(conn.is_resumed());
        if args.verbose && resume {
            let kind = match (conn.is_resumed(), report.zero_rtt) {
                (false, _) => "full handshake",
                (true, _) if n == 0 || !args.zero_rtt => "resumed",
                (true, Some(true)) => "resumed, 0-RTT accepted",
                (true, Some(false)) => "resumed, 0-RTT rejected",
                (true, None) => "resumed, 0-RTT not offered by the ticket",
            };
            eprintln!("connection {}: {kind}", n + 1);
        }
        if let Some(store) = &store
            && outcome.failure.is_none()
            && n + 1 < connections
        {
            // The ticket comes right after the handshake; without it the
            // next connection runs a full handshake (and -v says so). A
            // server that sends none is not waited for long: a few PTOs,
            // which cover a lost NewSessionTicket, and at least 1 s.
            let pto_ish = conn.rtt().saturating_mul(8).max(Duration::from_secs(1));
            store.wait_beyond(0, timeout.min(pto_ish)).await;
        }
        if args.verbose {
            // The client moves only to a preferred address the server
            // offered (RFC 9000 §9.6).
            match conn.remote_address() {
                now if now == addr => eprintln!("server address unchanged: {addr}"),
                now => eprintln!("moved to the server's preferred address {now}"),
            }
        }
        report.version = conn.version().map(|v| format!("{v:?}"));
        let code = if outcome.h3 { get_h3::CLOSE_CODE } else { 0 };
        conn.close(VarInt::from_u32(code), b"");
        drop(conn);
        if let Some(driver) = outcome.driver {
            driver.abort();
        }
        if let Some(e) = outcome.failure {
            result = Err(anyhow!("{e}"));
            break;
        }
    }
    progress.finish_and_clear();
    // Give our CONNECTION_CLOSE (or the h3 layer's, or our reply to the
    // peer's) a moment to go out and be answered (RFC 9000 §10.2.1), but
    // not the draining period after the answer: nothing is sent then, and
    // waiting it out (`wait_idle`) cost every download about 3 PTOs
    // (~90 ms on loopback).
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_quiet()).await;
    result
}

/// `config` offering only `alpn`: it shares the configuration's verifier
/// and session store, so it resumes its sessions (rustls resumes only
/// under the same verifier), and 0-RTT rejected by the server can be
/// resent (the protocol cannot change).
fn single_alpn(config: &quiver::ClientConfig, alpn: &[u8]) -> anyhow::Result<quiver::ClientConfig> {
    let mut rustls = (**config.proto().crypto.rustls()).clone();
    rustls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quiver_proto::crypto::ClientConfig::from_rustls(Arc::new(rustls))
        .map_err(|e| anyhow!("TLS configuration: {e}"))?;
    let mut proto = config.proto().clone();
    proto.crypto = Arc::new(crypto);
    Ok(quiver::ClientConfig::from_proto(proto))
}

/// Connects, returning the connection at once when it can send 0-RTT
/// (with the future saying whether it was accepted), else once the
/// handshake completes.
async fn connect_0rtt(
    endpoint: &quiver::Endpoint,
    config: &quiver::ClientConfig,
    addr: std::net::SocketAddr,
    server_name: &str,
    timeout: Duration,
) -> anyhow::Result<(quiver::Connection, Option<quiver::ZeroRttAccepted>)> {
    let connecting = endpoint
        .connect_with(config, addr, server_name)
        .map_err(|e| anyhow!("cannot connect to {addr}: {e}"))?;
    match connecting.into_0rtt() {
        Ok((conn, accepted)) => Ok((conn, Some(accepted))),
        Err(connecting) => match tokio::time::timeout(timeout, connecting).await {
            Err(_) => bail!("timed out"),
            Ok(Err(e)) => bail!("{}", common::describe_connection_error(&e)),
            Ok(Ok(conn)) => Ok((conn, None)),
        },
    }
}

/// What fetching one batch of URLs on one connection left behind.
struct BatchOutcome {
    /// Whether the connection speaks HTTP/3.
    h3: bool,
    /// The HTTP/3 connection driver, to stop when done.
    driver: Option<tokio::task::JoinHandle<()>>,
    /// The first failure, which stops the download.
    failure: Option<String>,
}

/// Fetches `plan` (entries `first..` of the report) on `conn`, all at
/// once.
async fn fetch_batch(
    args: &Args,
    conn: &quiver::Connection,
    known_alpn: Option<&[u8]>,
    plan: &[(Url, PathBuf)],
    first: usize,
    report: &mut Report,
    progress: &ProgressBar,
) -> BatchOutcome {
    if args.key_update {
        // Held until the handshake is confirmed (RFC 9001 §6.1).
        conn.force_key_update();
    }
    // In 0-RTT the protocol is the first connection's (TLS says only once
    // the handshake completes).
    let alpn = conn
        .alpn_protocol()
        .or_else(|| known_alpn.map(<[u8]>::to_vec))
        .unwrap_or_default();
    report.protocol = Some(String::from_utf8_lossy(&alpn).into_owned());
    let h3 = alpn == H3_ALPN.as_bytes();
    let total = report.files.len();

    let mut tasks = JoinSet::new();
    let mut failure = None;
    let mut driver = None;
    // Each request is sent here, in order, before its response gets a task
    // of its own: spawned request tasks could be scheduled after the
    // server's first flight completed the handshake (half a millisecond
    // on loopback), and then a `--0rtt` connection would send its
    // requests in 1-RTT. A request that waits for stream credit waits with
    // the earlier responses already being read.
    if h3 {
        match get_h3::start(conn).await {
            Ok((requests, task)) => {
                driver = Some(task);
                for (i, (url, file)) in plan.iter().cloned().enumerate() {
                    let sent = get_h3::send(requests.clone(), conn, &url).await;
                    let progress = progress.clone();
                    tasks.spawn(async move {
                        let fetched = match sent {
                            Ok(sent) => get_h3::receive(sent, file, progress).await,
                            Err(failed) => Err(failed),
                        };
                        (first + i, fetched)
                    });
                }
            }
            Err(e) => failure = Some(e),
        }
    } else {
        for (i, (url, file)) in plan.iter().cloned().enumerate() {
            let sent = get_hq::send(conn, url.path).await;
            let progress = progress.clone();
            tasks.spawn(async move {
                let fetched = match sent {
                    Ok(sent) => get_hq::receive(sent, file, progress).await,
                    Err(failed) => Err(failed),
                };
                (first + i, fetched)
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = match joined {
            Ok(r) => r,
            Err(e) => {
                failure = Some(format!("internal error: {e}"));
                break;
            }
        };
        let entry = &mut report.files[i];
        match result {
            Ok(fetched) => {
                (entry.ok, entry.status, entry.bytes) = (true, fetched.status, fetched.bytes);
                entry.error = None;
                report.saved += 1;
                report.bytes += fetched.bytes;
                progress.set_message(format!("{}/{total} files", report.saved));
            }
            Err(failed) => {
                entry.status = failed.status;
                entry.error = Some(failed.error.clone());
                failure = Some(failed.error);
                break;
            }
        }
    }
    // Unfinished downloads remove their `.part` files as they drop.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    BatchOutcome {
        h3,
        driver,
        failure,
    }
}

/// The progress bar, on stderr when it is a terminal; hidden otherwise
/// (a pipe or a log gets nothing from it).
fn progress_bar(files: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {bytes} ({bytes_per_sec}) {msg}")
            .expect("valid template"),
    );
    bar.set_message(format!("0/{files} files"));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_map_to_files_under_out() {
        let urls = [
            "https://h:1/a.txt".to_owned(),
            "https://h:1/d/b".to_owned(),
            "https://h:1/".to_owned(),
        ];
        let plan = plan(&urls, Path::new("out")).unwrap();
        let files: Vec<_> = plan.iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(
            files,
            [
                PathBuf::from("out/a.txt"),
                PathBuf::from("out/d/b"),
                PathBuf::from("out/index.html")
            ]
        );
        let mixed = ["https://h:1/a".to_owned(), "https://h:2/b".to_owned()];
        assert!(super::plan(&mixed, Path::new(".")).is_err());
        let twice = ["https://h:1/a".to_owned(), "https://h:1//a".to_owned()];
        assert!(super::plan(&twice, Path::new(".")).is_err());
    }
}
