//! Duplicate detection never forgets (RFC 9000 §12.3): packets replayed
//! one and ten round trips late are discarded, even after the peer saw our
//! ACKs acknowledged and the ACK ranges moved on (§13.2.4).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use quiver_sim::quic::{AppConfig, CLIENT_ADDR, Pair, SERVER_ADDR, pattern};
use quiver_sim::{LinkConfig, Seed, Verdict, for_each_seed};

/// Client → server datagrams with the time they were sent.
type Captured = Vec<(std::time::Instant, Vec<u8>)>;

const ONE_WAY: Duration = Duration::from_millis(10);
const RTT: Duration = Duration::from_millis(20);

/// Both sides send a DATAGRAM every 5 ms for 400 ms (so each side's ACKs
/// ride in ack-eliciting packets the other acknowledges, and ACK ranges
/// are pruned), while every client → server datagram is copied and
/// replayed `late` after it was sent. No datagram may reach the server
/// application twice.
fn replayed_after(late: Duration, seed: Seed) {
    let link = LinkConfig {
        delay: ONE_WAY,
        ..LinkConfig::default()
    };
    let mut pair = Pair::new(seed, link);
    let c = pair.client_app(AppConfig::default());
    let s = pair.server_app(AppConfig::default());
    let (client, _) = pair.connect_and_wait(Duration::from_secs(5));

    let captured: Rc<RefCell<Captured>> = Rc::default();
    let sink = captured.clone();
    // Set while a replay is injected, so the tap records originals only.
    let injecting = Rc::new(Cell::new(false));
    let replaying = injecting.clone();
    pair.net.set_tap(move |d| {
        if d.src == CLIENT_ADDR && d.dst == SERVER_ADDR && !replaying.get() {
            sink.borrow_mut().push((d.time, d.data.to_vec()));
        }
    });
    // Some loss, so the server's ACK ranges have gaps: with one range
    // there is nothing for acknowledged ACKs to prune.
    pair.net.set_filter(|d| {
        if d.src == CLIENT_ADDR && d.index % 5 == 2 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let mut sent = Vec::new();
    let mut replayed = 0usize;
    let start = pair.net.now();
    let end = start + Duration::from_millis(400) + late + 5 * RTT;
    let mut next_send = start;
    while pair.net.now() < end {
        let now = pair.net.now();
        if now >= next_send && now < start + Duration::from_millis(400) {
            let i = sent.len() as u64;
            let d = Bytes::from(pattern(i, 0, 100));
            pair.client_conn(client).send_datagram(d.clone()).unwrap();
            sent.push(d);
            pair.server_conn()
                .send_datagram(Bytes::from(pattern(10_000 + i, 0, 100)))
                .unwrap();
            pair.poke_client();
            pair.poke_server();
            next_send = now + Duration::from_millis(5);
        }
        // Replay what is due, each original once.
        let due: Vec<Vec<u8>> = {
            let log = captured.borrow();
            log.iter()
                .skip(replayed)
                .take_while(|(t, _)| *t + late <= now)
                .map(|(_, d)| d.clone())
                .collect()
        };
        for d in due {
            replayed += 1;
            injecting.set(true);
            pair.net.inject(CLIENT_ADDR, SERVER_ADDR, d);
            injecting.set(false);
        }
        pair.net.run_for(Duration::from_millis(1));
    }
    pair.net.clear_tap();
    assert!(replayed > 50, "replayed only {replayed}");
    let got = s.borrow().datagrams.clone();
    // Each at most once (a datagram whose original was dropped may arrive
    // once, from its replay).
    let mut seen = std::collections::HashSet::new();
    for d in &got {
        assert!(
            seen.insert(d.clone()),
            "a datagram reached the application twice"
        );
    }
    assert!(
        got.len() >= sent.len() / 2,
        "{} of {}",
        got.len(),
        sent.len()
    );
    assert!(c.borrow().lost.is_none() && s.borrow().lost.is_none());
    let dropped = pair.server_conn().stats().packets_dropped;
    assert!(
        dropped as usize >= replayed / 2,
        "dropped {dropped} of {replayed}"
    );
}

#[test]
fn packets_replayed_one_rtt_late_are_discarded() {
    for_each_seed(1, |seed| replayed_after(RTT, seed));
}

#[test]
fn packets_replayed_ten_rtts_late_are_discarded() {
    for_each_seed(1, |seed| replayed_after(10 * RTT, seed));
}
