//! Immediate close at every stage of a connection (RFC 9000 §10.2,
//! §10.2.1, §10.2.2, §10.2.3; RFC 9001 §4.9 key discard).
//!
//! The matrix is {server closes, client closes} × {stage} × {no loss; all of
//! the server's Handshake packets lost; 20 random-loss seeds}, plus a
//! column where only the closer's first close datagram is lost. The closer
//! always closes with application code 0x2a and reason "bye".
//!
//! Stages:
//! 1. `FirstInitial`: the server has only read the client's first Initial
//!    (it closes in its accept hook, before it sends anything); the client
//!    has only sent its first Initial (it closes at that same instant,
//!    before receiving anything).
//! 2. `FlightInFlight`: the server's first flight has left and the client
//!    has not received any of it (either side closes at that instant).
//! 3. `OneRttUnconfirmed`: the closer holds 1-RTT keys, the handshake is not
//!    confirmed. Server: at the instant the client first receives
//!    something from the server (without loss: the whole flight, and the
//!    client's Finished leaves at that instant), before the server has
//!    received the client's Finished. Client: at the instant its handshake
//!    completes (its Finished has just left), before HANDSHAKE_DONE.
//! 4. `Confirmed`: both sides have confirmed the handshake.
//!
//! plus, in the Handshake-loss column only, `HandshakeKeysOnly`: the client
//! has read the server's Initial (so holds Handshake keys) but, all of the
//! server's Handshake packets being lost, has no 1-RTT keys.
//!
//! And `ZeroRtt` (zero_rtt.rs): the client resumes with a ticket allowing
//! early data (from a first connection, run without loss) and writes 6000
//! bytes on a stream before sending anything. Client: it closes once its
//! first flight (Initial and 0-RTT packets) has left and nothing came
//! back, holding only Initial and 0-RTT keys, so the close goes in an
//! Initial packet only (RFC 9000 §10.2.3: never 0-RTT, which a server that
//! rejected 0-RTT cannot read; §17.2.3 lets a client send only 0x1d in
//! 0-RTT). Server: it closes once it has accepted 0-RTT and read a 0-RTT
//! packet, before its handshake completes. Under random loss every 0-RTT
//! packet may be lost, so server seeds that never reach the stage are
//! skipped (counted; most must run).
//!
//! "The server's Handshake packets all lost": every server→client datagram
//! carrying a Handshake packet is dropped and re-sent at the same instant
//! without its Handshake packets (whatever Initial or 1-RTT packets were
//! coalesced with them still arrive). Dropping such datagrams whole would
//! also lose the coalesced Initial packets, which is not the scenario. The
//! filter is on from the start where the stage is reachable with it (server
//! stages 1-3, client stages 1-2 and `HandshakeKeysOnly`); the stages that
//! need the server's Handshake flight (client stage 3, both stage 4) turn it
//! on at the instant of the close, so the close must get through without
//! any of the server's Handshake packets from then on.
//!
//! Random loss: 15 % independent loss both ways, seeds 0..20 per cell
//! (`QUIVER_SIM_SEEDS` runs more). After the close, the peer's application
//! sends a small DATAGRAM every 10 ms while it can (handshake complete, not
//! yet closed), so a lost close is answered again by the closer while it is
//! closing (§10.2.1); during the handshake the peer's own retransmissions
//! play that part. The closer only ever answers, so a run in which every
//! copy of the close is lost ends with the peer timing out; at 15 % loss
//! that happens in roughly one run in a few hundred (sweeps of 1000 seeds
//! find such seeds in most handshake-stage cells, and nothing else).
//!
//! First close lost: nothing else is lost; the closer's first close
//! datagram is dropped, so the close only gets through as an answer to
//! the peer's later packets.
//!
//! Checked in every cell, on the closer's log of sent plaintext:
//! * no 0x1d frame and no non-empty reason phrase in any Initial or
//!   Handshake packet (§10.2.3);
//! * after the close it sends only close packets;
//! * its first close datagram has the close in exactly the levels the rule
//!   requires for the keys it held: after confirmation 1-RTT only; before,
//!   a server uses Initial (unless it had processed a client Handshake
//!   packet, RFC 9001 §4.9.1), Handshake and 1-RTT (it holds both once it
//!   has read the ClientHello, which under loss its first Initial may lack);
//!   a client uses Initial (unless it had sent a Handshake packet),
//!   Handshake (if it had read the server's Initial) and 1-RTT (if its
//!   handshake was complete); a server short of anti-amplification budget
//!   (RFC 9000 §8.1) uses some of those, 1-RTT among them if a 1-RTT packet
//!   of the client had reached it;
//! * later close datagrams use no level the first one did not (short of
//!   budget: no level the rule does not allow), and never Initial once
//!   Initial keys must be gone (RFC 9001 §4.9.1);
//! * the 1-RTT copy keeps code 0x2a and "bye"; Initial/Handshake copies are
//!   0x1c APPLICATION_ERROR with an empty reason.
//!
//! And on the peer: it ends with `ApplicationClosed { 0x2a, "bye" }` if it
//! could read 1-RTT packets (its handshake was complete) when it ended,
//! otherwise `ConnectionClosed { APPLICATION_ERROR, "" }` — never
//! `TimedOut`, never anything else — at most [`END_BOUND`] after the first
//! datagram the closer sent after closing was delivered (taken from the
//! network trace). It sends at most one packet after reading the close,
//! itself a close, and nothing later (§10.2.2). (A client that closed
//! before anything of it reached the server leaves no peer state to check.)
//!
//! The closing and draining rules have their own tests in
//! closing_draining.rs.
//!
//! Beyond the 20 seeds per cell run here, `QUIVER_SIM_SEEDS=1000` passes
//! every cell but one: seed 0x1b7 of `server_1_first_initial_random_loss`,
//! where every close datagram and the client's probes at 1, 3 and 7 s are
//! all lost (15% each way); the server's closing period (7 initial PTOs
//! before confirmation) is over when its probe at 15 s arrives, which then
//! starts a new attempt that this harness does not accept.

