#!/usr/bin/env python3
"""A seeded UDP relay between one QUIC client and one QUIC server on
loopback, impairing the path as the QUIC interop runner's network
simulator does (see impaired.sh beside this file). Python 3.11, standard
library only.

The client talks to the relay's client-facing socket (--listen); the relay
reaches the server (--server) from a server-facing socket. Each direction
goes through the same pipeline, in this order:

  black hole (on/off periods)  -> drop everything while "off"
  random loss (--loss %)       -> a loss event drops --burst datagrams
  corruption (--corrupt %)     -> one byte among the first --corrupt-span
                                  bytes is replaced by a different random
                                  value, as the runner's corrupt-rate does
                                  (it aims at the QUIC header often);
                                  Version Negotiation is never corrupted
  bottleneck (--rate, --queue) -> serialisation at RATE Mbit/s behind a
                                  drop-tail queue of QUEUE datagrams
  delay (--delay ms)           -> one-way propagation delay
  reordering (--reorder %)     -> that share is held --reorder-delay ms
                                  longer, so later datagrams overtake it

Rebinding (--rebind port|addr): the server-facing socket is replaced by
one on a new port (NAT rebinding) or on a new address 127.0.0.2, .3, ...,
once at --rebind-at ms after the first datagram, or also every
--rebind-every ms after that. The old socket closes at once or, with
--linger MS, keeps forwarding what the server still sends to it that long
(a NAT keeping the old mapping). The server sees the client move; the
client sees nothing.

ECN: every datagram's TOS byte is read (IP_RECVTOS) and its ECN codepoint
kept when forwarding (IP_TOS on the sending socket, set only when it
changes). Per direction, the relay counts the codepoints of the
datagrams received from the first one that starts with a short header
(1-RTT) on ("ecn"), and of all of them ("ecn_all").

Stalls: after each rebinding, the longest gap in server->client traffic
forwarded to the client, from the rebinding until the next one (or the
end of traffic), the time until the server's first datagram on the new
socket, and the stall: each gap less how late the relay itself forwarded
the datagram that ended it (a relay starved of CPU stretches the gaps it
sees; that part is not the endpoints').

At exit (SIGTERM, SIGINT or --duration) it prints one JSON line of
statistics to stdout, or writes it to --stats FILE.
"""

import argparse
import heapq
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time
from collections import deque

ECN_NAMES = ("not_ect", "ect1", "ect0", "ce")  # codepoint 0b00, 0b01, 0b10, 0b11
MAX_DATAGRAM = 65535
# Linux's kernel receive timestamps (struct timespec, CLOCK_REALTIME);
# Python's socket module does not name them.
SO_TIMESTAMPNS = 35


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", int(port))


