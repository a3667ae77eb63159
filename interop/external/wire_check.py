#!/usr/bin/env python3
"""Checks a packet capture of one QUIC interop case, decrypted by tshark
with a TLS key log, the way the QUIC interop runner's test cases do
(wire.sh beside this file runs the cases).

    wire_check.py CASE PCAP KEYLOG SERVER_PORT [--paths /a,/b] [--h3]

CASE is one of:
  resumption  the last connection is resumed: its ServerHello carries
              pre_shared_key and no Certificate is sent (RFC 8446 §2.2),
              while the first connection's is (so decryption worked);
  zerortt     as resumption, and the last connection's 0-RTT packets
              carry the requests in STREAM frames (RFC 9001 §4.6.1:
              `GET /path` for each of --paths over HTTP/0.9; with --h3,
              as many request streams as paths), and the server accepted
              early data (early_data in EncryptedExtensions);
  zerortt-rejected
              as resumption; the client sent requests in 0-RTT, the
              server did not accept early data, and the requests went
              again in 1-RTT;
  keyupdate   short-header packets with key phase 1 from both sides,
              decrypted (RFC 9001 §6);
  chacha20    the ServerHello of every connection picks
              TLS_CHACHA20_POLY1305_SHA256 (RFC 9001 §5.3), and its
              packets decrypt;
  v2          the client's first Initial is QUIC v1, and the Handshake
              packets of both sides are QUIC v2 (RFC 9369, compatible
              version negotiation of RFC 9368).

Every case also requires that all Handshake, 0-RTT and 1-RTT packets
decrypt with the key log alone: a missing secret fails the case. Initial
packets do not depend on the key log; those that do not decrypt are only
reported.

Prints one line, `ok EVIDENCE` or `FAILED: EVIDENCE`; exit status 0 on ok.
"""

import argparse
import json
import subprocess
import sys

V1 = 0x00000001
V2 = 0x6B3343CF
# Long header packet types by wire bits, per version (RFC 9000 §17.2,
# RFC 9369 §3.2).
LONG_TYPES = {
    V1: {0: "initial", 1: "0rtt", 2: "handshake", 3: "retry"},
    V2: {1: "initial", 2: "0rtt", 3: "handshake", 0: "retry"},
}
CERTIFICATE, SERVER_HELLO, ENCRYPTED_EXTENSIONS, CLIENT_HELLO = 11, 2, 8, 1
PRE_SHARED_KEY, EARLY_DATA = 41, 42
CHACHA20 = 0x1303


class Packet:
    """One QUIC packet as tshark decoded it."""

    def __init__(self, frame, conn, from_server, layer, payload):
        self.frame = frame
        # The datagram's bytes (hex): the connection ID of a packet tshark
        # could not attribute is read from them.
        self.payload = payload
        self.conn = conn
        self.from_server = from_server
        self.version = None
        self.type = "1rtt"
        self.key_phase = None
        if "quic.short" in layer:
            kp = layer["quic.short"].get("quic.key_phase")
            self.key_phase = None if kp is None else int(kp)
        elif "quic.version" in layer:
            self.version = int(layer["quic.version"], 16)
            bits = layer.get("quic.long.packet_type", layer.get("quic.long.packet_type_v2"))
            kinds = LONG_TYPES.get(self.version, {})
            self.type = "vn" if self.version == 0 else kinds.get(int(bits or -1), "unknown")
        frames = layer.get("quic.frame", [])
        self.frames = frames if isinstance(frames, list) else [frames]
        # A packet tshark could not decrypt has no frames.
        self.decrypted = bool(self.frames) or self.type in ("retry", "vn")
        self.tls = list(handshake_messages(layer))
        self.cids = set()
        for key in ("quic.dcid", "quic.scid"):
            if key in layer:
                self.cids.add(layer[key].replace(":", ""))
        for f in self.frames:
            if "quic.nci.connection_id" in f:
                self.cids.add(f["quic.nci.connection_id"].replace(":", ""))

    def streams(self):
        """(stream id, data bytes) of its STREAM frames (types 0x08-0x0f)."""
        for f in self.frames:
            if 8 <= int(f.get("quic.frame_type", -1)) <= 15:
                data = f.get("quic.stream_data", "")
                raw = bytes.fromhex(data.replace(":", "")) if data else b""
                yield int(f.get("quic.stream.stream_id", -1)), raw


