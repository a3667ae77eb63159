//! HTTP/3 (ALPN `h3`) on quiche's own `quiche::h3` module: a third
//! HTTP/3 implementation for quiver to meet, beside aioquic's and
//! nghttp3 (ngtcp2). The client (`--h3`) sends one `GET` per URL and saves
//! each 200 response's body; any other status ends it with `status PATH
//! CODE`. The server (which offers `h3` beside `hq-interop`) answers a
//! `GET` for a file under its root with 200, `content-length` and the
//! bytes, and anything else with 404 (or 405 for another method).

use std::path::Path;

use quiche::h3::{self, NameValue};

use crate::{Fetch, Peer, Request, Requester};

pub const ALPN: &[u8] = b"h3";

/// The client's side: quiche's HTTP/3 connection, made once the QUIC
/// connection can carry requests.
pub struct Client {
    host: String,
    h3: Option<h3::Connection>,
    /// Request stream → index into the fetches.
    streams: std::collections::HashMap<u64, usize>,
}

impl Client {
    pub fn new(host: &str) -> Self {
        Self {
            host: host.to_owned(),
            h3: None,
            streams: Default::default(),
        }
    }
}

impl Requester for Client {
    fn request(
        &mut self,
        conn: &mut quiche::Connection,
        fetches: &mut [Fetch],
        mut next: usize,
    ) -> Result<usize, String> {
        if self.h3.is_none() {
            let config = h3::Config::new().map_err(|e| format!("failed: h3 config: {e}"))?;
            self.h3 = Some(
                h3::Connection::with_transport(conn, &config)
                    .map_err(|e| format!("failed: h3: {e}"))?,
            );
        }
        let h3 = self.h3.as_mut().unwrap();
        while next < fetches.len() {
            let headers = [
                h3::Header::new(b":method", b"GET"),
                h3::Header::new(b":scheme", b"https"),
                h3::Header::new(b":authority", self.host.as_bytes()),
                h3::Header::new(b":path", fetches[next].path.as_bytes()),
                h3::Header::new(b"user-agent", b"quiche-peer"),
            ];
            match h3.send_request(conn, &headers, true) {
                Ok(stream) => {
                    self.streams.insert(stream, next);
                    next += 1;
                }
                // No stream credit, or no room: retried on the next turn.
                Err(h3::Error::StreamBlocked | h3::Error::TransportError(_) | h3::Error::Done) => {
                    break
                }
                Err(e) => return Err(format!("failed: request {}: {e}", fetches[next].path)),
            }
        }
        Ok(next)
    }

    fn receive(
        &mut self,
        conn: &mut quiche::Connection,
        fetches: &mut [Fetch],
        buf: &mut [u8],
    ) -> Result<usize, String> {
        let Some(h3) = self.h3.as_mut() else {
            return Ok(0);
        };
        let mut finished = 0;
        loop {
            let (stream, event) = match h3.poll(conn) {
                Ok(e) => e,
                Err(h3::Error::Done) => return Ok(finished),
                Err(e) => return Err(format!("failed: h3: {e}")),
            };
            let Some(&i) = self.streams.get(&stream) else {
                continue; // a push or another stream: not ours to read
            };
            let f = &mut fetches[i];
            match event {
                h3::Event::Headers { list, .. } => {
                    let status = list
                        .iter()
                        .find(|h| h.name() == b":status")
                        .map(|h| String::from_utf8_lossy(h.value()).into_owned())
                        .unwrap_or_default();
                    if status != "200" {
                        return Err(format!("status {} {status}", f.path));
                    }
                }
                h3::Event::Data => loop {
                    match h3.recv_body(conn, stream, buf) {
                        Ok(n) => f.append(&buf[..n])?,
                        Err(h3::Error::Done) => break,
                        Err(e) => return Err(format!("failed: {}: {e}", f.path)),
                    }
                },
                h3::Event::Finished => {
                    f.finish()?;
                    finished += 1;
                }
                h3::Event::Reset(code) => return Err(format!("reset {} {code:#x}", f.path)),
                h3::Event::PriorityUpdate | h3::Event::GoAway => {}
            }
        }
    }
}

/// Reads the requests of an `h3` connection and writes the answers as
/// flow control allows.
pub fn serve(p: &mut Peer, root: &Path) {
    let conn = &mut p.conn;
    if p.h3.is_none() {
        let made = h3::Config::new().and_then(|c| h3::Connection::with_transport(conn, &c));
        match made {
            Ok(h) => p.h3 = Some(h),
            Err(e) => {
                eprintln!("{}: h3: {e}", p.from);
                conn.close(true, 0x101, b"h3 set-up failed").ok(); // H3_GENERAL_PROTOCOL_ERROR
                return;
            }
        }
    }
    let h3 = p.h3.as_mut().unwrap();
    let mut discard = [0; 4096];
    loop {
        let (stream, event) = match h3.poll(conn) {
            Ok(e) => e,
            Err(h3::Error::Done) => break,
            Err(e) => {
                eprintln!("{}: h3: {e}", p.from);
                break;
            }
        };
        match event {
            h3::Event::Headers { list, .. } => {
                let field = |name: &[u8]| {
                    list.iter()
                        .find(|h| h.name() == name)
                        .map(|h| String::from_utf8_lossy(h.value()).into_owned())
                        .unwrap_or_default()
                };
                let (method, path) = (field(b":method"), field(b":path"));
                let found = (method == "GET")
                    .then(|| crate::resolve(root, &path).and_then(|f| std::fs::read(f).ok()))
                    .flatten();
                let status: &[u8] = match (&found, method.as_str()) {
                    (Some(_), _) => b"200",
                    (None, "GET") => b"404",
                    (None, _) => b"405",
                };
                let length = found.as_ref().map_or(0, Vec::len).to_string();
                let headers = [
                    h3::Header::new(b":status", status),
                    h3::Header::new(b"content-length", length.as_bytes()),
                ];
                eprintln!("h3 {method} {path}: {}", String::from_utf8_lossy(status));
                let fin = found.as_ref().is_none_or(Vec::is_empty);
                if let Err(e) = h3.send_response(conn, stream, &headers, fin) {
                    eprintln!("{}: h3 response: {e}", p.from);
                    continue;
                }
                if !fin {
                    p.requests.insert(
                        stream,
                        Request {
                            body: found,
                            ..Default::default()
                        },
                    );
                }
            }
            // A request body (none expected): read and dropped.
            h3::Event::Data => while h3.recv_body(conn, stream, &mut discard).is_ok() {},
            h3::Event::Reset(_) => {
                if let Some(r) = p.requests.get_mut(&stream) {
                    r.over = true;
                }
            }
            h3::Event::Finished | h3::Event::PriorityUpdate | h3::Event::GoAway => {}
        }
    }
    // Bodies: whatever the stream's credit takes now, the rest later.
    for (&s, req) in p.requests.iter_mut().filter(|(_, r)| !r.over) {
        let Some(body) = &req.body else { continue };
        match h3.send_body(conn, s, &body[req.sent..], true) {
            Ok(n) => req.sent += n,
            Err(h3::Error::Done | h3::Error::StreamBlocked) => continue,
            Err(_) => req.sent = body.len(), // reset or stopped: given up
        }
        if req.sent == body.len() {
            req.over = true;
            req.body = None;
        }
    }
}
