//! Flow-control windows (RFC 9000 §4.1, §4.2): the limits we advertise and
//! the credit the peer gives us, for one stream or the whole connection.

use std::time::{Duration, Instant};

/// The receive side of one flow-control level: the limit we advertised and
/// how much of it the peer has used and the application has consumed.
///
/// Auto-tuning (RFC 9000 §4.2: "A receiver can use an autotuning mechanism
/// to tune the frequency and amount of advertised additional credit based
/// on a round-trip time estimate and the rate at which the receiving
/// application consumes data"): a new limit of `consumed + window` is
/// advertised once at least half the window has been consumed since the
/// last advertisement; if that happens sooner than two round trips after
/// the previous update, the window first doubles, up to `max_window`.
#[derive(Debug, Clone)]
pub(super) struct RecvWindow {
    /// The largest limit advertised (Maximum Stream Data or Maximum Data).
    limit: u64,
    /// The highest offset received (for a stream) or the sum of the highest
    /// offsets received on all streams (for the connection), RFC 9000 §4.1.
    received: u64,
    /// Bytes that no longer occupy the receiver: read by the application
    /// or discarded (reset or stopped streams).
    consumed: u64,
    /// The credit advertised beyond `consumed` at each update.
    window: u64,
    /// The largest `window` auto-tuning may reach.
    max_window: u64,
    /// When the last update was decided, for auto-tuning.
    last_update: Option<Instant>,
}

impl RecvWindow {
    /// A window whose initial limit (from the transport parameters) is
    /// `initial_limit`, advertising `window` more than consumed at each
    /// update, growing up to `max_window`.
    pub(super) fn new(initial_limit: u64, window: u64, max_window: u64) -> Self {
        Self {
            limit: initial_limit,
            received: 0,
            consumed: 0,
            window,
            max_window: max_window.max(window),
            last_update: None,
        }
    }

    /// The largest limit advertised so far.
    pub(super) fn limit(&self) -> u64 {
        self.limit
    }

    /// The current window size.
    #[cfg(test)]
    pub(super) fn window(&self) -> u64 {
        self.window
    }

    /// Bytes consumed or discarded.
    pub(super) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Highest received offset (or sum of them).
    pub(super) fn received(&self) -> u64 {
        self.received
    }

    /// Whether receiving up to `received` stays within the advertised limit.
    /// RFC 9000 §4.1: "A receiver MUST close the connection with an error
    /// of type FLOW_CONTROL_ERROR if the sender violates the advertised
    /// connection or stream data limits."
    pub(super) fn allows(&self, received: u64) -> bool {
        received <= self.limit
    }

    /// Records that the peer has now sent up to `received` (never lowers it).
    pub(super) fn set_received(&mut self, received: u64) {
        self.received = self.received.max(received);
    }

    /// Adds `n` to the received total (connection level).
    pub(super) fn add_received(&mut self, n: u64) {
        self.received += n;
    }

    /// Records that `n` more bytes were consumed or discarded.
    pub(super) fn consume(&mut self, n: u64) {
        self.consumed += n;
        debug_assert!(self.consumed <= self.received);
    }

    /// Decides whether to advertise a larger limit, and raises it if so
    /// (the caller then queues MAX_DATA or MAX_STREAM_DATA). `timing` is
    /// `(now, rtt)` when known; without it the window does not grow.
    ///
    /// RFC 9000 §4.2: "a receiver MUST NOT wait for a STREAM_DATA_BLOCKED or
    /// DATA_BLOCKED frame before sending a MAX_STREAM_DATA or MAX_DATA
    /// frame": updates depend on consumption only.
    pub(super) fn poll_update(&mut self, timing: Option<(Instant, Duration)>) -> bool {
        let target = self.consumed.saturating_add(self.window);
        // Send an update once at least half the window has been consumed
        // since the limit was last raised.
        if target < self.limit.saturating_add(self.window.div_ceil(2)) || self.window == 0 {
            return false;
        }
        if let Some((now, rtt)) = timing {
            if let Some(last) = self.last_update {
                // Updates more often than every two round trips: the window
                // is smaller than the bandwidth-delay product; double it.
                if now.saturating_duration_since(last) < rtt * 2 {
                    self.window = (self.window * 2).min(self.max_window);
                }
            }
            self.last_update = Some(now);
        }
        let target = self.consumed.saturating_add(self.window);
        self.limit = target.min(crate::VarInt::MAX.into_inner());
        true
    }
}

