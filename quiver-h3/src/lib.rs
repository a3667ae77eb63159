//! # quiver-h3
//!
//! HTTP/3 over quiver: the QUIC transport traits of hyperium's [`h3`]
//! crate (`h3::quic`, version 0.0.8, exposed by its
//! `i-implement-a-third-party-backend-and-opt-into-breaking-changes`
//! feature) implemented on the [`quiver`] runtime, as `h3-quinn` does on
//! quinn.
//!
//! Wrap an established [`quiver::Connection`] (ALPN [`ALPN`]) in a
//! [`Connection`] and hand it to `h3::server::Connection::new` or
//! `h3::client::new`:
//!
//! ```no_run
//! # async fn demo(incoming: quiver::Incoming) -> Result<(), Box<dyn std::error::Error>> {
//! let conn = incoming.await?;
//! let mut h3 = h3::server::Connection::<_, bytes::Bytes>::new(quiver_h3::Connection::new(conn)).await?;
//! while let Some(resolver) = h3.accept().await? {
//!     let (request, mut stream) = resolver.resolve_request().await?;
//!     let response = http::Response::builder().status(200).body(())?;
//!     stream.send_response(response).await?;
//!     stream.send_data(bytes::Bytes::from_static(b"hello")).await?;
//!     stream.finish().await?;
//!     # let _ = request;
//! }
//! # Ok(()) }
//! ```
//!
//! A client sends a request and reads the response (the README shows the
//! same lines; `examples/h3_client.rs` is a whole program):
//!
//! ```no_run
//! # async fn demo(endpoint: quiver::Endpoint, addr: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
//! let conn = endpoint.connect(addr, "localhost")?.await?; // quiver::Connection
//! let (mut driver, mut send) = h3::client::new(quiver_h3::Connection::new(conn)).await?;
//! tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
//! let request = http::Request::get("https://localhost/index.html").body(())?;
//! let mut stream = send.send_request(request).await?;
//! match stream.finish().await {
//!     // A server may stop reading once its response is complete
//!     // (RFC 9114 §4.1.2): the response still stands.
//!     Ok(()) | Err(h3::error::StreamError::RemoteTerminate { .. }) => {}
//!     Err(e) => return Err(e.into()),
//! }
//! let response = stream.recv_response().await?; // status and headers
//! while let Some(chunk) = stream.recv_data().await? {
//!     // chunk: impl bytes::Buf, the body in order
//!     # let _ = chunk;
//! }
//! # let _ = response; Ok(()) }
//! ```
//!
//! Errors keep their meaning across the boundary (see [`error`]): a
//! peer's CONNECTION_CLOSE with an HTTP/3 code reaches h3 as that code,
//! RESET_STREAM and STOP_SENDING as the peer's stream code, an idle
//! timeout as a timeout.
//!
//! The `datagram` feature adds HTTP Datagrams (RFC 9297) through the
//! `h3-datagram` crate's traits (module `datagram`).

#![warn(missing_docs)]

mod bidi;
mod connection;
#[cfg(feature = "datagram")]
pub mod datagram;
pub mod error;
mod recv;
mod send;

pub use bidi::BidiStream;
pub use connection::{Connection, OpenStreams};
pub use recv::RecvStream;
pub use send::SendStream;

/// The ALPN protocol ID of HTTP/3 (RFC 9114 §3.1).
pub const ALPN: &[u8] = b"h3";
