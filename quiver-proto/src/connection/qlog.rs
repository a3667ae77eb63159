//! The connection's side of qlog (see [`crate::qlog`]): the sink it was
//! given and what it last reported, so that metrics and states are logged
//! only when they change.
//!
//! Every call site checks `self.qlog` first: without a sink nothing here
//! runs, allocates or formats.

use std::time::Instant;

use super::spaces::SpaceId;
use super::{Connection, State};
use crate::congestion::PACING_GAIN;
use crate::qlog::{
    CloseCode, CongestionState, CongestionTrigger, ConnectionState, KeyTrigger, KeyType, Owner,
    PathState, QlogEvent, QlogSink, RecoveryMetrics,
};
use crate::{ConnectionError, TransportErrorCode};

/// A connection's sink and the last values it was told.
pub(crate) struct Qlog {
    pub(crate) sink: Box<dyn QlogSink>,
    metrics: RecoveryMetrics,
    state: Option<ConnectionState>,
    congestion: Option<CongestionState>,
    /// Whether the connection's end was reported.
    closed: bool,
    /// When the current recovery period began (RFC 9002 §7.3.2), and why.
    recovery: Option<(Instant, CongestionTrigger)>,
}

impl std::fmt::Debug for Qlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qlog").finish_non_exhaustive()
    }
}

impl Qlog {
    pub(crate) fn new(sink: Box<dyn QlogSink>) -> Self {
        Self {
            sink,
            metrics: RecoveryMetrics::default(),
            state: None,
            congestion: None,
            closed: false,
            recovery: None,
        }
    }

    /// A congestion event at `now` starts a recovery period.
    pub(crate) fn on_congestion_event(&mut self, now: Instant, trigger: CongestionTrigger) {
        if self.recovery.is_none() || trigger == CongestionTrigger::PersistentCongestion {
            self.recovery = Some((now, trigger));
        }
    }

    /// The largest packet an ACK newly acknowledged was sent at `sent`:
    /// one sent after the recovery period began ends it (RFC 9002
    /// §7.3.2), as does undoing the response (`undo`: every loss behind
    /// it was spurious).
    pub(crate) fn on_acked_sent_at(&mut self, sent: Instant, undo: bool) {
        if undo || self.recovery.is_some_and(|(start, _)| sent > start) {
            self.recovery = None;
        }
    }
}

/// The type of the packets of a space (0-RTT is not sent).
pub(crate) fn packet_type(space: SpaceId) -> crate::packet::PacketType {
    match space {
        SpaceId::Initial => crate::packet::PacketType::Initial,
        SpaceId::Handshake => crate::packet::PacketType::Handshake,
        SpaceId::ApplicationData => crate::packet::PacketType::OneRtt,
    }
}

/// The qlog key type of a packet number space's keys.
pub(crate) fn key_type(space: SpaceId) -> KeyType {
    match space {
        SpaceId::Initial => KeyType::Initial,
        SpaceId::Handshake => KeyType::Handshake,
        SpaceId::ApplicationData => KeyType::OneRtt,
    }
}

impl Connection {
    /// Reports `event` if a sink is set. For events that borrow nothing
    /// from the connection; others use `self.qlog` directly.
    pub(crate) fn qlog(&mut self, now: Instant, event: QlogEvent<'_>) {
        if let Some(q) = &mut self.qlog {
            q.sink.event(now, &event);
        }
    }

    /// Hands the stream state changes recorded since the last call to
    /// the sink, stamped `now` (changes made by application calls that
    /// know no time get the time of the next datagram, timer or
    /// transmission).
    pub(crate) fn qlog_streams(&mut self, now: Instant) {
        if let Some(q) = &mut self.qlog {
            self.streams
                .drain_qlog(|u| q.sink.event(now, &QlogEvent::StreamStateUpdated(*u)));
        }
    }

