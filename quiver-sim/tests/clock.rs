//! Virtual time: timers fire exactly when asked, and the run loop stops where told.

mod common;

use std::time::Duration;

use common::{A, Alarm, B, Echo, Sender};
use quiver_sim::{LinkConfig, Network, Seed};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn timeouts_fire_at_the_virtual_time_requested() {
    let mut net = Network::new(Seed::from_env_or(1));
    let t0 = net.now();
    let wakeups = vec![
        t0 + ms(5),
        t0 + ms(17),
        t0 + Duration::from_micros(17_001),
        t0 + ms(60_000),
    ];
    let alarm = net.add_node(A, Alarm::new(wakeups.clone()));
    net.run_until_idle();
    assert_eq!(net.node::<Alarm>(alarm).fired, wakeups);
    assert_eq!(net.now(), t0 + ms(60_000));
}

#[test]
fn run_until_stops_at_the_deadline_and_sets_the_clock() {
    let mut net = Network::new(Seed::from_env_or(1));
    let t0 = net.now();
    let alarm = net.add_node(A, Alarm::new(vec![t0 + ms(10), t0 + ms(30)]));
    net.run_until(t0 + ms(20));
    assert_eq!(net.node::<Alarm>(alarm).fired, [t0 + ms(10)]);
    assert_eq!(net.now(), t0 + ms(20));
    net.run_for(ms(10));
    assert_eq!(net.node::<Alarm>(alarm).fired, [t0 + ms(10), t0 + ms(30)]);
    assert_eq!(net.elapsed(), ms(30));
}

#[test]
fn timer_in_the_past_fires_now_without_moving_the_clock_back() {
    let mut net = Network::new(Seed::from_env_or(1));
    let t0 = net.now();
    net.run_for(ms(100));
    let alarm = net.add_node(A, Alarm::new(vec![t0 + ms(50)]));
    assert!(net.step());
    assert_eq!(net.node::<Alarm>(alarm).fired, [t0 + ms(100)]);
    assert!(!net.step(), "nothing left to do");
    assert_eq!(net.elapsed(), ms(100));
}

#[test]
fn deliveries_arrive_after_the_link_delay() {
    let mut net = Network::new(Seed::from_env_or(1));
    net.set_default_link(LinkConfig {
        delay: ms(30),
        ..LinkConfig::default()
    });
    let t0 = net.now();
    let sender = net.add_node(A, Sender::new(B, 3, 100, ms(10), t0));
    let echo = net.add_node(B, Echo::new());
    net.run_until_idle();
    let there: Vec<_> = net
        .node::<Echo>(echo)
        .received
        .iter()
        .map(|a| a.time - t0)
        .collect();
    assert_eq!(there, [ms(30), ms(40), ms(50)]);
    let back: Vec<_> = net
        .node::<Sender>(sender)
        .received
        .iter()
        .map(|a| a.time - t0)
        .collect();
    assert_eq!(back, [ms(60), ms(70), ms(80)]);
}

#[test]
fn run_while_stops_as_soon_as_the_condition_fails() {
    let mut net = Network::new(Seed::from_env_or(1));
    let t0 = net.now();
    net.add_node(A, Sender::new(B, 100, 100, ms(1), t0));
    let echo = net.add_node(B, Echo::sink());
    let finished = net.run_while(|net| net.node::<Echo>(echo).received.len() < 10);
    assert!(finished);
    assert_eq!(net.node::<Echo>(echo).received.len(), 10);
    // The 10th datagram left at 9 ms and took the default 10 ms.
    assert_eq!(net.elapsed(), ms(19));
}

#[test]
fn run_while_reports_a_network_that_went_idle() {
    let mut net = Network::new(Seed::from_env_or(1));
    let t0 = net.now();
    net.add_node(A, Sender::new(B, 3, 100, ms(1), t0));
    let echo = net.add_node(B, Echo::sink());
    assert!(!net.run_while(|net| net.node::<Echo>(echo).received.len() < 10));
    assert_eq!(net.node::<Echo>(echo).received.len(), 3);
}

#[test]
fn changes_made_to_a_node_between_steps_are_sent() {
    let mut net = Network::new(Seed::from_env_or(1));
    let t0 = net.now();
    let sender = net.add_node(A, Sender::new(B, 0, 100, ms(1), t0));
    let echo = net.add_node(B, Echo::sink());
    net.run_until_idle();
    assert!(net.node::<Echo>(echo).received.is_empty());
    let now = net.now();
    *net.node_mut::<Sender>(sender) = Sender::new(B, 2, 100, ms(1), now);
    net.run_until_idle();
    assert_eq!(net.node::<Echo>(echo).received_seqs(), [0, 1]);
}
