"""A real HTTP server on 127.0.0.1 (on a free port) that receives webhook deliveries: it keeps every request's
headers and body, answers 500 to the first N, or 503 to all while `down`, and 204 otherwise."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.integration.lab_server import serving


@dataclass(frozen=True)
class Request:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    url: str = ""
    fail_first: int = 0
    down: bool = False
    requests: list[Request] = field(default_factory=list)  # every POST, failed ones too

    def accepted(self) -> list[Request]:
        return [r for r in self.requests if 200 <= r.answered < 300]

    def accepted_ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.accepted()]


@contextmanager
def webhook_receiver(fail_first: int = 0, *, down: bool = False) -> Iterator[Receiver]:
    receiver = Receiver(fail_first=fail_first, down=down)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                failing = receiver.down or len(receiver.requests) < receiver.fail_first
                answer = (503 if receiver.down else 500) if failing else 204
                receiver.requests.append(Request({k.lower(): v for k, v in self.headers.items()}, body, answer))
            self.send_response(answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    with serving(Handler) as base_url:
        receiver.url = f"{base_url}/hooks"
        yield receiver
