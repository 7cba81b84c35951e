"""Authenticated keys are trusted for a short time without a database round trip (issue 21, item 3), and
revocation holds: at once in the process that revokes, within the cache time in any other."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from continuum.access import ApiKeyStore, Role

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_looked_up_once_per_cache_time_and_an_unknown_one_every_time(app_engine: Engine) -> None:
    clock = Clock()
    keys = ApiKeyStore(app_engine, cache_seconds=5, clock=clock)
    key, secret = keys.create("ehr-1", Role.CLINICIAN)

    assert keys.authenticate(secret) == key
    first = keys._cache.copy()
    assert keys.authenticate(secret) == key and keys._cache == first  # answered from the cache
    assert keys.authenticate("ck_unknown") is None and keys.authenticate("ck_unknown") is None
    assert len(keys._cache) == 1  # a key that was not found is never remembered
    assert all(secret.encode() not in digest for digest in keys._cache)  # kept by digest, not the secret
    clock.now += 5.1
    keys.authenticate(secret)
    assert keys._cache[next(iter(keys._cache))][1] == clock.now + 5  # looked up again, trusted anew


def test_revocation_holds_at_once_here_and_within_the_cache_time_elsewhere(app_engine: Engine) -> None:
    clock = Clock()
    here = ApiKeyStore(app_engine, cache_seconds=5, clock=clock)
    elsewhere = ApiKeyStore(app_engine, cache_seconds=5, clock=clock)  # another API process
    key, secret = here.create("lab-1", Role.LAB, "lab-1")
    assert here.authenticate(secret) == key and elsewhere.authenticate(secret) == key

    assert here.revoke(key.key_id)
    assert here.authenticate(secret) is None  # the revoking process refuses it at once
    assert elsewhere.authenticate(secret) == key  # the other trusts its cache for at most 5 s ...
    clock.now += 5.1
    assert elsewhere.authenticate(secret) is None  # ... and then asks, and refuses


def test_no_cache_time_means_every_request_asks(app_engine: Engine) -> None:
    keys = ApiKeyStore(app_engine, cache_seconds=0)
    key, secret = keys.create("dir-1", Role.DIRECTOR)
    assert keys.authenticate(secret) == key
    assert keys._cache == {}
