"""The README's examples run as written, in order, on a fresh data directory: the blocks marked
`<!-- README test: runs this block -->`, against `continuum up` (what `python3 dev.py run` serves, without the
cohort). The only change made to them is the API's port (8000 there, a free one here); the Python example
finds Temporal's port from the environment, as it says."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.episodes import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MARKED = re.compile(r"<!-- README test: runs this block -->\n```(sh|python)\n(.*?)\n```", re.DOTALL)
ON_FACILITIES = re.compile(
    r"<!-- README test: runs this block on the sample facilities -->\n```sh\n(.*?)\n```", re.DOTALL
)
SAMPLE_FACILITIES = ROOT / "domain" / "facilities.toml"


def marked_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in MARKED.finditer(README)]


def test_the_readme_marks_its_examples() -> None:
    assert [kind for kind, _ in marked_blocks()] == ["sh", "sh", "python", "sh", "sh"]


@pytest.fixture
def fresh_stack() -> Iterator[tuple[dict[str, str], int]]:
    """`continuum up` on its own embedded servers and data directory, as on a fresh clone (no keys configured:
    the payload key file is made in the data directory)."""
    yield from _up({})


@pytest.fixture
def facilities_stack() -> Iterator[tuple[dict[str, str], int]]:
    """The same, with the sample facilities file (Reno, Austin, Oakland)."""
    yield from _up({"CONTINUUM_FACILITIES_FILE": str(SAMPLE_FACILITIES)})


def _up(extra: dict[str, str]) -> Iterator[tuple[dict[str, str], int]]:
    data_dir = Path(tempfile.mkdtemp(prefix="continuum-readme-"))  # outside pytest's 0700 folders (PostgreSQL)
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "DATABASE_URL", "CONTINUUM_"))}
    env.update(
        {
            "CONTINUUM_DATA_DIR": str(data_dir),
            "CONTINUUM_TEMPORAL_PORT": str(free_port()),
            "CONTINUUM_TEMPORAL_UI_PORT": str(free_port()),
            "CONTINUUM_API_PORT": str(api_port),
            "CONTINUUM_LOG_FORMAT": "json",
            **extra,
        }
    )
    with open(data_dir / "up.log", "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "continuum.cli", "up"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, (data_dir / "up.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"never healthy: {(data_dir / 'up.log').read_text()[-3000:]}")
        yield env, api_port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for server in psutil.process_iter(["cmdline"]):  # only if the stop went wrong: servers on this data
            if str(data_dir) in " ".join(server.info["cmdline"] or []):
                server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_every_readme_example_runs_in_order(fresh_stack: tuple[dict[str, str], int], tmp_path: Path) -> None:
    env, api_port = fresh_stack
    (first, second, python, utilization, webhooks) = (block for _, block in marked_blocks())

    opened = _sh(first.replace("127.0.0.1:8000", f"127.0.0.1:{api_port}"), env)
    assert '"EpisodeOpened"' in opened and "EP-1001" in opened.split("EpisodeOpened", 1)[1]  # curl, then the list
    assert "Store it now" in opened  # the director's key, printed once

    others = _sh(second, env)
    assert "Usage: continuum" in others and "migrations applied" in others and "rebuilt episodes" in others

    script = tmp_path / "open_episode.py"
    script.write_text(python + "\n", encoding="utf-8")
    expected = re.search(r"It prints `(.+?)`\.", README)
    assert expected is not None
    for _ in range(3):  # the same command id each time: the same outcome, and a clean exit every time
        ran = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert ran.stdout.strip() == expected.group(1)

    reviewed = _sh(utilization.replace("127.0.0.1:8000", f"127.0.0.1:{api_port}"), env)
    assert reviewed.startswith("201 /api/v1/episodes/EP-1001/authorizations/EP-1001.A1\n"), reviewed
    report = json.loads(reviewed.split("\n", 1)[1])
    assert [(r["episode_id"], r["authorized"]) for r in report["expiring"]] == [("EP-1001", "withdrawal_management")]

    subscribed = _sh(webhooks.replace("127.0.0.1:8000", f"127.0.0.1:{api_port}"), env)
    assert subscribed.count("Store it now") == 1 and '"secret": "whsec_' in subscribed  # the CLI's, the API's
    assert "DELIVERY_ID" in subscribed and re.search(r"^disabled wh_[0-9a-f]+$", subscribed, re.MULTILINE)


def test_the_facilities_example_runs_on_the_sample_facilities(facilities_stack: tuple[dict[str, str], int]) -> None:
    env, api_port = facilities_stack
    [block] = ON_FACILITIES.findall(README)

    ran = _sh(block.replace("127.0.0.1:8000", f"127.0.0.1:{api_port}"), env)

    assert '"facility_id":"nv-reno"' in ran and '"EpisodeTransferred"' in ran and '"WaitlistEntered"' in ran
    assert '"title":"Not Found"' in ran or "no episode EP-2001" in ran  # the Reno key no longer sees it
    assert "tx-austin" in ran and "intensive_outpatient" in ran  # the census of Austin, with the client


def _sh(block: str, env: dict[str, str]) -> str:
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, f"{block}\n--- stdout\n{ran.stdout[-3000:]}\n--- stderr\n{ran.stderr[-3000:]}"
    return ran.stdout
