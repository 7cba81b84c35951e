"""The resource directory: where aftercare referrals go, and who each resource is for. Data, validated on load.

A resource may name a partner (the recipient of what a referral discloses; a partner API key speaks for
it) and an endpoint the referral is POSTed to. A resource without a partner (an open meeting) discloses
nothing: the client is simply given the referral.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from continuum.domain.aftercare import ResourceType
from continuum.domain.errors import PolicyError

DIMENSIONS = {
    "acute_intoxication_withdrawal": 1,
    "biomedical_conditions": 2,
    "emotional_behavioural_cognitive": 3,
    "readiness_to_change": 4,
    "relapse_potential": 5,
    "recovery_environment": 6,
}
_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
NARR_LEVELS = {1: "I", 2: "II", 3: "III", 4: "IV"}


@dataclass(frozen=True)
class Eligibility:
    """All that is given must hold: one of the medications on the active list, each rating at least so much."""

    on_medication: tuple[str, ...] = ()
    ratings_at_least: tuple[tuple[int, int], ...] = ()  # (dimension, rating)

    def admits(self, ratings: tuple[int, ...] | None, medications: tuple[str, ...]) -> bool:
        if self.on_medication and not set(self.on_medication) & set(medications):
            return False
        if self.ratings_at_least and ratings is None:
            return False
        return all(ratings is not None and ratings[d - 1] >= at_least for d, at_least in self.ratings_at_least)


@dataclass(frozen=True)
class Resource:
    resource_id: str
    type: ResourceType
    name: str
    eligibility: Eligibility = Eligibility()
    partner: str | None = None
    endpoint: str | None = None
    narr_level: int | None = None  # sober living: the NARR level, 1-4 (I-IV)


@dataclass(frozen=True)
class ResourceDirectory:
    version: str
    resources: tuple[Resource, ...]

    def get(self, resource_id: str) -> Resource | None:
        return next((r for r in self.resources if r.resource_id == resource_id), None)

    def fitting(self, ratings: tuple[int, ...] | None, medications: tuple[str, ...]) -> list[Resource]:
        """Every resource the client is eligible for, in the directory's order (its order of preference)."""
        return [r for r in self.resources if r.eligibility.admits(ratings, medications)]


def default_directory_text() -> str:
    return resources.files("continuum.domain").joinpath("directory.toml").read_text(encoding="utf-8")


def load_directory(text: str | None = None) -> ResourceDirectory:
    """Parse and validate a directory file's text (the default one if None); errors name the entry."""
    text = default_directory_text() if text is None else text
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"the resource directory is not valid TOML: {error}") from None
    items = raw.get("resources")
    if not isinstance(items, list) or not items:
        raise PolicyError("the resource directory needs at least one [[resources]] entry")
    parsed = [_resource(f"resources[{index}]", item) for index, item in enumerate(items)]
    ids = [r.resource_id for r in parsed]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate:
        raise PolicyError(f"resource directory: the id {duplicate!r} is used twice")
    version = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return ResourceDirectory(version, tuple(parsed))


def _resource(where: str, item: Any) -> Resource:
    if not isinstance(item, dict):
        raise PolicyError(f"resource directory {where} must be a table")
    known = {"id", "type", "name", "eligibility", "partner", "endpoint", "narr_level"}
    unknown = sorted(set(item) - known)
    if unknown:
        raise PolicyError(f"resource directory {where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    resource_id, name = item.get("id"), item.get("name")
    if not isinstance(resource_id, str) or not _ID.fullmatch(resource_id):
        raise PolicyError(f"resource directory {where}.id must be 1-64 lower-case letters, digits, '.', '_' or '-'")
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise PolicyError(f"resource directory {where}.name must be text of 1-200 characters")
    try:
        kind = ResourceType(str(item.get("type")))
    except ValueError:
        allowed = ", ".join(t.value for t in ResourceType)
        raise PolicyError(f"resource directory {where}.type must be one of {allowed}") from None
    partner, endpoint = item.get("partner"), item.get("endpoint")
    if partner is not None and (not isinstance(partner, str) or not _ID.fullmatch(partner)):
        raise PolicyError(
            f"resource directory {where}.partner must be a partner id (lower-case letters, digits, '.', '_', '-')"
        )
    if endpoint is not None:
        if partner is None:
            raise PolicyError(f"resource directory {where}.endpoint needs a partner: a POST discloses to someone")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise PolicyError(f"resource directory {where}.endpoint must be an http:// or https:// URL")
    narr = item.get("narr_level")
    if (kind is ResourceType.SOBER_LIVING) != (narr is not None):
        raise PolicyError(f"resource directory {where}.narr_level (1-4) is given for sober living, and only for it")
    if narr is not None and narr not in NARR_LEVELS:
        raise PolicyError(f"resource directory {where}.narr_level must be a NARR level 1-4 (I-IV), not {narr!r}")
    return Resource(
        resource_id,
        kind,
        name,
        _eligibility(f"{where}.eligibility", item.get("eligibility", {})),
        partner,
        endpoint,
        narr,
    )


def _eligibility(where: str, raw: Any) -> Eligibility:
    if not isinstance(raw, dict) or set(raw) - {"on_medication", "ratings_at_least"}:
        raise PolicyError(f"resource directory {where} may give on_medication and ratings_at_least, nothing else")
    medications = raw.get("on_medication", [])
    if not isinstance(medications, list) or not all(isinstance(m, str) and m.strip() for m in medications):
        raise PolicyError(f"resource directory {where}.on_medication must be a list of medication names")
    ratings = raw.get("ratings_at_least", {})
    if not isinstance(ratings, dict):
        raise PolicyError(f"resource directory {where}.ratings_at_least must be a table of dimension = rating")
    pairs = []
    for name, rating in ratings.items():
        if name not in DIMENSIONS:
            raise PolicyError(f"resource directory {where}.ratings_at_least.{name}: not one of {', '.join(DIMENSIONS)}")
        if isinstance(rating, bool) or rating not in range(0, 5):
            raise PolicyError(f"resource directory {where}.ratings_at_least.{name} must be a rating 0-4")
        pairs.append((DIMENSIONS[name], rating))
    return Eligibility(tuple(sorted(m.strip().lower() for m in medications)), tuple(sorted(pairs)))
