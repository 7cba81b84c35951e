"""The rules are readable: the policy this API opens episodes under, and any version decisions name."""

from __future__ import annotations

import tomllib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from continuum.access import ApiKey
from continuum.api.auth import POLICY
from continuum.api.params import services_of
from continuum.api.service_models import CurrentPolicyAnswer, PolicyAnswer
from continuum.domain.policy import load_policy
from continuum.eventlog.policies import PolicyRegistry, RegisteredPolicy

router = APIRouter(prefix="/api/v1", tags=["policy"])
Version = Annotated[str, Path(pattern=r"^sha256:[0-9a-f]{16}$", description="a decision event's policy_version")]


def _body(policy: RegisteredPolicy, current: str) -> dict[str, Any]:
    return {
        "version": policy.version,
        "current": policy.version == current,
        "registered_at": policy.registered_at.isoformat(),
        "rules": tomllib.loads(policy.text),
        "text": policy.text,
    }


@router.get("/policy", response_model=CurrentPolicyAnswer)
def current_policy(request: Request, caller: ApiKey = Depends(POLICY)) -> dict[str, Any]:
    """The policy new episodes are opened under: its version, its rules (the TOML as JSON) and its text."""
    services = services_of(request)
    registry = PolicyRegistry(services.store.engine)
    version = load_policy(services.episodes.policy_text).version
    policy = registry.get(version)
    if policy is None:  # registered at start; a database restored from before that is the only way here
        version = registry.register(services.episodes.policy_text)
        policy = registry.get(version)
    assert policy is not None
    return {**_body(policy, version), "versions": [v for v, _ in registry.versions()]}


@router.get("/policy/{version}", response_model=PolicyAnswer)
def policy_version(request: Request, version: Version, caller: ApiKey = Depends(POLICY)) -> dict[str, Any]:
    """The policy a decision event names by its `policy_version`."""
    services = services_of(request)
    policy = PolicyRegistry(services.store.engine).get(version)
    if policy is None:
        raise HTTPException(404, f"no policy {version} is registered (it was not in use since policies are kept)")
    return _body(policy, load_policy(services.episodes.policy_text).version)