    /// Reports the connection state, the recovery metrics and the
    /// congestion phase where they changed since the last report, after
    /// the stream state changes not yet reported. Called after each
    /// datagram, timer and transmission.
    pub(crate) fn qlog_sync(&mut self, now: Instant) {
        if self.qlog.is_none() {
            return;
        }
        self.qlog_streams(now);
        if let Some(error) = self.error.take() {
            if self.qlog.as_ref().is_some_and(|q| !q.closed) {
                self.qlog_closed(now, &error);
            }
            self.error = Some(error);
        }
        let Some(q) = &mut self.qlog else {
            return;
        };
        let state = match self.state {
            State::Handshake => ConnectionState::HandshakeStarted,
            State::Established if self.handshake_confirmed => ConnectionState::HandshakeConfirmed,
            State::Established => ConnectionState::HandshakeComplete,
            State::Closing => ConnectionState::Closing,
            State::Draining => ConnectionState::Draining,
            State::Drained => ConnectionState::Closed,
        };
        // A server completes and confirms its handshake at once (RFC 9001
        // §4.1.2): both steps are reported.
        let steps = [
            (q.state == Some(ConnectionState::HandshakeStarted)
                && state == ConnectionState::HandshakeConfirmed)
                .then_some(ConnectionState::HandshakeComplete),
            Some(state),
        ];
        for new in steps.into_iter().flatten() {
            if q.state != Some(new) {
                let old = q.state;
                q.state = Some(new);
                q.sink
                    .event(now, &QlogEvent::ConnectionStateUpdated { old, new });
            }
        }
        if matches!(
            self.state,
            State::Closing | State::Draining | State::Drained
        ) {
            return;
        }
        let srtt = self.rtt.smoothed_rtt();
        let cwnd = self.cc.window();
        // RFC 9002 §7.7: rate = N * congestion_window / smoothed_rtt.
        let pacing_rate = (!srtt.is_zero()).then(|| {
            let bits = u128::from(cwnd) * 8 * u128::from(PACING_GAIN.0) * 1_000_000;
            let per_sec = bits / (u128::from(PACING_GAIN.1) * srtt.as_micros().max(1));
            u64::try_from(per_sec).unwrap_or(u64::MAX)
        });
        let metrics = RecoveryMetrics {
            min_rtt: self.rtt.min_rtt(),
            smoothed_rtt: srtt,
            latest_rtt: self.rtt.latest_rtt(),
            rtt_variance: self.rtt.rttvar(),
            congestion_window: cwnd,
            bytes_in_flight: self.bytes_in_flight,
            pacing_rate,
            pto_count: self.pto_count,
        };
        if metrics != q.metrics {
            q.metrics = metrics;
            q.sink.event(now, &QlogEvent::MetricsUpdated(&metrics));
        }
        let (congestion, trigger) = match q.recovery {
            Some((_, trigger)) => (CongestionState::Recovery, Some(trigger)),
            None if self.cc.is_slow_start() == Some(true) => (CongestionState::SlowStart, None),
            None => (CongestionState::CongestionAvoidance, None),
        };
        if q.congestion != Some(congestion) {
            let old = q.congestion.unwrap_or(CongestionState::SlowStart);
            q.congestion = Some(congestion);
            if old != congestion {
                q.sink.event(
                    now,
                    &QlogEvent::CongestionStateUpdated {
                        old,
                        new: congestion,
                        trigger,
                    },
                );
            }
        }
    }

    /// Reports the end of the connection (RFC 9000 §10).
    fn qlog_closed(&mut self, now: Instant, error: &ConnectionError) {
        let Some(q) = &mut self.qlog else {
            return;
        };
        q.closed = true;
        let (code, reason): (Option<CloseCode>, &[u8]) = match error {
            ConnectionError::ApplicationClosed { code, reason } => {
                (Some(CloseCode::Application(code.into_inner())), reason)
            }
            ConnectionError::ConnectionClosed { code, reason, .. } => {
                (Some(CloseCode::Transport(code.0)), reason)
            }
            ConnectionError::TransportError(e) => {
                (Some(CloseCode::Transport(e.code.0)), e.reason.as_bytes())
            }
            ConnectionError::Refused => (
                Some(CloseCode::Transport(
                    TransportErrorCode::CONNECTION_REFUSED.0,
                )),
                &[],
            ),
            ConnectionError::LocallyClosed => match self.close.as_ref().map(|c| &c.reason) {
                Some(super::close::CloseReason::Application { code, reason }) => {
                    (Some(CloseCode::Application(code.into_inner())), reason)
                }
                _ => (None, &[]),
            },
            _ => (None, &[]),
        };
        q.sink.event(
            now,
            &QlogEvent::ConnectionClosed {
                owner: error.qlog_owner(),
                error,
                code,
                reason,
            },
        );
    }

    /// Reports keys installed or updated; 1-RTT generations count key
    /// updates (RFC 9001 §6).
    pub(crate) fn qlog_key_updated(
        &mut self,
        now: Instant,
        key_type: KeyType,
        trigger: KeyTrigger,
    ) {
        let generation = match key_type {
            KeyType::OneRtt => self.stats.key_updates,
            _ => 0,
        };
        self.qlog(
            now,
            QlogEvent::KeyUpdated {
                key_type,
                generation,
                trigger,
            },
        );
    }

    /// Reports a path's change (RFC 9000 §8.2, §9).
    pub(crate) fn qlog_path(
        &mut self,
        now: Instant,
        remote: std::net::SocketAddr,
        state: PathState,
    ) {
        self.qlog(now, QlogEvent::PathUpdated { remote, state });
    }

    /// Reports our transport parameters and versions at the start.
    pub(crate) fn qlog_start(&mut self, now: Instant) {
        let Some(q) = &mut self.qlog else {
            return;
        };
        q.sink.event(
            now,
            &QlogEvent::VersionInformation {
                local_versions: &self.vn.available,
                chosen: self.version,
            },
        );
        q.sink.event(
            now,
            &QlogEvent::ParametersSet {
                owner: Owner::Local,
                params: &self.local_params,
            },
        );
        self.qlog_key_updated(now, KeyType::Initial, KeyTrigger::Tls);
        self.qlog_sync(now);
    }
}
