//! # quiver
//!
//! QUIC on tokio, on top of the sans-IO core [`quiver_proto`] and the
//! batched UDP sockets of [`quiver_udp`].
//!
//! An [`Endpoint`] owns one UDP socket and any number of connections, as a
//! client, a server or both. One driver task per endpoint owns the
//! protocol state; it wakes on socket readiness, on the earliest protocol
//! timer and on application calls, and wakes the tasks waiting on
//! connections and streams in turn.
//!
//! ## Tutorial: an echo over QUIC
//!
//! A server and a client in one program on loopback: make a self-signed
//! certificate, start a server endpoint, connect a client that trusts the
//! certificate, send a message on a bidirectional stream, read the echo
//! and close. (This runs as a test: `cargo test -p quiver --doc`.)
//!
//! ```
//! use quiver::rustls::RootCertStore;
//! use quiver::rustls::pki_types::PrivateKeyDer;
//! use quiver::{ClientConfig, Endpoint, ServerConfig, VarInt};
//!
//! type Error = Box<dyn std::error::Error + Send + Sync>;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     // 1. A self-signed certificate for "localhost" (the rcgen crate).
//!     let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
//!     let cert = generated.cert.der().clone();
//!     let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
//!
//!     // 2. A server endpoint on a free loopback port. Both ends must agree
//!     //    on an application protocol (ALPN); this one is called "echo".
//!     let server_config = ServerConfig::with_single_cert(vec![cert.clone()], key)
//!         .alpn_protocols(&[b"echo"])
//!         .build()?;
//!     let server = Endpoint::server(server_config, "127.0.0.1:0".parse()?)?;
//!     let server_addr = server.local_addr()?;
//!
//!     // 3. The server accepts one connection and, on every stream the
//!     //    client opens, sends back what it reads.
//!     let accepting = server.clone();
//!     let echo = tokio::spawn(async move {
//!         let incoming = accepting.accept().await.ok_or("endpoint closed")?;
//!         let connection = incoming.await?; // the handshake
//!         while let Ok((mut send, mut recv)) = connection.accept_bi().await {
//!             let message = recv.read_to_end(64 * 1024).await?;
//!             send.write_all(&message).await?;
//!             send.finish()?;
//!         }
//!         // accept_bi fails once the client has closed the connection.
//!         Ok::<_, Error>(())
//!     });
//!
//!     // 4. A client endpoint that trusts exactly that certificate.
//!     let mut roots = RootCertStore::empty();
//!     roots.add(cert)?;
//!     let mut client = Endpoint::client("127.0.0.1:0".parse()?)?;
//!     client.set_default_client_config(
//!         ClientConfig::with_root_certificates(roots)
//!             .alpn_protocols(&[b"echo"])
//!             .build()?,
//!     );
//!     // The name is checked against the certificate.
//!     let connection = client.connect(server_addr, "localhost")?.await?;
//!
//!     // 5. A bidirectional stream: write, finish (our end is done), read
//!     //    the answer to its end (at most 64 KiB).
//!     let (mut send, mut recv) = connection.open_bi().await?;
//!     send.write_all(b"hello, quiver").await?;
//!     send.finish()?;
//!     let answer = recv.read_to_end(64 * 1024).await?;
//!     assert_eq!(answer, b"hello, quiver");
//!
//!     // 6. Close with application code 0, and wait until the server has
//!     //    seen the close.
//!     connection.close(VarInt::from_u32(0), b"done");
//!     client.wait_idle().await;
//!     echo.await??;
//!     server.close(VarInt::from_u32(0), b"");
//!     Ok(())
//! }
//! ```
//!
//! Runnable programs are in `quiver/examples/`: an echo server and client
//! (`echo_server.rs`, `echo_client.rs`) and a file server
//! (`file_server.rs`); `quiver-h3/examples/` has an HTTP/3 server and
//! client.
//!
//! Dropping handles cleans up: the last handle of a connection (the
//! [`Connection`] clones and its streams) closes it with code 0, and the
//! state of a connection is freed once it has drained.

#![warn(missing_docs)]

mod config;
mod connection;
mod driver;
mod endpoint;
mod icmp;
pub mod qlog;
mod session_store;
mod shared;
mod streams;

pub use config::{ClientConfig, ClientConfigBuilder, ServerConfig, ServerConfigBuilder};
pub use connection::{Connecting, Connection, ZeroRttAccepted};
pub use endpoint::{ConnectError, Endpoint, Incoming, RetryError};
pub use session_store::CountingSessionStore;
pub use streams::{
    ClosedStream, ReadError, ReadToEndError, RecvStream, SendStream, StoppedError, WriteError,
};

pub use quiver_proto as proto;
pub use quiver_proto::connection::SendDatagramError;
pub use quiver_proto::crypto::{CipherSuite, ClientHelloInfo, ConfigError, KxGroup};
pub use quiver_proto::frame::Dir;
pub use quiver_proto::streams::StreamId;
pub use quiver_proto::{
    AdmissionConfig, ConnectionError, ConnectionStats, EndpointConfig, EndpointStats, RefusedStats,
    Side, TransportConfig, TransportError, TransportErrorCode, Unreachable, VarInt,
};
pub use quiver_proto::{
    InMemoryTokenReuseLog, InMemoryTokenStore, NewTokenConfig, TokenReuseLog, TokenReused,
    TokenStore, TokenUse,
};
pub use quiver_udp as udp;
/// The TLS library quiver uses (certificates, keys and root stores for
/// the configs).
pub use rustls;
