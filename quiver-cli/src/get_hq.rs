//! `quiver get` over HTTP/0.9 (ALPN `hq-interop`), as the QUIC interop
//! runner uses it: `GET /path` on a bidirectional stream, finished; the
//! answer is the file's bytes, or a stream reset.

use std::path::PathBuf;

use indicatif::ProgressBar;
use quiver::ReadError;

use crate::common;
use crate::get::{Failed, Fetched};
use crate::save::PartFile;

/// Fetches `path` into `file` (through `file.part`).
pub async fn fetch(
    conn: quiver::Connection,
    path: String,
    file: PathBuf,
    progress: ProgressBar,
) -> Result<Fetched, Failed> {
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| Failed::new(common::describe_connection_error(&e)))?;
    send.write_all(format!("GET {path}\r\n").as_bytes())
        .await
        .map_err(|e| Failed::new(common::describe_write_error(&path, &e)))?;
    send.finish()
        .map_err(|_| Failed::new(format!("{path}: request stream closed")))?;
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
