//! `quiver serve` over HTTP/3 (ALPN `h3`, RFC 9114) through hyperium's
//! `h3` on `quiver-h3`: the files of the root answer `GET` and `HEAD`
//! with 200, `content-length` and a `content-type` guessed from the
//! extension; a missing file (or a path out of the root) is 404, any
//! other method 405.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use h3::error::StreamError;
use h3::server::RequestStream;
use http::{Method, Response, StatusCode, header};

use crate::common;
use crate::files;

/// Bytes read from a file and sent in one DATA frame.
const CHUNK: usize = 64 * 1024;
/// How long a request's end is waited for after the response.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

type Stream = RequestStream<quiver_h3::BidiStream<Bytes>, Bytes>;

/// Serves the requests of one connection until the client goes away.
pub async fn connection(
    conn: quiver::Connection,
    root: Arc<Path>,
    remote: SocketAddr,
    verbose: bool,
) {
    let mut h3 = match h3::server::Connection::new(quiver_h3::Connection::new(conn.clone())).await {
        Ok(h3) => h3,
        Err(e) => {
            if verbose {
                eprintln!("{remote}: HTTP/3 setup failed: {e}");
            }
            return;
        }
    };
    loop {
        match h3.accept().await {
            Ok(Some(resolver)) => {
                let root = root.clone();
                tokio::spawn(async move {
                    match resolver.resolve_request().await {
                        Ok((request, mut stream)) => {
                            let (method, path) = (request.method().clone(), request.uri().path());
                            let line = format!("{method} {path}");
                            let answered = respond(&method, path, &mut stream, &root).await;
                            drain(&mut stream).await;
                            match answered {
                                Ok(what) if verbose => {
                                    eprintln!("{remote}: HTTP/3 {line}: {what}")
                                }
                                Err(e) if verbose => eprintln!("{remote}: HTTP/3 {line}: {e}"),
                                _ => {}
                            }
                        }
                        Err(e) if verbose => eprintln!("{remote}: bad request: {e}"),
                        Err(_) => {}
                    }
                });
            }
            Ok(None) => return,
            Err(e) => {
                if verbose && !e.is_h3_no_error() {
                    // quiver's wording of the end when there is one (a
                    // browser closes with the transport's NO_ERROR).
                    match conn.close_reason() {
                        Some(c) => eprintln!("{remote}: {}", common::describe_connection_error(&c)),
                        None => eprintln!("{remote}: {e}"),
                    }
                }
                return;
            }
        }
    }
}

/// Answers one request; tells what was sent, for the log.
async fn respond(
    method: &Method,
    path: &str,
    stream: &mut Stream,
    root: &Path,
) -> Result<String, StreamError> {
    if method != Method::GET && method != Method::HEAD {
        let response = Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET, HEAD")
            .header(header::CONTENT_LENGTH, 0)
            .body(())
            .expect("valid response");
        stream.send_response(response).await?;
        stream.finish().await?;
        return Ok("405".to_owned());
    }
    let opened = files::resolve(root, path).and_then(|file| {
        let f = std::fs::File::open(&file).ok()?;
        let len = f.metadata().ok()?.len();
        Some((file, f, len))
    });
    let Some((file, mut f, len)) = opened else {
        let body = Bytes::from_static(b"not found\n");
        let response = Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CONTENT_LENGTH, body.len())
            .body(())
            .expect("valid response");
        stream.send_response(response).await?;
        if method == Method::GET {
            stream.send_data(body).await?;
        }
        stream.finish().await?;
        return Ok("404".to_owned());
    };
    let content_type = mime_guess::from_path(&file).first_or_octet_stream();
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type.as_ref())
        .header(header::CONTENT_LENGTH, len)
        .body(())
        .expect("valid response");
    stream.send_response(response).await?;
    if method == Method::HEAD {
        stream.finish().await?;
        return Ok("200, head only".to_owned());
    }
    let mut sent = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => {
                // The status is out: abandon the body (RFC 9114 §4.1.1).
                stream.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return Ok(format!("200, read failed after {sent} bytes"));
            }
        };
        buf.truncate(n);
        stream.send_data(Bytes::from(buf)).await?;
        sent += n as u64;
    }
    stream.finish().await?;
    Ok(format!("200, {sent} bytes"))
}

/// Reads what is left of the request (a body nobody asked for) until the
/// client ends it, for a while: dropping the stream before that would
/// ask the client to stop sending, and a client that writes anything
/// after its headers (h3 writes a grease frame when it finishes) would
/// see that as an error even though its response is complete.
async fn drain(stream: &mut Stream) {
    const LIMIT: usize = 1 << 20;
    let mut seen = 0;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Ok(Some(chunk)) = stream.recv_data().await {
            seen += chunk.remaining();
            if seen > LIMIT {
                return;
            }
        }
    })
    .await;
}

/// The protocols `quiver serve` offers without `--alpn`, in order of
/// preference: a client offering both (as `quiver get` does) gets HTTP/3.
pub fn default_alpns() -> [&'static [u8]; 2] {
    [common::H3_ALPN.as_bytes(), common::HQ_ALPN.as_bytes()]
}
