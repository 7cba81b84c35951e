"""`POST /api/v1/simulations`: a proposed policy tried on the recorded cohort (the clinical director's; reads only,
nothing is written to the log and no workflow is started)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from continuum.access import ApiKey
from continuum.api.auth import SIMULATIONS
from continuum.api.params import services_of
from continuum.api.problems import log_refused, problem
from continuum.api.schemas import Body
from continuum.api.service_models import SimulationAnswer
from continuum.domain.errors import PolicyError
from continuum.simulations import Period, PeriodInvalid, report, run_simulation

router = APIRouter(prefix="/api/v1", tags=["simulations"])
PURPOSE = "policy_simulation"


class SimulationBody(Body):
    policy: Annotated[str, Field(min_length=1, description="The proposed policy's text (TOML, as domain/policy.toml)")]
    start: Annotated[str | None, Field(alias="from", description="Episodes opened from this day (YYYY-MM-DD)")] = None
    end: Annotated[str | None, Field(alias="to", description="Episodes opened through this day (YYYY-MM-DD)")] = None
    episodes: Annotated[bool, Field(description="Also each episode that differs")] = False


@router.post("/simulations", response_class=JSONResponse, responses={200: {"model": SimulationAnswer}})
def simulate(body: SimulationBody, request: Request, caller: ApiKey = Depends(SIMULATIONS)) -> JSONResponse:
    """Re-decide the recorded cohort's outside inputs under the proposed policy; placements, step-ups, days at
    each level and tests ordered beside what happened, and what the record cannot tell (counted)."""
    services = services_of(request)
    try:
        period = Period.parse(body.start, body.end)
    except PeriodInvalid as error:
        log_refused(request, 422, f"invalid {error.field}")
        return problem(422, str(error), errors=[{"field": error.field, "message": str(error)}])
    episodes = services.episodes
    try:
        run = run_simulation(
            services.store,
            body.policy,
            day=episodes.day,
            period=period,
            directory_text=episodes.directory_text,
        )
    except PolicyError as error:
        log_refused(request, 422, "invalid policy")
        detail = f"policy: {error}"
        return problem(422, detail, errors=[{"field": "policy", "message": str(error)}])
    services.access.record(caller, None, f"simulation {run.policy_version} ({len(run.simulated)} episodes)", PURPOSE)
    return JSONResponse(report(run, per_episode=body.episodes))
