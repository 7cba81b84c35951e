"""`continuum simulate`: a proposed policy tried on the recorded cohort, beside what happened (reads only)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from continuum.cli.context import store
from continuum.cli.errors import Usage
from continuum.cli.render import Json, emit, table
from continuum.runtime.settings import load_settings

commands = typer.Typer()


@commands.command()
def simulate(
    policy: Annotated[Path, typer.Option(help="The proposed policy file (TOML, the keys of domain/policy.toml).")],
    start: Annotated[str | None, typer.Option("--from", help="Episodes opened from this day (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Episodes opened through this day (YYYY-MM-DD).")] = None,
    episodes: Annotated[bool, typer.Option("--episodes", help="Also each episode that differs.")] = False,
    as_json: Json = False,
) -> None:
    """Re-decide the recorded cohort's outside inputs under a proposed policy, writing nothing; report placements,
    step-ups, days at each level and tests ordered beside what happened, and what the record could not tell."""
    from continuum.domain.errors import PolicyError
    from continuum.domain.policy import load_policy
    from continuum.simulations import Period, PeriodInvalid, report, run_simulation

    try:
        period = Period.parse(start, end)
    except PeriodInvalid as error:
        raise Usage(f"--{error}") from None
    try:
        policy_text = policy.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise Usage(f"--policy: {policy} cannot be read ({getattr(error, 'strerror', None) or error})") from None
    settings = load_settings()
    directory = settings.directory_text()
    try:
        load_policy(policy_text, directory)  # refused before anything starts, naming the key
    except PolicyError as error:
        raise Usage(f"--policy {policy}: {error}") from None
    with store() as opened:
        run = run_simulation(
            opened, policy_text, day=timedelta(seconds=settings.day_seconds), period=period, directory_text=directory
        )
    body = report(run, per_episode=episodes)
    emit(body, as_json, _human(body))


def _human(body: dict[str, Any]) -> str:
    cohort = body["cohort"]
    rows = [
        _row("step-ups", cohort["step_ups"]),
        _row("tests ordered", cohort["tests_ordered"]),
        *(_row(f"days at {level}", pair) for level, pair in cohort["days_at_level"].items()),
        *(_row(f"discharged {reason}", pair) for reason, pair in cohort["discharges"].items()),
    ]
    changes = ", ".join(f"{k}: {v}" for k, v in cohort["placement_changes"].items()) or "-"
    refused = ", ".join(f"{k}: {v}" for k, v in cohort["inputs_refused"].items()) or "-"
    lines = [
        f"cohort      {cohort['episodes']} episodes at log position {body['log_position']}"
        f" (policy {body['policy_version']}); {cohort['episodes_unchanged']} unchanged",
        f"placements  {cohort['placements_changed']} changed ({changes})",
        f"step-ups    {cohort['step_ups_added']} added, {cohort['step_ups_removed']} removed",
        table(rows, ["measure", "recorded", "simulated"]),
        "what the record cannot tell:",
        f"  results dropped (tests the policy would not have ordered)  {cohort['results_dropped']}",
        f"  tests without a result (ordered only by the policy)        {cohort['tests_without_result']}",
        f"  schedule draws not on record (seeded by episode and day)   {cohort['draws_new']}",
        f"  inputs the simulated episodes refused                      {refused}",
    ]
    for episode in body.get("episodes", []):
        placement = episode["placement"]
        lines.append(
            f"{episode['episode_id']}: placement {placement['recorded']} -> {placement['simulated']};"
            f" step-ups +{len(episode['step_ups_added'])} -{len(episode['step_ups_removed'])};"
            f" tests {episode['tests_ordered']['recorded']} -> {episode['tests_ordered']['simulated']};"
            f" results dropped {episode['results_dropped']}, tests without result {episode['tests_without_result']}"
        )
    return "\n".join(lines)


def _row(measure: str, pair: dict[str, float]) -> dict[str, Any]:
    return {"measure": measure, "recorded": _number(pair["recorded"]), "simulated": _number(pair["simulated"])}


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
