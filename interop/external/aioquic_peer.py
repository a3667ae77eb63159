#!/usr/bin/env python3
"""An HTTP/0.9 (ALPN hq-interop) client and server on aioquic, an
independent QUIC implementation, to run against `quiver serve` and
`quiver get` (see run.sh beside this file).

client: fetches every URL over one connection, one stream each, saves the
files, and prints one line: `ok BYTES SECONDS` or
`closed CODE FRAME_TYPE "REASON" SECONDS` (when the close arrived) / `reset PATH CODE` / `timeout`.
Exit status 0 only when every file arrived whole. As the QUIC interop
runner's cases (wire.sh checks them in packet captures): --resume fetches
the first URL on a first connection and the others on a second one that
resumes its TLS session; --0rtt does the same and sends the second
connection's requests in 0-RTT; --key-update starts a key update as soon
as the handshake is confirmed; --cipher chacha20 offers only
TLS_CHACHA20_POLY1305_SHA256; --versions v1,v2 starts in the first version
and offers them all. With --resume/--0rtt the `ok` line ends with
`resumed R1,R2 0rtt ACCEPTED` (1/0 each).

server: serves --root; --retry answers every new address with a Retry;
--close-after-hello CODE closes each connection with application error
CODE right after its first datagram (the ClientHello) has been read. It
issues session tickets and accepts resumption and 0-RTT; --cipher and
--versions as the client's.

Both take --keylog FILE (TLS secrets in the SSLKEYLOGFILE format).
"""

import argparse
import asyncio
import os
import ssl
import sys
import time
from urllib.parse import urlparse

from aioquic.asyncio import connect, serve
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnectionState
from aioquic.quic.packet import QuicProtocolVersion
from aioquic.tls import CipherSuite
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
    StreamReset,
)

ALPN = "hq-interop"
CIPHERS = {
    "aes128gcm": CipherSuite.AES_128_GCM_SHA256,
    "aes256gcm": CipherSuite.AES_256_GCM_SHA384,
    "chacha20": CipherSuite.CHACHA20_POLY1305_SHA256,
}
VERSIONS = {"v1": QuicProtocolVersion.VERSION_1, "v2": QuicProtocolVersion.VERSION_2}


def configure(config, args):
    """The options both roles share: --keylog, --cipher, --versions."""
    if args.keylog:
        config.secrets_log_file = open(args.keylog, "a", buffering=1)
    if args.cipher:
        config.cipher_suites = [CIPHERS[c] for c in args.cipher.split(",")]
    if args.versions:
        versions = [VERSIONS[v] for v in args.versions.split(",")]
        # Starts in the first (a client), offers them all in
        # version_information, most preferred first (RFC 9368 §3).
        config.original_version = versions[0]
        config.supported_versions = versions


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bodies = {}
        self.waiters = {}
        self.terminated = asyncio.get_event_loop().create_future()
        self.handshake_done = asyncio.get_event_loop().create_future()
        # HandshakeCompleted: session_resumed, early_data_accepted.
        self.handshake = None
        # When the datagram that ended the connection arrived: aioquic
        # reports ConnectionTerminated only after its draining period.
        self.closed_at = None

    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        if self.closed_at is None and self._quic._state in (
            QuicConnectionState.CLOSING,
            QuicConnectionState.DRAINING,
        ):
            self.closed_at = time.monotonic()

    async def fetch(self, path):
        sid = self._quic.get_next_available_stream_id()
        fut = asyncio.get_event_loop().create_future()
        self.waiters[sid] = fut
        self.bodies[sid] = bytearray()
        self._quic.send_stream_data(sid, f"GET {path}\r\n".encode(), end_stream=True)
        self.transmit()
        return await fut

    def quic_event_received(self, event):
        if isinstance(event, HandshakeCompleted):
            self.handshake = event
            if not self.handshake_done.done():
                self.handshake_done.set_result(event.alpn_protocol)
        elif isinstance(event, StreamDataReceived):
            self.bodies[event.stream_id] += event.data
            if event.end_stream and not self.waiters[event.stream_id].done():
                self.waiters[event.stream_id].set_result(("ok", bytes(self.bodies[event.stream_id])))
        elif isinstance(event, StreamReset):
            fut = self.waiters.get(event.stream_id)
            if fut and not fut.done():
                fut.set_result(("reset", event.error_code))
        elif isinstance(event, ConnectionTerminated):
            if not self.terminated.done():
                self.terminated.set_result(event)
            for fut in self.waiters.values():
                if not fut.done():
                    fut.set_result(("closed", event))
            if not self.handshake_done.done():
                self.handshake_done.set_result(None)


