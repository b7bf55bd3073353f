"""Scorecards over real ledgers filled with real programs: planted drift, no false alarm, and the report."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from curriculum_data import HOSTILE, Program, cruxeval_kind, entries, planted_programs, pool, proposal, sample

from sandboxd.cli import main
from sandboxd.curriculum.drift import FLAG
from sandboxd.curriculum.items import Record
from sandboxd.ledger.entry import Kind
from sandboxd.ledger.note import Signer
from sandboxd.ledger.postgres import PostgresLedgerStore
from sandboxd.ledger.sqlite import SqliteLedgerStore
from sandboxd.scorecard.render import render_html
from sandboxd.scorecard.report import build_scorecard, drift_score
from sandboxd.scorecard.windows import WindowError, resolve

N = 1000  # proposals per window
PLANTED_SHARE = 0.3


def _checks(task_type: str, count: int, correct_every: int) -> list[tuple[Kind, dict[str, Any]]]:
    return [
        (
            Kind.ANSWER_CHECKED,
            {"request_id": "r", "task_type": task_type, "correct": i % correct_every == 0, "reward": 1.0,
             "decision": {"decision": "allow", "findings": []}, "extra_field": [1, 2]},
        )
        for i in range(count)
    ]  # fmt: skip


def _verdicts(vetoes: int, warns: int, allows: int) -> list[tuple[Kind, dict[str, Any]]]:
    veto = {"decision": "veto", "findings": [{"rule_id": "no-subprocess", "severity": "high", "mode": "enforce"},
                                             {"rule_id": "audit-open", "severity": "low", "mode": "audit"}]}  # fmt: skip
    warn = {
        "decision": "warn",
        "findings": [{"rule_id": "nondeterminism", "severity": "medium", "mode": "warn"}],
    }
    out = []
    for decision, count in ((veto, vetoes), (warn, warns), ({"decision": "allow", "findings": []}, allows)):
        out += [(Kind.VERDICT, {"endpoint": "/v1/runs", "status": "ok", "decision": decision})] * count
    return out


def build_ledger(path: Path, baseline: list[Program], current: list[Program], *, extras: bool) -> int:
    """A signed SQLite ledger: the baseline window's entries, a checkpoint, then the current window's.

    Returns the seq where the current window starts.
    """
    store = SqliteLedgerStore(path, signer=Signer.from_file("sandboxd/ledger", path.with_suffix(".key")))
    try:
        store.append_many(entries(baseline))
        if extras:
            store.append_many(_checks("deduction", 200, 4))
            store.append_many(_verdicts(0, 0, 100))
            store.append_many([(Kind.THROTTLE_CHANGE, {"band": "normal", "confidence": 0.95})])
        store.checkpoint()
        boundary = store.size()
        store.append_many(entries(current))
        if extras:
            store.append_many(_checks("deduction", 200, 2))
            store.append_many(_checks(HOSTILE, 3, 1))
            store.append_many(_verdicts(10, 5, 85))
            store.append_many([(Kind.TRIPWIRE, {"rule": "honeytoken-read", "request_id": "r"})] * 3)
            store.append_many([(Kind.TRIPWIRE, {"rule": HOSTILE}), (Kind.TRIPWIRE, {})])
            for band, confidence in (("slow", 0.7), ("paused", 0.4), ("slow", 0.6)):
                store.append_many([(Kind.THROTTLE_CHANGE, {"band": band, "confidence": confidence})])
            store.append_many([(Kind.THROTTLE_CHANGE, {"band": "bogus"})])
            store.checkpoint()
            store.append_many([proposal(current[0])] * 2)  # after the last checkpoint
    finally:
        store.close()
    return boundary


@pytest.fixture(scope="module")
def programs() -> list[Program]:
    return pool()


@pytest.fixture(scope="module")
def planted(programs: list[Program], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Baseline: AZR and CRUXEval; current: the same mix with 30% from a new bit-twiddling family."""
    new_family = planted_programs(150)
    rng = random.Random(5)
    current = [
        rng.choice(new_family) if rng.random() < PLANTED_SHARE else rng.choice(programs) for _ in range(N)
    ]
    path = tmp_path_factory.mktemp("planted") / "ledger.db"
    boundary = build_ledger(path, sample(programs, N, 1), current, extras=True)
    return path, f"seq::{boundary}", f"seq:{boundary}:"


