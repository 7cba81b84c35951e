"""`audit verify`, `anchor`, `replay`, `export`, `verify-export` and `replay-workflows`: the auditors' tools
over the event log (and, for `replay-workflows`, over Temporal's histories)."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
import time
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from continuum.cli.context import store
from continuum.cli.errors import EXIT_VERIFICATION_FAILED, NotFound, Usage
from continuum.cli.render import Json, emit, table
from continuum.runtime.settings import Settings, load_settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from continuum.access import ApiKey
    from continuum.eventlog.checkpoints import CheckpointFile
    from continuum.eventlog.store import PostgresEventStore
    from continuum.eventlog.verify import Anchor

audit = typer.Typer(no_args_is_help=True, help="Auditors' tools over the event log.")


@audit.command("verify")
def verify(
    episode: Annotated[str | None, typer.Option(help="Verify one episode's stream instead of the whole log.")] = None,
    anchor: Annotated[
        list[Path] | None,
        typer.Option(help="A file of anchors (one JSON object a line, from `audit anchor`) that must still hold."),
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(help="The signed checkpoints (default CONTINUUM_CHECKPOINT_FILE, or the data directory's)."),
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option(help="The key the checkpoints are signed with (PEM; `audit public-key`).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Recompute the hash chain, check every signed checkpoint and re-fold the episodes projection; report
    the first broken link (exit 4 when the record was altered)."""
    from continuum.eventlog.checkpoints import check_checkpoints, stream_checkpoints_report
    from continuum.eventlog.verify import VerificationReport, verify_log, verify_projection, verify_stream

    settings = load_settings()
    anchors = [a for path in anchor or [] for a in _read_anchors(path)]
    if anchors and episode:
        raise Usage("--anchor checks the whole log; leave out --episode")
    signed = _read_checkpoint_file(settings, checkpoints, public_key)
    with store() as opened:
        if episode:
            chain = verify_stream(opened.engine, episode)
            against = stream_checkpoints_report(opened.engine, episode, signed.checkpoints)
        else:
            chain = verify_log(opened.engine, anchors=[*anchors, *(c.anchor() for c in signed.checkpoints)])
            against = VerificationReport("log", 0, tuple(check_checkpoints(opened.engine, signed.checkpoints)))
        projection = verify_projection(opened, episode)
    problems = (*signed.problems, *chain.problems, *against.problems, *projection.problems)
    report = VerificationReport(chain.scope, chain.events_checked, problems)
    if episode and report.ok and report.events_checked == 0:  # nothing to be intact: never "chain intact"
        raise NotFound(f"no episode {episode}")
    data = {
        "scope": report.scope,
        "ok": report.ok,
        "events_checked": report.events_checked,
        "anchors_checked": len(anchors),
        "checkpoints_checked": len(signed.checkpoints),
        "projection_rows_checked": projection.events_checked,
        "problems": [vars(p) for p in report.problems],
    }
    if report.ok:
        held = f", {len(anchors)} anchor(s) hold" if anchors else ""
        held += f", {len(signed.checkpoints)} signed checkpoint(s) hold" if signed.checkpoints else ""
        human = f"verified: {report.scope}, {report.events_checked} events, chain intact{held}, projection agrees"
    else:
        assert report.first_broken is not None
        lines = [f"ALTERED: {report.scope}, {len(report.problems)} problem(s); first: {report.first_broken.describe()}"]
        human = "\n".join(lines + [f"  also: {p.describe()}" for p in report.problems[1:]])
    emit(data, as_json, human)
    if not report.ok:
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


def _read_anchors(path: Path) -> list[Anchor]:
    from continuum.eventlog.verify import Anchor, AnchorError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise Usage(f"--anchor {path}: {error.strerror}") from None
    anchors = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            anchors.append(Anchor.from_json(json.loads(line)))
        except ValueError as error:  # AnchorError and json.JSONDecodeError are both ValueErrors
            reason = error if isinstance(error, AnchorError) else "not JSON"
            raise Usage(f"--anchor {path}, line {number}: {reason}") from None
    if not anchors:
        raise Usage(f"--anchor {path}: no anchors in the file")
    return anchors


