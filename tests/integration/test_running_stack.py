"""The whole stack as real processes: `continuum up` on the test servers, driven over HTTP and by the CLI (the
OpenAPI contract against it is test_contract.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from continuum.eventlog.hashing import GENESIS_HASH, event_hash
from tests.integration.stacks import RunningStack

pytestmark = pytest.mark.integration


def _opened(running_stack: RunningStack, client_id: str) -> str:
    """A new episode opened through the API, as a clinician's service opens one; its id."""
    episode = f"EP-{uuid.uuid4().hex[:6]}"
    httpx.post(
        f"{running_stack.url}/api/v1/episodes",
        headers={"Authorization": f"Bearer {running_stack.keys['clinician']}"},
        timeout=30,
        json={"episode_id": episode, "client_id": client_id},
    ).raise_for_status()
    return episode


def test_the_cli_reads_what_the_api_wrote(running_stack: RunningStack, tmp_path: Path) -> None:
    episode = f"EP-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {running_stack.keys['clinician']}"}
    opened = httpx.post(
        f"{running_stack.url}/api/v1/episodes",
        headers=headers,
        timeout=30,
        json={
            "episode_id": episode,
            "client_id": "client-1",
            "assessment": {"ratings": [3, 1, 1, 1, 1, 1], "assessed_by": "clin-1"},
        },
    )
    assert opened.status_code == 201, opened.text

    listed = running_stack.cli("episodes", "list", "--level", "withdrawal_management", "--json")
    shown = running_stack.cli("episodes", "show", episode)
    census = running_stack.cli("census")
    verified = running_stack.cli("audit", "verify", "--episode", episode)
    nope = running_stack.cli("audit", "verify", "--episode", "NOPE-1")
    replayed = running_stack.cli("audit", "replay", episode, "--as-of", datetime.now(UTC).isoformat(), "--json")
    exported = running_stack.cli("audit", "export", episode, "--purpose", "quality_review")
    keys = running_stack.cli("keys", "list", "--json")
    anchors = tmp_path / "anchors.ndjson"
    anchors.write_text(running_stack.cli("audit", "anchor").stdout)
    anchored = running_stack.cli("audit", "verify", "--anchor", str(anchors))

    assert listed.returncode == 0 and episode in [e["episode_id"] for e in json.loads(listed.stdout)["items"]]
    assert shown.returncode == 0 and f"episode   {episode}" in shown.stdout and "withdrawal_management" in shown.stdout
    assert (
        census.returncode == 0
        and "WITHDRAWAL_MANAGEMENT" not in census.stdout
        and "withdrawal_management" in census.stdout
    )
    assert verified.returncode == 0 and "chain intact" in verified.stdout
    assert nope.returncode == 1 and "no episode NOPE-1" in nope.stderr + nope.stdout and "intact" not in nope.stdout
    assert anchored.returncode == 0 and "1 anchor(s) hold" in anchored.stdout
    assert replayed.returncode == 0 and json.loads(replayed.stdout)["state"]["level"] == "withdrawal_management"
    assert {k["role"] for k in json.loads(keys.stdout)} == {"clinician", "director", "auditor"}
    assert "secret" not in keys.stdout and "key_hash" not in keys.stdout
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    lines = [line for line in lines if "trailer" not in line]  # the signed trailer (test_checkpoints.py)
    assert [line["stream_version"] for line in lines] == list(range(1, len(lines) + 1))
    for line in lines:  # the export carries what an auditor needs to check each event's own hash offline
        recomputed = event_hash(
            bytes.fromhex(line["prev_hash"]),
            position=line["position"],
            stream_id=line["stream_id"],
            stream_version=line["stream_version"],
            event_id=line["event_id"],
            event_type=line["event_type"],
            schema_version=line["schema_version"],
            occurred_at=datetime.fromisoformat(line["occurred_at"]),
            recorded_at=datetime.fromisoformat(line["recorded_at"]),
            payload_json=json.dumps(line["payload"], sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            metadata_json=json.dumps(line["metadata"], sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        )
        assert recomputed.hex() == line["hash"]
    assert lines[0]["prev_hash"] == GENESIS_HASH.hex() or lines[0]["position"] > 1


def test_replay_workflows_replays_every_episode_history_with_the_current_code(running_stack: RunningStack) -> None:
    _opened(running_stack, "client-2")  # at least one history to replay

    result = running_stack.cli("audit", "replay-workflows", "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["replayed"] >= 1 and report["failed"] == []


def test_cli_errors_are_one_line_with_meaningful_exit_codes(running_stack: RunningStack, tmp_path: Path) -> None:
    unknown = running_stack.cli("episodes", "show", "EP-none")
    bad_level = running_stack.cli("episodes", "list", "--level", "spa")
    bad_instant = running_stack.cli("audit", "replay", "EP-none", "--as-of", "yesterday")
    bad_role = running_stack.cli("keys", "create", "--role", "janitor", "--name", "x")
    bad_anchor = tmp_path / "anchors.ndjson"
    bad_anchor.write_text('{"position": 1, "hash": "not-hex"}\n')
    anchor_refused = running_stack.cli("audit", "verify", "--anchor", str(bad_anchor))
    wrong_anchor = tmp_path / "wrong.ndjson"
    wrong_anchor.write_text(json.dumps({"position": 1, "hash": "0" * 64}) + "\n")
    anchor_broken = running_stack.cli("audit", "verify", "--anchor", str(wrong_anchor))

    assert (unknown.returncode, unknown.stderr.strip()) == (1, "continuum: no episode EP-none")
    assert bad_level.returncode == 2 and "'spa' is not a level of care" in bad_level.stderr
    assert bad_instant.returncode == 2 and "is not an ISO-8601 instant" in bad_instant.stderr
    assert bad_role.returncode == 2 and "'janitor' is not one of" in bad_role.stderr
    assert anchor_refused.returncode == 2 and "line 1: anchor hash: 64 lower-case hexadecimal" in anchor_refused.stderr
    assert anchor_broken.returncode == 4 and "ALTERED" in anchor_broken.stdout  # exit 4: the record was altered
    for result in (unknown, bad_level, bad_instant, bad_role, anchor_refused):
        assert "Traceback" not in result.stderr


def test_audit_anchor_signs_checkpoints_that_verify_checks_and_exports_end_with_a_signed_trailer(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    episode = _opened(running_stack, "client-3")

    first = json.loads(running_stack.cli("audit", "anchor").stdout)
    second = json.loads(running_stack.cli("audit", "anchor").stdout)
    verified = running_stack.cli("audit", "verify")
    one = running_stack.cli("audit", "verify", "--episode", episode, "--json")
    exported = running_stack.cli("audit", "export", episode)
    whole, cut = tmp_path / "whole.ndjson", tmp_path / "cut.ndjson"
    whole.write_text(exported.stdout)
    cut.write_text("".join(line + "\n" for line in exported.stdout.splitlines()[:-2]))
    pem = tmp_path / "checkpoint.pub"
    pem.write_text(running_stack.cli("audit", "public-key").stdout)
    elsewhere = {**running_stack.env, "CONTINUUM_DATA_DIR": str(tmp_path / "elsewhere")}  # no key of its own
    offline = subprocess.run(
        [sys.executable, "-m", "continuum.cli", "audit", "verify-export", str(whole), "--public-key", str(pem)],
        env=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    truncated = running_stack.cli("audit", "verify-export", str(cut))

    assert second["sequence"] == first["sequence"] + 1 and second["key_id"] == first["key_id"]
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "signed checkpoint(s) hold" in verified.stdout and "projection agrees" in verified.stdout
    assert one.returncode == 0 and json.loads(one.stdout)["checkpoints_checked"] >= 2
    assert offline.returncode == 0 and "signed trailer holds" in offline.stdout, offline.stdout + offline.stderr
    assert truncated.returncode == 4 and "no signed trailer" in truncated.stdout
    assert pem.read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_an_export_through_the_api_ends_with_the_signed_trailer_verify_export_checks(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    episode = _opened(running_stack, "client-4")
    exported = httpx.get(
        f"{running_stack.url}/api/v1/episodes/{episode}/export",
        params={"format": "ndjson"},
        headers={"Authorization": f"Bearer {running_stack.keys['auditor']}"},
        timeout=30,
    )
    exported.raise_for_status()
    whole, cut = tmp_path / "whole.ndjson", tmp_path / "cut.ndjson"
    whole.write_text(exported.text)
    cut.write_text("".join(line + "\n" for line in exported.text.splitlines()[1:]))  # the first event gone

    verified = running_stack.cli("audit", "verify-export", str(whole))
    tampered = running_stack.cli("audit", "verify-export", str(cut))

    assert verified.returncode == 0 and "signed trailer holds" in verified.stdout, verified.stdout + verified.stderr
    assert tampered.returncode == 4, tampered.stdout


def test_a_cli_export_outside_the_program_needs_a_basis_and_is_recorded_on_it(running_stack: RunningStack) -> None:
    episode = _opened(running_stack, "client-5")

    refused = running_stack.cli("audit", "export", episode, "--recipient", "oak-street")
    lawful = running_stack.cli(
        "audit",
        "export",
        episode,
        "--recipient",
        "state-auditor",
        "--basis",
        "audit_and_evaluation",
        "--format",
        "fhir",
    )
    missing = running_stack.cli("audit", "export", "EP-none", "--recipient", "oak-street")
    accounting = httpx.get(
        f"{running_stack.url}/api/v1/episodes/{episode}/disclosures",
        headers={"Authorization": f"Bearer {running_stack.keys['auditor']}"},
        timeout=30,
    ).json()

    assert refused.returncode == 2 and refused.stderr.startswith("continuum: --"), refused.stderr
    assert lawful.returncode == 0 and json.loads(lawful.stdout)["resourceType"] == "Bundle"
    assert (missing.returncode, missing.stderr.strip()) == (1, "continuum: no episode EP-none")
    recorded = [(d["recipient"], d["basis"]) for d in accounting["disclosures"]]
    assert recorded == [("state-auditor", "audit_and_evaluation")], accounting
