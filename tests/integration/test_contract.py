"""The OpenAPI document is a contract (issue 20): schemathesis sends requests generated from `/openapi.json` (ones it
allows and ones it does not) to every operation, with every role's key and with none, to `continuum up` running as
a real process, and every answer must conform.

The checks: no 5xx, the status documented, the media type documented, the body valid against the documented
schema, the documented headers present. Every failure is collected into one message (operation, role, check,
status) rather than stopping at the first. Hypothesis runs a few examples per operation and role, without
shrinking, derandomized and without a database, so CI runs the same requests every time in bounded time.

`CONTINUUM_CONTRACT_OPERATIONS` (a regular expression over `METHOD /path`) narrows the run while a route's model
is being written, and `CONTINUUM_CONTRACT_EXAMPLES` asks for more examples; CI leaves both unset and checks every
operation.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure
from schemathesis.generation.modes import GenerationMode

from continuum.api.problems import TITLES
from tests.integration.stacks import RunningStack

pytestmark = pytest.mark.integration

ROLES = ("director", "clinician", "auditor", "lab", "partner", "admin", "utilization_reviewer")
ANONYMOUS = "no key"  # a caller without one: every 401 (and its WWW-Authenticate) conforms too
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Per operation and caller: 65 operations x 8 callers within CI's time; `CONTINUUM_CONTRACT_EXAMPLES` runs more locally.
EXAMPLES = int(os.environ.get("CONTINUUM_CONTRACT_EXAMPLES", "6"))
LAB, PARTNER = "lab-1", "partner-1"
# A long poll answers at once with `wait=0`; generated waits of up to 25 s would spend CI's time waiting
# (tests/integration/test_feed.py checks the waiting itself).
FIXED_QUERY = {"/api/v1/feed": {"wait": 0}}


@dataclass(frozen=True)
class Seeded:
    """What the stack holds before schemathesis runs: ids a generated request may name, and whole bodies it may
    send, so that routes answer data rather than only 404 and 422."""

    path_parameters: dict[str, str]
    bodies: dict[str, dict[str, Any]]  # by "METHOD /path"


@dataclass(frozen=True)
class Refusal:
    operation: str
    role: str
    check: str
    status: int
    title: str
    detail: str  # the first line of schemathesis's message: what was received, or the path of the invalid value

    def line(self) -> str:
        return f"{self.operation} as {self.role}: {self.check} (status {self.status}): {self.title}; {self.detail}"


@pytest.fixture(scope="module")
def keys(running_stack: RunningStack) -> dict[str, str]:
    """A key for every role: the stack's own (clinician, director, auditor) and the others made with the CLI."""
    subjects = {"lab": LAB, "partner": PARTNER}
    made = {
        role: running_stack.key(role, f"{role}-1", subjects.get(role))
        for role in ROLES
        if role not in running_stack.keys
    }
    return dict(running_stack.keys) | made


@pytest.fixture(scope="module")
def seeded(running_stack: RunningStack, keys: dict[str, str]) -> Seeded:
    """An open, assessed episode with a test ordered (its lab is `lab-1`), opened through the API; the current
    policy; a webhook subscription (to a port nothing listens on: its deliveries fail)."""
    episode = f"EP-{uuid.uuid4().hex[:6]}"
    opened = _post(
        running_stack,
        keys["clinician"],
        "/api/v1/episodes",
        {
            "episode_id": episode,
            "client_id": "client-contract",
            "assessment": {"ratings": [1, 1, 2, 1, 1, 1], "assessed_by": "clin-1"},
        },
    )
    ordered = _post(running_stack, keys["clinician"], f"/api/v1/episodes/{episode}/tests", {"ordered_by": "clin-1"})
    test_id = next(e["data"]["test_id"] for e in ordered["events"] if e["type"] == "TestOrdered")
    policy = httpx.get(
        f"{running_stack.url}/api/v1/policy", headers={"Authorization": f"Bearer {keys['director']}"}, timeout=30
    ).json()
    subscription = {"url": "http://127.0.0.1:9/hooks", "event_types": ["TestOrdered"], "role": "director"}
    subscribed = _post(running_stack, keys["admin"], "/api/v1/webhooks", subscription)
    return Seeded(
        path_parameters={
            "episode_id": opened["episode_id"],
            "test_id": test_id,
            "version": policy["version"],
            "subscription_id": subscribed["subscription_id"],
        },
        bodies={
            "POST /api/v1/simulations": {"policy": policy["text"], "episodes": True},
            "POST /api/v1/webhooks": subscription,
        },
    )


def _post(running_stack: RunningStack, secret: str, path: str, body: dict[str, Any]) -> Any:
    answer = httpx.post(
        f"{running_stack.url}{path}", headers={"Authorization": f"Bearer {secret}"}, timeout=30, json=body
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_every_answer_to_every_role_conforms_to_the_openapi_document(
    running_stack: RunningStack, keys: dict[str, str], seeded: Seeded
) -> None:
    api = schemathesis.openapi.from_url(f"{running_stack.url}/openapi.json")
    chosen = re.compile(os.environ.get("CONTINUUM_CONTRACT_OPERATIONS", ""))
    refusals: list[Refusal] = []
    checked = 0
    operations = [result.ok() for result in api.get_all_operations()]
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):  # the seeded ones last
        label = f"{operation.method.upper()} {operation.path}"
        if not chosen.search(label):
            continue
        for role in (*ROLES, ANONYMOUS):
            refusals += _conforms(operation, label, role, keys.get(role), seeded)
            checked += 1
    assert checked >= 7, f"no operation matched CONTINUUM_CONTRACT_OPERATIONS={chosen.pattern!r}"
    assert not refusals, f"{len(refusals)} answers do not conform:\n" + "\n".join(sorted({r.line() for r in refusals}))


