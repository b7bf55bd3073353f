"""Filtering the ledger by task family: family sets recorded by scorecards, on SQLite and a real PostgreSQL,
through the auditor API with token auth (docs/ledger.md, "Task families")."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from curriculum_data import HOSTILE, Program, planted_programs, pool, proposal
from test_auth import _tokens

from sandboxd.api.app import create_app
from sandboxd.cli import main
from sandboxd.curriculum import analysis
from sandboxd.curriculum.items import decode, proposals
from sandboxd.ledger import families, family_tables
from sandboxd.ledger.entry import Entry, Kind
from sandboxd.ledger.query import EntryFilter
from sandboxd.ledger.store import Item, LedgerStore
from sandboxd.ledger.stores import open_store, parse_url
from sandboxd.ledger.verify import verify
from sandboxd.scorecard.report import build_scorecard
from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend


def answer(program: str, *, correct: bool) -> Item:
    """An ``answer_checked`` entry for a deduction task on ``program``."""
    return Kind.ANSWER_CHECKED, {
        "task_type": "deduction",
        "program": program,
        "input": "5",
        "answer": "1",
        "correct": correct,
        "reason": "ok" if correct else "wrong_answer",
        "decision": None,
    }


def run_entry(code: str) -> Item:
    return Kind.VERDICT, {"code": code, "status": "ok", "decision": None}


def append(url: str, *batches: list[Item]) -> None:
    """Append each batch (one ``append_many`` each) to the ledger at ``url``, then close it."""
    store = open_store(url)
    try:
        for batch in batches:
            store.append_many(batch)
    finally:
        store.close()


def curriculum(seed: int, planted_share: float) -> list[Item]:
    """180 proposals (AZR/CRUXEval plus a planted family), an answer to every third, and some raw runs."""
    rng = random.Random(seed)
    base, new = pool()[:120], planted_programs(60)
    items: list[Item] = []
    for i in range(180):
        program: Program = rng.choice(new) if rng.random() < planted_share else rng.choice(base)
        items.append(proposal(program))
        if i % 3 == 0:
            items.append(answer(program.code, correct=i % 2 == 0))
        if i % 20 == 0:
            items.append(run_entry(program.code))  # same text, but a raw run is not a curriculum entry
    return items


def url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return str(tmp_path / "data" / "ledger.db")
    server = request.getfixturevalue("postgres")
    url: str = server.database()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty ledger on each backend (SQLite where the daemon looks for it by default)."""
    return url_for(request.param, tmp_path, request)


def expected_families(store: LedgerStore) -> dict[str, int]:
    """The family of each program text, recomputed from the entries by the clustering alone (the oracle)."""
    records = decode(store.entries()).records
    built = analysis.build(list(proposals(records)))
    return {p: built.clustering.labels[i] for p, i in built.index.items()}


def seqs_of(store: LedgerStore, labels: dict[str, int], family: int) -> list[int]:
    """Seqs of proposals and answers whose program is in ``family`` (raw runs never are)."""
    out = []
    for row in store.entries():
        entry = Entry.decode(row.data)
        program = str(entry.body.get("program"))
        if entry.kind in (Kind.TASK_PROPOSED, Kind.ANSWER_CHECKED) and labels.get(program) == family:
            out.append(entry.seq)
    return out


# --- refs and sets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("3", id="bare-number"),
        pytest.param("0123456789abcdef", id="no-family"),
        pytest.param("0123456789ABCDEF:1", id="upper-hex"),
        pytest.param("0123456789abcde:1", id="short-set"),
        pytest.param("0123456789abcdef:1:2", id="extra-part"),
        pytest.param("0123456789abcdef:x", id="not-a-number"),
        pytest.param("0123456789abcdef: 1", id="space"),
    ],
)
def test_malformed_refs_are_refused(text: str) -> None:
    """Only ``<16 hex>:<family id>`` is a ref."""
    with pytest.raises(families.FamilyRefError):
        families.parse_ref(text)


def test_ref_round_trips_and_set_ids_depend_only_on_the_assignment() -> None:
    """The same assignment gets the same id whatever its order or time; another assignment another id."""
    one = families.family_set({"a": 1, "b": -1}, created="t1", tree_size=5)
    same = families.family_set({"b": -1, "a": 1}, created="t2", tree_size=9)
    other = families.family_set({"a": 1, "b": 0}, created="t1", tree_size=5)
    assert one.id == same.id != other.id
    assert families.parse_ref(families.ref(one.id, -1)) == (one.id, -1)
    assert one.families() == [-1, 1]
    assert families.program_digest("\ud800") != families.program_digest("?")  # lone surrogates hash too


# --- stores ------------------------------------------------------------------------------------------


