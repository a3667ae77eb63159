//! The connection's timers: a small table indexed by an enum, so the
//! earliest deadline is a scan of a handful of slots.

use std::time::Instant;

/// A connection timer.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub(crate) enum Timer {
    /// RFC 9002 §6: loss-time or probe timeout.
    LossDetection,
    /// RFC 9000 §10.1: idle timeout.
    Idle,
    /// Send a PING to keep the connection alive.
    KeepAlive,
    /// RFC 9000 §10.2: end of the closing or draining period.
    Close,
    /// RFC 9002 §7.7: pacing released the next packet.
    Pacing,
    /// A closing client before confirmation sends its close again.
    CloseProbe,
    /// RFC 9000 §8.2: resend a PATH_CHALLENGE or abandon a validation.
    PathValidation,
    /// Stream data stopped arriving mid-transfer: probe the peer.
    SilenceProbe,
}

const COUNT: usize = 8;

impl Timer {
    const ALL: [Timer; COUNT] = [
        Timer::LossDetection,
        Timer::Idle,
        Timer::KeepAlive,
        Timer::Close,
        Timer::Pacing,
        Timer::CloseProbe,
        Timer::PathValidation,
        Timer::SilenceProbe,
    ];
}

/// Deadlines for each [`Timer`].
#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; COUNT],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    pub(crate) fn stop_all(&mut self) {
        self.deadlines = [None; COUNT];
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Timers due at `now`, clearing them.
    pub(crate) fn expired(&mut self, now: Instant) -> impl Iterator<Item = Timer> + use<> {
        let mut due = [None; COUNT];
        for timer in Timer::ALL {
            let slot = &mut self.deadlines[timer as usize];
            if slot.is_some_and(|t| t <= now) {
                *slot = None;
                due[timer as usize] = Some(timer);
            }
        }
        due.into_iter().flatten()
    }
}