def handshake_messages(node):
    """Every TLS handshake message under `node`: dicts with their type,
    cipher suite and extension types."""
    if isinstance(node, list):
        for item in node:
            yield from handshake_messages(item)
    elif isinstance(node, dict):
        if "tls.handshake.type" in node:
            yield {
                "type": int(node["tls.handshake.type"]),
                "cipher": node.get("tls.handshake.ciphersuite"),
                "extensions": set(extension_types(node)),
            }
            return
        for value in node.values():
            yield from handshake_messages(value)


def extension_types(node):
    if isinstance(node, list):
        for item in node:
            yield from extension_types(item)
    elif isinstance(node, dict):
        if "tls.handshake.extension.type" in node:
            yield int(node["tls.handshake.extension.type"])
        for value in node.values():
            if isinstance(value, (dict, list)):
                yield from extension_types(value)


def decode(pcap, keylog, port):
    out = subprocess.run(
        [
            "tshark", "-r", pcap, "-o", f"tls.keylog_file:{keylog}",
            "-d", f"udp.port=={port},quic", "-T", "json", "--no-duplicate-keys", "-Y", "quic",
        ],
        capture_output=True, text=True, check=True,
    ).stdout
    packets = []
    for frame in json.loads(out or "[]"):
        layers = frame["_source"]["layers"]
        number = int(layers["frame"]["frame.number"])
        from_server = int(layers["udp"]["udp.srcport"]) == port
        payload = layers["udp"].get("udp.payload", "").replace(":", "")
        quic = layers.get("quic", [])
        quic = quic if isinstance(quic, list) else [quic]
        conn = None
        for layer in quic:
            if "quic.short" not in layer and "quic.version" not in layer:
                continue  # not a packet: padding after the last one
            info = layer.get("QUIC Connection information", {})
            conn = info.get("quic.connection.number", conn)
            packets.append(Packet(number, conn, from_server, layer, payload))
    return packets


def side(p):
    return "server" if p.from_server else "client"


class Capture:
    def __init__(self, packets):
        self.packets = packets
        self.removed = 0
        # Connections in order of their first ClientHello.
        self.conns = []
        for p in packets:
            if any(m["type"] == CLIENT_HELLO for m in p.tls) and p.conn not in self.conns:
                self.conns.append(p.conn)

    def messages(self, conn, kind):
        return [m for p in self.packets if p.conn == conn for m in p.tls if m["type"] == kind]

    def stray(self, p):
        """Whether `p`, a short-header packet tshark did not decrypt, is
        addressed to a connection ID of another connection than the one
        tshark gave it: a late packet of the connection before on the same
        address pair (a client in the closing state repeating its
        CONNECTION_CLOSE, RFC 9000 §10.2.1), which tshark then tries with
        the new connection's keys."""
        if p.type != "1rtt":
            return False
        cids = set().union(*(q.cids for q in self.packets if q.conn != p.conn))
        return any(cid and p.payload[2 : 2 + len(cid)] == cid for cid in cids)

    def undecrypted(self):
        """Packets that depend on the key log but did not decrypt, and
        Initial packets that did not decrypt (counted apart)."""
        failed = [p for p in self.packets if not p.decrypted]
        keyed = [p for p in failed if p.type != "initial" and not self.stray(p)]
        initial = [p for p in failed if p.type == "initial"]
        return keyed, initial

    def strays(self):
        return [p for p in self.packets if not p.decrypted and self.stray(p)]

    def summary(self):
        keyed, initial = self.undecrypted()
        s = f"{len(self.packets)} packets, {len(keyed)} undecrypted"
        if self.removed:
            s += (
                f" ({self.removed} late packet(s) of the connection before, which tshark took"
                " for the next one's, left out)"
            )
        if initial:
            s += f" (and {len(initial)} {side(initial[0])} Initial packet(s) that no key log decrypts)"
        return s


