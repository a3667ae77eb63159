//! `quiver get`: downloads over HTTP/0.9 (ALPN `hq-interop`), every URL
//! on its own stream of one connection, all at once.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quiver::{ReadError, VarInt};
use tokio::task::JoinSet;

use crate::common::{self, HQ_ALPN, Url};

/// Download files over HTTP/0.9 on QUIC (ALPN hq-interop).
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
    /// Application protocol to offer.
    #[arg(long, default_value = HQ_ALPN)]
    alpn: String,
    /// Seconds to wait for the handshake, and for the server when it falls
    /// silent (the idle timeout).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
    /// Stay on the server's original address even when it offers a
    /// preferred address (RFC 9000 §9.6; by default the client validates
    /// the preferred address and moves there after the handshake).
    #[arg(long)]
    no_migrate: bool,
    /// Start a 1-RTT key update as soon as the handshake is confirmed
    /// (RFC 9001 §6; the QUIC interop runner's keyupdate case).
    #[arg(long)]
    key_update: bool,
    /// QUIC versions, separated by commas (`v1`, `v2`): start in the first
    /// and offer them all, most preferred first, in version_information
    /// (RFC 9368): the server may switch to another (compatible
    /// negotiation) or answer with Version Negotiation, and we follow.
    #[arg(long, value_name = "LIST", value_parser = common::parse_versions)]
    versions: Option<common::Versions>,
    /// `https://HOST[:PORT]/PATH`, all of one server.
    #[arg(value_name = "URL", required = true)]
    urls: Vec<String>,
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

fn client_config(args: &Args, timeout: Duration) -> anyhow::Result<quiver::ClientConfig> {
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
    let builder = match args.versions.as_ref().map(|v| v.0.as_slice()) {
        Some(versions) => builder.version(versions[0]).available_versions(versions),
        None => builder,
    };
    builder
        .alpn_protocols(&[args.alpn.as_bytes()])
        .keylog(args.keylog)
        .transport(quiver::TransportConfig {
            migrate_to_preferred_address: !args.no_migrate,
            ..common::transport(timeout)
        })
        .build()
        .map_err(|e| anyhow!("TLS configuration: {e}"))
}

/// Downloads every URL; the error is the one line to print.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let plan = plan(&args.urls, &args.out)?;
    let config = client_config(&args, timeout)?;
    let (host, port) = (plan[0].0.host.clone(), plan[0].0.port);
    let server_name = args.server_name.clone().unwrap_or_else(|| host.clone());
    let start = Instant::now();
    let addr = common::resolve(&host, port, timeout).await?;
    let endpoint = common::bind_client(addr)?;
    let conn = common::connect(&endpoint, &config, addr, &server_name, timeout).await?;
    if args.key_update {
        // Held until the handshake is confirmed (RFC 9001 §6.1).
        conn.force_key_update();
    }

    let progress = progress_bar(plan.len());
    let mut tasks = JoinSet::new();
    for (url, file) in plan.iter().cloned() {
        tasks.spawn(fetch(conn.clone(), url.path, file, progress.clone()));
    }
    let mut total = 0u64;
    let mut done = 0;
    let mut failure = None;
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(n)) => {
                total += n;
                done += 1;
                progress.set_message(format!("{done}/{} files", plan.len()));
            }
            Ok(Err(e)) => {
                failure = Some(e);
                break;
            }
            Err(e) => {
                failure = Some(format!("internal error: {e}"));
                break;
            }
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    progress.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    // A connection the peer already ended has nothing left to send: exit at
    // once. Otherwise give our CONNECTION_CLOSE a moment to go out and
    // the peer's retransmissions an answer (RFC 9000 §10.2.1).
    let ended = conn.close_reason().is_some();
    let version = conn.version();
    conn.close(VarInt::from_u32(0), b"");
    drop(conn);
    if !ended {
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    }
    if let Some(e) = failure {
        bail!("{e}");
    }
    println!(
        "saved {} file{}, {total} bytes in {seconds:.3} s ({})",
        plan.len(),
        if plan.len() == 1 { "" } else { "s" },
        common::throughput(total, seconds)
    );
    if let Some(version) = version {
        println!("QUIC version: {version:?}");
    }
    Ok(())
}

fn progress_bar(files: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {bytes} ({bytes_per_sec}) {msg}")
            .expect("valid template"),
    );
    bar.set_message(format!("0/{files} files"));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Fetches `path` into `file`, via `file.part` renamed when complete.
/// Returns the bytes saved, or the error line.
async fn fetch(
    conn: quiver::Connection,
    path: String,
    file: PathBuf,
    progress: ProgressBar,
) -> Result<u64, String> {
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| common::describe_connection_error(&e))?;
    send.write_all(format!("GET {path}\r\n").as_bytes())
        .await
        .map_err(|e| common::describe_write_error(&path, &e))?;
    send.finish()
        .map_err(|_| format!("{path}: request stream closed"))?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut part = file.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let mut out = std::io::BufWriter::with_capacity(
        256 * 1024,
        std::fs::File::create(&part)
            .map_err(|e| format!("cannot create {}: {e}", part.display()))?,
    );
    let result = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut saved = 0u64;
        loop {
            match recv.read(&mut buf).await {
                Ok(Some(n)) => {
                    out.write_all(&buf[..n])
                        .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
                    saved += n as u64;
                    progress.inc(n as u64);
                }
                Ok(None) => break,
                Err(ReadError::Reset(code)) if saved > 0 => {
                    return Err(format!(
                        "server failed to send {path}: stream reset {:#x} after {saved} bytes",
                        code.into_inner()
                    ));
                }
                Err(e) => return Err(common::describe_read_error(&path, &e)),
            }
        }
        out.flush()
            .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        Ok(saved)
    }
    .await;
    drop(out);
    match result {
        Ok(saved) => {
            std::fs::rename(&part, &file)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            Ok(saved)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
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