class Direction:
    """The impairments and counters of one direction."""

    def __init__(self, name, args, rng):
        self.name = name
        self.args = args
        self.rng = rng
        self.burst_left = 0
        self.busy_until = 0.0
        # Serialisation end times of the datagrams in the bottleneck queue.
        self.queue = deque()
        self.seen_short = False
        self.ecn = dict.fromkeys(ECN_NAMES, 0)
        self.ecn_all = dict.fromkeys(ECN_NAMES, 0)
        self.stats = dict.fromkeys(
            (
                "received",
                "forwarded",
                "lost",
                "blackholed",
                "queue_dropped",
                "corrupted",
                "reordered",
            ),
            0,
        )

    def count_ecn(self, data, tos):
        """Counts the codepoint of every datagram, and from the first
        short-header datagram on."""
        self.ecn_all[ECN_NAMES[tos & 3]] += 1
        if not self.seen_short and data and data[0] & 0x80 == 0:
            self.seen_short = True
        if self.seen_short:
            self.ecn[ECN_NAMES[tos & 3]] += 1

    def lose(self):
        """Random loss; a loss event drops `burst` datagrams in a row."""
        if self.burst_left > 0:
            self.burst_left -= 1
            return True
        if self.rng.random() * 100 < self.args.loss:
            self.burst_left = self.args.burst - 1
            return True
        return False

    def corrupt(self, data):
        if not data or self.args.corrupt <= 0 or self.rng.random() * 100 >= self.args.corrupt:
            return data
        # Version Negotiation (long header, version 0) is left alone: a
        # client ignores one naming the version it offered.
        if len(data) >= 5 and data[0] & 0x80 and data[1:5] == b"\0\0\0\0":
            return data
        buf = bytearray(data)
        pos = self.rng.randrange(0, min(self.args.corrupt_span, len(buf) - 1) + 1)
        new = self.rng.randrange(255)
        buf[pos] = new if new < buf[pos] else new + 1  # never the same value
        self.stats["corrupted"] += 1
        return bytes(buf)

    def schedule(self, now, size):
        """When the datagram arrives at the far side, or None if the
        bottleneck's queue is full."""
        args = self.args
        depart = now
        if args.rate > 0:
            while self.queue and self.queue[0] <= now:
                self.queue.popleft()
            if len(self.queue) >= args.queue:
                self.stats["queue_dropped"] += 1
                return None
            depart = max(now, self.busy_until) + size * 8 / (args.rate * 1e6)
            self.busy_until = depart
            self.queue.append(depart)
        at = depart + args.delay / 1000
        if args.reorder > 0 and self.rng.random() * 100 < args.reorder:
            self.stats["reordered"] += 1
            at += args.reorder_delay / 1000
        return at

    def report(self):
        return dict(self.stats, ecn=self.ecn, ecn_all=self.ecn_all)


