//! Scripted faults and observation: filters, the tap, the trace, per-link overrides.

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{A, B, C, Echo, Sender, payload, seq_of};
use quiver_sim::{DropReason, LinkConfig, Network, Node, Seed, TraceKind, Transmit, Verdict};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A sender of `count` datagrams, one per millisecond, to an echo node.
fn ping_pong(count: u64) -> (Network, quiver_sim::NodeId, quiver_sim::NodeId) {
    let mut net = Network::new(Seed::from_env_or(31));
    let start = net.now();
    let sender = net.add_node(A, Sender::new(B, count, 100, ms(1), start));
    let echo = net.add_node(B, Echo::new());
    (net, sender, echo)
}

#[test]
fn filter_drops_exactly_the_chosen_datagram() {
    let (mut net, sender, echo) = ping_pong(10);
    net.set_filter(|d| {
        if d.src == A && d.index == 3 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    net.run_until_idle();
    let expected: Vec<u64> = (0..10).filter(|&s| s != 3).collect();
    assert_eq!(net.node::<Echo>(echo).received_seqs(), expected);
    assert_eq!(net.node::<Sender>(sender).received_seqs(), expected);
    assert_eq!(net.link_stats(A, B).dropped.filter, 1);
    assert_eq!(net.link_stats(B, A).dropped.total(), 0);
}

#[test]
fn filter_drops_every_datagram_matching_a_predicate() {
    let (mut net, sender, _) = ping_pong(20);
    // Drop the echoes of odd sequence numbers.
    net.set_filter(|d| {
        if d.src == B && seq_of(d.data) % 2 == 1 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    net.run_until_idle();
    let expected: Vec<u64> = (0..20).step_by(2).collect();
    assert_eq!(net.node::<Sender>(sender).received_seqs(), expected);
    assert_eq!(net.link_stats(B, A).dropped.get(DropReason::Filter), 10);
}

#[test]
fn clearing_the_filter_restores_delivery() {
    let (mut net, _, echo) = ping_pong(10);
    net.set_filter(|_| Verdict::Drop);
    // Deadlines are inclusive: the datagram sent at 5 ms is still filtered.
    net.run_for(ms(5));
    net.clear_filter();
    net.run_until_idle();
    assert_eq!(
        net.node::<Echo>(echo).received_seqs(),
        (6..10).collect::<Vec<_>>()
    );
}

#[test]
fn tap_sees_every_datagram_sent_including_lost_ones() {
    let (mut net, _, _) = ping_pong(200);
    net.set_default_link(LinkConfig {
        loss_rate: 0.3,
        ..LinkConfig::default()
    });
    type Seen = (Instant, SocketAddr, SocketAddr, usize);
    let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
    let log = Rc::clone(&seen);
    net.set_tap(move |d| log.borrow_mut().push((d.time, d.src, d.dst, d.data.len())));
    net.run_until_idle();
    let seen = seen.borrow();
    let from_a = seen.iter().filter(|s| s.1 == A).count() as u64;
    let from_b = seen.iter().filter(|s| s.1 == B).count() as u64;
    assert_eq!(from_a, net.link_stats(A, B).sent);
    assert_eq!(from_b, net.link_stats(B, A).sent);
    assert_eq!(from_a, 200);
    assert!(net.link_stats(A, B).dropped.loss > 0);
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "tap is in time order"
    );
}

#[test]
fn trace_shows_what_a_node_sent_and_what_became_of_it() {
    let (mut net, _, _) = ping_pong(5);
    net.record(true);
    net.set_filter(|d| {
        if d.src == A && d.index == 1 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    net.run_until_idle();
    let sent: Vec<&[u8]> = net.sent_from(A).map(|e| e.data.as_slice()).collect();
    let expected: Vec<Vec<u8>> = (0..5).map(|s| payload(s, 100)).collect();
    assert_eq!(sent, expected.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let fate = |index| {
        net.trace()
            .iter()
            .filter(|e| e.src == A && e.index == index && e.kind != TraceKind::Sent)
            .map(|e| e.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(fate(1), [TraceKind::Dropped(DropReason::Filter)]);
    assert_eq!(
        fate(2),
        [TraceKind::Delivered {
            duplicate: false,
            corrupted: false
        }]
    );
    assert!(net.dump_trace().contains("Dropped(Filter)"));
}

#[test]
fn link_override_applies_to_one_direction_only() {
    let (mut net, sender, echo) = ping_pong(1);
    net.set_link(
        B,
        A,
        LinkConfig {
            delay: ms(50),
            ..LinkConfig::default()
        },
    );
    net.run_until_idle();
    let t0 = net.epoch();
    assert_eq!(net.node::<Echo>(echo).received[0].time - t0, ms(10));
    assert_eq!(net.node::<Sender>(sender).received[0].time - t0, ms(60));
    assert_eq!(net.link_config(A, B), &LinkConfig::default());
}

#[test]
fn path_override_applies_to_both_directions() {
    let (mut net, sender, _) = ping_pong(1);
    net.set_path(
        A,
        B,
        LinkConfig {
            delay: ms(40),
            ..LinkConfig::default()
        },
    );
    net.run_until_idle();
    assert_eq!(
        net.node::<Sender>(sender).received[0].time - net.epoch(),
        ms(80)
    );
}

/// Sends one GSO-style batch of `segments` datagrams.
struct Batch {
    dst: SocketAddr,
    segments: usize,
    sent: bool,
}

impl Node for Batch {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}
    fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
        if std::mem::replace(&mut self.sent, true) {
            return None;
        }
        let contents = (0..self.segments as u64)
            .flat_map(|s| payload(s, 100))
            .chain([0xff; 40])
            .collect();
        Some(Transmit {
            ecn: 0,
            destination: self.dst,
            contents,
            segment_size: Some(100),
            src: None,
        })
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _: Instant) {}
}

#[test]
fn segmented_transmit_is_carried_as_separate_datagrams() {
    let mut net = Network::new(Seed::from_env_or(32));
    net.add_node(
        A,
        Batch {
            dst: B,
            segments: 3,
            sent: false,
        },
    );
    let sink = net.add_node(B, Echo::sink());
    net.set_filter(|d| {
        if d.index == 1 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    net.run_until_idle();
    let sizes: Vec<usize> = net
        .node::<Echo>(sink)
        .received
        .iter()
        .map(|a| a.data.len())
        .collect();
    assert_eq!(sizes, [100, 100, 40]);
    assert_eq!(net.link_stats(A, B).sent, 4);
}

#[test]
fn injected_datagram_reaches_its_destination_and_replies_go_nowhere() {
    let mut net = Network::new(Seed::from_env_or(33));
    let echo = net.add_node(B, Echo::new());
    net.inject(C, B, payload(7, 50));
    net.run_until_idle();
    assert_eq!(net.node::<Echo>(echo).received[0].from, C);
    assert_eq!(net.link_stats(B, C).dropped.no_route, 1);
}

#[test]
fn rebinding_a_node_strands_datagrams_to_its_old_address() {
    let (mut net, sender, echo) = ping_pong(40);
    // Datagram s leaves at s ms and its echo is back at s + 20 ms: by 25 ms
    // the echoes of 0..=5 are back, and 6..=25 were sent from the old address.
    net.run_for(ms(25));
    let new_addr = common::loopback_port(1, 5555);
    net.rebind(sender, new_addr);
    net.run_until_idle();
    assert_eq!(net.addr(sender), new_addr);
    assert_eq!(net.node_at(A), None);
    let back = net.node::<Sender>(sender).received_seqs();
    assert_eq!(back, (0..=5).chain(26..40).collect::<Vec<_>>());
    assert_eq!(net.link_stats(B, A).dropped.no_route, 20);
    // Datagrams sent after the rebinding come from the new address.
    assert!(
        net.node::<Echo>(echo)
            .received
            .iter()
            .any(|a| a.from == new_addr)
    );
}
