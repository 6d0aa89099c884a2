"""An HTTP/3 origin built on aioquic (PyPI), for interop tests: QUIC, TLS and
HTTP/3 are aioquic's; this file only answers requests.

Routes: `/` (a short text), `/bytes/N` (N bytes, byte i = i % 251, like the
in-repo origin), anything else 404. Prints "ready" once listening.

    python3 h3_server.py --port PORT --certificate CERT --private-key KEY
"""

import argparse
import asyncio

from aioquic.asyncio import serve
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated

PATTERN = bytes(i % 251 for i in range(251))


def body_for(path: str):
    if path == "/":
        return 200, b"hello from aioquic\n"
    if path.startswith("/bytes/") and path[7:].isdigit():
        n = int(path[7:])
        whole, rest = divmod(n, len(PATTERN))
        return 200, PATTERN * whole + PATTERN[:rest]
    return 404, b"not found\n"


class H3Origin(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._http = None

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._http = H3Connection(self._quic)
        if self._http is None:
            return
        for h3_event in self._http.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                self.answer(h3_event)

    def answer(self, request: HeadersReceived):
        headers = dict(request.headers)
        path = headers.get(b":path", b"/").decode()
        status, body = body_for(path)
        self._http.send_headers(
            request.stream_id,
            [
                (b":status", str(status).encode()),
                (b"server", b"aioquic"),
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(body)).encode()),
            ],
        )
        self._http.send_data(request.stream_id, body, end_stream=True)
        self.transmit()


async def main(args):
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    config.load_cert_chain(args.certificate, args.private_key)
    await serve(args.host, args.port, configuration=config, create_protocol=H3Origin)
    print("ready", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certificate", required=True)
    parser.add_argument("--private-key", required=True)
    asyncio.run(main(parser.parse_args()))