mod check;
#[path = "../common_close/mod.rs"]
mod common_close;
#[path = "../common_zero_rtt/mod.rs"]
mod common_zero_rtt;
mod scenario;
mod zero_rtt;

use std::time::Duration;

use quiver_sim::{Seed, for_each_seed};

use self::scenario::run_cell;

/// The application's close code and reason.
pub(crate) const APP_CODE: u32 = 0x2a;
pub(crate) const APP_REASON: &[u8] = b"bye";

/// One-way delay of every link: the path's RTT is 20 ms.
pub(crate) const LINK_DELAY: Duration = Duration::from_millis(10);
pub(crate) const PATH_RTT_MS: u64 = 20;
/// The PTO before any RTT sample, in ms (RFC 9002 §6.2.2: 333 ms initial
/// RTT, so smoothed_rtt + 4 × rttvar = 333 + 4 × 166.5 ms), the largest PTO
/// the closer or the peer starts from in these scenarios.
pub(crate) const INITIAL_PTO_MS: u64 = 999;
/// The peer must end within this long after the first datagram the closer
/// sent after closing is delivered: 2 × (RTT + PTO + 2·PTO), twice one
/// round trip plus the peer's first two backed-off probe timeouts (should
/// the first close it receives be one it cannot read, its probes are
/// answered by the closer) = 6.034 s. In every cell the peer actually ends
/// at that very delivery (slack 0; printed with --nocapture).
pub(crate) const END_BOUND: Duration =
    Duration::from_millis(2 * (PATH_RTT_MS + 3 * INITIAL_PTO_MS));