@pytest.fixture(scope="module")
def card(planted: tuple[Path, str, str]) -> dict[str, Any]:
    path, baseline, window = planted
    store = SqliteLedgerStore(path)
    try:
        started = time.perf_counter()
        result = build_scorecard(store, baseline=baseline, window=window, source=str(path))
        result["_seconds"] = time.perf_counter() - started
    finally:
        store.close()
    return result


def test_planted_family_is_found_and_drift_flagged(card: dict[str, Any]) -> None:
    """A new family growing to 30% of proposals is flagged, and tops the families ranked by growth."""
    assert card["drift"]["flagged"]
    assert card["drift"]["score"] >= FLAG
    assert card["drift"]["family_component"] > 0.2
    top = card["families"][0]
    assert top["baseline_share"] == 0.0
    assert top["current_share"] > 0.03
    assert top["growth"] > 0
    assert all("bits" in p or "mask" in p or "acc" in p or "reg" in p or "val" in p or "word" in p or "flags" in p or "shift" in p
               for p in top["examples"])  # fmt: skip
    assert all(HOSTILE in p for p in top["examples"])  # the examples are the planted programs
    planted_share = sum(
        f["current_share"] for f in card["families"] if all(HOSTILE in p for p in f["examples"])
    )
    assert planted_share > 0.5 * PLANTED_SHARE
    assert top["novelty"] == 1.0
    assert card["novelty"]["novel_rate"] >= PLANTED_SHARE * 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unshifted_curriculum_does_not_alarm(programs: list[Program], tmp_path: Path, seed: int) -> None:
    """Two independent draws from the same mix of real programs are not flagged."""
    boundary = build_ledger(
        tmp_path / "l.db", sample(programs, N, seed), sample(programs, N, seed + 100), extras=False
    )
    store = SqliteLedgerStore(tmp_path / "l.db")
    try:
        result = build_scorecard(store, baseline=f"seq::{boundary}", window=f"seq:{boundary}:", verify=False)
        score = drift_score(store, baseline=f"seq::{boundary}", window=f"seq:{boundary}:")
    finally:
        store.close()
    assert not result["drift"]["flagged"], result["drift"]
    assert result["drift"]["score"] < FLAG / 2
    assert score == pytest.approx(result["drift"]["score"])


def test_shift_towards_string_programs_is_flagged(programs: list[Program], tmp_path: Path) -> None:
    """Moving the mix to 80% CRUXEval string programs is flagged, and string families grow."""
    strings = [p for p in programs if p.source == "cruxeval" and cruxeval_kind(p.code) == "string"]
    rng = random.Random(3)
    current = [rng.choice(strings) if rng.random() < 0.8 else rng.choice(programs) for _ in range(N)]
    boundary = build_ledger(tmp_path / "l.db", sample(programs, N, 4), current, extras=False)
    store = SqliteLedgerStore(tmp_path / "l.db")
    try:
        result = build_scorecard(store, baseline=f"seq::{boundary}", window=f"seq:{boundary}:", verify=False)
    finally:
        store.close()
    assert result["drift"]["flagged"], result["drift"]
    growing = [f for f in result["families"][:3] if f["id"] != -1]
    text_like = ("text", "s", "string", "st", "char", "<str>", "replace", "Slice")
    assert all(any(t in f["top_features"] for t in text_like) for f in growing)


def test_volume_validity_and_solve_rates(card: dict[str, Any]) -> None:
    """Per task type: proposals, validity and solve rates per window."""
    base, cur = card["volume"]["baseline"], card["volume"]["current"]
    assert sum(v["proposed"] for v in base.values()) == N
    assert base["deduction"]["checked"] == 200
    assert base["deduction"]["solve_rate"] == 0.25
    assert cur["deduction"]["checked"] == 200
    assert cur["deduction"]["solve_rate"] == 0.5
    assert all(v["validity_rate"] == 1.0 for v in cur.values() if v["proposed"])
    assert cur[HOSTILE]["checked"] == 3


def test_watchdog_tripwires_and_throttle(card: dict[str, Any]) -> None:
    """Veto rate per rule, tripwire counts and the throttle's band history."""
    wd = card["watchdog"]["current"]
    screened = N + 200 + 3 + 100 + 2  # proposals, checks and verdicts all carry a decision
    assert wd["screened"] == screened
    assert wd["vetoed"] == 10
    assert wd["warned"] == 5
    assert wd["rules"]["no-subprocess"] == {"veto": 10, "warn": 0, "audit": 0, "veto_rate": 10 / screened}
    assert wd["rules"]["nondeterminism"]["warn"] == 5
    assert wd["rules"]["audit-open"]["audit"] == 10
    assert card["watchdog"]["baseline"]["vetoed"] == 0
    trip = card["tripwires"]
    assert trip["total"] == 5
    assert trip["by_rule"] == {"honeytoken-read": 3, HOSTILE: 1, "unknown": 1}
    bands = [h["band"] for h in card["throttle"]["history"]]
    assert bands == ["normal", "slow", "paused", "slow"]  # the unknown band is skipped
    assert card["throttle"]["history"][2]["confidence"] == 0.4