def check_resumption(cap, args):
    if len(cap.conns) < 2:
        return False, f"{len(cap.conns)} connection(s) seen, 2 expected"
    first, last = cap.conns[0], cap.conns[-1]
    certs_first = len(cap.messages(first, CERTIFICATE))
    certs_last = len(cap.messages(last, CERTIFICATE))
    hello = cap.messages(last, SERVER_HELLO)
    psk = bool(hello) and PRE_SHARED_KEY in hello[0]["extensions"]
    evidence = (
        f"connection 1: {certs_first} Certificate; connection {len(cap.conns)}: "
        f"{certs_last} Certificate, ServerHello {'with' if psk else 'without'} pre_shared_key"
    )
    return certs_first > 0 and certs_last == 0 and psk, evidence


def check_zerortt(cap, args):
    ok, evidence = check_resumption(cap, args)
    if len(cap.conns) < 2:
        return ok, evidence
    last = cap.conns[-1]
    early = [p for p in cap.packets if p.conn == last and p.type == "0rtt"]
    from_client = [p for p in early if not p.from_server]
    data = {}
    for p in from_client:
        for sid, raw in p.streams():
            data[sid] = data.get(sid, b"") + raw
    # Client-initiated bidirectional streams carry the requests.
    requests = {sid: d for sid, d in data.items() if sid % 4 == 0}
    paths = [x for x in (args.paths or "").split(",") if x]
    if args.h3:
        carried = len(requests)
        want = len(paths)
        what = f"{carried} request streams"
    else:
        lines = [d.split(b"\r\n")[0].decode(errors="replace") for d in requests.values()]
        found = [p for p in paths if f"GET {p}" in lines]
        carried, want = len(found), len(paths)
        what = ", ".join(sorted(lines)) or "no request"
    ee = cap.messages(last, ENCRYPTED_EXTENSIONS)
    accepted = bool(ee) and EARLY_DATA in ee[0]["extensions"]
    evidence += (
        f"; {len(from_client)} 0-RTT packets from the client carrying {what}; "
        f"early data {'accepted' if accepted else 'not accepted'} in EncryptedExtensions"
    )
    return ok and carried >= want > 0 and accepted, evidence


def check_keyupdate(cap, args):
    short = [p for p in cap.packets if p.type == "1rtt" and p.key_phase is not None]
    count = {(s, k): 0 for s in ("client", "server") for k in (0, 1)}
    for p in short:
        count[(side(p), p.key_phase)] += 1
    evidence = (
        f"key phase 1: {count[('client', 1)]} packets from the client, "
        f"{count[('server', 1)]} from the server (key phase 0: "
        f"{count[('client', 0)]} and {count[('server', 0)]})"
    )
    return count[("client", 1)] > 0 and count[("server", 1)] > 0, evidence


def check_chacha20(cap, args):
    hellos = [(c, cap.messages(c, SERVER_HELLO)) for c in cap.conns]
    suites = [h[0]["cipher"] if h else None for _, h in hellos]
    one_rtt = sum(1 for p in cap.packets if p.type == "1rtt" and p.decrypted)
    evidence = f"ServerHello cipher suites {suites}; {one_rtt} 1-RTT packets decrypted"
    return bool(suites) and all(s == hex(CHACHA20) for s in suites) and one_rtt > 0, evidence


