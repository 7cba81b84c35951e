"""`python3 dev.py bench [NAME ...]`: run the named benchmarks (all by default)."""

from __future__ import annotations

import sys

from bench import (
    audit,
    burst,
    episodes,
    event_append,
    memory,
    payloads,
    reads,
    replay,
    report,
    restart,
    simulate,
    throughput,
)

BENCHMARKS = {
    "event_append": event_append.main,
    "payloads": payloads.main,
    "audit": audit.main,
    "reads": reads.main,
    "episodes": episodes.main,
    "burst": burst.main,
    "replay": replay.main,
    "restart": restart.main,
    "throughput": throughput.main,
    "simulate": simulate.main,
    "memory": memory.main,
}
EXTRA = {"report": report.main}  # not a benchmark: the markdown report of the last results


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    runnable = {**BENCHMARKS, **EXTRA}
    unknown = [n for n in names if n not in runnable]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        runnable[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