def _rfc6962_root(leaves: list[bytes]) -> bytes:
    """MTH from RFC 6962 section 2.1, written here independently of sandboxd.ledger.merkle."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _rfc6962_root(leaves[:k]) + _rfc6962_root(leaves[k:])).digest()


def test_merkle_root_and_checkpoint(card: dict[str, Any], planted: tuple[Path, str, str]) -> None:
    """The scorecard's root is the RFC 6962 root of every entry, and the latest checkpoint is shown and checked."""
    store = SqliteLedgerStore(planted[0])
    try:
        data = [row.data for row in store.entries()]
    finally:
        store.close()
    m = card["merkle"]
    assert m["tree_size"] == len(data) == card["ledger"]["entries"]
    assert base64.b64decode(m["root_hash"]) == _rfc6962_root(data)
    cp = m["latest_checkpoint"]
    assert cp["tree_size"] == len(data) - 2
    assert m["unsigned_entries"] == 2
    assert m["checkpoints"] == 2
    assert cp["matches_entries"]
    assert cp["note"].startswith(f"sandboxd/ledger\n{len(data) - 2}\n")
    assert base64.b64decode(cp["root_hash"]) == _rfc6962_root(data[:-2])
    assert m["verify"] == {"ok": True, "first_bad_seq": None, "reason": ""}


def test_complexity_diversity_trends(card: dict[str, Any]) -> None:
    """Complexity per window, diversity, and trend buckets over all proposals."""
    assert set(card["complexity"]["current"]) == {
        "cyclomatic",
        "halstead_volume",
        "halstead_difficulty",
        "sloc",
        "ast_nodes",
    }
    div = card["diversity"]["current"]
    assert div["items"] == N + 2 or div["items"] == N
    assert 0 < div["near_duplicate_groups"] <= div["distinct_programs"] <= div["items"]
    assert div["distinct_output_signatures"] > 100
    assert div["families"] >= 3
    trends = card["trends"]
    assert len(trends) == 20
    assert sum(b["items"] for b in trends) == 2 * N + 2
    assert all(0 <= b["family_entropy"] <= 1 and 0 < b["distinct_rate"] <= 1 for b in trends)


def test_scorecard_is_fast_enough(card: dict[str, Any]) -> None:
    """A scorecard over ~2,700 entries (2,000 programs) takes seconds, not minutes."""
    print(f"scorecard over {card['ledger']['entries']} entries: {card['_seconds']:.2f} s")
    assert card["_seconds"] < 20  # about 3 s on an idle 2-core machine; CI shares its cores


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


SAFE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "b", "span", "table", "tr",
             "th", "td", "pre", "code", "svg", "text", "line", "rect", "polyline", "circle"}  # fmt: skip


def test_html_is_self_contained_and_escapes_programs(card: dict[str, Any]) -> None:
    """Hostile program text, task types and rule names reach the page only as text: no script, no external asset."""
    page = render_html(card)
    assert HOSTILE not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    parsed = _Tags()
    parsed.feed(page)
    assert parsed.tags <= SAFE_TAGS, parsed.tags - SAFE_TAGS
    assert not {
        a for a in parsed.attributes if a.startswith("on") or a in {"src", "href", "srcset", "action"}
    }
    assert sum(HOSTILE in t for t in parsed.text) >= 3  # shown as text: a program, a task type, a rule
    assert "Content-Security-Policy" in page
    assert "default-src 'none'" in page
    assert page.count("<svg") == 7  # rates, vetoes, throttle, 3 trends, family shares


def test_html_shows_every_section(card: dict[str, Any]) -> None:
    """The page has volume, watchdog, tripwires, throttle, trends, drift, families and the Merkle root."""
    page = render_html(card)
    for title in ("Volume, validity and solve rates per task type", "veto rate per rule", "Tripwire events",
                  "Throttle band history", "Complexity and diversity trends", "Drift against the baseline window",
                  "Task families, ranked by growth", "Merkle root and checkpoint", card["merkle"]["root_hash"]):  # fmt: skip
        assert title in page
    assert "DRIFT" in page