def check_v2(cap, args):
    initials = [p for p in cap.packets if p.type == "initial" and not p.from_server]
    first = initials[0].version if initials else None
    handshake = [p for p in cap.packets if p.type == "handshake"]
    by = {"client": set(), "server": set()}
    for p in handshake:
        by[side(p)].add(p.version)
    n = {s: sum(1 for p in handshake if side(p) == s) for s in by}
    fmt = lambda vs: ",".join(f"{v:#010x}" for v in sorted(vs)) or "none"
    one_rtt = sum(1 for p in cap.packets if p.type == "1rtt" and p.decrypted)
    evidence = (
        f"first client Initial {first:#010x}; Handshake packets: {n['client']} from the client "
        f"({fmt(by['client'])}), {n['server']} from the server ({fmt(by['server'])}); "
        f"{one_rtt} 1-RTT packets decrypted with v2 keys"
        if first is not None
        else "no client Initial"
    )
    ok = first == V1 and by["client"] == {V2} and by["server"] == {V2} and one_rtt > 0
    return ok, evidence


def check_zerortt_rejected(cap, args):
    """0-RTT offered and refused: the requests the client sent in 0-RTT
    go again in 1-RTT (RFC 9001 §4.6.2, RFC 9000 §7.4.1: the server
    discards 0-RTT it does not accept)."""
    ok, evidence = check_resumption(cap, args)
    if len(cap.conns) < 2:
        return ok, evidence
    last = cap.conns[-1]
    mine = [p for p in cap.packets if p.conn == last and not p.from_server]
    early = {sid for p in mine if p.type == "0rtt" for sid, _ in p.streams() if sid % 4 == 0}
    again = {sid for p in mine if p.type == "1rtt" for sid, _ in p.streams() if sid % 4 == 0}
    ee = cap.messages(last, ENCRYPTED_EXTENSIONS)
    accepted = bool(ee) and EARLY_DATA in ee[0]["extensions"]
    evidence += (
        f"; {len(early)} request streams in 0-RTT, early data "
        f"{'accepted' if accepted else 'not accepted'}, {len(early & again)} of them sent again in 1-RTT"
    )
    return ok and bool(early) and not accepted and early <= again, evidence


CHECKS = {
    "resumption": check_resumption,
    "zerortt": check_zerortt,
    "zerortt-rejected": check_zerortt_rejected,
    "keyupdate": check_keyupdate,
    "chacha20": check_chacha20,
    "v2": check_v2,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=sorted(CHECKS))
    p.add_argument("pcap")
    p.add_argument("keylog")
    p.add_argument("port", type=int)
    p.add_argument("--paths", help="request paths expected in 0-RTT, comma-separated")
    p.add_argument("--h3", action="store_true", help="requests are HTTP/3")
    args = p.parse_args()
    try:
        cap = Capture(decode(args.pcap, args.keylog, args.port))
        # Late packets of an earlier connection that tshark attributed to
        # the next one on the same address pair spoil its decryption of
        # that connection: they are removed, and the capture decoded again.
        strays = sorted({p.frame for p in cap.strays()})
        if strays:
            cleaned = args.pcap + ".cleaned"
            subprocess.run(
                ["editcap", args.pcap, cleaned, *map(str, strays)], capture_output=True, check=True
            )
            cap = Capture(decode(cleaned, args.keylog, args.port))
            cap.removed = len(strays)
    except (subprocess.CalledProcessError, json.JSONDecodeError) as e:
        print(f"FAILED: tshark: {e}")
        return 1
    if not cap.packets:
        print("FAILED: no QUIC packet captured")
        return 1
    ok, evidence = CHECKS[args.case](cap, args)
    keyed, _ = cap.undecrypted()
    if keyed:
        ok = False
        kinds = sorted({f"{side(p)} {p.type}" for p in keyed})
        evidence += f"; not decrypted with the key log: {', '.join(kinds)}"
    print(f"{'ok' if ok else 'FAILED:'} {evidence}; {cap.summary()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
