#!/usr/bin/env python3
"""Checks relay.py on its own, with plain UDP sockets on loopback, before
impaired.sh trusts it: ECN codepoints kept both ways and counted, the
server-facing socket moved to a new port and to a new address, one byte
changed among the first 50 of a corrupted datagram, loss near its rate,
the drop-tail queue overflowing, a black hole dropping everything.

  python3 relay_check.py BASE_PORT     # uses BASE_PORT and BASE_PORT + 1

Prints `ok` or the first failed check, exits non-zero on failure.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "relay.py")


def udp(port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("127.0.0.1", port))
    s.settimeout(0.2)
    return s


def drain(sock):
    """Every datagram until 0.2 s of silence: (data, tos, source)."""
    got = []
    while True:
        try:
            data, anc, _, addr = sock.recvmsg(65535, 64)
        except socket.timeout:
            return got
        tos = next((v[0] for lvl, kind, v in anc if kind == socket.IP_TOS and v), 0)
        got.append((data, tos, addr))


def wait_bound(port):
    """Waits (up to 10 s) until the relay has bound its port."""
    for _ in range(200):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return
        finally:
            probe.close()
        time.sleep(0.05)
    raise SystemExit("FAILED: the relay did not start")


def run(base, relay_args, client_send):
    """Starts the relay with `relay_args`, lets `client_send(client,
    server)` talk through it, returns its statistics."""
    stats = tempfile.mktemp(suffix=".json")
    server = udp(base + 1)
    relay = subprocess.Popen(
        [sys.executable, RELAY, "--listen", f"127.0.0.1:{base}",
         "--server", f"127.0.0.1:{base + 1}", "--stats", stats, *relay_args]
    )
    try:
        wait_bound(base)
        client = udp()
        result = client_send(client, server)
    finally:
        relay.terminate()
        relay.wait()
    with open(stats) as f:
        report = json.load(f)
    os.unlink(stats)
    return result, report


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)


def main():
    base = int(sys.argv[1])
    to = ("127.0.0.1", base)

    # ECN both ways: each codepoint arrives as sent and is counted from
    # the first short-header datagram (first byte 0x40) on.
    def ecn(client, server):
        client.sendto(b"\xc0long", to)
        for tos in (0, 1, 2, 3):
            client.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
            client.sendto(b"\x40" + bytes([tos]), to)
        got = drain(server)
        for data, tos, addr in got:
            server.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
            server.sendto(data, addr)
        back = drain(client)
        return [(d, t & 3) for d, t, _ in got], [(d, t & 3) for d, t, _ in back]

    (up, down), report = run(base, [], ecn)
    sent = [(b"\xc0long", 0)] + [(b"\x40" + bytes([t]), t) for t in range(4)]
    check(up == sent, f"codepoints to the server {up}")
    check(down == sent, f"codepoints back to the client {down}")
    expect = {"not_ect": 1, "ect1": 1, "ect0": 1, "ce": 1}
    check(report["c2s"]["ecn"] == expect, f"c2s counts {report['c2s']['ecn']}")
    check(report["c2s"]["ecn_all"]["not_ect"] == 2, f"c2s all {report['c2s']['ecn_all']}")
    check(report["s2c"]["ecn"] == expect, f"s2c counts {report['s2c']['ecn']}")

    # Rebinding: a new port, then a new address, each seen by the server.
    for mode, same_host in (("port", True), ("addr", False)):

        def rebind(client, server):
            sources = []
            for _ in range(2):
                client.sendto(b"\x40x", to)
                data, _, addr = drain(server)[0]
                server.sendto(data, addr)
                check(drain(client), "the answer came back")
                sources.append(addr)
                time.sleep(0.5)
            return sources

        (first, second), report = run(base, ["--rebind", mode, "--rebind-at", "800"], rebind)
        check(first != second, f"{mode}: the server saw one source {first}")
        check((first[0] == second[0]) == same_host, f"{mode}: {first} then {second}")
        check(len(report["rebinds"]) == 1, f"{mode}: {report['rebinds']}")

    # Corruption: every datagram, one byte among the first 51 replaced.
    payload = bytes(range(200))

    def corrupt(client, server):
        for _ in range(50):
            client.sendto(payload, to)
        return [d for d, _, _ in drain(server)]

    got, report = run(base, ["--corrupt", "100"], corrupt)
    check(len(got) == 50, f"corruption: {len(got)} of 50 arrived")
    for d in got:
        diff = [i for i in range(len(d)) if d[i] != payload[i]]
        check(len(diff) == 1 and diff[0] <= 50, f"corruption changed bytes {diff}")

    # Loss near its rate; a queue of 5 behind 1 Mbit/s overflows under a
    # burst; a black hole from the start drops all.
    def burst(client, server):
        for _ in range(200):
            client.sendto(b"\x40" + bytes(500), to)
        return len(drain(server))

    n, report = run(base, ["--loss", "25", "--seed", "7"], burst)
    check(110 <= n <= 190, f"25% loss let {n} of 200 through")
    n, report = run(base, ["--rate", "1", "--queue", "5"], burst)
    check(n <= 20 and report["c2s"]["queue_dropped"] >= 180, f"queue: {n} through, {report['c2s']}")
    n, report = run(base, ["--blackhole-on", "0", "--blackhole-off", "10000"], burst)
    check(n == 0 and report["c2s"]["blackholed"] == 200, f"black hole let {n} through")
    print("ok")


if __name__ == "__main__":
    main()
