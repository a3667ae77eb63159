//! Connection attempts: a client's first Initial datagrams become an
//! [`Incoming`] (after admission control, and once its ClientHello is
//! whole), which the application accepts, refuses, retries or ignores.

use super::early::EarlyKind;
use super::*;

impl Endpoint {
    pub(super) fn on_new_initial(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: &[u8],
        p: &header::PartialPacket,
    ) -> DatagramEvent {
        if self.server.is_none() {
            return DatagramEvent::Handled;
        }
        // RFC 9000 §14.1: "A server MUST discard an Initial packet that is
        // carried in a UDP datagram with a payload that is smaller than the
        // smallest allowed maximum datagram size of 1200 bytes."
        if data.len() < 1200 {
            return DatagramEvent::Handled;
        }
        while let Some(expired) = self.assembly.pop_expired(now) {
            self.forget_attempt(&expired);
        }
        // The rest of a ClientHello that spans several datagrams, or a
        // retransmitted Initial of an attempt awaiting a decision (sent to
        // the client's first DCID, or to the CID of our ACK of its probe).
        if let Some(&id) = self.incoming_keys.get(&(p.dst_cid, remote)) {
            return self.on_more_initial(id, data);
        }
        // RFC 9000 §7.2: the client's first Destination CID is at least 8
        // bytes; shorter ones cannot be a valid first Initial.
        if p.dst_cid.len() < 8 {
            return DatagramEvent::Handled;
        }
        if self.incoming.len() + self.assembly.len() >= MAX_PENDING_INCOMING {
            return DatagramEvent::Handled;
        }
        let version = p.version.unwrap_or(Version::V1);
        let token = &data[p.token.clone()];
        let is_new_token = token.first() == Some(&new_token::NEW_TOKEN_MARKER);
        let retry = if token.is_empty() || is_new_token {
            None
        } else {
            let now_ms = self.token_now(now);
            let valid = self.token_key.validate(now_ms, remote, &p.dst_cid, token);
            if valid.is_none() && token.first() == Some(&0x52) {
                // RFC 9000 §8.1.2: an invalid Retry token "SHOULD
                // immediately close ... with an INVALID_TOKEN error", without
                // creating state.
                let server_cid = self.new_cid();
                let close = stateless::initial_close(
                    version,
                    (&p.dst_cid, &p.src_cid),
                    &server_cid,
                    0,
                    TransportErrorCode::INVALID_TOKEN,
                    "invalid retry token",
                );
                self.queue_stateless(remote, close);
                return DatagramEvent::Handled;
            }
            // Tokens of other kinds (NEW_TOKEN from another instance) are
            // ignored: the address is simply not validated (§8.1.3).
            valid
        };
        let id = IncomingId(self.next_incoming);
        let mut incoming = Incoming::new(
            id,
            remote,
            version,
            (p.dst_cid, p.src_cid),
            retry,
            data.to_vec(),
            now,
        );
        incoming.ecn = self.rx_ecn;
        // A PING-only probe whose ClientHello twin was lost starts an
        // attempt too, acknowledged below (see `answer_probe`).
        let probe = incoming
            .probe_to_acknowledge()
            .filter(|_| self.config.local_cid_len > 0);
        if !incoming.starts_crypto_stream() && probe.is_none() {
            // Undecryptable, or no ClientHello bytes at offset 0 (the
            // second datagram of a ClientHello whose first one was
            // answered with a Retry or refused): nothing to start a
            // handshake from, and nothing to answer, so each attempt gets
            // one answer. A later part of a ClientHello is kept a while
            // for the first part, which loss or reordering may bring
            // after it (RFC 9001 §4.3); admission then sees the attempt
            // once, with its first datagram.
            if incoming.carries_later_crypto_data() {
                let kept = self
                    .early
                    .push(now, (p.dst_cid, remote), EarlyKind::Initial, data);
                tracing::debug!(kept, "later part of a ClientHello before its first");
            }
            return DatagramEvent::Handled;
        }
        // RFC 9000 §8.1.3: "If the server cannot validate the token, it
        // [...] SHOULD proceed as if the client did not have a validated
        // address, including potentially sending a Retry packet" — never
        // INVALID_TOKEN, which is for Retry tokens. Checked once per
        // attempt (it uses up the token), after the datagram proved to
        // start one.
        let new_token_valid = is_new_token && self.check_new_token(now, remote, token);
        incoming.new_token_validated = new_token_valid;
        let validated = incoming.retry.is_some() || new_token_valid;
        if let Some(answered) = self.admit(now, remote, p, version, validated) {
            // No attempt: what arrived early for it is of no use.
            self.early.take(now, &(p.dst_cid, remote));
            return answered;
        }
        self.next_incoming += 1;
        self.incoming_keys
            .insert((incoming.orig_dst_cid, incoming.remote), id);
        self.admission.incoming_added(incoming.remote);
        // RFC 9000 §5.2.2: the 0-RTT (and later ClientHello parts) that
        // arrived before this Initial join the attempt.
        for (kind, early) in self.early.take(now, &(p.dst_cid, remote)) {
            match kind {
                EarlyKind::Initial => {
                    incoming.add_datagram(&early);
                }
                EarlyKind::ZeroRtt => {
                    if incoming.zero_rtt.len() < incoming::MAX_BUFFERED_ZERO_RTT {
                        incoming.zero_rtt.push(early);
                    }
                }
            }
        }
        if let Some(pn) = probe {
            self.answer_probe(&mut incoming, pn);
        }
        if !incoming.client_hello_complete() {
            if let Some(evicted) = self.assembly.push(incoming) {
                self.forget_attempt(&evicted);
            }
            return DatagramEvent::Handled;
        }
        self.incoming.push_back(incoming);
        DatagramEvent::NewConnection(id)
    }

