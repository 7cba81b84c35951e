"""Payload decoding: the SDK's JSON converter against Continuum's (types resolved once), side by side.

    python3 dev.py bench payloads

Decodes the payloads a lab result costs the worker and the API (the update's meta and command, its
result) and the carried input of a long episode (continue-as-new), each many times, in 3 interleaved
rounds; reports microseconds per payload and the ratio. Writes bench/results/payloads.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import DefaultPayloadConverter, PayloadConverter

from continuum.domain.commands import RecordTestResult
from continuum.domain.testing import TestMethod, TestResult
from continuum.runtime.codec import ContinuumPayloadConverter
from continuum.workflows.episode import CommandMeta, CommandResult, EpisodeInput, RecordedEvent

RESULTS = Path(__file__).parent / "results" / "payloads.json"
ROUNDS = 3
T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def _samples() -> dict[str, tuple[Any, Any]]:
    """(type, value) per case: what crosses Temporal for one lab result, and a long episode's carried input."""
    result = CommandResult(
        "cmd-1",
        [RecordedEvent("TestResultRecorded", {"test_id": "t-1", "result": "negative", "at": T0.isoformat()})],
    )
    carried = EpisodeInput(
        "EP-1",
        "policy text " * 200,
        results={f"cmd-{i}": result for i in range(200)},
        earlier_command_ids=[f"old-{i}" for i in range(500)],
        state={"episode_id": "EP-1", "flags": []},
    )
    command = RecordTestResult("t-1", TestResult.NEGATIVE, TestMethod.CONFIRMED, T0 - timedelta(hours=3), "LAB-1")
    return {
        "update_meta": (CommandMeta, CommandMeta("cmd-1", "lab:acme", "corr-1")),
        "update_command": (RecordTestResult, command),
        "update_result": (CommandResult, result),
        "carried_input_200_results": (EpisodeInput, carried),
    }


def _per_payload_us(converter: PayloadConverter, hint: Any, payload: Payload, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        converter.from_payloads([payload], [hint])
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    sdk, ours = DefaultPayloadConverter(), ContinuumPayloadConverter()
    cases = {name: (hint, sdk.to_payloads([value])[0]) for name, (hint, value) in _samples().items()}
    counts = {name: 200 if name.startswith("carried") else 5000 for name in cases}

    def timed(converter: PayloadConverter, hint: Any, payload: Payload, count: int) -> Callable[[], float]:
        return lambda: _per_payload_us(converter, hint, payload, count)

    runs: dict[str, Callable[[], float]] = {}
    for name, (hint, payload) in cases.items():
        runs[f"{name}:sdk"] = timed(sdk, hint, payload, counts[name])
        runs[f"{name}:compiled"] = timed(ours, hint, payload, counts[name])
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, run in runs.items():
            samples[name].append(run())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {name: round(medians[f"{name}:compiled"] / medians[f"{name}:sdk"], 2) for name in cases}
    report: dict[str, Any] = {
        "benchmark": "payloads",
        "command": "python3 dev.py bench payloads",
        "rounds": f"{ROUNDS} interleaved rounds, median reported",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "microseconds_per_payload": {name: round(value, 1) for name, value in medians.items()},
        "compiled_over_sdk": ratios,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"payload decoding, µs per payload (median of {ROUNDS} interleaved rounds; {report['machine']})")
    print(f"{'payload':28} {'sdk':>9} {'compiled':>9} {'ratio':>6}")
    for name in cases:
        print(f"{name:28} {medians[f'{name}:sdk']:>9.1f} {medians[f'{name}:compiled']:>9.1f} {ratios[name]:>6.2f}")
    print(f"written: {RESULTS}")