def test_cli_writes_json_and_html(
    planted: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sandboxd scorecard`` writes a JSON file and its HTML page and prints their paths."""
    path, baseline, window = planted
    out = tmp_path / "cards"
    code = main(
        [
            "scorecard",
            "--ledger",
            str(path),
            "--out",
            str(out),
            "--window",
            window,
            "--baseline-window",
            baseline,
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 2
    assert all(Path(p).parent == out for p in printed)
    card = json.loads(Path(printed[0]).read_text())
    assert card["drift"]["flagged"]
    assert card["ledger"]["source"] == str(path)
    assert Path(printed[1]).read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--window", "last:abc"], "bad window", id="bad-window"),
        pytest.param(["--window", "last:150%"], "cannot exceed", id="share-over-100"),
        pytest.param(["--window", "time:yesterday/"], "bad time", id="bad-time"),
        pytest.param(["--window", "before"], "only valid for the baseline", id="before-as-window"),
    ],
)
def test_cli_rejects_bad_windows(
    planted: tuple[Path, str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    """A bad window spec is a usage error (exit 2) naming the problem, and writes nothing."""
    code = main(["scorecard", "--ledger", str(planted[0]), "--out", str(tmp_path / "o"), *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_missing_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing SQLite file is an error, and is not created."""
    code = main(["scorecard", "--ledger", str(tmp_path / "nope.db"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "no ledger database" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()


def test_empty_ledger(tmp_path: Path) -> None:
    """An empty ledger gives a scorecard (and a page) with no drift rather than an error."""
    store = SqliteLedgerStore(tmp_path / "empty.db")
    try:
        result = build_scorecard(store)
    finally:
        store.close()
    assert result["drift"]["score"] == 0.0
    assert "too few" in result["drift"]["reason"]
    assert result["families"] == []
    assert result["trends"] == []
    assert "no data" in render_html(result)


def test_windows() -> None:
    """Window specs select contiguous runs of entries by count, share, seq or time."""
    records = [Record(i, "task_proposed", f"2026-01-01T00:00:{i:02d}.000000Z", {}) for i in range(10)]
    assert (resolve("last:30%", records).start, resolve("last:30%", records).stop) == (7, 10)
    assert (resolve("first:4", records).start, resolve("first:4", records).stop) == (0, 4)
    assert (resolve("seq:2:5", records).start, resolve("seq:2:5", records).stop) == (2, 5)
    span = resolve("time:2026-01-01T00:00:03Z/2026-01-01T00:00:06Z", records)
    assert (span.start, span.stop) == (3, 6)
    assert (resolve("before", records, before=7).start, resolve("before", records, before=7).stop) == (0, 7)
    with pytest.raises(WindowError):
        resolve("seq:x", records)


@pytest.fixture(scope="module")
def postgres_url(postgres: Any) -> str:
    return str(postgres.database())


def test_postgres_ledger_gives_the_same_scorecard(
    postgres_url: str, planted: tuple[Path, str, str], card: dict[str, Any]
) -> None:
    """The same entries in a real PostgreSQL ledger give the same drift, families and counts."""
    source = SqliteLedgerStore(planted[0])
    target = PostgresLedgerStore(postgres_url)
    try:
        items = []
        for row in source.entries():
            entry = json.loads(row.data)
            items.append((Kind(entry["kind"]), entry["body"]))
        target.append_many(items)
        _, baseline, window = planted
        other = build_scorecard(target, baseline=baseline, window=window, verify=False)
    finally:
        source.close()
        target.close()
    for key in ("drift", "volume", "watchdog", "diversity", "complexity", "novelty"):
        assert other[key] == card[key], key
    assert (
        other["tripwires"]["by_rule"] == card["tripwires"]["by_rule"]
    )  # times differ: entries were re-appended
    assert [f["name"] for f in other["families"]] == [f["name"] for f in card["families"]]


def test_cli_unreadable_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not a ledger, or a PostgreSQL server that is down, is a clean error without the password."""
    bad = tmp_path / "bad.db"
    bad.write_text("not a database")
    assert main(["scorecard", "--ledger", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert "cannot open ledger" in capsys.readouterr().err
    url = "postgresql://auditor:hunter2@127.0.0.1:1/ledger"
    assert main(["scorecard", "--ledger", url, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "cannot open ledger postgresql://auditor:***@127.0.0.1:1/ledger" in err
    assert "hunter2" not in err
