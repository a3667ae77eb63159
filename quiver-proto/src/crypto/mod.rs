//! Packet protection (RFC 9001 §5) on rustls's `quic` module.
