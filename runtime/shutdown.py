"""Ctrl-C and SIGTERM for a serving process: the first stops every part in order, a second (or the deadline) forces it.

After the first signal everything stops within STOP_DEADLINE_SECONDS (API requests get their grace, the worker
its own, Temporal servers.STOP_GRACE_SECONDS); past the deadline, or at a second signal, the stop is forced:
Temporal killed, PostgreSQL stopped, the process gone with EXIT_FORCED.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

from continuum.runtime.servers import EmbeddedServers

T = TypeVar("T")
STOP_DEADLINE_SECONDS = 20.0
LEFTOVER_TASK_SECONDS = 2.0
FORCE_SECONDS = 8.0
EXIT_FORCED = 130


class Shutdown:
    """Ctrl-C and SIGTERM, from start to exit: the first stops everything in order, a second forces it."""

    def __init__(self, servers: EmbeddedServers) -> None:
        self.servers = servers
        self.requested = False
        self._starting = True  # until the service runs: a signal unwinds the start
        self._serving: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._forcing = threading.Lock()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def serving(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        """From now on a signal sets `stop`, which every part of the service watches."""
        self._serving, self._starting = (loop, stop), False
        if self.requested:
            stop.set()

    def servers_stopping(self) -> None:
        """The service has stopped: a signal now only bounds (or, the second, forces) the servers' stop."""
        self._serving, self._starting = None, False

    def leave_if_forced(self) -> None:
        """The orderly stop finished while a forced one runs: let that one end the process (exit 130)."""
        if self._forcing.locked():
            time.sleep(FORCE_SECONDS)  # the forcing thread leaves through os._exit well before this
            raise SystemExit(EXIT_FORCED)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # A signal handler: flags, a timer and a thread only; no printing (it may interrupt a print).
        if self.requested:
            threading.Thread(target=self.force, args=("a second signal",), daemon=True).start()
            return
        self.requested = True
        deadline = threading.Timer(
            STOP_DEADLINE_SECONDS, self.force, args=(f"not stopped after {STOP_DEADLINE_SECONDS:.0f} s",)
        )
        deadline.daemon = True
        deadline.start()
        if self._serving is not None:
            loop, stop = self._serving
            loop.call_soon_threadsafe(_stopping, stop, signal.Signals(signum).name)
        elif self._starting:
            raise KeyboardInterrupt  # unwinding the start stops whatever has started

    def force(self, reason: str) -> None:
        """Stop the servers at once and leave; from any thread, once."""
        if not self._forcing.acquire(blocking=False):
            return
        try:
            print(f"continuum: stopping now ({reason})", file=sys.stderr, flush=True)
            self.servers.stop_now()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_FORCED)


def _stopping(stop: asyncio.Event, signal_name: str) -> None:
    structlog.get_logger(__name__).info(
        "continuum.stopping", signal=signal_name, deadline_seconds=STOP_DEADLINE_SECONDS
    )
    print("Stopping (press Ctrl-C again to force) …", file=sys.stderr, flush=True)
    stop.set()


def run_until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Like asyncio.run, except that tasks still running after the stop (a worker waiting on a long replay)
    and threads the loop cannot cancel are left behind after a bound instead of waited for: the process
    leaves through os._exit, so nothing depends on them finishing."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    finally:
        leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=LEFTOVER_TASK_SECONDS))
        if all(task.done() for task in leftover):
            loop.close()
        asyncio.set_event_loop(None)


async def stopping_all_after(
    part: Coroutine[Any, Any, None], stop: asyncio.Event, then: asyncio.Event | None = None
) -> None:
    """Run one part of the service; when it ends, for whatever reason, the others stop too (and `then` is set)."""
    try:
        await part
    finally:
        stop.set()
        if then is not None:
            then.set()


async def after_all(event: asyncio.Event, *before: asyncio.Event) -> None:
    """Set `event` once every one of `before` is set."""
    for earlier in before:
        await earlier.wait()
    event.set()


async def unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """The work's result, or None once `stop` is set first (the work is then cancelled)."""
    task, stopped = asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done() and not task.cancelled() and not (stop.is_set() and task.exception() is not None):
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping: what it was doing no longer matters
        await task
    return None