/// Random loss rate, both directions.
pub(crate) const RANDOM_LOSS: f64 = 0.15;
pub(crate) const RANDOM_SEEDS: usize = 20;
/// Every scenario ends within this much virtual time (beyond the 30 s
/// idle timeout, so a peer that never learns of the close shows up as
/// `TimedOut`).
pub(crate) const SCENARIO_LIMIT: Duration = Duration::from_secs(45);
/// The peer's application sends a DATAGRAM this often after the close.
pub(crate) const PEER_ACTIVITY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    FirstInitial,
    FlightInFlight,
    HandshakeKeysOnly,
    OneRttUnconfirmed,
    Confirmed,
    ZeroRtt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loss {
    None,
    ServerHandshakeLost,
    Random(Seed),
    /// Only the closer's first close datagram is lost: the close must get
    /// through as an answer while closing (§10.2.1).
    FirstCloseLost,
    /// The server's Handshake packets lost until the close (which lets the
    /// client hold Handshake keys without 1-RTT keys), then the closer's
    /// first close datagram lost, and nothing else: the server's
    /// retransmissions (Handshake packets only, its Initial data being
    /// acknowledged) then reach the closing client, which must answer them
    /// without Initial packets (RFC 9001 §4.9.1). Were they still lost the
    /// closer could hear nothing from the server and would never answer.
    ServerHandshakeAndFirstCloseLost,
}

impl Loss {
    fn server_handshake_lost(self) -> bool {
        matches!(
            self,
            Loss::ServerHandshakeLost | Loss::ServerHandshakeAndFirstCloseLost
        )
    }

    fn first_close_lost(self) -> bool {
        matches!(
            self,
            Loss::FirstCloseLost | Loss::ServerHandshakeAndFirstCloseLost
        )
    }
}

/// Runs a cell (all seeds for random loss) and panics with the details of
/// the first failure.
fn cell(closer: Role, stage: Stage, column: &str) {
    let run = |loss| {
        let outcome = run_cell(closer, stage, loss)
            .unwrap_or_else(|| panic!("{closer:?} {stage:?} {loss:?}: never reached"));
        outcome.check().unwrap_or_else(|e| panic!("{e}"));
    };
    match column {
        "none" => run(Loss::None),
        "handshake" => run(Loss::ServerHandshakeLost),
        "first_close_lost" => run(Loss::FirstCloseLost),
        "handshake_first_close_lost" => run(Loss::ServerHandshakeAndFirstCloseLost),
        "random" => {
            let (mut ran, mut skipped) = (0, 0);
            for_each_seed(RANDOM_SEEDS, |seed| {
                match run_cell(closer, stage, Loss::Random(seed)) {
                    Some(outcome) => {
                        ran += 1;
                        outcome.check().unwrap_or_else(|e| panic!("{e}"));
                    }
                    None => skipped += 1,
                }
            });
            eprintln!("{closer:?} {stage:?}: {ran} seeds ran, {skipped} never reached the stage");
            assert!(skipped * 4 <= ran, "{skipped} seeds skipped, {ran} ran");
        }
        _ => unreachable!(),
    }
}

macro_rules! matrix {
    ($($name:ident: $closer:ident, $stage:ident, $column:literal;)*) => {
        $(
            #[test]
            fn $name() {
                cell(Role::$closer, Stage::$stage, $column);
            }
        )*
    };
}

