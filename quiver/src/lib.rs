//! quiver: QUIC on tokio.
//!
//! The async runtime (endpoints, connections, streams as `AsyncRead`/`AsyncWrite`,
//! batched UDP I/O) lands with the runtime issue. Until then this crate re-exports
//! the sans-IO protocol core, [`quiver_proto`].

pub use quiver_proto as proto;