def _conforms(operation: Any, label: str, role: str, secret: str | None, seeded: Seeded) -> list[Refusal]:
    """A few generated requests to `operation` with `role`'s key; each check an answer fails."""
    refusals: list[Refusal] = []
    auth = {"Authorization": f"Bearer {secret}"} if secret else {}
    names = {p.name for p in operation.path_parameters}
    seeds = {k: v for k, v in seeded.path_parameters.items() if k in names}
    query = FIXED_QUERY.get(operation.path)
    strategy = st.one_of(
        operation.as_strategy(query=query), operation.as_strategy(GenerationMode.NEGATIVE, query=query)
    )
    if seeds:  # some requests name what the stack holds, so the route answers more than a 404
        strategy = st.one_of(strategy, operation.as_strategy(path_parameters=seeds, query=query))
    if label in seeded.bodies:  # and some send a whole body it takes
        strategy = st.one_of(strategy, operation.as_strategy(path_parameters=seeds, body=seeded.bodies[label]))

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        phases=[Phase.explicit, Phase.generate],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers(case: Any) -> None:
        response = case.call(headers=auth, timeout=30)
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except* Failure as failed:
            for failure in failed.exceptions:
                assert isinstance(failure, Failure)
                check = failure.checks[0] if failure.checks else type(failure).__name__
                detail = (failure.message.strip().splitlines() or [""])[0][:160]
                refusals.append(Refusal(label, role, check, response.status_code, failure.title, detail))

    answers()
    return refusals


@pytest.mark.parametrize("role", ["director", "lab"])
def test_the_event_stream_is_the_documented_media_type_and_each_message_a_documented_cloudevent(
    running_stack: RunningStack, keys: dict[str, str], seeded: Seeded, role: str
) -> None:
    """The feed's other media type, which schemathesis cannot read (the stream never ends): its first message is
    the first event of the JSON page, and a documented CloudEvent (a lab's: the order of its own test)."""
    document = httpx.get(f"{running_stack.url}/openapi.json", timeout=30).json()
    answer = document["paths"]["/api/v1/feed"]["get"]["responses"]["200"]["content"]
    event = jsonschema_rs.Draft202012Validator(
        {"$ref": "#/components/schemas/CloudEventAnswer", "components": document["components"]}
    )
    auth = {"Authorization": f"Bearer {keys[role]}"}
    page = httpx.get(f"{running_stack.url}/api/v1/feed", params={"limit": 1}, headers=auth, timeout=30).json()
    assert page["events"], f"the {role} sees no event of the seeded episode"  # else the stream below would wait
    with httpx.stream(
        "GET", f"{running_stack.url}/api/v1/feed", headers={**auth, "Accept": "text/event-stream"}, timeout=30
    ) as stream:
        media_type = stream.headers["content-type"].split(";")[0]
        first = next(json.loads(line.removeprefix("data:")) for line in stream.iter_lines() if line.startswith("data:"))

    assert media_type in answer
    assert first == page["events"][0] and first["subject"] == seeded.path_parameters["episode_id"]
    assert event.is_valid(first), list(event.iter_errors(first))[:1]


# Where an answer is an open object on purpose: a FHIR resource (its elements are FHIR's, validated with
# fhir.resources), a policy's rules (each registered version has its own sections; its text is the authority),
# an event's payload (one shape per event type, reduced by role).
OPEN_OBJECTS = {
    "FhirMeasureReport",
    "PolicyAnswer.rules",
    "CurrentPolicyAnswer.rules",
    "CloudEventAnswer.data",
}


def test_every_answer_of_every_operation_has_a_typed_schema() -> None:
    """No 2xx answer is documented as an untyped object (`additionalProperties: true`, or no schema at all)."""
    from unittest.mock import sentinel

    from continuum.api.app import create_app

    document = create_app(sentinel.services).openapi()  # type: ignore[arg-type]
    schemas = document["components"]["schemas"]
    chosen = re.compile(os.environ.get("CONTINUUM_CONTRACT_OPERATIONS", ""))
    loose = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not chosen.search(f"{method.upper()} {path}"):
                continue
            for status, answer in operation["responses"].items():
                for media, content in answer.get("content", {}).items() if status.startswith("2") else ():
                    where = f"{method.upper()} {path} {status} {media}"
                    loose += _loose(content.get("schema", {}), where, schemas, set())
    assert not loose, "untyped answers:\n" + "\n".join(sorted(set(loose)))


def _loose(schema: dict[str, Any], where: str, schemas: dict[str, Any], seen: set[str]) -> list[str]:
    """The places in `schema` (a component's name and property path, once a $ref is followed) that are open."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        return _loose(schemas[name], name, schemas, seen | {name})
    if where in OPEN_OBJECTS or schema.get("title") in OPEN_OBJECTS:  # an inline component keeps its model's title
        return []
    if not schema:
        return [where]
    found = []
    for key in ("anyOf", "oneOf", "allOf"):
        for part in schema.get(key, []):
            found += _loose(part, where, schemas, seen)
    if "items" in schema:
        found += _loose(schema["items"], where, schemas, seen)
    for name, part in schema.get("properties", {}).items():
        found += _loose(part, f"{where}.{name}", schemas, seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        found += _loose(extra, f"{where}.*", schemas, seen)
    open_object = extra is True or (schema.get("type") == "object" and "properties" not in schema and extra is None)
    if open_object:
        found.append(where)
    return found


def test_the_readme_names_every_problem_title_as_the_api_answers_it() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = re.findall(r"^  \| (\d{3}) \| ([^|]+) \|", readme, re.MULTILINE)

    assert {int(status): title.strip() for status, title in rows} == TITLES
