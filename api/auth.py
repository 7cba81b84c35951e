"""Bearer API keys, one role each; what each role may do or see is decided here and nowhere else.

Each rule below is one `Allowed`: the API's routes take it as a dependency (`Depends(READ_EPISODES)`), and the
dashboard asks the same object (`READ_EPISODES.permits(key)`, `READ_EPISODES.refuse_unless(key)`), so a role
refused a read by the API is refused the same data on the dashboard, with the same answer.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from continuum.access import ApiKey, ApiKeyStore, Role

# Declares bearer security in the OpenAPI document; the header is read (and refused with our own 401) below.
BEARER = HTTPBearer(auto_error=False, description="an API key made with `continuum keys create`")


async def authenticated(request: Request, declared: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> ApiKey:
    """The caller's key, or 401. A key this process trusts still is answered on the event loop; only a look-up
    in the database goes to the thread pool (a hop to it and back costs more than the check itself)."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise HTTPException(401, "an API key is required: Authorization: Bearer <key>")
    keys: ApiKeyStore = request.app.state.services.keys
    key = keys.cached(secret.strip()) or await run_in_threadpool(keys.authenticate, secret.strip())
    if key is None:
        raise HTTPException(401, "the API key is not valid or was revoked")
    return key


class Allowed:
    """The roles that may do one thing; as a dependency, the authenticated caller if its role is one of them."""

    def __init__(self, *roles: Role, whole_operator: bool = False) -> None:
        self.roles = frozenset(roles)
        self._names = ", ".join(r.value for r in roles)
        self.whole_operator = whole_operator  # it reads every facility's record: no key scoped to some may

    def permits(self, key: ApiKey) -> bool:
        return key.role in self.roles and not (self.whole_operator and key.facilities is not None)

    def refuse_unless(self, key: ApiKey) -> ApiKey:
        """The key, or 403 naming the roles that may (or saying it reads the whole operator's record)."""
        if key.role not in self.roles:
            raise HTTPException(403, f"the {key.role.value} role may not do this (allowed: {self._names})")
        if not self.permits(key):
            raise HTTPException(403, "a key scoped to facilities may not do this: it reads the whole operator's record")
        return key

    async def __call__(self, key: ApiKey = Depends(authenticated)) -> ApiKey:  # async: no thread for a check
        return self.refuse_unless(key)


def allow(*roles: Role, whole_operator: bool = False) -> Allowed:
    return Allowed(*roles, whole_operator=whole_operator)


READ_EPISODES = allow(Role.DIRECTOR, Role.CLINICIAN)  # an episode's current state and the lists of episodes
ATTENDANCE = allow(Role.DIRECTOR, Role.AUDITOR, Role.CLINICIAN)  # a lab or partner never sees sessions
TREATMENT_PLANS = allow(Role.DIRECTOR, Role.AUDITOR, Role.CLINICIAN)  # nor a treatment plan
REPORT = allow(Role.DIRECTOR, Role.AUDITOR)  # the attendance report (no billing role yet); never a lab or partner
READ_RECORD = allow(Role.DIRECTOR, Role.AUDITOR)  # full event histories: recorded as an access
CENSUS = allow(Role.DIRECTOR)  # the census and the alerts
SIMULATIONS = allow(Role.DIRECTOR, whole_operator=True)  # a proposed policy tried on every recorded episode
COMMANDS = allow(Role.CLINICIAN)
RESULTS = allow(Role.CLINICIAN, Role.LAB)
REFERRAL_ANSWERS = allow(Role.CLINICIAN, Role.PARTNER)
PARTNERS = allow(Role.PARTNER)
AUDIT = allow(Role.AUDITOR, Role.DIRECTOR)
MEASURES = allow(Role.DIRECTOR, Role.AUDITOR)  # aggregate outcomes: never a lab, a partner or a clinician's key
ADMIN = allow(Role.ADMIN)
# Payer authorizations: the utilization reviewer records them; it, a director and an auditor read them (the levels
# and authorizations only, never clinical content); a lab or a partner never sees them.
AUTHORIZATIONS = allow(Role.UTILIZATION_REVIEWER)
UTILIZATION = allow(Role.DIRECTOR, Role.AUDITOR, Role.UTILIZATION_REVIEWER)
# The rules decisions were made under: no client data, so every role that receives decisions may read them.
POLICY = allow(Role.DIRECTOR, Role.CLINICIAN, Role.AUDITOR, Role.LAB, Role.PARTNER)
# The event feed: every role that reads episode data, each seeing what `api/feed.py` and `domain/feed.py` allow
# it (a lab its own tests, a partner the referrals disclosed to it); an admin manages keys, never reads events.
FEED = allow(Role.DIRECTOR, Role.AUDITOR, Role.CLINICIAN, Role.LAB, Role.PARTNER)


# -- scope: the facilities a key (and a dashboard session, which is its key's) sees and acts on ----------------


def facility_scope(key: ApiKey) -> frozenset[str] | None:
    """The facilities `key` may see and act on; None: the whole operator. Every read passes this to its query."""
    return key.facilities


def sees_facility(key: ApiKey, facility_id: str) -> bool:
    scope = facility_scope(key)
    return scope is None or facility_id in scope


def sees_episode(key: ApiKey, request: Request, episode_id: str) -> bool:
    """Whether the episode is inside the key's scope (an episode that does not exist is left to the route's own
    404: it is no one's)."""
    if facility_scope(key) is None:
        return True
    facility = request.app.state.services.reads.facility(episode_id)
    return facility is None or sees_facility(key, facility)


def refuse_outside_scope(key: ApiKey, request: Request, episode_id: str) -> None:
    """404, as if it did not exist, for an episode at a facility outside the key's scope."""
    if not sees_episode(key, request, episode_id):
        raise HTTPException(404, f"no episode {episode_id}")


async def episode_scope(request: Request, key: ApiKey = Depends(authenticated)) -> None:
    """Every route with an `{episode_id}` takes this (app.py puts it on the routers): one check for them all,
    which reads the database (on the thread pool) only for a key scoped to some facilities."""
    episode_id = request.path_params.get("episode_id")
    if isinstance(episode_id, str) and facility_scope(key) is not None:
        await run_in_threadpool(refuse_outside_scope, key, request, episode_id)


EPISODE_SCOPE = Depends(episode_scope)
