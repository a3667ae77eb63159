//! The endpoint's connections and which of them need a visit: a send
//! queue of connections that may have something to send, and a heap of
//! connection deadlines. `poll_transmit`, `poll_timeout` and
//! `handle_timeout` then cost the connections that moved, not all of them
//! (connections closing or draining linger for three PTOs, RFC 9000 §10.2,
//! and a busy server holds many idle ones).
//!
//! Any call into a connection may change what it wants to send and when it
//! next needs a timeout, so every mutable access "touches" it: it joins
//! the send queue (left when it has nothing to send) and its deadline is
//! read again before the next timer decision. Heap entries are not
//! removed when a deadline moves; an entry counts only while it matches
//! its connection's recorded deadline.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use super::hash::SeededState;
use crate::ConnectionId;
use crate::connection::{Connection, ConnectionHandle};

/// A connection and its bookkeeping.
#[derive(Debug)]
pub(super) struct Slot {
    /// Boxed: a `Connection` is several kilobytes, which every move (into
    /// the map, and the map's own moves when it grows) would copy.
    pub(super) conn: Box<Connection>,
    /// In the send queue.
    queued: bool,
    /// In the touched list: its deadline must be read again.
    touched: bool,
    /// The deadline the heap holds for it.
    deadline: Option<Instant>,
    /// Our connection IDs routed to it.
    pub(super) cids: Vec<ConnectionId>,
    /// The client's first Destination CID routed to it (server).
    pub(super) initial_cid: Option<ConnectionId>,
    /// Peer reset tokens the endpoint checks for it (a few: those of the
    /// peer's connection IDs in use), as the endpoint's table keys them
    /// (transformed), so that removing them costs no HMAC.
    pub(super) reset_tokens: Vec<super::reset_tokens::Transformed>,
    /// The peer address routed to it, when our connection IDs are zero
    /// length (RFC 9000 §5.1: such an endpoint routes by address).
    pub(super) addr: Option<std::net::SocketAddr>,
}

/// The endpoint's connections with their send queue and timers.
#[derive(Debug)]
pub(super) struct Connections {
    map: HashMap<ConnectionHandle, Slot, SeededState>,
    /// Connections that may have something to send, in turn.
    send: VecDeque<ConnectionHandle>,
    /// Connections whose deadline may have changed.
    touched: Vec<ConnectionHandle>,
    /// Deadlines, earliest first; stale entries are skipped.
    timers: BinaryHeap<Reverse<(Instant, ConnectionHandle)>>,
    /// Connections whose timers ran in the last `handle_timeout`.
    timed_out: Vec<ConnectionHandle>,
}

impl Connections {
    pub(super) fn new(hasher: SeededState) -> Self {
        Self {
            map: HashMap::with_hasher(hasher),
            send: VecDeque::new(),
            touched: Vec::new(),
            timers: BinaryHeap::new(),
            timed_out: Vec::new(),
        }
    }

    pub(super) fn insert(&mut self, handle: ConnectionHandle, conn: Box<Connection>) -> &mut Slot {
        self.map.insert(
            handle,
            Slot {
                conn,
                queued: false,
                touched: false,
                deadline: None,
                cids: Vec::new(),
                initial_cid: None,
                reset_tokens: Vec::new(),
                addr: None,
            },
        );
        self.touch(handle);
        self.map.get_mut(&handle).expect("just inserted")
    }

    pub(super) fn remove(&mut self, handle: ConnectionHandle) -> Option<Slot> {
        // Queue and heap entries of a removed handle are skipped (handles
        // are never reused).
        self.map.remove(&handle)
    }

    pub(super) fn handles(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.map.keys().copied()
    }

    /// The connection, to read.
    pub(super) fn get(&self, handle: ConnectionHandle) -> Option<&Connection> {
        self.map.get(&handle).map(|s| &*s.conn)
    }

    /// The connection without touching it: for reads, and for changes
    /// that need no visit.
    pub(super) fn slot_untouched(&mut self, handle: ConnectionHandle) -> Option<&mut Slot> {
        self.map.get_mut(&handle)
    }

    /// The connection, marked for a visit.
    pub(super) fn get_mut(&mut self, handle: ConnectionHandle) -> Option<&mut Connection> {
        self.touch(handle);
        self.map.get_mut(&handle).map(|s| &mut *s.conn)
    }

    /// Marks a connection for a visit: it may have something to send and
    /// its deadline may have moved.
    pub(super) fn touch(&mut self, handle: ConnectionHandle) {
        let Some(slot) = self.map.get_mut(&handle) else {
            return;
        };
        if !slot.queued {
            slot.queued = true;
            self.send.push_back(handle);
        }
        if !slot.touched {
            slot.touched = true;
            self.touched.push(handle);
        }
    }

    /// Connections in the send queue (an upper bound on those left to ask).
    pub(super) fn queued(&self) -> usize {
        self.send.len()
    }

    /// Takes the next connection from the send queue. Whatever it is asked
    /// may move its deadline, so it counts as touched; [`Self::touch`] puts
    /// it back in the queue when it sent something.
    pub(super) fn next_queued(&mut self) -> Option<(ConnectionHandle, &mut Connection)> {
        loop {
            let handle = self.send.pop_front()?;
            let Some(slot) = self.map.get_mut(&handle) else {
                continue;
            };
            slot.queued = false;
            if !slot.touched {
                slot.touched = true;
                self.touched.push(handle);
            }
            let slot = self.map.get_mut(&handle).expect("present");
            return Some((handle, &mut slot.conn));
        }
    }

    /// Reads the deadlines of touched connections into the heap.
    fn refresh(&mut self) {
        for handle in self.touched.drain(..) {
            let Some(slot) = self.map.get_mut(&handle) else {
                continue;
            };
            slot.touched = false;
            let deadline = slot.conn.poll_timeout();
            if deadline != slot.deadline {
                slot.deadline = deadline;
                if let Some(t) = deadline {
                    self.timers.push(Reverse((t, handle)));
                }
            }
        }
        // Stale entries pile up while deadlines move; rebuild when they
        // outnumber the live ones.
        if self.timers.len() > 2 * self.map.len() + 64 {
            let live = self
                .map
                .iter()
                .filter_map(|(h, s)| s.deadline.map(|t| Reverse((t, *h))));
            self.timers = live.collect();
        }
    }

    /// Whether a heap entry is the connection's current deadline.
    fn is_live(&self, t: Instant, handle: ConnectionHandle) -> bool {
        self.map.get(&handle).is_some_and(|s| s.deadline == Some(t))
    }

    /// The earliest deadline of any connection.
    pub(super) fn poll_timeout(&mut self) -> Option<Instant> {
        self.refresh();
        while let Some(&Reverse((t, handle))) = self.timers.peek() {
            if self.is_live(t, handle) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// Collects the connections due at `now` (each once) into the
    /// timed-out list and returns their number.
    pub(super) fn take_due(&mut self, now: Instant) -> usize {
        self.refresh();
        self.timed_out.clear();
        while let Some(&Reverse((t, handle))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if let Some(slot) = self.map.get_mut(&handle) {
                if slot.deadline == Some(t) {
                    // Later duplicates of this entry are now stale.
                    slot.deadline = None;
                    self.timed_out.push(handle);
                }
            }
        }
        self.timed_out.len()
    }

    /// The `i`th connection of the last [`Self::take_due`].
    pub(super) fn due(&self, i: usize) -> ConnectionHandle {
        self.timed_out[i]
    }

    /// Connections whose timers ran in the last `handle_timeout`.
    pub(super) fn timed_out(&self) -> &[ConnectionHandle] {
        &self.timed_out
    }
}