async def run_client(args):
    urls = [urlparse(u) for u in args.urls]
    # --resume/--0rtt: the first URL, then the others on a second
    # connection that resumes the first one's session.
    if args.resume or args.zero_rtt:
        if len(urls) < 2:
            print("--resume needs two URLs or more")
            return 2
        batches = [urls[:1], urls[1:]]
    else:
        batches = [urls]
    tickets = []
    total = 0
    resumed = []
    accepted = None
    start = None
    for n, batch in enumerate(batches):
        config = client_config(args, urls[0].hostname)
        if n > 0:
            if not tickets:
                print("no session ticket from the first connection")
                return 1
            config.session_ticket = tickets[-1]
        result = await one_connection(args, config, batch, n > 0 and args.zero_rtt, tickets)
        if isinstance(result, int):
            return result
        if start is None:
            start = result["start"]
        total += result["bytes"]
        resumed.append(result["resumed"])
        if n > 0 and args.zero_rtt:
            accepted = result["early_data"]
    line = f"ok {total} {time.monotonic() - start:.3f}"
    if len(batches) > 1:
        line += " resumed " + ",".join(str(int(r)) for r in resumed)
        line += f" 0rtt {int(bool(accepted))}"
    print(line)
    return 0


def client_config(args, host):
    config = QuicConfiguration(is_client=True, alpn_protocols=[args.alpn])
    config.idle_timeout = args.timeout
    config.server_name = args.server_name or host
    if args.insecure:
        config.verify_mode = ssl.CERT_NONE
    if args.ca:
        config.load_verify_locations(args.ca)
    configure(config, args)
    return config


async def one_connection(args, config, urls, early, tickets):
    """Fetches `urls` on one connection: a dict on success, else the exit
    status (the line printed). With `early`, the requests go before the
    handshake completes (in 0-RTT when the ticket allows it)."""
    host, port = urls[0].hostname, urls[0].port or 443
    ticket = asyncio.get_event_loop().create_future()

    def on_ticket(t):
        tickets.append(t)
        if not ticket.done():
            ticket.set_result(t)

    async with connect(
        host,
        port,
        configuration=config,
        create_protocol=Client,
        wait_connected=False,
        session_ticket_handler=on_ticket,
    ) as client:
        # Timed from the first datagram, not from Python's set-up.
        start = time.monotonic()
        if args.key_update:
            # Held until the handshake is confirmed (RFC 9001 §6.1).
            client._quic.request_key_update()
        if early:
            fetches = [asyncio.ensure_future(client.fetch(u.path or "/")) for u in urls]
        else:
            client.transmit()
        done, _ = await asyncio.wait([client.handshake_done], timeout=args.timeout + 1)
        if not done:
            print("timeout")
            return 1
        if client.terminated.done():
            return report_close(client.terminated.result(), start, client.closed_at)
        os.makedirs(args.out, exist_ok=True)
        if not early:
            fetches = [client.fetch(u.path or "/") for u in urls]
        results = await asyncio.gather(*fetches)
        total = 0
        status = 0
        for url, (kind, value) in zip(urls, results):
            if kind == "ok":
                name = os.path.basename(url.path) or "index.html"
                with open(os.path.join(args.out, name), "wb") as f:
                    f.write(value)
                total += len(value)
            elif kind == "reset":
                print(f"reset {url.path} {value:#x}")
                status = 1
            else:
                return report_close(value, start, client.closed_at)
        if status:
            return status
        if args.resume or args.zero_rtt:
            # The ticket follows the handshake; the next connection needs it.
            await asyncio.wait([ticket], timeout=args.timeout)
        handshake = client.handshake
        client.close(error_code=0)
        return {
            "start": start,
            "bytes": total,
            "resumed": bool(handshake and handshake.session_resumed),
            "early_data": bool(handshake and handshake.early_data_accepted),
        }


