#!/usr/bin/env python3
"""An HTTP/0.9 (ALPN hq-interop) client and server on aioquic, an
independent QUIC implementation, to run against `quiver serve` and
`quiver get` (see run.sh beside this file).

client: fetches every URL over one connection, one stream each, saves the
files, and prints one line: `ok BYTES SECONDS` or
`closed CODE FRAME_TYPE "REASON" SECONDS` (when the close arrived) / `reset PATH CODE` / `timeout`.
Exit status 0 only when every file arrived whole.

server: serves --root; --retry answers every new address with a Retry;
--close-after-hello CODE closes each connection with application error
CODE right after its first datagram (the ClientHello) has been read.
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
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
    StreamReset,
)

ALPN = "hq-interop"


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bodies = {}
        self.waiters = {}
        self.terminated = asyncio.get_event_loop().create_future()
        self.handshake_done = asyncio.get_event_loop().create_future()
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
    host, port = urls[0].hostname, urls[0].port or 443
    config = QuicConfiguration(is_client=True, alpn_protocols=[args.alpn])
    config.idle_timeout = args.timeout
    config.server_name = args.server_name or host
    if args.insecure:
        config.verify_mode = ssl.CERT_NONE
    if args.ca:
        config.load_verify_locations(args.ca)
    async with connect(
        host, port, configuration=config, create_protocol=Client, wait_connected=False
    ) as client:
        # Timed from the first datagram, not from Python's set-up.
        start = time.monotonic()
        client.transmit()
        done, _ = await asyncio.wait(
            [client.handshake_done], timeout=args.timeout + 1
        )
        if not done:
            print("timeout")
            return 1
        if client.terminated.done():
            return report_close(client.terminated.result(), start, client.closed_at)
        os.makedirs(args.out, exist_ok=True)
        results = await asyncio.gather(*(client.fetch(u.path or "/") for u in urls))
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
        if status == 0:
            print(f"ok {total} {time.monotonic() - start:.3f}")
        client.close(error_code=0)
        return status


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
    Server.root = args.root
    Server.close_code = args.close_after_hello
    host, port = args.listen.rsplit(":", 1)
    await serve(host, int(port), configuration=config, create_protocol=Server, retry=args.retry)
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
    s = sub.add_parser("server")
    s.add_argument("--listen", default="127.0.0.1:4433")
    s.add_argument("--root", default=".")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--retry", action="store_true")
    s.add_argument("--close-after-hello", type=lambda v: int(v, 0))
    s.add_argument("--alpn", default=ALPN)
    args = p.parse_args()
    if args.mode == "client":
        sys.exit(asyncio.run(run_client(args)))
    asyncio.run(run_server(args))


if __name__ == "__main__":
    main()
