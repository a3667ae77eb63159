//! NEW_TOKEN on a connection (RFC 9000 §8.1.3, §19.7): the server sends
//! one token once the handshake is confirmed, again if it is lost, until
//! acknowledged; the client hands the tokens it receives to its
//! [`TokenStore`](crate::TokenStore) for its next connection to the server.

use std::sync::Arc;

use bytes::Bytes;

use super::Connection;
use crate::frame::NewToken;

/// The connection's NEW_TOKEN state.
#[derive(Debug, Default)]
pub(crate) struct NewTokenState {
    /// Server: the token to send, until acknowledged.
    to_send: Option<Bytes>,
    /// Server: a NEW_TOKEN frame is due.
    pending: bool,
    /// Client: where received tokens go, and the server name they are for.
    store: Option<(Arc<dyn crate::TokenStore>, Arc<str>)>,
}

impl NewTokenState {
    /// Whether a NEW_TOKEN frame waits to be sent.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending
    }
}

impl Connection {
    /// Server: the token to send in a NEW_TOKEN frame once the handshake is
    /// confirmed.
    pub(crate) fn set_new_token_to_send(&mut self, token: Bytes) {
        self.new_token.to_send = Some(token);
        self.new_token.pending = self.handshake_confirmed;
    }

    /// Client: the store that keeps tokens from NEW_TOKEN frames for
    /// `server_name`, and a token from it for our Initials (RFC 9000
    /// §8.1.3; a Retry's token replaces it, §17.2.5.2).
    pub(crate) fn set_token_store(
        &mut self,
        store: Arc<dyn crate::TokenStore>,
        server_name: &str,
        initial_token: Option<Bytes>,
    ) {
        if let Some(token) = initial_token {
            self.retry_token = token;
        }
        self.new_token.store = Some((store, server_name.into()));
    }

    /// The handshake is confirmed: the server's token may go out (RFC 9000
    /// §8.1.3: sent to a client whose address is validated, which a
    /// completed handshake proves).
    pub(crate) fn new_token_on_confirmed(&mut self) {
        if self.new_token.to_send.is_some() {
            self.new_token.pending = true;
        }
    }

    /// Writes the pending NEW_TOKEN frame if it fits before `limit`;
    /// whether it did.
    pub(crate) fn write_new_token(&mut self, buf: &mut Vec<u8>, limit: usize) -> bool {
        let Some(token) = self
            .new_token
            .to_send
            .as_ref()
            .filter(|_| self.new_token.pending)
        else {
            return false;
        };
        let frame = NewToken { token };
        if buf.len() + frame.encoded_len() > limit {
            return false;
        }
        frame.encode(buf);
        self.new_token.pending = false;
        true
    }

    /// A packet carrying our NEW_TOKEN was acknowledged (`acked`) or lost.
    pub(crate) fn new_token_on_outcome(&mut self, acked: bool) {
        if acked {
            self.new_token.to_send = None;
            self.new_token.pending = false;
        } else if self.new_token.to_send.is_some() {
            // RFC 9000 §13.3: "A NEW_TOKEN frame is [...] retransmitted
            // [...] if the packet containing it is declared lost".
            self.new_token.pending = true;
        }
    }

    /// Client: a NEW_TOKEN frame's token (RFC 9000 §19.7), kept for the
    /// next connection to this server.
    pub(crate) fn on_new_token_frame(&mut self, token: &[u8]) {
        if let Some((store, name)) = &self.new_token.store {
            store.insert(name, Bytes::copy_from_slice(token));
        }
    }
}