def report_close(event, start, closed_at):
    reason = event.reason_phrase.replace('"', "'")
    end = closed_at or time.monotonic()
    print(f'closed {event.error_code:#x} {event.frame_type} "{reason}" {end - start:.3f}')
    return 1


class Server(QuicConnectionProtocol):
    root = "."
    close_code = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests = {}
        self.closed_early = False

    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        if self.close_code is not None and not self.closed_early:
            # The first datagram carried the ClientHello: the handshake
            # is now in flight.
            self.closed_early = True
            self._quic.close(error_code=self.close_code, reason_phrase="closed after hello")
            self.transmit()

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            buf = self.requests.setdefault(event.stream_id, bytearray())
            if buf is None:
                return
            buf += event.data
            if event.end_stream or b"\n" in buf:
                self.requests[event.stream_id] = None  # answered
                self.answer(event.stream_id, bytes(buf))

    def answer(self, sid, request):
        line = request.split(b"\n", 1)[0].strip().decode(errors="replace")
        parts = line.split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        file = os.path.realpath(os.path.join(self.root, path.lstrip("/")))
        if not file.startswith(os.path.realpath(self.root)) or not os.path.isfile(file):
            self._quic.reset_stream(sid, 0x10)
        else:
            with open(file, "rb") as f:
                self._quic.send_stream_data(sid, f.read(), end_stream=True)
        self.transmit()


async def run_server(args):
    config = QuicConfiguration(is_client=False, alpn_protocols=[args.alpn])
    config.load_cert_chain(args.cert, args.key)
    configure(config, args)
    Server.root = args.root
    Server.close_code = args.close_after_hello
    host, port = args.listen.rsplit(":", 1)
    # Session tickets, each usable once: resumption and 0-RTT.
    tickets = {}
    await serve(
        host,
        int(port),
        configuration=config,
        create_protocol=Server,
        retry=args.retry,
        session_ticket_fetcher=lambda label: tickets.pop(label, None),
        session_ticket_handler=lambda t: tickets.__setitem__(t.ticket, t),
    )
    print("listening", flush=True)
    await asyncio.Future()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("client")
    c.add_argument("urls", nargs="+")
    c.add_argument("--ca")
    c.add_argument("--insecure", action="store_true")
    c.add_argument("--server-name")
    c.add_argument("--out", default=".")
    c.add_argument("--alpn", default=ALPN)
    c.add_argument("--timeout", type=float, default=10.0)
    c.add_argument("--resume", action="store_true")
    c.add_argument("--0rtt", dest="zero_rtt", action="store_true")
    c.add_argument("--key-update", action="store_true")
    s = sub.add_parser("server")
    s.add_argument("--listen", default="127.0.0.1:4433")
    s.add_argument("--root", default=".")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--retry", action="store_true")
    s.add_argument("--close-after-hello", type=lambda v: int(v, 0))
    s.add_argument("--alpn", default=ALPN)
    for sp in (c, s):
        sp.add_argument("--keylog", metavar="FILE")
        sp.add_argument("--cipher", metavar="LIST")
        sp.add_argument("--versions", metavar="LIST")
    args = p.parse_args()
    if args.mode == "client":
        sys.exit(asyncio.run(run_client(args)))
    asyncio.run(run_server(args))


if __name__ == "__main__":
    main()
