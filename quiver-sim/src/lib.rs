//! # quiver-sim
//!
//! A deterministic simulated network on which quiver's protocol tests run.
//! Endpoints are sans-IO [`Node`]s; the [`Network`] carries their datagrams
//! over links that delay, pace, queue, lose (independently or in bursts),
//! reorder, duplicate and corrupt them, all in virtual time and all driven by
//! one [`Seed`]. The same seed always replays the same run, bit for bit, and
//! a simulated minute costs microseconds.
//!
//! ## Writing a scenario
//!
//! 1. Implement [`Node`] for each endpoint (later: a wrapper around a
//!    quiver endpoint). Inputs are `handle_datagram` and `handle_timeout`;
//!    outputs are `poll_transmit` and `poll_timeout`.
//! 2. Create a [`Network`] from [`Seed::from_env_or`], configure links with
//!    [`LinkConfig`] (a default for all links via
//!    [`Network::set_default_link`], per direction via [`Network::set_link`]),
//!    and bind nodes with [`Network::add_node`].
//! 3. Drive it: [`Network::run_until`], [`Network::run_for`],
//!    [`Network::run_while`], [`Network::run_until_idle`] or
//!    [`Network::step`].
//! 4. Script exact faults with [`Network::set_filter`] ("drop the 3rd
//!    datagram from the client"), watch traffic with [`Network::set_tap`] or
//!    [`Network::record`] + [`Network::trace`], and check
//!    [`Network::link_stats`]. Reach into a node with [`Network::node`] /
//!    [`Network::node_mut`].
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use quiver_sim::{loopback, LinkConfig, Network, Node, Seed, Transmit};
//!
//! /// Sends one ping, then waits for the reply.
//! struct Pinger { peer: SocketAddr, sent: bool, rtt_end: Option<Instant> }
//! impl Node for Pinger {
//!     fn handle_datagram(&mut self, now: Instant, _: SocketAddr, _: &[u8]) {
//!         self.rtt_end = Some(now);
//!     }
//!     fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
//!         (!std::mem::replace(&mut self.sent, true)).then(|| Transmit::new(self.peer, b"ping".to_vec()))
//!     }
//!     fn poll_timeout(&mut self) -> Option<Instant> { None }
//!     fn handle_timeout(&mut self, _: Instant) {}
//! }
//!
//! /// Answers every datagram with the same bytes.
//! #[derive(Default)]
//! struct Echo { reply: Option<(SocketAddr, Vec<u8>)> }
//! impl Node for Echo {
//!     fn handle_datagram(&mut self, _: Instant, from: SocketAddr, data: &[u8]) {
//!         self.reply = Some((from, data.to_vec()));
//!     }
//!     fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
//!         self.reply.take().map(|(to, data)| Transmit::new(to, data))
//!     }
//!     fn poll_timeout(&mut self) -> Option<Instant> { None }
//!     fn handle_timeout(&mut self, _: Instant) {}
//! }
//!
//! let mut net = Network::new(Seed::from_env_or(1));
//! net.set_default_link(LinkConfig { delay: Duration::from_millis(25), ..LinkConfig::default() });
//! let (a, b) = (loopback(1, 4433), loopback(2, 4433));
//! let pinger = net.add_node(a, Pinger { peer: b, sent: false, rtt_end: None });
//! net.add_node(b, Echo::default());
//! net.run_until_idle();
//! let end = net.node::<Pinger>(pinger).rtt_end.unwrap();
//! assert_eq!(end - net.epoch(), Duration::from_millis(50));
//! assert_eq!(net.link_stats(a, b).delivered, 1);
//! ```
//!
//! ## Reproducing a failing seed
//!
//! Single-seed tests take their seed from [`Seed::from_env_or`]; sweeps use
//! [`for_each_seed`], which runs [`Seed::sweep`]`(n)` (or as many seeds as
//! `QUIVER_SIM_SEEDS` says). When a scenario panics, the seed is printed:
//!
//! ```text
//! failing seed: 0x0000000000000007 (rerun with QUIVER_SIM_SEED=0x0000000000000007)
//! ```
//!
//! Rerun just that test with the variable set, and the same run happens again
//! (a sweep then runs only that seed):
//!
//! ```text
//! QUIVER_SIM_SEED=0x0000000000000007 cargo test -p quiver-sim --test my_feature my_scenario
//! ```
//!
//! A [`Network`] dropped during a panic prints its seed too, and a run that
//! exceeds its event cap ([`Network::set_max_events`], against livelock)
//! panics naming it. [`Network::record`] and [`Network::dump_trace`] show
//! what happened on the wire.
//!
//! ## Determinism
//!
//! Virtual time starts at [`Network::epoch`], one fixed `Instant` per process,
//! and moves only by jumping to the next delivery or node timeout. Events at
//! the same instant run in a fixed order: deliveries by arrival time then
//! scheduling order, then node timeouts in the order nodes were added. Each
//! link (one direction between two addresses) draws from its own generator,
//! derived from the seed and its two addresses, so adding a node or changing
//! one link leaves every other link's random decisions unchanged. A disabled
//! impairment draws no random numbers.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod link;
mod network;
mod node;
pub mod quic;
mod rng;
mod seed;
mod trace;

pub use link::{DropCounts, GilbertElliott, LinkConfig, LinkStats};
pub use network::{DEFAULT_MAX_EVENTS, Network, NodeId, loopback};
pub use node::{Node, Transmit};
pub use rng::{Rng, splitmix64};
pub use seed::{ParseSeedError, Seed, for_each_seed};
pub use trace::{DatagramInfo, DropReason, TraceEvent, TraceKind, Verdict};
