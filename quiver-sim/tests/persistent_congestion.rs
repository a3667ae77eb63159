//! Persistent congestion (RFC 9002 §7.6.2) established by losses that two
//! separate loss events declare: a black hole mid-transfer, ended by the
//! second round of probes, of which only the second gets through.
//!
//! The ACK of that probe declares lost everything sent into the black
//! hole up to the first round of probes (about one PTO after it began:
//! short of the persistent congestion duration, §7.6.1's three PTO
//! periods). The second round's first probe, sent at the same instant as
//! the acknowledged one, is within the packet threshold and younger than
//! the time threshold: a later loss event (the loss timer or a later
//! ACK) declares it, and only together do the two events span more than
//! the duration, with nothing acknowledged between. Judging each batch of
//! losses alone (what quiver did before) never declares it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use quiver_proto::TransportConfig;
use quiver_sim::quic::{AppConfig, Pair, SERVER_ADDR, SendPlan};
use quiver_sim::{LinkConfig, Verdict, for_each_seed};

const LEN: u64 = 3_000_000;

/// The black hole as the filter sees it.
#[derive(Default)]
struct Outage {
    /// Server datagrams seen.
    seen: u64,
    /// Server datagrams dropped so far, and when the last one was sent.
    dropped: u64,
    last_sent: Option<Instant>,
    /// Groups of datagrams (a burst, then rounds of probes) seen in the
    /// black hole: a new group starts after a 15 ms silence (the PTO is
    /// 45 ms or more: 20 ms RTT plus 25 ms max_ack_delay; pacing gaps are
    /// far shorter).
    group: u32,
    /// Datagrams of the current group so far.
    in_group: u32,
    /// Group sizes, for the failure message.
    sizes: Vec<u32>,
    /// When the black hole ended, with the datagram let through.
    through_at: Option<Instant>,
}

#[test]
fn persistent_congestion_across_two_loss_events() {
    for_each_seed(10, |seed| {
        // 10 ms one way, no queue to inflate the RTT (and with it the
        // persistent congestion duration).
        let link = LinkConfig::default();
        // ACK frequency off: its requests change max_ack_delay, and with it
        // the persistent congestion duration, between the two events.
        let server = TransportConfig {
            ack_frequency: false,
            ..TransportConfig::default()
        };
        let mut pair = Pair::with_configs(seed, link, TransportConfig::default(), server);
        pair.server_app(AppConfig {
            send: vec![SendPlan::uni(LEN)],
            ..AppConfig::default()
        });
        let client = pair.client_app(AppConfig::default());
        let state = Rc::new(RefCell::new(Outage::default()));
        let filter_state = state.clone();
        pair.net.set_filter(move |d| {
            let mut s = filter_state.borrow_mut();
            // Black hole the server's datagrams from its 300th on, well
            // after the first RTT sample.
            if d.src != SERVER_ADDR {
                // The client's ACKs fall in the black hole too, so the
                // server soon stops sending into it, until the probe let
                // through reaches the client (10 ms): an ACK sent before
                // that would give a stale RTT sample that stretches the
                // persistent congestion duration.
                let blocked = s.seen > 300
                    && s.through_at
                        .is_none_or(|t| d.time < t + Duration::from_millis(10));
                return if blocked {
                    Verdict::Drop
                } else {
                    Verdict::Deliver
                };
            }
            if s.through_at.is_some() {
                return Verdict::Deliver;
            }
            s.seen += 1;
            if s.seen <= 300 {
                return Verdict::Deliver;
            }
            if s.last_sent
                .is_some_and(|t| d.time > t + Duration::from_millis(15))
            {
                let n = s.in_group;
                s.sizes.push(n);
                s.group += 1;
                s.in_group = 0;
            }
            s.last_sent = Some(d.time);
            s.in_group += 1;
            // Group 0 is what was sent into the black hole before the
            // first probe timeout; groups 1 and 2 are rounds of probes
            // (RFC 9002 §6.2.4: two per PTO). The second probe of the
            // second round gets through.
            if s.group == 2 && s.in_group == 2 {
                s.through_at = Some(d.time);
                return Verdict::Deliver;
            }
            s.dropped += 1;
            Verdict::Drop
        });
        pair.connect();
        let done = pair.run_until(Duration::from_secs(60), |_| {
            client.borrow().streams_finished() == 1
        });
        assert!(done, "seed {seed:?}: transfer incomplete");
        client.borrow().assert_intact();
        let stats = pair.server_conn().stats();
        let s = state.borrow();
        assert_eq!(s.sizes.len(), 2, "seed {seed:?}: groups {:?}", s.sizes);
        assert!(s.sizes[1] <= 2, "seed {seed:?}: groups {:?}", s.sizes);
        assert!(s.through_at.is_some(), "the black hole never ended");
        // RFC 9002 §7.6.2: established once, by the second event.
        assert_eq!(stats.persistent_congestion, 1, "seed {seed:?}: {stats:?}");
    });
}
