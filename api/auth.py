"""Bearer API keys, one role each; what each role may do is decided here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request

from continuum.access import ApiKey, ApiKeyStore, Role


def authenticated(request: Request) -> ApiKey:
    """The caller's key, or 401. (A sync dependency: FastAPI runs it on its thread pool.)"""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise HTTPException(401, "an API key is required: Authorization: Bearer <key>")
    keys: ApiKeyStore = request.app.state.services.keys
    key = keys.authenticate(secret.strip())
    if key is None:
        raise HTTPException(401, "the API key is not valid or was revoked")
    return key


def allow(*roles: Role) -> Callable[[ApiKey], ApiKey]:
    names = ", ".join(r.value for r in roles)

    def check(key: ApiKey = Depends(authenticated)) -> ApiKey:
        if key.role not in roles:
            raise HTTPException(403, f"the {key.role.value} role may not do this (allowed: {names})")
        return key

    return check


READ_EPISODES = allow(Role.DIRECTOR, Role.CLINICIAN)
ATTENDANCE = allow(Role.DIRECTOR, Role.AUDITOR, Role.CLINICIAN)  # a lab or partner never sees sessions
READ_RECORD = allow(Role.DIRECTOR, Role.AUDITOR)  # full event histories: recorded as an access
CENSUS = allow(Role.DIRECTOR)
SIMULATIONS = allow(Role.DIRECTOR)  # a proposed policy tried on every recorded episode
COMMANDS = allow(Role.CLINICIAN)
RESULTS = allow(Role.CLINICIAN, Role.LAB)
REFERRAL_ANSWERS = allow(Role.CLINICIAN, Role.PARTNER)
PARTNERS = allow(Role.PARTNER)
AUDIT = allow(Role.AUDITOR, Role.DIRECTOR)
ADMIN = allow(Role.ADMIN)
