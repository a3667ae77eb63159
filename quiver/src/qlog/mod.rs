//! qlog files: each connection's events (see [`quiver_proto::qlog`]) as a
//! JSON text sequence (RFC 7464, `.sqlog`) that qvis loads.
//!
//! [`QlogDir`] is the [`QlogFactory`] to put in
//! [`TransportConfig::qlog`](quiver_proto::TransportConfig::qlog): it
//! writes one file per connection, `{odcid}_{client|server}.sqlog` in a
//! directory (the QUIC interop runner's naming; the ODCID in hex), through
//! a buffer (no system call per event). Files follow `qlog_version` 0.3
//! with the event names of draft-ietf-quic-qlog-quic-events-03, which is
//! what qvis, quiche and quinn use; `ARCHITECTURE.md` says why not the
//! newest drafts.

mod json;
mod transport;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use quiver_proto::Side;
use quiver_proto::qlog::{QlogConnectionInfo, QlogEvent, QlogFactory, QlogSink};

/// The environment variable naming the directory for qlog files (the
/// QUIC interop runner's convention).
pub const QLOGDIR_ENV: &str = "QLOGDIR";

/// Writes each connection's qlog to `{dir}/{odcid}_{client|server}.sqlog`.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// use std::sync::Arc;
/// // At most 64 MB per connection: a long transfer logs every packet.
/// let qlog = quiver::qlog::QlogDir::new("/tmp/qlog")?.max_file_bytes(64 << 20);
/// let transport = quiver_proto::TransportConfig {
///     qlog: Some(Arc::new(qlog)),
///     ..Default::default()
/// };
/// # let _ = transport;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct QlogDir {
    dir: PathBuf,
    max_file_bytes: u64,
}

impl QlogDir {
    /// Files go in `dir`, created (with its parents) if missing.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            max_file_bytes: u64::MAX,
        })
    }

    /// Caps each file at about `bytes`: past it, a connection's file
    /// keeps only the records of its end (state changes and the close),
    /// so a server with long-lived connections does not fill its disk.
    /// Unlimited by default.
    pub fn max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// The directory named by `QLOGDIR`, if set and not empty.
    pub fn from_env() -> Option<io::Result<Self>> {
        let dir = std::env::var_os(QLOGDIR_ENV).filter(|d| !d.is_empty())?;
        Some(Self::new(dir))
    }

    /// Where files go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a connection's qlog goes to.
    pub fn file_name(info: &QlogConnectionInfo) -> String {
        let role = match info.side {
            Side::Client => "client",
            Side::Server => "server",
        };
        let odcid: String = info
            .orig_dst_cid
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{odcid}_{role}.sqlog")
    }
}

impl QlogFactory for QlogDir {
    fn new_sink(&self, info: &QlogConnectionInfo) -> Option<Box<dyn QlogSink>> {
        let path = self.dir.join(Self::file_name(info));
        match File::create(&path) {
            Ok(file) => {
                let mut writer = QlogWriter::new(file, info);
                writer.limit = self.max_file_bytes;
                Some(Box::new(writer))
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot create qlog file");
                None
            }
        }
    }
}

/// The wall clock, read once per qlog file for its header's
/// `reference_time` (the only place outside the driver's clock).
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> SystemTime {
    SystemTime::now()
}

/// Buffer size: events are small, so a write reaches the file about every
/// few hundred events.
const BUFFER: usize = 64 * 1024;

/// A qlog JSON-SEQ writer for one connection: the header record when
/// created, then one record per event. Writes go through a buffer, which
/// is flushed when the connection closes and when the writer is dropped.
pub struct QlogWriter<W: Write> {
    out: BufWriter<W>,
    start: Instant,
    side: Side,
    /// The last metrics written, to write only the fields that changed.
    metrics: Option<quiver_proto::qlog::RecoveryMetrics>,
    /// Reused for each record, and for its data object.
    line: Vec<u8>,
    data: String,
    failed: bool,
    /// Bytes written so far, and the cap past which only the end of the
    /// connection is recorded.
    written: u64,
    limit: u64,
}

impl<W: Write> std::fmt::Debug for QlogWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QlogWriter").finish_non_exhaustive()
    }
}

impl<W: Write> QlogWriter<W> {
    /// Writes the header for the connection `info` describes to `out`.
    pub fn new(out: W, info: &QlogConnectionInfo) -> Self {
        // Event times are relative to the connection's start; the header
        // gives that instant on the system clock.
        // The runtime's clock (tokio's, as the driver's `now`).
        let since_start = crate::shared::now().saturating_duration_since(info.start);
        let reference = wall_clock()
            .checked_sub(since_start)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let mut w = Self {
            out: BufWriter::with_capacity(BUFFER, out),
            start: info.start,
            side: info.side,
            metrics: None,
            line: Vec::with_capacity(1024),
            data: String::with_capacity(1024),
            failed: false,
            written: 0,
            limit: u64::MAX,
        };
        json::header(&mut w.line, info, reference);
        w.flush_line();
        w
    }

    fn flush_line(&mut self) {
        if self.failed {
            self.line.clear();
            return;
        }
        self.written += self.line.len() as u64;
        if let Err(e) = self.out.write_all(&self.line) {
            tracing::warn!(error = %e, "qlog write failed; no more events for this connection");
            self.failed = true;
        }
        self.line.clear();
    }
}

impl<W: Write + Send> QlogSink for QlogWriter<W> {
    fn event(&mut self, now: Instant, event: &QlogEvent<'_>) {
        let end_of_life = matches!(
            event,
            QlogEvent::ConnectionClosed { .. } | QlogEvent::ConnectionStateUpdated { .. }
        );
        if self.written >= self.limit && !end_of_life {
            return;
        }
        let time = now.saturating_duration_since(self.start);
        json::event(
            &mut self.line,
            &mut self.data,
            time,
            self.side,
            &mut self.metrics,
            event,
        );
        self.flush_line();
        let end = matches!(
            event,
            QlogEvent::ConnectionClosed { .. }
                | QlogEvent::ConnectionStateUpdated {
                    new: quiver_proto::qlog::ConnectionState::Closed,
                    ..
                }
        );
        if end && !self.failed {
            let _ = self.out.flush();
        }
    }
}

impl<W: Write> Drop for QlogWriter<W> {
    fn drop(&mut self) {
        if !self.failed {
            let _ = self.out.flush();
        }
    }
}
#[cfg(test)]
mod tests;
