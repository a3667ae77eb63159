//! `quiver get` over HTTP/0.9 (ALPN `hq-interop`), as the QUIC interop
//! runner uses it: `GET /path` on a bidirectional stream, finished; the
//! answer is the file's bytes, or a stream reset.

use std::path::PathBuf;

use indicatif::ProgressBar;
use quiver::ReadError;

use crate::common;
use crate::get::{Failed, Fetched};
use crate::save::PartFile;

/// A request sent, its response still to come.
pub struct Sent {
    recv: quiver::RecvStream,
    path: String,
}

/// Sends `GET path` on a new stream and finishes it. Awaited by the task
/// that set up the connection, so that with `--0rtt` the requests are
/// written before the server's first flight can complete the handshake:
/// they go in 0-RTT (RFC 9001 §4.6.1).
pub async fn send(conn: &quiver::Connection, path: String) -> Result<Sent, Failed> {
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| Failed::new(common::describe_connection_error(&e)))?;
    send.write_all(format!("GET {path}\r\n").as_bytes())
        .await
        .map_err(|e| Failed::new(common::describe_write_error(&path, &e)))?;
    // A server that knows its answer from the request line (a reset for
    // a missing file) may stop our side before we finish it (RFC 9000
    // §3.5): the answer, on the receive side, tells.
    let _ = send.finish();
    Ok(Sent { recv, path })
}

/// Receives the answer to `sent` into `file` (through `file.part`).
pub async fn receive(sent: Sent, file: PathBuf, progress: ProgressBar) -> Result<Fetched, Failed> {
    let Sent { mut recv, path } = sent;
    let mut part = PartFile::create(&file).map_err(Failed::new)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                part.write(&buf[..n]).map_err(Failed::new)?;
                progress.inc(n as u64);
            }
            Ok(None) => break,
            Err(ReadError::Reset(code)) if part.saved() > 0 => {
                return Err(Failed::new(format!(
                    "server failed to send {path}: stream reset {:#x} after {} bytes",
                    code.into_inner(),
                    part.saved()
                )));
            }
            Err(e) => return Err(Failed::new(common::describe_read_error(&path, &e))),
        }
    }
    let bytes = part.commit().map_err(Failed::new)?;
    Ok(Fetched {
        bytes,
        status: None,
    })
}