def test_store_joins_entries_on_a_recorded_family(url: str) -> None:
    """Proposals and answers of a family's programs match, in seq order; other programs and raw runs do not."""
    store = open_store(url)
    try:
        store.append_many([proposal(p) for p in pool()[:3]] + [answer(pool()[0].code, correct=True)])
        store.append_many([run_entry(pool()[0].code)])
        members = {families.program_digest(pool()[0].code): 0, families.program_digest(pool()[1].code): 1}
        found = families.family_set(members, created="2026-01-01T00:00:00Z", tree_size=5)
        assert store.family_set(found.id) is None
        store.record_families(found)
        info = store.family_set(found.id)
        assert info is not None
        assert info.families == (0, 1)
        assert info.tree_size == 5
        assert [r.seq for r in store.query(EntryFilter(family=(found.id, 0)), -1, 10)] == [0, 3]
        assert [r.seq for r in store.query(EntryFilter(family=(found.id, 1)), -1, 10)] == [1]
        both = EntryFilter(family=(found.id, 0), kind="answer_checked")
        assert [r.seq for r in store.query(both, -1, 10)] == [3]
        assert store.query(EntryFilter(family=(found.id, 0)), 0, 10)[0].seq == 3  # cursor applies
        assert store.query(EntryFilter(family=("0" * 16, 0)), -1, 10) == []
        store.record_families(found)  # recording again refreshes, never duplicates
        assert [r.seq for r in store.query(EntryFilter(family=(found.id, 0)), -1, 10)] == [0, 3]
    finally:
        store.close()


