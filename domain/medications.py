"""The medication catalogue: what a drug test may show while a client takes each medication, and what it must.

Data from the policy (`[medications]`), so a program extends it in its own policy file. A policy from before
the catalogue has none (`catalogue is None`): a prescription then names the substances a test may show, and
only buprenorphine must show, the rules those episodes were started under.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# A substance, an analyte or a medication name as the record keeps it: lower case, letters, digits and a little
# punctuation ("6-beta-naltrexol", "thc (delta-9)").
SUBSTANCE = re.compile(r"[a-z0-9][a-z0-9 ,.'()/-]{0,63}")
LEGACY_REQUIRED = frozenset({"buprenorphine"})  # before the catalogue: the one analyte whose absence was flagged


@dataclass(frozen=True)
class Medication:
    """A medication, the analytes a test may show while the client takes it, and those it must show."""

    name: str
    shows: frozenset[str]
    must_show: frozenset[str]


@dataclass(frozen=True)
class MedicationCatalogue:
    medications: Mapping[str, Medication]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.medications))

    def unknown(self, prescribed: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(name for name in set(prescribed) if name not in self.medications))


def expected_analytes(prescribed: Iterable[str], catalogue: MedicationCatalogue | None) -> frozenset[str]:
    """What a test may show without counting as positive: each medication's analytes (and its own name)."""
    names = frozenset(prescribed)
    if catalogue is None:
        return names
    known = (catalogue.medications[n] for n in names if n in catalogue.medications)
    return names.union(*(m.shows for m in known))


def required_analytes(prescribed: Iterable[str], catalogue: MedicationCatalogue | None) -> frozenset[str]:
    """What an analysed specimen must show while the client takes `prescribed`: an absent one is flagged."""
    names = frozenset(prescribed)
    if catalogue is None:
        return names & LEGACY_REQUIRED
    known = (catalogue.medications[n] for n in names if n in catalogue.medications)
    return frozenset().union(*(m.must_show for m in known))
