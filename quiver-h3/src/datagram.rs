//! HTTP Datagrams (RFC 9297): `h3-datagram`'s transport traits over QUIC
//! datagrams (RFC 9221). Enabled by the `datagram` feature.
//!
//! With it, `h3_datagram::datagram_handler::HandleDatagramsExt` works on
//! h3 clients and servers built on [`Connection`] (both sides must build
//! h3 with `enable_datagram(true)`, and quiver's transport must allow
//! datagrams, which its default does).

use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::quic::ConnectionErrorIncoming;
use h3_datagram::datagram::EncodedDatagram;
use h3_datagram::quic_traits::{
    DatagramConnectionExt, RecvDatagram, SendDatagram, SendDatagramErrorIncoming,
};
use quiver::SendDatagramError;

use crate::connection::Connection;
use crate::error::connection_error;

/// Sends the datagrams of an h3 connection on quiver.
#[derive(Debug, Clone)]
pub struct SendDatagramHandler {
    conn: quiver::Connection,
}

impl<B: Buf> SendDatagram<B> for SendDatagramHandler {
    fn send_datagram<T: Into<EncodedDatagram<B>>>(
        &mut self,
        data: T,
    ) -> Result<(), SendDatagramErrorIncoming> {
        let mut buf: EncodedDatagram<B> = data.into();
        let bytes = buf.copy_to_bytes(buf.remaining());
        self.conn.send_datagram(bytes).map_err(send_datagram_error)
    }
}

/// Receives the datagrams of an h3 connection on quiver.
#[derive(Debug, Clone)]
pub struct RecvDatagramHandler {
    conn: quiver::Connection,
}

impl RecvDatagram for RecvDatagramHandler {
    type Buffer = Bytes;

    fn poll_incoming_datagram(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bytes, ConnectionErrorIncoming>> {
        self.conn.poll_read_datagram(cx).map_err(connection_error)
    }
}

impl<B: Buf> DatagramConnectionExt<B> for Connection {
    type SendDatagramHandler = SendDatagramHandler;
    type RecvDatagramHandler = RecvDatagramHandler;

    fn send_datagram_handler(&self) -> SendDatagramHandler {
        SendDatagramHandler {
            conn: self.inner().clone(),
        }
    }

    fn recv_datagram_handler(&self) -> RecvDatagramHandler {
        RecvDatagramHandler {
            conn: self.inner().clone(),
        }
    }
}

/// Maps why quiver refused a datagram: the peer takes none (or has not
/// said yet) is `NotAvailable`, too large is `TooLarge`, a lost
/// connection keeps its cause as [`connection_error`] maps it.
pub fn send_datagram_error(e: SendDatagramError) -> SendDatagramErrorIncoming {
    match e {
        SendDatagramError::NotYet | SendDatagramError::UnsupportedByPeer => {
            SendDatagramErrorIncoming::NotAvailable
        }
        SendDatagramError::TooLarge { .. } => SendDatagramErrorIncoming::TooLarge,
        SendDatagramError::ConnectionLost(e) => {
            SendDatagramErrorIncoming::ConnectionError(connection_error(e))
        }
    }
}