def test_oldest_family_sets_are_pruned(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond the cap the oldest set goes (members too); a re-recorded set counts as new."""
    monkeypatch.setattr(family_tables, "KEEP_SETS", 2)
    store = open_store(url)
    try:
        sets = [
            families.family_set({f"p{i}": 0}, created=f"2026-01-0{i + 1}T00:00:00Z", tree_size=i)
            for i in range(3)
        ]
        store.record_families(sets[0])
        store.record_families(sets[1])
        store.record_families(families.family_set({"p0": 0}, created="2026-01-09T00:00:00Z", tree_size=0))
        store.record_families(sets[2])
        assert [store.family_set(s.id) is not None for s in sets] == [True, False, True]
    finally:
        store.close()
    if parse_url(url)[0] == "sqlite":
        with sqlite3.connect(url) as conn:
            left = {r[0] for r in conn.execute("SELECT DISTINCT family_set FROM family_members")}
    else:
        with psycopg.connect(url) as pg:
            left = {r[0] for r in pg.execute("SELECT DISTINCT family_set FROM family_members")}
    assert left == {sets[0].id, sets[2].id}


def test_older_ledger_gains_the_program_column_and_still_verifies(url: str) -> None:
    """A ledger written before the program column existed is upgraded on open, filled from its entries."""
    append(url, [proposal(p) for p in pool()[:4]] + [answer(pool()[2].code, correct=False)])
    drop = "ALTER TABLE entries DROP COLUMN program_sha256"
    if parse_url(url)[0] == "sqlite":
        with sqlite3.connect(url) as conn:
            conn.execute(drop)
    else:
        with psycopg.connect(url) as pg:
            pg.execute(drop)
    store = open_store(url)
    try:
        found = families.family_set({families.program_digest(pool()[2].code): 4}, created="t", tree_size=5)
        store.record_families(found)
        assert [r.seq for r in store.query(EntryFilter(family=(found.id, 4)), -1, 10)] == [2, 4]
        assert verify(store).ok
        store.append_many([proposal(pool()[2])])  # new appends fill the column as well
        assert [r.seq for r in store.query(EntryFilter(family=(found.id, 4)), -1, 10)] == [2, 4, 5]
    finally:
        store.close()


# --- scorecard and auditor API --------------------------------------------------------------------------


def settings_for(tmp_path: Path, url: str) -> tuple[Settings, dict[str, str]]:
    tokens_file, plain = _tokens(tmp_path)
    ledger_url = None if parse_url(url)[0] == "sqlite" else url
    settings = Settings(
        instance="ledger-families-test",
        image="fake:latest",
        data_dir=tmp_path / "data",
        ledger_url=ledger_url,
        tokens_file=tokens_file,
    )
    return settings, plain


def api_get(settings: Settings, token: str, *paths: str) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        app = create_app(settings, backend=FakeBackend())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://sandboxd.test", headers=headers
            ) as c:
                return [await c.get(path) for path in paths]

    return asyncio.run(main())


def walk(settings: Settings, token: str, path: str) -> list[dict[str, Any]]:
    """Every entry of a filtered listing, following cursors with small pages."""
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        [page] = api_get(settings, token, f"{path}&limit=7{cursor}")
        assert page.status_code == 200, page.text
        seen += page.json()["entries"]
        if page.json()["next_cursor"] is None:
            return seen
        cursor = f"&cursor={page.json()['next_cursor']}"


def scorecard(url: str) -> tuple[dict[str, Any], dict[str, int]]:
    store = open_store(url)
    try:
        card = build_scorecard(store, verify=False)
        return card, expected_families(store)
    finally:
        store.close()


def test_auditor_lists_a_scorecard_familys_entries(url: str, tmp_path: Path) -> None:
    """A family ref from a scorecard lists exactly that family's proposals and answers, page by page."""
    append(url, curriculum(seed=1, planted_share=0.0), curriculum(seed=2, planted_share=0.4))
    card, labels = scorecard(url)
    settings, token = settings_for(tmp_path, url)
    top = card["families"][0]  # the planted family grows most
    assert all(HOSTILE in p for p in top["examples"])
    assert top["ref"] == f"{card['family_set']['id']}:{top['id']}"
    assert top["entries_url"] == f"/v1/ledger/entries?family={top['ref']}"
    store = open_store(url)
    try:
        for fam in card["families"]:
            listed = walk(settings, token["auditor"], f"{fam['entries_url']}")
            assert [e["seq"] for e in listed] == seqs_of(store, labels, fam["id"]), fam["name"]
    finally:
        store.close()
    listed = walk(settings, token["auditor"], top["entries_url"])
    assert {e["kind"] for e in listed} == {"task_proposed", "answer_checked"}
    assert all(HOSTILE in e["body"]["program"] for e in listed)
    [answers] = api_get(settings, token["auditor"], f"{top['entries_url']}&kind=answer_checked&verdict=ok")
    assert answers.json()["entries"]
    assert all(e["body"]["correct"] for e in answers.json()["entries"])
    assert api_get(settings, token["trainer"], top["entries_url"])[0].status_code == 403
    assert api_get(settings, token["admin"], top["entries_url"])[0].status_code == 200


def test_older_scorecards_refs_keep_working_and_unknown_ones_are_404(url: str, tmp_path: Path) -> None:
    """A ref from an earlier scorecard still lists its family; unknown sets and families get a clear 404."""
    append(url, curriculum(seed=3, planted_share=0.3))
    old_card, old_labels = scorecard(url)
    append(url, curriculum(seed=4, planted_share=0.0))
    new_card, _ = scorecard(url)
    assert new_card["family_set"]["id"] != old_card["family_set"]["id"]
    settings, token = settings_for(tmp_path, url)
    old = old_card["families"][0]
    store = open_store(url)
    try:
        expected = seqs_of(store, old_labels, old["id"])  # programs, not seqs: later proposals of them count
    finally:
        store.close()
    assert max(expected) >= old_card["ledger"]["entries"]
    assert [e["seq"] for e in walk(settings, token["auditor"], old["entries_url"])] == expected
    set_id = old_card["family_set"]["id"]
    unknown_set, unknown_family, malformed, bare = api_get(
        settings,
        token["auditor"],
        "/v1/ledger/entries?family=0123456789abcdef:0",
        f"/v1/ledger/entries?family={set_id}:999",
        "/v1/ledger/entries?family=F0",
        "/v1/ledger/entries?family=0",
    )
    assert unknown_set.status_code == 404
    assert "no family set 0123456789abcdef" in unknown_set.json()["detail"]
    assert unknown_family.status_code == 404
    assert "has no family 999" in unknown_family.json()["detail"]
    assert malformed.status_code == 422
    assert bare.status_code == 422


class ReadOnly:
    """A real store whose family-set writes fail, as on a read-only replica."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def record_families(self, found: families.FamilySet) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")


def test_scorecard_without_recording_has_no_refs(tmp_path: Path) -> None:
    """Without recording (the flag, or a ledger that refuses the write) refs are null and the card says why."""
    store = open_store(str(tmp_path / "ledger.db"))
    try:
        store.append_many(curriculum(seed=5, planted_share=0.2))
        skipped = build_scorecard(store, verify=False, record_families=False)
        refused = build_scorecard(ReadOnly(store), verify=False)
    finally:
        store.close()
    assert skipped["family_set"]["id"] is None
    assert "not recorded" in skipped["family_set"]["error"]
    assert "readonly" in refused["family_set"]["error"]
    for card in (skipped, refused):
        assert card["families"]
        assert all(f["ref"] is None and f["entries_url"] is None for f in card["families"])


def test_cli_records_the_set_and_the_html_shows_the_refs(tmp_path: Path) -> None:
    """``sandboxd scorecard`` records the family set (unless told not to) and its HTML names every ref."""
    path = tmp_path / "ledger.db"
    store = open_store(str(path))
    try:
        store.append_many(curriculum(seed=6, planted_share=0.3))
    finally:
        store.close()
    base = ["scorecard", "--ledger", str(path), "--no-verify"]
    assert main([*base, "--out", str(tmp_path / "skipped"), "--no-record-families"]) == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM family_sets").fetchone() == (0,)
    assert main([*base, "--out", str(tmp_path / "cards")]) == 0
    [written] = sorted((tmp_path / "cards").glob("*.json"))
    card = json.loads(written.read_text())
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id FROM family_sets").fetchall() == [(card["family_set"]["id"],)]
    html = written.with_suffix(".html").read_text()
    assert all(f["ref"] in html for f in card["families"])
