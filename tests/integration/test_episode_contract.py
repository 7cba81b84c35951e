"""The episode routes answer what /openapi.json says, for every role's key: schemathesis checks each answer's status,
media type, headers and body against the document, on an episode that has something of every kind (a test, a
step-up, a consent, a session, a plan, an authorization, referrals) and on requests it generates itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.stacks import RunningStack

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
ROLES = ("director", "clinician", "auditor", "lab", "partner", "admin", "utilization_reviewer")
# The operations of the episode contract (the census, the alerts, audit/* and the keys are another's).
NOT_OURS = ("/api/v1/census", "/api/v1/alerts", "/api/v1/audit/", "/api/v1/keys")
ADDED_ROLES = {"lab": "lab-1", "partner": "harbor-house", "admin": None, "utilization_reviewer": None}
EPISODE = f"EP-CONTRACT-{uuid.uuid4().hex[:6]}"
# Temporal's workflow ids are the whole server's: the episodes schemathesis opens (`0`, `A`, ...) are made this
# module's own, so another module's generated requests never reach them (nor these theirs).
OWN = f"c{uuid.uuid4().hex[:6]}-"


class Contract:
    """The document, the keys, and every answer checked against the document."""

    def __init__(self, stack: RunningStack) -> None:
        self.url = stack.url
        self.api = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
        self.keys = dict(stack.keys) | {
            role: stack.key(role, f"{role}-c", subject) for role, subject in ADDED_ROLES.items()
        }
        self.checked = 0

    def send(self, role: str, method: str, path: str, body: Any = None, **query: Any) -> httpx.Response:
        """One request, its answer checked against the operation's declaration; the answer."""
        template, parameters = self._operation_of(method, path)
        operation = self.api[template][method]
        given_body = {} if body is None else {"body": body}
        case = operation.Case(path_parameters=parameters, query=query or None, **given_body)
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        response = httpx.request(method, f"{self.url}{path}", json=body, params=query, headers=headers, timeout=60)
        case.validate_response(response, checks=CHECKS)
        self.checked += 1
        return response

    def _operation_of(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        for template in self.api.raw_schema["paths"]:
            parts, wanted = template.split("/"), path.split("/")
            if len(parts) != len(wanted) or method.lower() not in self.api.raw_schema["paths"][template]:
                continue
            if all(p == w or p.startswith("{") for p, w in zip(parts, wanted, strict=True)):
                return template, {p[1:-1]: w for p, w in zip(parts, wanted, strict=True) if p.startswith("{")}
        raise AssertionError(f"no operation {method} {path}")


@pytest.fixture(scope="module")
def contract(running_stack: RunningStack) -> Contract:
    return Contract(running_stack)


def _seeded(contract: Contract) -> dict[str, str]:
    """An episode with one of everything, each command's answer checked; the ids its reads take."""
    send = contract.send
    residential = {"ratings": [0, 0, 2, 0, 0, 3], "assessed_by": "clin-1"}
    opened = send(
        "clinician",
        "POST",
        "/api/v1/episodes",
        {"episode_id": EPISODE, "client_id": "client-c", "assessment": residential},
    )
    assert opened.status_code == 201, opened.text
    base = f"/api/v1/episodes/{EPISODE}"
    ordered = send("clinician", "POST", f"{base}/tests", {"ordered_by": "clin-1"})
    test_id = ordered.json()["created"][0]["id"]
    positive = {
        "result": "positive",
        "method": "presumptive",
        "collected_at": datetime.now(UTC).isoformat(),
        "lab_reference": "P-1",
        "substances": ["cocaine"],
    }
    assert send("clinician", "POST", f"{base}/tests/{test_id}/results", positive).status_code == 200
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    session = {"session_id": "s-1", "kind": "group", "starts_at": later, "minutes": 60, "scheduled_by": "clin-1"}
    assert send("clinician", "POST", f"{base}/sessions", session).status_code == 201
    plan = {
        "problems": [{"dimension": 6, "description": "an unstable home"}],
        "goals": [{"goal_id": "g-1", "dimension": 6, "description": "a stable home"}],
        "signed_by": "clin-1",
        "client_signed": True,
    }
    assert send("clinician", "POST", f"{base}/treatment-plan", plan).status_code == 201
    asked = {"payer": "payer-1", "level": "residential", "requested_units": 14, "requested_by": "ur-1"}
    authorization = send("utilization_reviewer", "POST", f"{base}/authorizations", asked)
    assert authorization.status_code == 201, authorization.text
    expires = (datetime.now(UTC) + timedelta(days=300)).isoformat()
    consent = {
        "consent_id": "c-1",
        "recipient": "harbor-house",
        "purpose": "aftercare_referral",
        "expires_at": expires,
        "recorded_by": "clin-1",
    }
    assert send("clinician", "POST", f"{base}/consents", consent).status_code == 201
    aftercare = {"level": "aftercare", "reason": "clinical_judgment", "clinician": "clin-1"}
    moved = send("clinician", "POST", f"{base}/placement-override", aftercare)
    referrals = {r["resource_id"]: r["referral_id"] for r in moved.json()["state"]["referrals"]}
    follow_up = moved.json()["state"]["follow_ups"][0]["follow_up_id"]
    return {
        "test": test_id,
        "authorization": authorization.json()["authorization_id"],
        "referral": referrals["harbor-house"],
        "follow_up": follow_up,
        "session": "s-1",
        "consent": "c-1",
    }


def _ours(path: str) -> bool:
    return not path.startswith(NOT_OURS) and path.startswith(
        ("/api/v1/episodes", "/api/v1/partner", "/api/v1/attendance", "/api/v1/utilization")
    )


def test_every_episode_read_answers_what_the_document_says_to_every_role(contract: Contract) -> None:
    ids = _seeded(contract)
    base = f"/api/v1/episodes/{EPISODE}"
    reads = [
        ("/api/v1/episodes", {}),
        ("/api/v1/episodes", {"level": "aftercare", "page_size": 1}),
        (base, {}),
        (f"{base}/treatment-plan", {}),
        (f"{base}/events", {}),
        (f"{base}/events", {"as_of": datetime.now(UTC).isoformat(), "limit": 3}),
        (f"{base}/access-log", {}),
        (f"{base}/disclosures", {}),
        (f"{base}/export", {"format": "ndjson"}),
        (f"{base}/export", {"format": "fhir"}),
        ("/api/v1/partner/referrals", {}),
        (f"{base}/attendance", {}),
        ("/api/v1/attendance", {"from": "2020-01-01", "to": "2100-01-01"}),
        ("/api/v1/attendance", {"from": "2020-01-01", "to": "2100-01-01", "format": "csv"}),
        (f"{base}/authorizations", {}),
        (f"{base}/authorizations/{ids['authorization']}", {}),
        ("/api/v1/utilization-review", {"days": 30}),
        (f"{base}/tests/{ids['test']}", {}),
        (f"{base}/step-ups/{ids['test']}", {}),
        (f"{base}/follow-ups/{ids['follow_up']}", {}),
        (f"{base}/referrals/{ids['referral']}", {}),
        (f"{base}/sessions/{ids['session']}", {}),
        (f"{base}/consents/{ids['consent']}", {}),
        (f"{base}/reviews/{EPISODE}.R9", {}),
    ]
    answered: dict[tuple[str, str], int] = {}
    for path, query in reads:
        for role in ROLES:
            answered[(path, role)] = contract.send(role, "GET", path, **query).status_code

    assert answered[(base, "director")] == answered[(base, "clinician")] == 200
    assert answered[(f"{base}/tests/{ids['test']}", "lab")] == 200  # the test was sent to lab-1
    assert answered[(f"{base}/referrals/{ids['referral']}", "partner")] == 200  # disclosed to harbor-house
    assert (
        answered[(f"{base}/export", "auditor")] == 200
        and answered[(f"{base}/authorizations", "utilization_reviewer")] == 200
    )
    assert answered[(f"{base}/reviews/{EPISODE}.R9", "director")] == 404
    assert contract.checked >= len(reads) * len(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_no_request_the_document_allows_gets_an_answer_it_does_not_declare(contract: Contract, role: str) -> None:
    """schemathesis's own requests, a few for each episode operation, with each role's key."""
    auth = {"Authorization": f"Bearer {contract.keys[role]}"}
    operations = [r.ok() for r in contract.api.get_all_operations()]
    ours = [op for op in operations if _ours(op.path)]
    for operation in ours:
        _conforms(operation, auth)
    assert len(ours) >= 40


def _conforms(operation: Any, auth: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def conforms(case: Any) -> None:
        _made_own(case)
        response = case.call(headers=auth, timeout=60)
        case.validate_response(response, checks=CHECKS)

    conforms()


def _made_own(case: Any) -> None:
    """The generated episode id, in the path or in the body that opens one, under this module's prefix."""
    if isinstance((case.path_parameters or {}).get("episode_id"), str):
        case.path_parameters["episode_id"] = OWN + case.path_parameters["episode_id"]
    if isinstance(case.body, dict) and isinstance(case.body.get("episode_id"), str):
        case.body["episode_id"] = OWN + case.body["episode_id"]