def _signing_key(settings: Settings) -> Ed25519PrivateKey:
    from continuum.eventlog.checkpoints import CheckpointKeyError, load_signing_key

    try:
        return load_signing_key(settings.checkpoint_key_file, settings.data_dir)
    except CheckpointKeyError as error:
        raise Usage(f"CONTINUUM_CHECKPOINT_KEY_FILE: {error}") from None


def _verifying_key(settings: Settings, given: Path | None) -> Ed25519PublicKey | None:
    """The key given, else the public half of the signing key if this machine holds it, else None."""
    from continuum.eventlog.checkpoints import KEY_FILE_NAME, CheckpointKeyError, load_public_key

    path = given or settings.checkpoint_key_file or settings.data_dir / KEY_FILE_NAME
    if given is None and not path.exists():
        return None
    try:
        return load_public_key(path)
    except CheckpointKeyError as error:
        raise Usage(f"--public-key: {error}") from None


def _read_checkpoint_file(settings: Settings, given: Path | None, public_key: Path | None) -> CheckpointFile:
    from continuum.eventlog.checkpoints import CheckpointFile, CheckpointKeyError, checkpoint_path, read_checkpoints

    path = given or checkpoint_path(settings.checkpoint_file, settings.data_dir)
    if not path.exists():
        if given is not None:
            raise Usage(f"--checkpoints {path}: no such file")
        return CheckpointFile((), ())
    key = _verifying_key(settings, public_key)
    if key is None:
        raise Usage(f"the checkpoints in {path} need the key they are signed with: --public-key")
    try:
        return read_checkpoints(path, key)
    except CheckpointKeyError as error:
        raise Usage(str(error)) from None


@audit.command("anchor")
def anchor(
    every: Annotated[
        float | None, typer.Option(min=1.0, help="Keep running: sign a checkpoint every this many seconds.")
    ] = None,
) -> None:
    """Sign the log's head (a checkpoint) and append it to the checkpoint file; print it as one JSON line.

    Verification then checks every checkpoint (`audit verify`). Run it on a schedule (cron, or `--every
    300` as a service of its own): events recorded before the last checkpoint are held by its signature,
    even against someone who can rewrite the whole chain inside the database. Keep a copy of the lines
    elsewhere too (`>> anchors.ndjson`, which `audit verify --anchor` reads)."""
    from continuum.eventlog.checkpoints import checkpoint_path, take_checkpoint

    settings = load_settings()
    key = _signing_key(settings)
    path = checkpoint_path(settings.checkpoint_file, settings.data_dir)
    with store() as opened:
        while True:
            signed = take_checkpoint(opened.engine, key, path)
            typer.echo(json.dumps({**signed.anchor().as_json(), "sequence": signed.sequence, "key_id": signed.key_id}))
            if every is None:
                return
            try:
                time.sleep(every)
            except KeyboardInterrupt:
                return


@audit.command("public-key")
def public_key() -> None:
    """Print the public key checkpoints and export trailers are signed with (PEM), for verifiers elsewhere."""
    from continuum.eventlog.checkpoints import public_key_pem

    typer.echo(public_key_pem(_signing_key(load_settings())), nl=False)


def _cli_key() -> ApiKey:
    """The CLI's reader: the operating system user, as an auditor (reads are logged like the API's)."""
    from continuum.access import ApiKey, Role

    return ApiKey(f"cli:{getpass.getuser()}", "cli", Role.AUDITOR, None, datetime.now().astimezone(), None)


def _cli_reader(what: str, episode_id: str, purpose: str, opened: PostgresEventStore) -> None:
    """Reads of a record through the CLI are logged like the API's, under the operating system user."""
    from continuum.access import AccessLog

    AccessLog(opened.engine).record(_cli_key(), episode_id, what, purpose)