/// The send side of one flow-control level: the limit the peer set and how
/// much of it we have used.
#[derive(Debug, Clone, Default)]
pub(super) struct SendCredit {
    /// The peer's largest limit (Maximum Stream Data or Maximum Data).
    limit: u64,
    /// Bytes of credit used: the highest offset sent (for a stream) or the
    /// sum of them (for the connection).
    used: u64,
    /// The limit at which a *_BLOCKED frame was last queued, so one is sent
    /// at most once per limit.
    blocked_at: Option<u64>,
}

impl SendCredit {
    /// Credit with the peer's initial `limit`.
    pub(super) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: 0,
            blocked_at: None,
        }
    }

    /// The peer's current limit.
    pub(super) fn limit(&self) -> u64 {
        self.limit
    }

    /// Credit left.
    pub(super) fn available(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Uses `n` bytes of credit.
    pub(super) fn consume(&mut self, n: u64) {
        debug_assert!(n <= self.available());
        self.used += n;
    }

    /// Applies a limit from the peer. RFC 9000 §4.1: "A sender MUST ignore
    /// any MAX_STREAM_DATA or MAX_DATA frames that do not increase flow
    /// control limits." Returns whether the limit grew.
    pub(super) fn raise(&mut self, limit: u64) -> bool {
        if limit <= self.limit {
            return false;
        }
        self.limit = limit;
        true
    }

    /// Whether a DATA_BLOCKED / STREAM_DATA_BLOCKED frame should be queued
    /// now: credit is exhausted and none was sent for this limit yet
    /// (RFC 9000 §4.1: "A sender SHOULD send a STREAM_DATA_BLOCKED or
    /// DATA_BLOCKED frame to indicate to the receiver that it has data to
    /// write but is blocked by flow control limits").
    pub(super) fn take_blocked(&mut self) -> bool {
        if self.available() > 0 || self.blocked_at == Some(self.limit) {
            return false;
        }
        self.blocked_at = Some(self.limit);
        true
    }

    /// Whether we are still blocked at `limit` (a lost *_BLOCKED frame is
    /// only worth resending then).
    pub(super) fn blocked_at(&self, limit: u64) -> bool {
        self.limit == limit && self.available() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_after_half_the_window_is_consumed() {
        let mut w = RecvWindow::new(100, 100, 1000);
        w.set_received(100);
        w.consume(49);
        assert!(!w.poll_update(None));
        w.consume(1);
        assert!(w.poll_update(None));
        assert_eq!(w.limit(), 150);
        assert!(!w.poll_update(None));
    }

    #[test]
    fn window_doubles_when_updates_come_faster_than_two_rtts() {
        let t0 = crate::recovery::test_epoch();
        let rtt = Duration::from_millis(10);
        let mut w = RecvWindow::new(100, 100, 300);
        w.set_received(100);
        w.consume(60);
        assert!(w.poll_update(Some((t0, rtt))));
        assert_eq!((w.window(), w.limit()), (100, 160));
        w.set_received(160);
        w.consume(60);
        assert!(w.poll_update(Some((t0 + Duration::from_millis(5), rtt))));
        assert_eq!((w.window(), w.limit()), (200, 320));
        w.set_received(320);
        w.consume(200);
        assert!(w.poll_update(Some((t0 + Duration::from_millis(10), rtt))));
        assert_eq!(w.window(), 300, "capped at the maximum");
        // Slow consumption keeps the window.
        w.set_received(w.limit());
        w.consume(w.received() - 320);
        let before = w.window();
        assert!(w.poll_update(Some((t0 + Duration::from_secs(1), rtt))));
        assert_eq!(w.window(), before);
    }

    #[test]
    fn send_credit_ignores_smaller_limits_and_reports_blocked_once() {
        let mut c = SendCredit::new(10);
        assert!(!c.raise(5));
        c.consume(10);
        assert!(c.take_blocked());
        assert!(!c.take_blocked());
        assert!(c.blocked_at(10));
        assert!(c.raise(20));
        assert!(!c.take_blocked());
        assert_eq!(c.available(), 10);
    }
}