class Relay:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.sel = selectors.DefaultSelector()
        self.server = parse_addr(args.server)
        self.client = None
        self.csock = self.udp_socket(parse_addr(args.listen))
        self.sel.register(self.csock, selectors.EVENT_READ, "client")
        self.ssock = self.udp_socket(("127.0.0.1", 0))
        self.sel.register(self.ssock, selectors.EVENT_READ, "server")
        self.lingering = []  # (socket, close time)
        self.tos_of = {}  # socket -> TOS last set on it
        self.c2s = Direction("c2s", args, random.Random(self.rng.random()))
        self.s2c = Direction("s2c", args, random.Random(self.rng.random()))
        self.events = []  # (time, sequence, direction, data, tos)
        self.seq = 0
        self.start = None
        self.next_rebind = None
        self.next_address = 2
        self.rebinds = []
        self.max_lag_ms = 0.0
        # Kernel timestamps are wall-clock time; the relay runs on the
        # monotonic clock.
        self.realtime_offset = time.time() - time.monotonic()
        self.trace = open(args.trace, "w") if args.trace else None

    @staticmethod
    def udp_socket(addr):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        # When each datagram really arrived, even if the relay was not
        # running then: its schedule, and its lateness, start there.
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind(addr)
        s.setblocking(False)
        return s

    def elapsed_ms(self, now):
        return round((now - self.start) * 1000, 1)

    def rebind(self, now):
        """Replaces the server-facing socket (RFC 9000 §9.3's NAT
        rebinding, seen from the server)."""
        old = self.ssock
        host = "127.0.0.1"
        if self.args.rebind == "addr":
            host = f"127.0.0.{self.next_address}"
            self.next_address = self.next_address + 1 if self.next_address < 254 else 2
        self.ssock = self.udp_socket((host, 0))
        self.sel.register(self.ssock, selectors.EVENT_READ, "server")
        if self.args.linger > 0:
            self.sel.modify(old, selectors.EVENT_READ, "old")
            self.lingering.append((old, now + self.args.linger / 1000))
        else:
            self.close(old)
        self.rebinds.append(
            {
                "at_ms": self.elapsed_ms(now),
                "to": "%s:%d" % self.ssock.getsockname(),
                "first_ms": None,
                "max_gap_ms": 0.0,
                "stall_ms": 0.0,
                "lag_ms": 0.0,
                "_t": now,
                "_last": now,
            }
        )
        if self.args.rebind_every > 0:
            self.next_rebind = now + self.args.rebind_every / 1000
        else:
            self.next_rebind = None

    def close(self, sock):
        self.sel.unregister(sock)
        self.tos_of.pop(sock, None)
        sock.close()

    def send(self, sock, data, tos, to):
        # The ECN codepoint is carried over; the rest of the TOS byte too.
        if self.tos_of.get(sock) != tos:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
            self.tos_of[sock] = tos
        try:
            sock.sendto(data, to)
        except OSError:
            pass  # ICMP errors from a peer that went away, a full buffer

    def receive(self, sock):
        """The datagrams waiting on `sock`: data, TOS byte, source, and
        when the kernel received it (monotonic clock)."""
        space = socket.CMSG_SPACE(4) + socket.CMSG_SPACE(16)
        while True:
            try:
                data, anc, _flags, addr = sock.recvmsg(MAX_DATAGRAM, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # a queued ICMP error
            now = time.monotonic()
            tos = 0
            arrived = now
            for level, kind, value in anc:
                if level == socket.IPPROTO_IP and kind == socket.IP_TOS and value:
                    tos = value[0]
                elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    # Never later than now, never before the datagram could
                    # have been sent by much (a clock step).
                    arrived = min(now, max(now - 1.0, sec + nsec / 1e9 - self.realtime_offset))
            yield data, tos, addr, arrived

    def arrive(self, direction, data, tos, now):
        if self.start is None:
            self.start = now
            if self.args.rebind != "none":
                self.next_rebind = now + self.args.rebind_at / 1000
        d = direction
        d.stats["received"] += 1
        d.count_ecn(data, tos)
        if self.trace:
            self.trace.write(f"{self.elapsed_ms(now)} {d.name} {len(data)} {data[:1].hex() or '-'} {tos & 3}\n")
        if self.blackholed(now):
            d.stats["blackholed"] += 1
            return
        if d.lose():
            d.stats["lost"] += 1
            return
        data = d.corrupt(data)
        at = d.schedule(now, len(data) + 28)
        if at is None:
            return
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, d.name, data, tos))

    def blackholed(self, now):
        on, off = self.args.blackhole_on, self.args.blackhole_off
        if off <= 0:
            return False
        phase = ((now - self.start) * 1000) % (on + off)
        return phase >= on

    def deliver(self, now):
        while self.events and self.events[0][0] <= now:
            at, _seq, name, data, tos = heapq.heappop(self.events)
            # How late the relay itself is (a starved process on a loaded
            # machine): it stretches every gap it measures.
            late = round((now - at) * 1000, 1)
            self.max_lag_ms = max(self.max_lag_ms, late)
            if name == "c2s":
                self.c2s.stats["forwarded"] += 1
                self.send(self.ssock, data, tos, self.server)
            elif self.client is not None:
                self.s2c.stats["forwarded"] += 1
                self.send(self.csock, data, tos, self.client)
                self.note_s2c(now, late)

    def note_s2c(self, now, late):
        """A datagram went to the client `late` ms after it was due."""
        if self.rebinds:
            r = self.rebinds[-1]
            gap = round((now - r["_last"]) * 1000, 1)
            r["max_gap_ms"] = max(r["max_gap_ms"], gap)
            # The part of the gap the relay caused by being late with the
            # datagram that ends it is not the endpoints' stall.
            r["stall_ms"] = max(r["stall_ms"], round(gap - late, 1))
            r["lag_ms"] = max(r["lag_ms"], late)
            r["_last"] = now

    def run(self):
        deadline = None
        if self.args.duration > 0:
            deadline = time.monotonic() + self.args.duration
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if self.next_rebind is not None and now >= self.next_rebind:
                self.rebind(now)
            while self.lingering and self.lingering[0][1] <= now:
                self.close(self.lingering.pop(0)[0])
            self.deliver(now)
            wake = [t for t in (self.next_rebind, deadline) if t is not None]
            if self.events:
                wake.append(self.events[0][0])
            if self.lingering:
                wake.append(self.lingering[0][1])
            timeout = max(0.0, min(wake) - now) if wake else 0.5
            for key, _ in self.sel.select(min(timeout, 0.5)):
                sock, role = key.fileobj, key.data
                for data, tos, addr, now in self.receive(sock):
                    if role == "client":
                        self.client = addr  # the latest client wins
                        self.arrive(self.c2s, data, tos, now)
                        continue
                    if addr != self.server:
                        continue
                    if role == "server" and self.rebinds and self.rebinds[-1]["first_ms"] is None:
                        r = self.rebinds[-1]
                        r["first_ms"] = round((now - r["_t"]) * 1000, 1)
                    self.arrive(self.s2c, data, tos, now)

    def report(self):
        rebinds = [{k: v for k, v in r.items() if not k.startswith("_")} for r in self.rebinds]
        return {
            "seed": self.args.seed,
            "duration_ms": self.elapsed_ms(time.monotonic()) if self.start else 0,
            "c2s": self.c2s.report(),
            "s2c": self.s2c.report(),
            "rebinds": rebinds,
            "max_rebind_gap_ms": max((r["max_gap_ms"] for r in rebinds), default=0),
            "max_rebind_stall_ms": max((r["stall_ms"] for r in rebinds), default=0),
            "max_lag_ms": self.max_lag_ms,
        }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True, help="client-facing HOST:PORT")
    p.add_argument("--server", required=True, help="the server's HOST:PORT")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--delay", type=float, default=0, help="one-way delay, ms")
    p.add_argument("--loss", type=float, default=0, help="random loss, %% of datagrams")
    p.add_argument("--burst", type=int, default=1, help="datagrams dropped per loss event")
    p.add_argument("--reorder", type=float, default=0, help="%% of datagrams held back")
    p.add_argument("--reorder-delay", type=float, default=10, help="how long, ms")
    p.add_argument("--corrupt", type=float, default=0, help="%% of datagrams corrupted")
    p.add_argument("--corrupt-span", type=int, default=50, help="corrupt among the first N bytes")
    p.add_argument("--rate", type=float, default=0, help="bottleneck, Mbit/s (0: none)")
    p.add_argument("--queue", type=int, default=25, help="bottleneck queue, datagrams")
    p.add_argument("--blackhole-on", type=float, default=0, help="ms the link works")
    p.add_argument("--blackhole-off", type=float, default=0, help="ms it then drops all")
    p.add_argument("--rebind", choices=("none", "port", "addr"), default="none")
    p.add_argument("--rebind-at", type=float, default=500, help="first rebinding, ms")
    p.add_argument("--rebind-every", type=float, default=0, help="then every N ms (0: once)")
    p.add_argument("--linger", type=float, default=0, help="old socket forwards N ms more")
    p.add_argument("--duration", type=float, default=0, help="exit after N s (0: on signal)")
    p.add_argument("--trace", help="one line per datagram received: ms dir size byte0 ecn")
    p.add_argument("--stats", help="write the JSON line here instead of stdout")
    args = p.parse_args()
    if args.burst < 1 or args.queue < 1:
        p.error("--burst and --queue are at least 1")

    relay = Relay(args)

    class Stop(Exception):
        pass

    # Raised from the handler, so that a select() waiting for the next
    # event ends at once (it would otherwise resume its timeout).
    def stop(_signum, _frame):
        raise Stop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        relay.run()
    except Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if relay.trace:
        relay.trace.close()
    line = json.dumps(relay.report(), separators=(",", ":"))
    if args.stats:
        tmp = args.stats + ".tmp"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.replace(tmp, args.stats)
    else:
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
