"""A real HTTP server on 127.0.0.1 (on a free port) that stands in for a lab's or a partner's endpoint: it fails
the first N POSTs (503, retried), or refuses every one (422, final)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    fail_first: int = 0
    refuse: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)  # every POST, failed ones too
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # by Idempotency-Key

    @property
    def url(self) -> str:
        return self._url

    _url: str = ""


@contextmanager
def lab_server(fail_first: int = 0, *, refuse: bool = False) -> Iterator[Received]:
    received = Received(fail_first=fail_first, refuse=refuse)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key = self.headers["Idempotency-Key"]
            with lock:
                received.attempts.append({"key": key, **body})
                failing = len(received.attempts) <= received.fail_first
                if not failing and not received.refuse:
                    received.accepted.setdefault(key, body)  # a repeat of a key is acknowledged, not taken twice
            self.send_response(422 if received.refuse else 503 if failing else 202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    with serving(Handler) as base_url:
        received._url = f"{base_url}/orders"
        yield received


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on 127.0.0.1 on a free port, in a thread, until the block ends; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
