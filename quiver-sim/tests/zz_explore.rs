use quiver_sim::quic::{AppConfig, Pair, SendPlan};
use quiver_sim::{LinkConfig, Seed};
use std::time::Duration;

fn run(name: &str, link: LinkConfig, len: u64) {
    let mut pair = Pair::new(Seed::from_env_or(1), link);
    let _s = pair.client_app(AppConfig {
        send: vec![SendPlan::uni(len)],
        ..AppConfig::default()
    });
    let r = pair.server_app(AppConfig::default());
    let (c, _) = pair.connect_and_wait(Duration::from_secs(25));
    let start = pair.net.now();
    let ok = pair.run_until(Duration::from_secs(300), |_| {
        r.borrow().streams_finished() == 1
    });
    let t = pair.net.now() - start;
    let st = pair.client_conn(c).stats();
    eprintln!(
        "{name}: ok={ok} took {t:?} rate {:.0} KB/s cwnd {} stats {st:?}",
        len as f64 / t.as_secs_f64() / 1000.0,
        pair.client_conn(c).congestion_window()
    );
}

#[test]
fn explore() {
    let len = 2_000_000;
    run("clean", LinkConfig::default(), len);
    run(
        "loss1",
        LinkConfig {
            loss_rate: 0.01,
            ..LinkConfig::default()
        },
        len,
    );
    run(
        "loss5",
        LinkConfig {
            loss_rate: 0.05,
            ..LinkConfig::default()
        },
        len,
    );
    run(
        "jitter",
        LinkConfig {
            jitter: Duration::from_millis(5),
            ..LinkConfig::default()
        },
        len,
    );
    run(
        "reorder",
        LinkConfig {
            reorder_rate: 0.02,
            reorder_delay: Duration::from_millis(15),
            ..LinkConfig::default()
        },
        len,
    );
}
