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