@audit.command("replay")
def replay(
    episode_id: str,
    as_of: Annotated[str, typer.Option("--as-of", help="An instant with its zone, e.g. 2026-11-23T10:00:00Z.")],
    purpose: Annotated[str, typer.Option(help="Why the record is read (logged).")] = "audit",
    as_json: Json = False,
) -> None:
    """The episode's state as the record stood at an instant, and the events up to then."""
    from continuum.domain.codec import encode, parse_instant
    from continuum.eventlog.projection import episode_as_of

    try:
        at = parse_instant(as_of)
    except ValueError:
        raise Usage(f"--as-of: {as_of!r} is not an ISO-8601 instant") from None
    if at.tzinfo is None:
        raise Usage("--as-of: the instant needs a time zone (for example a trailing Z)")
    with store() as opened:
        _cli_reader(f"replay as_of {at.isoformat()}", episode_id, purpose, opened)
        events = opened.read_stream(episode_id, recorded_until=at)
        state = episode_as_of(opened, episode_id, at=at)
    if not events:
        raise NotFound(f"episode {episode_id} had no recorded events at {at.isoformat()}")
    rows = [{"version": e.stream_version, "recorded_at": e.recorded_at, "type": e.event_type} for e in events]
    data = {"episode_id": episode_id, "as_of": at.isoformat(), "state": encode(state), "events": rows}
    assert state is not None
    human = table(rows, ["version", "recorded_at", "type"]) + (
        f"\nstate as of {at.isoformat()}: {state.status.value}, level {state.level.value if state.level else '-'},"
        f" flags {', '.join(state.flags) or '-'}"
    )
    emit(data, as_json, human)


class ExportFormat(StrEnum):
    NDJSON = "ndjson"
    FHIR = "fhir"


@audit.command("export")
def export(
    episode_id: str,
    purpose: Annotated[str, typer.Option(help="Why the record is exported (logged).")] = "audit",
    format: Annotated[ExportFormat, typer.Option(help="ndjson or fhir.")] = ExportFormat.NDJSON,  # noqa: A002
    recipient: Annotated[
        str, typer.Option(help="Who receives the export (the accounting of disclosures).")
    ] = "internal_audit",
    basis: Annotated[
        str | None,
        typer.Option(
            help="The lawful basis: consent, medical_emergency, audit_and_evaluation, court_order, program_staff."
        ),
    ] = None,
    consent_id: Annotated[str | None, typer.Option(help="The consent the export is made under.")] = None,
    court_order: Annotated[str | None, typer.Option(help="The order, for --basis court_order.")] = None,
    emergency_clinician: Annotated[str | None, typer.Option(help="Medical emergency: who receives it.")] = None,
    emergency_facility: Annotated[str | None, typer.Option(help="Medical emergency: their facility.")] = None,
    emergency_nature: Annotated[str | None, typer.Option(help="Medical emergency: its nature.")] = None,
) -> None:
    """The episode's history on standard output: NDJSON (one stored event per line, with its hashes; check it
    anywhere with `verify-export`) or a FHIR R4 Bundle. The export is recorded as a disclosure; outside the
    program it needs a consent valid now for the recipient and purpose, or a --basis."""
    from continuum.disclosures import export_history
    from continuum.domain.disclosure import DisclosureBasis, ExportAsked
    from continuum.domain.errors import DisclosureRefused

    try:
        lawful = DisclosureBasis(basis) if basis is not None else None
    except ValueError:
        raise Usage(f"--basis: one of {', '.join(b.value for b in DisclosureBasis)}") from None
    asked = ExportAsked.of(
        recipient, purpose, lawful, consent_id, court_order, emergency_clinician, emergency_facility, emergency_nature
    )
    key = _signing_key(load_settings()) if format is ExportFormat.NDJSON else None
    with store() as opened:
        try:
            at = datetime.now().astimezone()
            exported = export_history(opened, _cli_key(), episode_id, format.value, asked, key, at)
        except DisclosureRefused as refused:
            raise Usage(f"--{refused.parameter.replace('_', '-')}: {str(refused).split(': ', 1)[1]}") from None
    if exported is None:
        raise NotFound(f"no episode {episode_id}")
    typer.echo(json.dumps(exported, indent=1) if isinstance(exported, dict) else exported, nl=False)
    if isinstance(exported, dict):
        typer.echo()


