"""Family sets: which task family each program belongs to, as one scorecard's clustering found it.

Families are computed by the scorecard (``sandboxd.curriculum.families``), and their numbers are only
meaningful within one clustering: ``F3`` of today's scorecard is not ``F3`` of yesterday's. A scorecard
therefore records its assignment, the family of each distinct program it analysed keyed by the program's
SHA-256 (``program_digest``), as a **family set** in two small tables next to the ledger (``family_sets``,
``family_members``). The set's id is a hash of the assignment, so the same clustering is recorded once.

An auditor names a family by its **ref**, ``<set id>:<family id>`` (shown in the scorecard's JSON and
HTML), and ``GET /v1/ledger/entries?family=<ref>`` lists the entries whose ``program`` hashes to one of
that family's programs: the proposals and the solver answers checked against them. Family sets are query
aids, not evidence: they live outside the Merkle-hashed entries, and ``verify`` never reads them. The
newest ``KEEP_SETS`` sets are kept; an older ref gets a clear 404.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .entry import canonical_json

KEEP_SETS = 200  # family sets kept per ledger; older ones are pruned when a new one is recorded
SET_ID_HEX = 16
REF_PATTERN = r"^[0-9a-f]{16}:-?\d{1,6}$"
_REF = re.compile(REF_PATTERN)


class FamilyRefError(ValueError):
    """Text that is not a family ref (``<16 hex digits>:<family id>``)."""


def program_digest(program: str) -> str:
    """The hex SHA-256 of a program text (UTF-8; lone surrogates kept, as JSON may carry them)."""
    return hashlib.sha256(program.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class FamilySet:
    """One scorecard's family of each program it analysed. ``tree_size``: the ledger's size at the time."""

    id: str
    created: str
    tree_size: int
    members: Mapping[str, int]  # program digest -> family id (-1: in no family)

    def families(self) -> list[int]:
        """The family ids that have members, in order."""
        return sorted(set(self.members.values()))


@dataclass(frozen=True)
class FamilySetInfo:
    """What the store knows about a recorded set, without its members."""

    id: str
    created: str
    tree_size: int
    families: tuple[int, ...]


def family_set(members: Mapping[str, int], *, created: str, tree_size: int) -> FamilySet:
    """A family set whose id is a hash of the assignment (the same clustering gets the same id)."""
    digest = hashlib.sha256(canonical_json(sorted(members.items()))).hexdigest()
    return FamilySet(digest[:SET_ID_HEX], created, tree_size, dict(members))


def ref(set_id: str, family: int) -> str:
    """The name an auditor passes as ``?family=``."""
    return f"{set_id}:{family}"


def parse_ref(text: str) -> tuple[str, int]:
    """The set id and family id of a ref."""
    if not _REF.match(text):
        raise FamilyRefError(f"{text!r} is not a family ref: use <family set>:<family id> from a scorecard")
    set_id, _, family = text.partition(":")
    return set_id, int(family)


def encode_families(families: list[int]) -> str:
    """The ``family_sets.families`` column: the ids, space-separated."""
    return " ".join(str(f) for f in families)


def decode_families(text: str) -> tuple[int, ...]:
    """The ids of an ``encode_families`` column."""
    return tuple(int(f) for f in text.split())
