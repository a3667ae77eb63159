//! `quiver get` over HTTP/3 (ALPN `h3`, RFC 9114) through hyperium's
//! `h3` client on `quiver-h3`: one `GET` per URL, all at once on one
//! connection. A status other than 2xx fails the file with the status;
//! a body shorter or longer than its `content-length` fails it too.

use std::path::PathBuf;

use bytes::{Buf as _, Bytes};
use h3::client::SendRequest;
use h3::error::{Code, ConnectionError, LocalError, StreamError};
use h3::quic::ConnectionErrorIncoming;
use http::{Request, header};
use indicatif::ProgressBar;
use tokio::task::JoinHandle;

use crate::common::{self, Url};
use crate::get::{Failed, Fetched};
use crate::save::PartFile;

/// The request side of an HTTP/3 client; clone it per request.
pub type Requests = SendRequest<quiver_h3::OpenStreams, Bytes>;

/// The QUIC code `get` closes an HTTP/3 connection with: H3_NO_ERROR.
pub const CLOSE_CODE: u32 = 0x100;

/// Sets up HTTP/3 on `conn` (control and QPACK streams, SETTINGS) and
/// spawns the task that drives the connection; the error is the line to
/// print.
pub async fn start(conn: &quiver::Connection) -> Result<(Requests, JoinHandle<()>), String> {
    let (mut driver, requests) = h3::client::new(quiver_h3::Connection::new(conn.clone()))
        .await
        .map_err(|e| describe_connection(conn, &e))?;
    let driver = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok((requests, driver))
}

/// The `:authority` of `url`: its host (in brackets if IPv6) and port.
fn authority(url: &Url) -> String {
    if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    }
}

/// A request sent, its response still to come.
pub struct Sent {
    stream: h3::client::RequestStream<quiver_h3::BidiStream<Bytes>, Bytes>,
    conn: quiver::Connection,
    path: String,
    /// Held until the response is in: h3 closes the connection once the
    /// last request handle is gone.
    _requests: Requests,
}

/// Sends the request for `url` (HEADERS, then the end of the request
/// stream). Awaited by the task that set up the connection, so that with
/// `--0rtt` the requests are written before the server's first flight can
/// complete the handshake: they go in 0-RTT (RFC 9001 §4.6.1).
pub async fn send(
    mut requests: Requests,
    conn: &quiver::Connection,
    url: &Url,
) -> Result<Sent, Failed> {
    let path = url.path.as_str();
    let request = Request::get(format!("https://{}{path}", authority(url)))
        .body(())
        .map_err(|e| Failed::new(format!("{path}: cannot make a request: {e}")))?;
    let fail = |e: StreamError| Failed::new(describe_stream(conn, path, &e));
    let mut stream = requests.send_request(request).await.map_err(fail)?;
    match stream.finish().await {
        // RFC 9114 §4.1.2: a server that has its response complete may
        // stop our request stream (with H3_NO_ERROR, or quinn's 0); the
        // response stands, and a truncated one fails when it is read.
        Err(StreamError::RemoteTerminate { .. }) => {}
        other => other.map_err(fail)?,
    }
    Ok(Sent {
        stream,
        conn: conn.clone(),
        path: url.path.clone(),
        _requests: requests,
    })
}

/// Receives the response to `sent` into `file` (through `file.part`).
pub async fn receive(sent: Sent, file: PathBuf, progress: ProgressBar) -> Result<Fetched, Failed> {
    let Sent {
        mut stream,
        conn,
        path,
        _requests,
    } = sent;
    let path = path.as_str();
    let fail = |e: StreamError| Failed::new(describe_stream(&conn, path, &e));
    let response = stream.recv_response().await.map_err(fail)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failed {
            error: format!(
                "{path}: HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_owned(),
            status: Some(status.as_u16()),
        });
    }
    let with_status = |error: String| Failed {
        error,
        status: Some(status.as_u16()),
    };
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut part = PartFile::create(&file).map_err(with_status)?;
    while let Some(mut chunk) = stream
        .recv_data()
        .await
        .map_err(|e| with_status(describe_stream(&conn, path, &e)))?
    {
        while chunk.has_remaining() {
            let data = chunk.chunk();
            let n = data.len();
            part.write(data).map_err(with_status)?;
            progress.inc(n as u64);
            chunk.advance(n);
        }
    }
    if let Some(length) = length.filter(|&l| l != part.saved()) {
        return Err(with_status(format!(
            "{path}: {} bytes arrived, content-length said {length}",
            part.saved()
        )));
    }
    let bytes = part.commit().map_err(with_status)?;
    Ok(Fetched {
        bytes,
        status: Some(status.as_u16()),
    })
}

/// The wording for a failed request: the connection's end as `quiver`
/// saw it when the connection is gone, the peer's stream code when it
/// reset the stream.
fn describe_stream(conn: &quiver::Connection, path: &str, e: &StreamError) -> String {
    match e {
        StreamError::ConnectionError(c) => describe_connection(conn, c),
        StreamError::RemoteTerminate { code, .. } => {
            format!(
                "{path}: stream reset by the server ({})",
                describe_code(*code)
            )
        }
        StreamError::RemoteClosing => format!("{path}: the server is going away (GOAWAY)"),
        StreamError::HeaderTooBig { max_size, .. } => {
            format!("{path}: request headers larger than the server takes ({max_size} bytes)")
        }
        StreamError::StreamError { code, reason, .. } => {
            format!("{path}: HTTP/3 error {}: {reason}", describe_code(*code))
        }
        other => format!("{path}: {other}"),
    }
}

/// The wording for an HTTP/3 connection that ended.
fn describe_connection(conn: &quiver::Connection, e: &ConnectionError) -> String {
    match e {
        // h3 closed it: the server broke the protocol.
        ConnectionError::Local {
            error: LocalError::Application { code, reason, .. },
            ..
        } => format!("HTTP/3 error {}: {reason}", describe_code(*code)),
        ConnectionError::Timeout => "timed out".to_owned(),
        ConnectionError::Remote(incoming) => match (conn.close_reason(), incoming) {
            // The end as quiver saw it keeps the peer's reason phrase.
            (Some(c), _) => common::describe_connection_error(&c),
            (None, ConnectionErrorIncoming::ApplicationClose { error_code }) => format!(
                "connection closed by peer: application error {}",
                describe_code(Code::from(*error_code))
            ),
            (None, ConnectionErrorIncoming::Timeout) => "timed out".to_owned(),
            (None, ConnectionErrorIncoming::Undefined(inner)) => {
                match inner.downcast_ref::<quiver::ConnectionError>() {
                    Some(c) => common::describe_connection_error(c),
                    None => format!("connection failed: {inner}"),
                }
            }
            (None, other) => format!("connection failed: {other:?}"),
        },
        other => format!("HTTP/3: {other}"),
    }
}

/// `H3_REQUEST_REJECTED (0x10b)`, or the bare hex of an unnamed code.
fn describe_code(code: Code) -> String {
    let name = code.to_string();
    if name.starts_with("0x") {
        name
    } else {
        format!("{name} ({:#x})", code.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_authorities_are_worded() {
        assert_eq!(
            describe_code(Code::H3_REQUEST_REJECTED),
            "H3_REQUEST_REJECTED (0x10b)"
        );
        assert_eq!(describe_code(Code::from(0x1f)), "0x1f");
        let url: Url = "https://[::1]:9/x".parse().unwrap();
        assert_eq!(authority(&url), "[::1]:9");
        let url: Url = "https://localhost/x".parse().unwrap();
        assert_eq!(authority(&url), "localhost:443");
    }
}
