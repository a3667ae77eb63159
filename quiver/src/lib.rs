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
//! ```no_run
//! use quiver::{ClientConfig, Endpoint, VarInt};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut endpoint = Endpoint::client("0.0.0.0:0".parse()?)?;
//! endpoint.set_default_client_config(
//!     ClientConfig::insecure().alpn_protocols(&[b"hq-interop"]).build()?,
//! );
//! let connection = endpoint.connect("127.0.0.1:4433".parse()?, "localhost")?.await?;
//! let (mut send, mut recv) = connection.open_bi().await?;
//! send.write_all(b"GET /\r\n").await?;
//! send.finish()?;
//! let response = recv.read_to_end(1 << 20).await?;
//! connection.close(VarInt::from_u32(0), b"done");
//! endpoint.wait_idle().await;
//! # let _ = response; Ok(()) }
//! ```
//!
//! Dropping handles cleans up: the last handle of a connection (the
//! [`Connection`] clones and its streams) closes it with code 0, and the
//! state of a connection is freed once it has drained.

#![warn(missing_docs)]

mod config;
mod connection;
mod driver;
mod endpoint;
mod shared;
mod streams;

pub use config::{ClientConfig, ClientConfigBuilder, ServerConfig, ServerConfigBuilder};
pub use connection::{Connecting, Connection, ZeroRttAccepted};
pub use endpoint::{ConnectError, Endpoint, Incoming, RetryError};
pub use streams::{
    ClosedStream, ReadError, ReadToEndError, RecvStream, SendStream, StoppedError, WriteError,
};

pub use quiver_proto as proto;
pub use quiver_proto::connection::SendDatagramError;
pub use quiver_proto::crypto::{ClientHelloInfo, ConfigError};
pub use quiver_proto::frame::Dir;
pub use quiver_proto::streams::StreamId;
pub use quiver_proto::{
    AdmissionConfig, ConnectionError, ConnectionStats, EndpointConfig, EndpointStats, RefusedStats,
    Side, TransportConfig, TransportError, TransportErrorCode, VarInt,
};
pub use quiver_udp as udp;
