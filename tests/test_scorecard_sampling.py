"""Scorecards of large curricula analyse bounded uniform samples: deterministic, exact where they can be,
and still finding a planted family and its drift."""

from __future__ import annotations

import random
from typing import Any

import pytest
from curriculum_data import HOSTILE, entries, planted_programs, pool, sample

from sandboxd.curriculum import sampling
from sandboxd.curriculum.drift import FLAG
from sandboxd.curriculum.items import Record
from sandboxd.ledger.sqlite import SqliteLedgerStore
from sandboxd.scorecard.render import render_html
from sandboxd.scorecard.report import build_scorecard

N = 600
CAP = 250


def _records(n: int) -> list[Record]:
    return [Record(seq, "task_proposed", "t", {"program": f"p{seq}"}) for seq in range(n)]


def test_uniform_sample_is_bounded_deterministic_and_in_order() -> None:
    """Above the cap, a fixed subset of exactly ``cap`` records in seq order; at or below it, everything."""
    items = _records(1000)
    chosen = sampling.uniform(items, 100)
    assert len(chosen) == 100
    assert [r.seq for r in chosen] == sorted(r.seq for r in chosen)
    assert chosen == sampling.uniform(list(reversed(items)), 100)
    assert sampling.uniform(items[:100], 100) == items[:100]
    assert 350 < sum(r.seq < 500 for r in sampling.uniform(items, 800)) < 450  # spread over the whole window


def test_union_keeps_each_record_once_in_seq_order() -> None:
    """The analysed set is the union of the samples, in seq order."""
    items = _records(10)
    assert sampling.union(items[5:], items[:3], items[2:7]) == items


def test_bounds_are_reported() -> None:
    """The DKW band and the standard-error bound shrink with the sample and vanish without sampling."""
    assert sampling.dkw_epsilon(5000) == pytest.approx(0.0192, abs=1e-4)
    summary = sampling.summary({"current": (10_000, 5000), "baseline": (300, 300)})
    assert summary["applied"]
    assert summary["current"]["share_standard_error_max"] == pytest.approx(0.00707, abs=1e-5)
    assert summary["baseline"]["dkw_epsilon_95"] == 0.0


@pytest.fixture(scope="module")
def sampled_card(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A curriculum of 2 x 600 proposals (a new family at 30% in the current half), analysed with a cap of 250."""
    programs = pool()
    rng = random.Random(11)
    new_family = planted_programs(150)
    current = [rng.choice(new_family) if rng.random() < 0.3 else rng.choice(programs) for _ in range(N)]
    path = tmp_path_factory.mktemp("sampled") / "ledger.db"
    store = SqliteLedgerStore(path)
    store.append_many(entries(sample(programs, N, 2)))
    store.append_many(entries(current))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sampling, "CAP", CAP)
        card = build_scorecard(store, baseline=f"seq::{N}", window=f"seq:{N}:", verify=False)
        again = build_scorecard(store, baseline=f"seq::{N}", window=f"seq:{N}:", verify=False)
    store.close()
    assert {k: v for k, v in card.items() if k != "generated_at"} == {
        k: v for k, v in again.items() if k != "generated_at"
    }
    return card


def test_sampled_scorecard_finds_the_planted_drift(sampled_card: dict[str, Any]) -> None:
    """With each window cut to 250 of its 600 proposals, the new family still tops the ranking and drift is flagged."""
    card = sampled_card
    assert card["sampling"]["applied"]
    assert card["sampling"]["current"] == {
        "proposals": N, "analysed": CAP, "share_standard_error_max": pytest.approx(0.5 / CAP**0.5),
        "dkw_epsilon_95": pytest.approx(sampling.dkw_epsilon(CAP)),
    }  # fmt: skip
    assert card["drift"]["flagged"]
    assert card["drift"]["score"] >= FLAG
    top = card["families"][0]
    assert top["baseline_share"] == 0.0
    assert top["growth"] > 0
    assert all(HOSTILE in p for p in top["examples"])


def test_counts_that_need_no_features_stay_exact(sampled_card: dict[str, Any]) -> None:
    """Volume is counted over every entry, not over the sample."""
    assert sum(row["proposed"] for row in sampled_card["volume"]["current"].values()) == N
    assert sampled_card["windows"]["current"]["entries"] == N
    assert sum(b["items"] for b in sampled_card["trends"]) == CAP


def test_html_says_the_figures_are_sampled(sampled_card: dict[str, Any]) -> None:
    """The HTML report tells its reader which sections are estimates, and from how many proposals."""
    page = render_html(sampled_card)
    assert "Sampled:" in page
    assert f"current {CAP} of {N}" in page
