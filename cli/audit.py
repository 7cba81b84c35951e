"""`audit verify`, `anchor`, `replay`, `export`, `verify-export` and `replay-workflows`: the auditors' tools
over the event log (and, for `replay-workflows`, over Temporal's histories)."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
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
    as_json: Json = False,
) -> None:
    """Recompute the hash chain and report the first broken link (exit 4 when the record was altered)."""
    from continuum.eventlog.verify import verify_log, verify_stream

    anchors = [a for path in anchor or [] for a in _read_anchors(path)]
    if anchors and episode:
        raise Usage("--anchor checks the whole log; leave out --episode")
    with store() as opened:
        report = verify_stream(opened.engine, episode) if episode else verify_log(opened.engine, anchors=anchors)
    if episode and report.ok and report.events_checked == 0:  # nothing to be intact: never "chain intact"
        raise NotFound(f"no episode {episode}")
    data = {
        "scope": report.scope,
        "ok": report.ok,
        "events_checked": report.events_checked,
        "anchors_checked": len(anchors),
        "problems": [vars(p) for p in report.problems],
    }
    if report.ok:
        held = f", {len(anchors)} anchor(s) hold" if anchors else ""
        human = f"verified: {report.scope}, {report.events_checked} events, chain intact{held}"
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


@audit.command("anchor")
def anchor() -> None:
    """Print the log's head (position, hash, time) as one JSON line, to keep outside the database.

    Append it to write-once storage (`continuum audit anchor >> anchors.ndjson`); `audit verify --anchor
    anchors.ndjson` then proves that the log up to each anchor is the one that was anchored, even against
    someone who could rewrite the whole chain inside the database."""
    from continuum.eventlog.verify import take_anchor

    with store() as opened:
        head = take_anchor(opened.engine)
    typer.echo(json.dumps(head.as_json()))


def _cli_reader(
    what: str, episode_id: str, purpose: str, opened: PostgresEventStore, export: tuple[str, Any] | None = None
) -> None:
    """Reads of a record through the CLI are logged like the API's, under the operating system user; an
    `export` (format, the export asked for) as the disclosure it is, on the basis the domain accepts."""
    from continuum.access import AccessLog, ApiKey, Role
    from continuum.domain.codec import decode
    from continuum.domain.disclosure import export_basis
    from continuum.domain.episode import Episode
    from continuum.domain.errors import DisclosureRefused
    from continuum.eventlog.reads import EpisodeReads

    reader = ApiKey(f"cli:{getpass.getuser()}", "cli", Role.AUDITOR, None, datetime.now().astimezone(), None)
    if export is not None:
        format, asked = export
        recorded = EpisodeReads(opened.engine).get(episode_id)
        if recorded is None:
            raise NotFound(f"no episode {episode_id}")
        try:
            justified = export_basis(decode(Episode, recorded), asked, datetime.now().astimezone())
        except DisclosureRefused as refused:
            raise Usage(f"--{refused.parameter.replace('_', '-')}: {str(refused).split(': ', 1)[1]}") from None
        AccessLog(opened.engine).record_export(
            reader, episode_id, format=format, recipient=asked.recipient, purpose=purpose, basis=justified
        )
        return
    AccessLog(opened.engine).record(reader, episode_id, what, purpose)


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
    from continuum.domain.disclosure import DisclosureBasis, ExportAsked, MedicalEmergency
    from continuum.eventlog.export import fhir_bundle, ndjson_lines

    try:
        lawful = DisclosureBasis(basis) if basis is not None else None
    except ValueError:
        raise Usage(f"--basis: one of {', '.join(b.value for b in DisclosureBasis)}") from None
    emergency = None
    if lawful is DisclosureBasis.MEDICAL_EMERGENCY:
        emergency = MedicalEmergency(emergency_clinician or "", emergency_facility or "", emergency_nature or "")
    asked = ExportAsked(recipient, purpose, lawful, consent_id, court_order, emergency)

    with store() as opened:
        events = opened.read_stream(episode_id, as_recorded=True)  # the payloads the hashes cover
        if not events:
            raise NotFound(f"no episode {episode_id}")
        _cli_reader(f"export {format.value} to {recipient}", episode_id, purpose, opened, (format.value, asked))
    if format is ExportFormat.FHIR:
        typer.echo(json.dumps(fhir_bundle(episode_id, events), indent=1))
        return
    for line in ndjson_lines(events):
        typer.echo(line)


@audit.command("verify-export")
def verify_export(
    path: Annotated[Path, typer.Argument(help="An NDJSON export (`continuum audit export`), or - for standard input.")],
    as_json: Json = False,
) -> None:
    """Check an NDJSON export offline, without the database: every hash, and no missing version (exit 4 if altered)."""
    from continuum.eventlog.export import verify_ndjson

    try:
        text_ = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as error:
        raise Usage(f"{path}: {error.strerror}") from None
    report = verify_ndjson(text_.splitlines())
    data = {
        "scope": report.scope,
        "ok": report.ok,
        "events_checked": report.events_checked,
        "problems": [vars(p) for p in report.problems],
    }
    first = report.first_broken
    human = (
        f"verified: {report.scope}, {report.events_checked} events, every hash intact"
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
    from continuum.workflows.episode import EpisodeWorkflow

    assert settings.temporal_address is not None
    converter = encrypted_converter(settings.key_ring())
    client = await connect_temporal(
        settings.temporal_address, settings.temporal_namespace, data_converter=converter, tls=settings.temporal_tls()
    )
    replayer = Replayer(workflows=[EpisodeWorkflow], data_converter=converter)
    results = []
    async for execution in client.list_workflows('WorkflowType = "EpisodeWorkflow"', limit=limit):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        outcome = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        error = str(outcome.replay_failure).splitlines()[0][:300] if outcome.replay_failure else None
        results.append({"workflow_id": execution.id, "run_id": execution.run_id, "error": error})
    return results