matrix! {
    server_1_first_initial_no_loss: Server, FirstInitial, "none";
    server_1_first_initial_handshake_lost: Server, FirstInitial, "handshake";
    server_1_first_initial_random_loss: Server, FirstInitial, "random";
    server_2_flight_in_flight_no_loss: Server, FlightInFlight, "none";
    server_2_flight_in_flight_handshake_lost: Server, FlightInFlight, "handshake";
    server_2_flight_in_flight_random_loss: Server, FlightInFlight, "random";
    server_3_one_rtt_unconfirmed_no_loss: Server, OneRttUnconfirmed, "none";
    server_3_one_rtt_unconfirmed_handshake_lost: Server, OneRttUnconfirmed, "handshake";
    server_3_one_rtt_unconfirmed_random_loss: Server, OneRttUnconfirmed, "random";
    server_4_confirmed_no_loss: Server, Confirmed, "none";
    server_4_confirmed_handshake_lost: Server, Confirmed, "handshake";
    server_4_confirmed_random_loss: Server, Confirmed, "random";
    client_1_first_initial_no_loss: Client, FirstInitial, "none";
    client_1_first_initial_handshake_lost: Client, FirstInitial, "handshake";
    client_1_first_initial_random_loss: Client, FirstInitial, "random";
    client_2_flight_in_flight_no_loss: Client, FlightInFlight, "none";
    client_2_flight_in_flight_handshake_lost: Client, FlightInFlight, "handshake";
    client_2_flight_in_flight_random_loss: Client, FlightInFlight, "random";
    client_2b_handshake_keys_only_handshake_lost: Client, HandshakeKeysOnly, "handshake";
    client_3_one_rtt_unconfirmed_no_loss: Client, OneRttUnconfirmed, "none";
    client_3_one_rtt_unconfirmed_handshake_lost: Client, OneRttUnconfirmed, "handshake";
    client_3_one_rtt_unconfirmed_random_loss: Client, OneRttUnconfirmed, "random";
    client_4_confirmed_no_loss: Client, Confirmed, "none";
    client_4_confirmed_handshake_lost: Client, Confirmed, "handshake";
    client_4_confirmed_random_loss: Client, Confirmed, "random";
}

// The closer's first close datagram lost: the close gets through as an
// answer to the peer's next packets while closing (§10.2.1), and answers
// respect the key discards of RFC 9001 §4.9.1.
matrix! {
    server_1_first_initial_first_close_lost: Server, FirstInitial, "first_close_lost";
    server_2_flight_in_flight_first_close_lost: Server, FlightInFlight, "first_close_lost";
    server_3_one_rtt_unconfirmed_first_close_lost: Server, OneRttUnconfirmed, "first_close_lost";
    server_4_confirmed_first_close_lost: Server, Confirmed, "first_close_lost";
    client_1_first_initial_first_close_lost: Client, FirstInitial, "first_close_lost";
    client_2_flight_in_flight_first_close_lost: Client, FlightInFlight, "first_close_lost";
    client_2b_handshake_keys_only_handshake_and_first_close_lost:
        Client, HandshakeKeysOnly, "handshake_first_close_lost";
    client_3_one_rtt_unconfirmed_first_close_lost: Client, OneRttUnconfirmed, "first_close_lost";
    client_4_confirmed_first_close_lost: Client, Confirmed, "first_close_lost";
}

// The 0-RTT stage (zero_rtt.rs): a client that holds only Initial and
// 0-RTT keys closes in an Initial packet (RFC 9000 §10.2.3); a server that
// accepted 0-RTT closes before its handshake completes.
matrix! {
    server_0rtt_accepted_no_loss: Server, ZeroRtt, "none";
    server_0rtt_accepted_handshake_lost: Server, ZeroRtt, "handshake";
    server_0rtt_accepted_random_loss: Server, ZeroRtt, "random";
    server_0rtt_accepted_first_close_lost: Server, ZeroRtt, "first_close_lost";
    server_0rtt_accepted_handshake_and_first_close_lost:
        Server, ZeroRtt, "handshake_first_close_lost";
    client_0rtt_keys_no_loss: Client, ZeroRtt, "none";
    client_0rtt_keys_handshake_lost: Client, ZeroRtt, "handshake";
    client_0rtt_keys_random_loss: Client, ZeroRtt, "random";
    client_0rtt_keys_first_close_lost: Client, ZeroRtt, "first_close_lost";
}

/// Regression, random-loss seed 59 of the server's 0-RTT stage: the
/// server's Handshake flight and its close are lost, and the client, whose
/// Initials were acknowledged, has only 0-RTT packets in flight. It must
/// still arm its anti-deadlock probe (RFC 9002 §6.2.2.1: "even if there
/// are no packets in flight"), which the closing server answers; it used
/// to arm no timer and time out 30 s later.
#[test]
fn server_0rtt_accepted_client_probes_with_only_0rtt_in_flight() {
    run_cell(Role::Server, Stage::ZeroRtt, Loss::Random(Seed(59)))
        .expect("stage reached")
        .check()
        .unwrap_or_else(|e| panic!("{e}"));
}
