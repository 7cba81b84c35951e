"""A load generator's HTTP/1.1 client that costs little CPU, so that a benchmark measures the server.

httpx spends several milliseconds of CPU per request on this machine (pool bookkeeping, h11, headers
objects); a burst through it measures the client as much as the API. This one writes each request as one
buffer on a kept-alive asyncio stream and reads the answer by its Content-Length: enough for a JSON API
answered by uvicorn, not a general client (no chunked bodies, no redirects, no TLS).

Connections idle for longer than `keepalive` are closed by us before the server closes them (uvicorn
drops them after 5 s): reusing one the server is closing would fail a request that was never read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Dropped(ConnectionError):
    """The connection failed before a whole answer was read: the request may or may not have been handled."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used_at = time.monotonic()

    def close(self) -> None:
        self.writer.close()


class LeanHttp:
    """At most `connections` kept-alive connections to one host; requests beyond them wait for one."""

    def __init__(self, host: str, port: int, *, connections: int, keepalive: float = 2.0, timeout: float = 120) -> None:
        self.host, self.port, self.keepalive, self.timeout = host, port, keepalive, timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(connections)

    async def post(self, path: str, payload: Any, headers: Mapping[str, str] | None = None) -> Answer:
        return await self.request("POST", path, json.dumps(payload).encode(), headers)

    async def get(self, path: str, headers: Mapping[str, str] | None = None) -> Answer:
        return await self.request("GET", path, b"", headers)

    async def request(self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None) -> Answer:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: application/json")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        message = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        async with self._slots:
            connection = await self._connection()
            try:
                async with asyncio.timeout(self.timeout):
                    answer = await self._exchange(connection, message)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
                connection.close()
                raise Dropped(f"the connection was dropped: {type(error).__name__}") from None
            except BaseException:
                connection.close()
                raise
            connection.used_at = time.monotonic()
            self._idle.append(connection)
            return answer

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.used_at < self.keepalive:
                return connection
            connection.close()
        return _Connection(*await asyncio.open_connection(self.host, self.port))

    @staticmethod
    async def _exchange(connection: _Connection, message: bytes) -> Answer:
        connection.writer.write(message)
        head = await connection.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise RuntimeError("chunked answers are not read by this client")
        length = int(headers.get("content-length", "0"))
        body = await connection.reader.readexactly(length) if length else b""
        return Answer(int(status_line.split(" ", 2)[1]), headers, body)

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
