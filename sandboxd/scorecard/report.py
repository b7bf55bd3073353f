"""Build a scorecard (a JSON-ready dict) from a ledger store, and the drift score the throttle consumes.

The store is read only through the ``LedgerStore`` Protocol (``entries``, ``checkpoints``, ``vkey``,
``origin``), so SQLite and PostgreSQL ledgers give the same scorecard. docs/scorecards.md explains every
field.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from datetime import UTC, datetime
from typing import Any

from sandboxd.curriculum import analysis, sampling
from sandboxd.curriculum.analysis import Curriculum
from sandboxd.curriculum.items import Record, decode, proposals
from sandboxd.ledger import families
from sandboxd.ledger.entry import now
from sandboxd.ledger.store import LedgerStore

from . import integrity, sections, stats
from .windows import DEFAULT_BASELINE, DEFAULT_WINDOW, Span, resolve

SCHEMA_VERSION = 1
log = logging.getLogger(__name__)


def _window(span: Span, records: list[Record]) -> dict[str, Any]:
    chosen = records[span.start : span.stop]
    return {
        "spec": span.spec,
        "entries": len(chosen),
        "first_seq": chosen[0].seq if chosen else None,
        "last_seq": chosen[-1].seq if chosen else None,
        "start_time": chosen[0].time if chosen else None,
        "end_time": chosen[-1].time if chosen else None,
        "kinds": stats.kinds(chosen),
    }


def _family_set(
    store: LedgerStore, curriculum: Curriculum, tree_size: int, ranked: list[dict[str, Any]], record: bool
) -> dict[str, Any]:
    """Record the family of each analysed program as a family set, and give each family its ref.

    The ref (``<set>:<family>``) is what ``GET /v1/ledger/entries?family=`` takes. A ledger the scorecard
    cannot write to (a read-only replica) still gets its scorecard, with ``ref`` null and the reason.
    """
    members = {
        families.program_digest(program): label
        for program, label in zip(curriculum.programs, curriculum.clustering.labels, strict=True)
    }
    found = families.family_set(members, created=now(), tree_size=tree_size)
    error = None if record else "not recorded (--no-record-families)"
    if record:
        try:
            store.record_families(found)
        except Exception as exc:  # any backend's write error: the scorecard is still useful without refs
            log.warning("scorecard: cannot record family set %s: %s", found.id, exc)
            error = f"not recorded: {exc}"
    for row in ranked:
        row["ref"] = families.ref(found.id, row["id"]) if error is None else None
        row["entries_url"] = None if row["ref"] is None else f"/v1/ledger/entries?family={row['ref']}"
    return {"id": found.id if error is None else None, "programs": len(members), "error": error}


def build_scorecard(
    store: LedgerStore,
    *,
    window: str = DEFAULT_WINDOW,
    baseline: str = DEFAULT_BASELINE,
    source: str = "",
    verify: bool = True,
    record_families: bool = True,
) -> dict[str, Any]:
    """The scorecard of ``store``: ``window`` is the current window, compared against ``baseline``.

    ``source`` names the ledger in the report (pass a redacted URL). ``verify`` also runs the full
    ``sandboxd ledger verify`` (a second pass over the entries). ``record_families`` stores the family
    set next to the ledger, so the auditor API can filter by the families this scorecard shows.
    """
    rows = list(store.entries())
    checkpoints = store.checkpoints()
    loaded = decode(rows)
    records = loaded.records
    current_span = resolve(window, records)
    baseline_span = resolve(baseline, records, before=current_span.start)
    all_current = list(proposals(records[current_span.start : current_span.stop]))
    all_reference = list(proposals(records[baseline_span.start : baseline_span.stop]))
    all_proposals = list(proposals(records))
    # Large windows are analysed through bounded uniform samples (sandboxd/curriculum/sampling.py).
    current, reference = sampling.uniform(all_current), sampling.uniform(all_reference)
    everything = sampling.uniform(all_proposals)
    curriculum = analysis.build(sampling.union(reference, current, everything))
    novelty = analysis.novelty(curriculum, current, reference)
    drift = analysis.compare(curriculum, reference, current)
    cur_records = records[current_span.start : current_span.stop]
    base_records = records[baseline_span.start : baseline_span.stop]
    ranked = sections.top_families(sections.ranked_families(curriculum, reference, current, novelty))
    family_set = _family_set(store, curriculum, len(rows), ranked, record_families)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ledger": {
            "source": source,
            "origin": store.origin,
            "entries": len(rows),
            "malformed_entries": loaded.malformed,
            "kinds": stats.kinds(records),
        },
        "windows": {"baseline": _window(baseline_span, records), "current": _window(current_span, records)},
        "volume": {"baseline": stats.volume(base_records), "current": stats.volume(cur_records)},
        "watchdog": {"baseline": stats.watchdog(base_records), "current": stats.watchdog(cur_records)},
        "tripwires": stats.tripwires(records),
        "throttle": {"history": stats.throttle(records)},
        "complexity": {
            "baseline": sections.complexity(curriculum, reference),
            "current": sections.complexity(curriculum, current),
        },
        "diversity": {
            "baseline": analysis.diversity(curriculum, reference),
            "current": analysis.diversity(curriculum, current),
        },
        "novelty": {
            "reference": "baseline",
            "mean": statistics.fmean(novelty) if novelty else None,
            "novel_rate": sum(s == 1.0 for s in novelty) / len(novelty) if novelty else None,
        },
        "drift": dataclasses.asdict(drift),
        "families": ranked,
        "family_set": family_set,
        "trends": sections.trends(curriculum, everything),
        "sampling": sampling.summary(
            {
                "baseline": (len(all_reference), len(reference)),
                "current": (len(all_current), len(current)),
                "trends": (len(all_proposals), len(everything)),
            }
        ),
        "merkle": {
            **integrity.merkle_section(rows, checkpoints),
            "verify": integrity.verification(store) if verify else None,
        },
    }


def drift_score(
    store: LedgerStore, *, window: str = DEFAULT_WINDOW, baseline: str = DEFAULT_BASELINE
) -> float:
    """The curriculum drift score in [0, 1] (``curriculum.drift``), for the throttle's ``observe_drift``."""
    records = decode(store.entries()).records
    current_span = resolve(window, records)
    baseline_span = resolve(baseline, records, before=current_span.start)
    current = sampling.uniform(list(proposals(records[current_span.start : current_span.stop])))
    reference = sampling.uniform(list(proposals(records[baseline_span.start : baseline_span.stop])))
    curriculum = analysis.build([*reference, *current])
    return analysis.compare(curriculum, reference, current).score
