"""A bare workflow for the throughput comparison: the same activities and timers as a recorded episode,
and nothing else. Its own module, importing only temporalio, so the workflow sandbox can load it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
def noop() -> None:
    return None


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    @workflow.run
    async def run(self, steps: list[float]) -> int:
        for step in steps:  # -1: an activity; otherwise a timer of that many seconds
            if step < 0:
                await workflow.execute_activity("bench_noop", start_to_close_timeout=timedelta(seconds=30))
            else:
                await workflow.sleep(step)
        return len(steps)


@workflow.defn(name="BareEpisode")
class BareEpisode:
    """The bare counterpart of an episode for the throughput comparison: each update runs one activity
    that INSERTs one row, and answers a number. No state, no timer, no projection, no encryption."""

    def __init__(self) -> None:
        self._closed = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._closed)
        return 0

    @workflow.update(name="command")
    async def command(self, stream: str, n: int) -> int:
        await workflow.execute_activity("bench_insert", args=[stream, n], start_to_close_timeout=timedelta(seconds=30))
        return n

    @workflow.signal(name="close")
    def close(self) -> None:
        self._closed = True