@audit.command("verify-export")
def verify_export(
    path: Annotated[Path, typer.Argument(help="An NDJSON export (`continuum audit export`), or - for standard input.")],
    public_key: Annotated[
        Path | None, typer.Option(help="The key its trailer is signed with (PEM; `audit public-key`).")
    ] = None,
    allow_unsigned: Annotated[
        bool, typer.Option(help="Accept an export without a signed trailer (the API's); a cut would not show.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Check an NDJSON export offline, without the database: every hash, no missing version, and the signed
    trailer naming every event exported (exit 4 if altered or cut short)."""
    from continuum.eventlog.export import verify_ndjson

    key = _verifying_key(load_settings(), public_key)
    if key is None and not allow_unsigned:
        raise Usage("--public-key: the key the export's trailer is signed with (`continuum audit public-key`)")
    try:
        text_ = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as error:
        raise Usage(f"{path}: {error.strerror}") from None
    report = verify_ndjson(text_.splitlines(), public_key=key, require_trailer=not allow_unsigned)
    data = {
        "scope": report.scope,
        "ok": report.ok,
        "events_checked": report.events_checked,
        "problems": [vars(p) for p in report.problems],
    }
    first = report.first_broken
    human = (
        f"verified: {report.scope}, {report.events_checked} events, every hash intact"
        + (", signed trailer holds" if key is not None and not allow_unsigned else " (unsigned: a cut would not show)")
        if report.ok or first is None
        else f"ALTERED: {report.scope}: {first.describe()}"
    )
    emit(data, as_json, human)
    if not report.ok or report.events_checked == 0:
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


@audit.command("replay-workflows")
def replay_workflows(
    limit: Annotated[int, typer.Option(help="At most this many episodes, newest first.")] = 1000,
    as_json: Json = False,
) -> None:
    """Fetch episode histories from Temporal and replay them with the current workflow code (Temporal's
    Replayer); a non-deterministic change shows here before it breaks a running episode. Exit 4 on any."""
    settings = load_settings()
    if settings.temporal_address is None:
        raise Usage("TEMPORAL_ADDRESS: replay needs the running Temporal (start `continuum up` and set it)")
    results = asyncio.run(_replay_all(settings, limit))
    failed = [r for r in results if r["error"]]
    human = f"replayed {len(results)} episode histories: {len(results) - len(failed)} deterministic, {len(failed)} not"
    human += "".join(f"\n  {r['workflow_id']}: {r['error']}" for r in failed)
    emit({"replayed": len(results), "failed": failed}, as_json, human)
    if failed:
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


async def _replay_all(settings: Settings, limit: int) -> list[dict[str, Any]]:
    from temporalio.worker import Replayer

    from continuum.runtime.codec import encrypted_converter
    from continuum.runtime.temporal import connect_temporal
    from continuum.workflows.episode import EPISODE_WORKFLOW_TYPES, EPISODE_WORKFLOWS

    assert settings.temporal_address is not None
    converter = encrypted_converter(settings.key_ring())
    client = await connect_temporal(
        settings.temporal_address, settings.temporal_namespace, data_converter=converter, tls=settings.temporal_tls()
    )
    replayer = Replayer(workflows=list(EPISODE_WORKFLOWS), data_converter=converter)
    results = []
    types = ", ".join(f'"{name}"' for name in EPISODE_WORKFLOW_TYPES)
    async for execution in client.list_workflows(f"WorkflowType IN ({types})", limit=limit):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        outcome = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        error = str(outcome.replay_failure).splitlines()[0][:300] if outcome.replay_failure else None
        results.append({"workflow_id": execution.id, "run_id": execution.run_id, "error": error})
    return results
