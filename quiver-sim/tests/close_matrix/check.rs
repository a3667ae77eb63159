//! The checks of one cell of the close matrix (see the list in main.rs).

use bytes::Bytes;
use quiver_proto::packet::PacketType;
use quiver_proto::{ConnectionError, TransportErrorCode, VarInt};

use super::common_close::{
    close_datagrams, closes_in, describe_log, draining_violations, level, only_close_and_padding,
};
use super::scenario::Outcome;
use super::{APP_CODE, APP_REASON, END_BOUND, Role, Stage};

impl Outcome {
    fn name(&self) -> String {
        format!(
            "{:?} closes at {:?} with {:?}",
            self.closer, self.stage, self.loss
        )
    }

    /// The levels the first close datagram must use, given the keys the
    /// closer held (RFC 9000 §10.2.3, RFC 9001 §4.9).
    fn expected_levels(&self) -> Vec<PacketType> {
        if self.close.confirmed {
            return vec![PacketType::OneRtt];
        }
        let mut levels = Vec::new();
        match self.closer {
            Role::Server => {
                // RFC 9001 §4.9.1: the server discards Initial keys when it
                // first processes a Handshake packet.
                if !self.peer_handshake_delivered_to_server_before_close {
                    levels.push(PacketType::Initial);
                }
                // Once it has read the ClientHello the server holds
                // Handshake and 1-RTT keys (TLS derives both while writing
                // its first flight).
                if self.close.peer_params {
                    levels.push(PacketType::Handshake);
                    levels.push(PacketType::OneRtt);
                }
            }
            Role::Client => {
                // RFC 9001 §4.9.1: the client discards Initial keys when it
                // first sends a Handshake packet.
                let sent_handshake = self.closer_log[..self.close.log_len]
                    .iter()
                    .any(|p| p.ty == PacketType::Handshake);
                if !sent_handshake {
                    levels.push(PacketType::Initial);
                }
                // Handshake keys come with the server's first Initial.
                if self.server_datagram_delivered_to_client_before_close {
                    levels.push(PacketType::Handshake);
                }
                if self.close.complete {
                    levels.push(PacketType::OneRtt);
                }
            }
        }
        levels
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        // §10.2.3: no 0x1d and no reason phrase below 1-RTT, ever.
        for p in &self.closer_log {
            if p.ty == PacketType::OneRtt {
                continue;
            }
            for c in closes_in(p) {
                if c.application {
                    errors.push(format!("0x1d frame in {} pn {}", level(p.ty), p.pn));
                }
                if !c.reason.is_empty() {
                    errors.push(format!(
                        "non-empty reason {:?} in {} pn {}",
                        String::from_utf8_lossy(&c.reason),
                        level(p.ty),
                        p.pn
                    ));
                }
            }
        }
        // The 0-RTT stage is the one it claims: 0-RTT packets were sent
        // (by the closing client before it closed, or by the peer client).
        if self.stage == Stage::ZeroRtt {
            let client_log = match self.closer {
                Role::Client => &self.closer_log[..self.close.log_len],
                Role::Server => &self.peer_log[..],
            };
            if !client_log.iter().any(|p| p.ty == PacketType::ZeroRtt) {
                errors.push("the client sent no 0-RTT packet".to_owned());
            }
        }
        let after = &self.closer_log[self.close.log_len..];
        // §10.2.1: while closing, only close packets; every copy right.
        for p in after {
            let closes = closes_in(p);
            if closes.len() != 1 || !only_close_and_padding(p) {
                errors.push(format!(
                    "{} pn {} sent while closing is not a single close",
                    level(p.ty),
                    p.pn
                ));
                continue;
            }
            let c = &closes[0];
            let right = match p.ty {
                PacketType::OneRtt => {
                    c.application && c.code == u64::from(APP_CODE) && c.reason == APP_REASON
                }
                _ => {
                    !c.application
                        && c.code == TransportErrorCode::APPLICATION_ERROR.0
                        && c.reason.is_empty()
                }
            };
            if !right {
                errors.push(format!("wrong close {c:?} in {} pn {}", level(p.ty), p.pn));
            }
        }
        let datagrams = close_datagrams(after);
        match datagrams.first() {
            None => errors.push("no close was sent".to_owned()),
            Some(first) => {
                let levels: Vec<PacketType> = first.iter().map(|p| p.ty).collect();
                let expected = self.expected_levels();
                // Short of budget (RFC 9000 §8.1), some of those levels, the
                // 1-RTT copy among them once the client has shown it holds
                // 1-RTT keys: it alone carries the application's close, and
                // the highest level the peer reads goes first (§10.2.3).
                let one_rtt = PacketType::OneRtt;
                let fits = match self.amplification_limited {
                    false => levels == expected,
                    true => {
                        !levels.is_empty()
                            && levels.iter().all(|l| expected.contains(l))
                            && (!self.peer_one_rtt_delivered_to_server_before_close
                                || levels.contains(&one_rtt)
                                || !expected.contains(&one_rtt))
                    }
                };
                if !fits {
                    errors.push(format!(
                        "first close datagram in {:?}, expected {:?}",
                        levels.iter().map(|t| level(*t)).collect::<Vec<_>>(),
                        expected.iter().map(|t| level(*t)).collect::<Vec<_>>()
                    ));
                }
                let leaves_by = match self.amplification_limited {
                    false => Some(self.close.at),
                    true => self.first_peer_delivery_after_close,
                };
                if leaves_by.is_none_or(|t| first[0].time > t) && first[0].time != self.close.at {
                    errors.push(format!(
                        "the first close left at {:?}, not at once (or, limited by \
                         anti-amplification, at the peer's next datagram)",
                        first[0].time - self.epoch
                    ));
                }
                // Copies left out for want of budget follow in later ones.
                let allowed = match self.amplification_limited {
                    false => &levels,
                    true => &expected,
                };
                for d in &datagrams[1..] {
                    if d.iter().any(|p| !allowed.contains(&p.ty)) {
                        errors.push(format!(
                            "a later close datagram at {:?} uses a level not allowed",
                            d[0].time - self.epoch
                        ));
                    }
                }
            }
        }
        // RFC 9001 §4.9.1: no Initial after Initial keys must be gone.
        match self.closer {
            Role::Client => {
                if let Some(i) = self
                    .closer_log
                    .iter()
                    .position(|p| p.ty == PacketType::Handshake)
                {
                    if let Some(p) = self.closer_log[i..]
                        .iter()
                        .find(|p| p.ty == PacketType::Initial)
                    {
                        errors.push(format!(
                            "client sent Initial pn {} after a Handshake packet",
                            p.pn
                        ));
                    }
                }
            }
            Role::Server => {
                if let Some(t) = self.first_client_handshake_at_server {
                    if let Some(p) = self
                        .closer_log
                        .iter()
                        .find(|p| p.ty == PacketType::Initial && p.time > t)
                    {
                        errors.push(format!(
                            "server sent Initial pn {} after it processed a Handshake packet",
                            p.pn
                        ));
                    }
                }
            }
        }
        if self.closer_reason != Some(ConnectionError::LocallyClosed) {
            errors.push(format!("closer ended with {:?}", self.closer_reason));
        }
        // The peer.
        match &self.peer_end {
            None if !self.peer_had_state => {}
            None => errors.push("the peer never ended".to_owned()),
            Some((at, reason, could_read_one_rtt)) => {
                let expected = if *could_read_one_rtt {
                    ConnectionError::ApplicationClosed {
                        code: VarInt::from_u32(APP_CODE),
                        reason: Bytes::from_static(APP_REASON),
                    }
                } else {
                    ConnectionError::ConnectionClosed {
                        code: TransportErrorCode::APPLICATION_ERROR,
                        frame_type: None,
                        reason: Bytes::new(),
                    }
                };
                if *reason != expected {
                    errors.push(format!(
                        "peer ended with {reason:?} at {:?}, expected {expected:?}",
                        *at - self.epoch
                    ));
                }
                match self.first_close_delivered {
                    None => errors.push("no close datagram was ever delivered".to_owned()),
                    Some(t) => {
                        eprintln!(
                            "{}: peer ended {:?} after the first close delivery",
                            self.name(),
                            at.saturating_duration_since(t)
                        );
                        if *at > t + END_BOUND || *at < self.close.at {
                            errors.push(format!(
                                "peer ended at {:?}; the close was first delivered at {:?} \
                                 (bound {END_BOUND:?})",
                                *at - self.epoch,
                                t - self.epoch
                            ));
                        }
                    }
                }
            }
        }
        errors.extend(draining_violations(&self.peer_log, self.peer_end.as_ref()));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}: closed at {:?}\n{}\ncloser sent:\n{}peer sent:\n{}trace:\n{}",
                self.name(),
                self.close.at - self.epoch,
                errors.join("\n"),
                describe_log(&self.closer_log, self.epoch),
                describe_log(&self.peer_log, self.epoch),
                self.trace
            ))
        }
    }
}