    /// Acknowledges a client's PING-only Initial that arrived without its
    /// ClientHello. quiche's PTO probes pair the two; when only the PING
    /// gets through, a server that stays silent leaves the client waiting
    /// for its next PTO (doubling each time), while an acknowledgement
    /// makes it declare the ClientHello lost by the time threshold and
    /// send it again at once (RFC 9002 §6.1.2), as quinn's server does.
    ///
    /// The ACK's Source CID becomes the client's Destination CID (RFC 9000
    /// §7.2), so it is the connection's own CID from the start: the
    /// attempt is found by it as by the client's first DCID, the
    /// connection keeps it on accept and numbers its Initials after this
    /// one (§12.3), and a refusal uses it (the client discards Initials
    /// with another Source CID, §7.2). Having sent an Initial, the server
    /// can no longer send a Retry (§17.2.5.2: the client discards one).
    fn answer_probe(&mut self, incoming: &mut Incoming, acked: u64) {
        let server_cid = self.new_cid();
        incoming.answered_cid = Some(server_cid);
        self.incoming_keys
            .insert((server_cid, incoming.remote), incoming.id());
        let ack = stateless::initial_ack(
            incoming.version,
            (&incoming.orig_dst_cid, &incoming.src_cid),
            &server_cid,
            acked,
        );
        self.admission.stats.probes_acknowledged += 1;
        self.queue_stateless(incoming.remote, ack);
    }

    /// Another Initial datagram of a pending attempt: kept while its
    /// ClientHello is assembling (reported once whole); a retransmission
    /// of a reported attempt is dropped, since accepting it will have the
    /// client send again whatever the connection misses.
    fn on_more_initial(&mut self, id: IncomingId, data: &[u8]) -> DatagramEvent {
        let Some(pos) = self.assembly.position_of(id) else {
            return DatagramEvent::Handled;
        };
        let Some(incoming) = self.assembly.get_mut(pos) else {
            return DatagramEvent::Handled;
        };
        incoming.add_datagram(data);
        if !incoming.client_hello_complete() {
            return DatagramEvent::Handled;
        }
        let Some(incoming) = self.assembly.remove(pos) else {
            return DatagramEvent::Handled;
        };
        let id = incoming.id();
        // Reported attempts stay in arrival order of their first datagram
        // (ids increase), so look-ups by id can search.
        let at = self.incoming.partition_point(|i| i.id().0 < id.0);
        self.incoming.insert(at, incoming);
        DatagramEvent::NewConnection(id)
    }

    /// Drops an attempt that was never reported (evicted or expired), or
    /// that leaves the pending list: it is no longer found by its
    /// client's first DCID, nor by the CID the endpoint answered it with.
    fn forget_attempt(&mut self, incoming: &Incoming) {
        self.incoming_keys
            .remove(&(incoming.orig_dst_cid, incoming.remote));
        if let Some(cid) = incoming.answered_cid {
            self.incoming_keys.remove(&(cid, incoming.remote));
        }
        self.admission.incoming_removed(incoming.remote);
    }

    /// Where the reported attempt `id` is in `incoming`: attempts are
    /// reported in id order (see `on_more_initial`), so a binary search of
    /// at most `MAX_PENDING_INCOMING` (ten steps) rather than a scan.
    fn incoming_position(&self, id: IncomingId) -> Option<usize> {
        self.incoming.binary_search_by_key(&id.0, |i| i.id().0).ok()
    }

