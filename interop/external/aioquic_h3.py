#!/usr/bin/env python3
"""An HTTP/3 (ALPN h3) client and server on aioquic's `aioquic.h3`, to run
against `quiver serve` and `quiver get` (see run.sh beside this file).

client: GETs every URL at once over one connection, saves each body under
--out by its base name, and prints one line: `ok BYTES SECONDS`, or
`status PATH CODE` for the first response that is not 200, or
`closed CODE "REASON"` / `timeout`. Exit status 0 only when every file
arrived whole with status 200.

server: serves the files of --root: 200 with content-length, 404 for a
missing file (or a path out of the root).
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
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamReset


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.waiters = {}
        self.responses = {}

    async def get(self, authority, path):
        sid = self._quic.get_next_available_stream_id()
        self.responses[sid] = [None, bytearray()]
        fut = asyncio.get_event_loop().create_future()
        self.waiters[sid] = fut
        self.h3.send_headers(
            sid,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
            ],
            end_stream=True,
        )
        self.transmit()
        return await fut

    def finish(self, sid, result):
        fut = self.waiters.get(sid)
        if fut and not fut.done():
            fut.set_result(result)

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            reason = event.reason_phrase.replace('"', "'")
            for sid in self.waiters:
                self.finish(sid, ("closed", f'{event.error_code:#x} "{reason}"'))
            return
        if isinstance(event, StreamReset):
            self.finish(event.stream_id, ("reset", f"{event.error_code:#x}"))
            return
        for h3_event in self.h3.handle_event(event):
            sid = h3_event.stream_id
            if sid not in self.responses:
                continue
            if isinstance(h3_event, HeadersReceived):
                self.responses[sid][0] = dict(h3_event.headers).get(b":status", b"?").decode()
            elif isinstance(h3_event, DataReceived):
                self.responses[sid][1] += h3_event.data
            if h3_event.stream_ended:
                status, body = self.responses[sid]
                self.finish(sid, ("status", status, bytes(body)))


async def run_client(args):
    urls = [urlparse(u) for u in args.urls]
    host, port = urls[0].hostname, urls[0].port or 443
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.idle_timeout = args.timeout
    config.server_name = host
    if args.insecure:
        config.verify_mode = ssl.CERT_NONE
    if args.ca:
        config.load_verify_locations(args.ca)
    start = time.monotonic()
    try:
        async with connect(host, port, configuration=config, create_protocol=Client) as client:
            authority = f"{host}:{port}"
            results = await asyncio.wait_for(
                asyncio.gather(*(client.get(authority, u.path or "/") for u in urls)),
                args.timeout,
            )
            os.makedirs(args.out, exist_ok=True)
            total = 0
            for url, result in zip(urls, results):
                if result[0] != "status":
                    print(" ".join(result))
                    return 1
                _, status, body = result
                if status != "200":
                    print(f"status {url.path} {status}")
                    return 1
                name = os.path.basename(url.path) or "index.html"
                with open(os.path.join(args.out, name), "wb") as f:
                    f.write(body)
                total += len(body)
            print(f"ok {total} {time.monotonic() - start:.3f}")
            client.close(error_code=0x100)
            return 0
    except (asyncio.TimeoutError, ConnectionError):
        print("timeout")
        return 1


class Server(QuicConnectionProtocol):
    root = "."

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)

    def quic_event_received(self, event):
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                headers = dict(h3_event.headers)
                self.answer(h3_event.stream_id, headers.get(b":path", b"/").decode())

    def answer(self, sid, path):
        root = os.path.realpath(self.root)
        file = os.path.realpath(os.path.join(root, path.split("?")[0].lstrip("/")))
        if not file.startswith(root + os.sep) or not os.path.isfile(file):
            body = b"not found\n"
            self.h3.send_headers(sid, [(b":status", b"404"), (b"content-length", b"10")])
        else:
            with open(file, "rb") as f:
                body = f.read()
            self.h3.send_headers(
                sid, [(b":status", b"200"), (b"content-length", str(len(body)).encode())]
            )
        self.h3.send_data(sid, body, end_stream=True)
        self.transmit()


async def run_server(args):
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    config.load_cert_chain(args.cert, args.key)
    Server.root = args.root
    host, port = args.listen.rsplit(":", 1)
    await serve(host, int(port), configuration=config, create_protocol=Server)
    print("listening", flush=True)
    await asyncio.Future()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("client")
    c.add_argument("urls", nargs="+")
    c.add_argument("--ca")
    c.add_argument("--insecure", action="store_true")
    c.add_argument("--out", default=".")
    c.add_argument("--timeout", type=float, default=10.0)
    s = sub.add_parser("server")
    s.add_argument("--listen", default="127.0.0.1:4433")
    s.add_argument("--root", default=".")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    args = p.parse_args()
    if args.mode == "client":
        sys.exit(asyncio.run(run_client(args)))
    asyncio.run(run_server(args))


if __name__ == "__main__":
    main()
