//! # quiver-proto
//!
//! The sans-IO core of quiver, a QUIC implementation (RFC 9000, 9001, 9002,
//! 9221, 9369). Nothing here touches sockets, threads, clocks or global
//! randomness: time and random bytes are passed in, so every behaviour can be
//! replayed deterministically.
//!
//! This layer holds the wire format: [variable-length integers](coding::VarInt),
//! [packet headers and numbers](packet), [frames](frame),
//! [transport parameters](transport_params) and [packet protection](crypto).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod coding;
pub mod config;
pub mod congestion;
pub mod connection;
pub mod crypto;
pub mod endpoint;
pub mod error;
pub mod frame;
pub mod packet;
pub mod qlog;
pub mod quic_lb;
pub mod range_set;
pub mod recovery;
pub mod streams;
pub mod token_reuse_log;
pub mod token_store;
pub mod transport_params;

mod cid;
mod ecn;
mod version;

pub use cid::{ConnectionId, MAX_CID_SIZE};
pub use coding::VarInt;
pub use config::{EndpointConfig, TransportConfig};
pub use connection::{
    Connection, ConnectionError, ConnectionHandle, ConnectionStats, Event, MAX_TRANSMIT_BYTES,
    MigrateError, Transmit, Unreachable,
};
pub use ecn::EcnCodepoint;
pub use endpoint::NewTokenConfig;
pub use endpoint::{
    AdmissionConfig, ClientConfig, DatagramEvent, Endpoint, EndpointStats, Incoming, IncomingId,
    RefusedStats, RetryError, ServerConfig,
};
pub use error::{TransportError, TransportErrorCode};
pub use token_reuse_log::{
    DEFAULT_TOKEN_REUSE_CAPACITY, InMemoryTokenReuseLog, TOKEN_NONCE_LEN, TokenReuseLog,
    TokenReused, TokenUse,
};
pub use token_store::{InMemoryTokenStore, TokenStore};
pub use version::Version;

/// Which end of a connection: the one that initiated it, or the one that accepted it.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub enum Side {
    /// The endpoint that initiated the connection.
    Client,
    /// The endpoint that accepted the connection.
    Server,
}

impl Side {
    /// Whether this is the client.
    pub fn is_client(self) -> bool {
        self == Side::Client
    }

    /// Whether this is the server.
    pub fn is_server(self) -> bool {
        self == Side::Server
    }

    /// The other side.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}