    /// RFC 9001 §4.6: 0-RTT for an attempt still awaiting a decision is
    /// kept (a bounded number of datagrams) and read once it is accepted;
    /// 0-RTT for no attempt yet waits for its Initial (RFC 9000 §5.2.2).
    pub(super) fn buffer_zero_rtt(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: &[u8],
        dst_cid: &ConnectionId,
    ) {
        let Some(&id) = self.incoming_keys.get(&(*dst_cid, remote)) else {
            // RFC 9000 §7.2: the client's first Destination CID has at
            // least 8 bytes; only a server that may accept 0-RTT keeps it.
            let may_accept = self.server.as_ref().is_some_and(|s| s.crypto.early_data());
            if may_accept && dst_cid.len() >= 8 {
                let kept = self
                    .early
                    .push(now, (*dst_cid, remote), EarlyKind::ZeroRtt, data);
                tracing::debug!(kept, "0-RTT datagram before its Initial");
            }
            return;
        };
        // Reported and waiting for the application, or still assembling
        // its ClientHello: both sorted by id.
        let pending = match self.assembly.position_of(id) {
            Some(pos) => self.assembly.get_mut(pos),
            None => self
                .incoming_position(id)
                .and_then(|pos| self.incoming.get_mut(pos)),
        };
        if let Some(incoming) = pending
            && incoming.zero_rtt.len() < incoming::MAX_BUFFERED_ZERO_RTT
        {
            tracing::debug!("0-RTT datagram buffered");
            incoming.zero_rtt.push(data.to_vec());
        }
    }

    /// Whether the pending attempt `id` may have its 0-RTT accepted (RFC
    /// 9001 §4.6.2: a server may reject 0-RTT for any reason). By default
    /// it may, when the server configuration allows early data; `false`
    /// makes TLS reject it, and the client sends its data again in 1-RTT.
    /// Returns false if there is no such attempt.
    pub fn set_early_data(&mut self, id: IncomingId, allowed: bool) -> bool {
        match self
            .incoming_position(id)
            .and_then(|pos| self.incoming.get_mut(pos))
        {
            Some(incoming) => {
                incoming.early_data = allowed;
                true
            }
            None => false,
        }
    }

    /// The next connection attempt awaiting a decision: answer it with
    /// [`Endpoint::accept`] (or, from the lifecycle work, refuse/retry/ignore).
    pub fn poll_incoming(&mut self) -> Option<&Incoming> {
        self.incoming.front()
    }

    /// The pending attempt `id`, to inspect before deciding.
    pub fn incoming(&self, id: IncomingId) -> Option<&Incoming> {
        self.incoming.get(self.incoming_position(id)?)
    }

    /// Drops a pending attempt without answering.
    pub fn ignore(&mut self, id: IncomingId) {
        if self.take_incoming(id).is_some() {
            self.admission.stats.ignored += 1;
        }
    }

    pub(super) fn take_incoming(&mut self, id: IncomingId) -> Option<Incoming> {
        let pos = self.incoming_position(id)?;
        let incoming = self.incoming.remove(pos)?;
        self.forget_attempt(&incoming);
        Some(incoming)
    }

    /// Refuses a pending attempt: a CONNECTION_CLOSE with CONNECTION_REFUSED
    /// in an Initial packet, and no state kept (RFC 9000 §10.2.3: "the
    /// server MAY send a CONNECTION_CLOSE frame with error code
    /// CONNECTION_REFUSED in an Initial packet").
    pub fn refuse(&mut self, id: IncomingId) {
        let Some(incoming) = self.take_incoming(id) else {
            return;
        };
        self.admission.stats.refused.application += 1;
        // After an ACK the client takes only Initials from that CID (RFC
        // 9000 §7.2), and packet number 0 is used (§12.3).
        let (server_cid, pn) = match incoming.answered_cid {
            Some(cid) => (cid, 1),
            None => (self.new_cid(), 0),
        };
        let close = stateless::initial_close(
            incoming.version,
            (&incoming.orig_dst_cid, &incoming.src_cid),
            &server_cid,
            pn,
            TransportErrorCode::CONNECTION_REFUSED,
            "",
        );
        self.queue_stateless(incoming.remote, close);
    }

    /// Answers a pending attempt with a Retry, asking the client to prove
    /// its address (RFC 9000 §8.1.2). No state is kept: the client's next
    /// Initial arrives as a new attempt whose address is validated.
    pub fn retry(&mut self, now: Instant, id: IncomingId) -> Result<(), RetryError> {
        let pos = self.incoming_position(id).ok_or(RetryError::Unknown)?;
        if self.incoming[pos].retry.is_some() {
            return Err(RetryError::AlreadyValidated);
        }
        if self.incoming[pos].answered_cid.is_some() {
            return Err(RetryError::Answered);
        }
        let incoming = self.take_incoming(id).ok_or(RetryError::Unknown)?;
        self.admission.stats.retried_by_application += 1;
        self.send_retry(
            now,
            incoming.remote,
            incoming.version,
            &incoming.orig_dst_cid,
            &incoming.src_cid,
        );
        Ok(())
    }
}
