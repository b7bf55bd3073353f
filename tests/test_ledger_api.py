"""The ledger in the service: every request's entries, fail-closed appends, checkpoints, sinks, auditor API.

These run the real app (lifespan included) on the in-memory FakeBackend: what is under test is the
ledger wiring, not isolation. Ledgers are real SQLite files or a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from postgres_server import PostgresServer
from safety_support import WATCHDOGGED

from sandboxd.api.app import create_app
from sandboxd.ledger import merkle
from sandboxd.ledger.entry import Entry, Kind
from sandboxd.ledger.note import Checkpoint, Verifier
from sandboxd.ledger.stores import open_store
from sandboxd.ledger.verify import verify
from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend

T = TypeVar("T")


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    policies = tmp_path / "policies"
    if not policies.exists():
        policies.mkdir()
        for source in Settings().policies_dir.glob("*.yaml"):
            (policies / source.name).write_text(source.read_text())
        (policies / "watchdogged.yaml").write_text(WATCHDOGGED)
    values: dict[str, Any] = {
        "instance": "ledger-api-test",
        "image": "fake:latest",
        "policies_dir": policies,
        "data_dir": tmp_path / "data",
    }
    return Settings(**{**values, **overrides})


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, on a fake backend, behind an in-process client."""
    app = create_app(settings, backend=FakeBackend())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandboxd.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def run(settings: Settings, scenario: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with serving(settings) as client:
            return await scenario(client)

    return asyncio.run(main())


def entries(url: str) -> list[Entry]:
    store = open_store(url)
    try:
        return [Entry.decode(row.data) for row in store.entries()]
    finally:
        store.close()


TASK = {"task_type": "deduction", "program": "def f(x):\n    return x + 1", "inputs": ["1"]}
ANSWER = {
    "task_type": "deduction",
    "program": "def f(x):\n    return x + 1",
    "input": "1",
    "answer": "2",
    "expected_output": "2",
}
INDUCTION = {"task_type": "induction", "answer": "def f(x):\n    return x", "inputs": ["1"], "outputs": ["1"]}
TASK_KEYS = {
    "request_id",
    "policy",
    "task_type",
    "program",
    "imports",
    "inputs",
    "valid",
    "reason",
    "outputs",
    "output_signature",
    "usage",
    "decision",
    "spot_check",
}
ANSWER_KEYS = {
    "request_id", "policy", "task_type", "program", "input", "answer", "expected_output", "correct", "reward",
    "reason", "compared_by", "evaluated_in", "usage", "decision", "inputs", "outputs", "value_reward", "spot_check",
}  # fmt: skip
VERDICT_KEYS = {
    "request_id",
    "run_id",
    "policy",
    "endpoint",
    "code",
    "stdin_sha256",
    "metadata",
    "status",
    "usage",
    "decision",
}


# --- wiring ---------------------------------------------------------------------------------------------


def test_every_endpoint_appends_its_entries(tmp_path: Path) -> None:
    """validate, check, runs, batch and run_code each append one entry per item, tagged with the request id."""
    settings = settings_for(tmp_path)

    async def scenario(client: httpx.AsyncClient) -> dict[str, str]:
        ids: dict[str, str] = {}
        calls = [
            ("validate", "/v1/azr/validate", {"tasks": [TASK, {**TASK, "inputs": ["2"]}]}),
            ("check", "/v1/azr/check", {"answers": [ANSWER, INDUCTION]}),
            ("run", "/v1/runs", {"code": "print(1)", "stdin": "x", "metadata": {"step": 7}}),
            ("batch", "/v1/runs/batch", {"runs": [{"code": "print(2)"}, {"code": "print(3)"}]}),
            ("fusion", "/run_code", {"code": "print(4)", "language": "python"}),
        ]
        for name, url, body in calls:
            response = await client.post(url, json=body, headers={"X-Request-ID": f"req-{name}"})
            assert response.status_code == 200, response.text
            ids[name] = response.headers["x-request-id"]
        metrics = (await client.get("/metrics")).text
        assert 'sandboxd_ledger_entries_total{kind="verdict"} 4.0' in metrics
        assert 'sandboxd_ledger_entries_total{kind="task_proposed"} 2.0' in metrics
        return ids

    ids = run(settings, scenario)
    found = entries(str(settings.data_dir / "ledger.db"))
    by_request: dict[str, list[Entry]] = {}
    for entry in found:
        by_request.setdefault(entry.body["request_id"], []).append(entry)
    assert [e.kind.value for e in by_request[ids["validate"]]] == ["task_proposed"] * 2
    assert [e.body["inputs"] for e in by_request[ids["validate"]]] == [["1"], ["2"]]
    assert all(set(e.body) == TASK_KEYS for e in by_request[ids["validate"]])
    checked = by_request[ids["check"]]
    assert [e.kind.value for e in checked] == ["answer_checked"] * 2
    assert all(set(e.body) == ANSWER_KEYS for e in checked)
    assert (checked[0].body["expected_output"], checked[0].body["inputs"]) == ("2", None)
    assert checked[1].body["outputs"] == ["1"]
    [single] = by_request[ids["run"]]
    assert set(single.body) == VERDICT_KEYS
    assert (single.body["endpoint"], single.body["code"], single.body["metadata"]) == (
        "/v1/runs",
        "print(1)",
        {"step": 7},
    )
    assert single.body["stdin_sha256"] == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    assert [e.body["code"] for e in by_request[ids["batch"]]] == ["print(2)", "print(3)"]
    assert [e.body["endpoint"] for e in by_request[ids["fusion"]]] == ["/run_code"]
    assert [e.seq for e in found] == list(range(len(found)))
    assert len(found) == 8


def test_watchdog_decision_is_embedded(tmp_path: Path) -> None:
    """A vetoed task's entry carries the decision and its findings' rule, severity and mode."""
    settings = settings_for(tmp_path)
    vetoed = {**TASK, "program": "import os\ndef f(x):\n    return x + 1"}

    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/azr/validate", json={"policy": "watchdogged", "tasks": [vetoed, TASK]}
        )
        assert response.status_code == 200, response.text

    run(settings, scenario)
    bad, good = entries(str(settings.data_dir / "ledger.db"))
    assert (bad.body["reason"], bad.body["decision"]["decision"]) == ("vetoed", "veto")
    finding = bad.body["decision"]["findings"][0]
    assert set(finding) == {"rule_id", "severity", "mode"}
    assert finding["mode"] == "enforce"
    assert good.body["decision"]["decision"] in ("allow", "warn")


def test_record_event_appends(tmp_path: Path) -> None:
    """``Service.record_event`` is durable, and an unknown kind is refused."""
    settings = settings_for(tmp_path)

    async def scenario(client: httpx.AsyncClient) -> None:
        service = client.app.state.service  # type: ignore[attr-defined]
        await service.record_event("throttle_change", {"from": "normal", "to": "slow"})
        with pytest.raises(ValueError, match="nonsense"):
            await service.record_event("nonsense", {})

    run(settings, scenario)
    [event] = entries(str(settings.data_dir / "ledger.db"))
    assert (event.kind.value, event.body) == ("throttle_change", {"from": "normal", "to": "slow"})


def test_metadata_with_nan_is_rejected(tmp_path: Path) -> None:
    """Metadata that canonical JSON cannot hold is a 422, not a 500."""

    async def scenario(client: httpx.AsyncClient) -> httpx.Response:
        content = b'{"code": "print(1)", "metadata": {"x": NaN}}'
        return await client.post("/v1/runs", content=content, headers={"content-type": "application/json"})

    response = run(settings_for(tmp_path), scenario)
    assert response.status_code == 422
    assert "NaN" in response.json()["detail"]


# --- fail closed ----------------------------------------------------------------------------------------


def test_unreachable_ledger_fails_closed(tmp_path: Path, postgres: PostgresServer) -> None:
    """With the ledger's database down, work requests get 503 and readiness names the ledger."""
    url = f"postgresql://postgres@127.0.0.1:{postgres.port + 1}/nowhere"  # nothing listens there
    settings = settings_for(tmp_path, ledger_url=url)

    async def scenario(client: httpx.AsyncClient) -> tuple[httpx.Response, ...]:
        return (
            await client.post("/v1/runs", json={"code": "print(1)"}),
            await client.post("/v1/azr/validate", json={"tasks": [TASK]}),
            await client.post("/run_code", json={"code": "print(1)", "language": "python"}),
            await client.get("/readyz"),
        )

    ran, validated, fused, ready = run(settings, scenario)
    for response in (ran, validated):
        assert response.status_code == 503
        assert "ledger unavailable" in response.json()["detail"]
        assert response.headers["retry-after"] == "2"
    assert fused.status_code == 503
    assert "ledger unavailable" in fused.json()["message"]
    assert ready.status_code == 503
    assert "ledger unavailable" in ready.json()["reason"]


@pytest.mark.slow
def test_ledger_outage_fails_closed_then_recovers(tmp_path: Path) -> None:
    """A PostgreSQL that goes away mid-life gives 503s and unreadiness; when it is back, readiness returns by
    itself and appends resume gap-free."""
    server = PostgresServer().start()
    try:
        url = server.database()
        settings = settings_for(tmp_path, ledger_url=url)

        async def scenario(client: httpx.AsyncClient) -> list[int]:
            codes = [(await client.post("/v1/runs", json={"code": "print(1)"})).status_code]
            await asyncio.to_thread(server.halt)
            codes.append((await client.post("/v1/runs", json={"code": "print(2)"})).status_code)
            codes.append((await client.get("/readyz")).status_code)
            await asyncio.to_thread(server.launch)
            for _ in range(50):  # readiness recovers by itself, without traffic
                await asyncio.sleep(0.2)
                if (await client.get("/readyz")).status_code == 200:
                    break
            codes.append((await client.get("/readyz")).status_code)
            codes.append((await client.post("/v1/runs", json={"code": "print(3)"})).status_code)
            return codes

        assert run(settings, scenario) == [200, 503, 503, 200, 200]
        found = entries(url)
        assert [(e.seq, e.body["code"]) for e in found] == [(0, "print(1)"), (1, "print(3)")]
    finally:
        server.stop()


# --- checkpoints and sinks ------------------------------------------------------------------------------


class Webhook:
    """A loopback HTTP server that records POSTed JSON and fails the first ``failures`` requests with 500."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.failures = failures
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.failures > 0:
                    hook.failures -= 1
                    self.send_response(500)
                else:
                    hook.received.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/checkpoints"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_checkpoints_every_n_entries_with_sinks(tmp_path: Path) -> None:
    """Every 4 entries a signed checkpoint is made, copied to the file sink and POSTed (retried) to the webhook."""
    hook = Webhook(failures=2)
    sink = tmp_path / "sink" / "checkpoints.jsonl"
    settings = settings_for(
        tmp_path,
        ledger_checkpoint_entries=4,
        ledger_checkpoint_seconds=3600,
        ledger_checkpoint_file=sink,
        ledger_checkpoint_webhook=hook.url,
    )

    async def scenario(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        for _ in range(2):
            response = await client.post("/v1/runs/batch", json={"runs": [{"code": "print(1)"}] * 4})
            assert response.status_code == 200
        listed = (await client.get("/v1/ledger/checkpoints")).json()
        metric = (await client.get("/metrics")).text
        assert "sandboxd_ledger_last_checkpoint_timestamp_seconds 0.0" not in metric
        return list(listed["checkpoints"])

    try:
        listed = run(settings, scenario)
    finally:
        hook.close()
    assert [cp["tree_size"] for cp in listed] == [4, 8]
    key = settings.data_dir / "ledger.key"
    assert os.stat(key).st_mode & 0o777 == 0o600
    verifier = Verifier.parse((settings.data_dir / "ledger.key.pub").read_text())
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert lines == listed == hook.received  # the webhook got both despite two 500s
    for cp in lines:
        head = Checkpoint.parse(verifier.verify(cp["note"]))
        assert (head.size, base64.b64encode(head.root_hash).decode()) == (cp["tree_size"], cp["root_hash"])


def test_checkpoint_after_t_seconds_and_at_shutdown(tmp_path: Path) -> None:
    """With few entries a checkpoint still follows within T seconds, and shutdown signs the rest."""
    settings = settings_for(tmp_path, ledger_checkpoint_entries=1000, ledger_checkpoint_seconds=0.5)

    async def scenario(client: httpx.AsyncClient) -> list[int]:
        await client.post("/v1/runs", json={"code": "print(1)"})
        await asyncio.sleep(2.0)
        sizes = [cp["tree_size"] for cp in (await client.get("/v1/ledger/checkpoints")).json()["checkpoints"]]
        await client.post("/v1/runs", json={"code": "print(2)"})
        return sizes

    assert run(settings, scenario) == [1]
    store = open_store(str(settings.data_dir / "ledger.db"))
    try:
        assert [cp.tree_size for cp in store.checkpoints()] == [1, 2]
        assert verify(store).ok
    finally:
        store.close()


def test_unreachable_webhook_never_blocks_requests(tmp_path: Path) -> None:
    """A webhook that refuses connections is retried in the background; requests still answer at once."""
    dead = Webhook()
    dead.close()  # nothing listens on its port any more
    settings = settings_for(tmp_path, ledger_checkpoint_entries=1, ledger_checkpoint_webhook=dead.url)

    async def scenario(client: httpx.AsyncClient) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(5):
            assert (await client.post("/v1/runs", json={"code": "print(1)"})).status_code == 200
        return loop.time() - started

    assert run(settings, scenario) < 5.0


# --- the auditor API ------------------------------------------------------------------------------------


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH over leaf hashes, written out directly as an independent oracle."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def reference_path_root(index: int, leaf: bytes, path: list[bytes], leaves_count: int) -> bytes:
    """Recompute the root from an audit path by RFC 6962's PATH definition (recursing on the split)."""

    def walk(m: int, n: int, nodes: list[bytes]) -> bytes:
        if n == 1:
            assert not nodes
            return leaf
        k = 1
        while k * 2 < n:
            k *= 2
        *rest, sibling = nodes
        if m < k:
            return merkle.node_hash(walk(m, k, rest), sibling)
        return merkle.node_hash(sibling, walk(m - k, n - k, rest))

    return walk(index, leaves_count, path)


@pytest.fixture(params=["sqlite", "postgresql"])
def audited(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose ledger holds entries of several kinds, verdicts and decisions (13 entries)."""
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres").database()
    settings = settings_for(tmp_path, ledger_url=url, ledger_checkpoint_entries=5)

    async def scenario(client: httpx.AsyncClient) -> None:
        vetoed = {**TASK, "program": "import os\ndef f(x):\n    return x + 1"}
        calls = [
            ("/v1/azr/validate", {"policy": "watchdogged", "tasks": [vetoed, TASK, TASK]}),
            ("/v1/azr/check", {"answers": [ANSWER, INDUCTION]}),
            ("/v1/runs/batch", {"runs": [{"code": f"print({i})"} for i in range(8)]}),
        ]
        for url, body in calls:
            assert (await client.post(url, json=body)).status_code == 200

    run(settings, scenario)
    return settings


def get(settings: Settings, *paths: str) -> list[httpx.Response]:
    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get(path) for path in paths]

    return run(settings, scenario)


def test_entries_filters_and_cursor_pages(audited: Settings) -> None:
    """Filters narrow the entries; a cursor walks every page exactly once; the page size is capped."""
    kinds, vetoes, rule, induction, future = get(
        audited,
        "/v1/ledger/entries?kind=task_proposed",
        "/v1/ledger/entries?decision=veto",
        "/v1/ledger/entries?rule=nonexistent.rule",
        "/v1/ledger/entries?task_type=induction&kind=answer_checked",
        "/v1/ledger/entries?since=2999-01-01T00:00:00Z",
    )
    assert [e["seq"] for e in kinds.json()["entries"]] == [0, 1, 2]
    [veto] = vetoes.json()["entries"]
    assert veto["body"]["reason"] == "vetoed"
    rule_id = veto["body"]["decision"]["findings"][0]["rule_id"]
    [by_rule] = get(audited, f"/v1/ledger/entries?rule={rule_id}")
    assert [e["seq"] for e in by_rule.json()["entries"]] == [0]
    assert rule.json() == {"entries": [], "next_cursor": None}
    assert [e["body"]["answer"] for e in induction.json()["entries"]] == [INDUCTION["answer"]]
    assert future.json()["entries"] == []
    seen: list[int] = []
    cursor = ""
    while True:
        [page] = get(audited, f"/v1/ledger/entries?limit=4{cursor}")
        body = page.json()
        assert len(body["entries"]) <= 4
        seen += [e["seq"] for e in body["entries"]]
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert seen == list(range(13))


@pytest.mark.parametrize(
    ("query", "status"),
    [
        pytest.param("limit=1001", 422, id="over-limit-cap"),
        pytest.param("limit=0", 422, id="zero-limit"),
        pytest.param("kind=bogus", 422, id="unknown-kind"),
        pytest.param("decision=maybe", 422, id="unknown-decision"),
        pytest.param("since=yesterday", 422, id="bad-time"),
        pytest.param("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", 400, id="empty-range"),
        pytest.param("cursor=not-a-cursor", 400, id="bad-cursor"),
        pytest.param("cursor=" + base64.urlsafe_b64encode(b"other:12").decode(), 400, id="foreign-cursor"),
        pytest.param("rule=a%20b", 400, id="rule-with-space"),
    ],
)
def test_bad_entry_queries_get_4xx(tmp_path: Path, query: str, status: int) -> None:
    """Malformed filters, cursors and limits get a clear 4xx, never a 500."""
    [response] = get(settings_for(tmp_path), f"/v1/ledger/entries?{query}")
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_proofs_verify_independently(audited: Settings) -> None:
    """Inclusion and consistency proofs from the API verify against the signed checkpoints' roots."""
    cps_response, *_ = get(audited, "/v1/ledger/checkpoints")
    listing = cps_response.json()
    verifier = Verifier.parse(listing["vkey"])
    pinned = Verifier.parse((audited.data_dir / "ledger.key.pub").read_text())
    assert pinned == verifier
    heads = [Checkpoint.parse(pinned.verify(cp["note"])) for cp in listing["checkpoints"]]
    assert [h.size for h in heads] == [5, 13]  # after 3+2 entries, then after the batch of 8
    small, big = heads
    [export] = get(audited, "/v1/ledger/entries?limit=1000")
    datas = [
        Entry(e["seq"], Kind(e["kind"]), e["time"], e["body"]).encode() for e in export.json()["entries"]
    ]
    leaves = [merkle.leaf_hash(d) for d in datas]
    assert reference_root(leaves) == big.root_hash
    for seq in (0, 4, 12):
        [proof] = get(audited, f"/v1/ledger/proof/inclusion?seq={seq}&tree_size=13")
        body = proof.json()
        path = [base64.b64decode(h) for h in body["audit_path"]]
        assert base64.b64decode(body["leaf_hash"]) == leaves[seq]
        assert reference_path_root(seq, leaves[seq], path, 13) == big.root_hash
        assert merkle.verify_inclusion(seq, 13, leaves[seq], path, big.root_hash)
    [consistent] = get(audited, "/v1/ledger/proof/consistency?first=5&second=13")
    body = consistent.json()
    assert base64.b64decode(body["first_root"]) == small.root_hash
    nodes = [base64.b64decode(h) for h in body["proof"]]
    assert merkle.verify_consistency(5, 13, small.root_hash, big.root_hash, nodes)
    flipped = [bytes([nodes[0][0] ^ 1]) + nodes[0][1:], *nodes[1:]]
    assert not merkle.verify_consistency(5, 13, small.root_hash, big.root_hash, flipped)


@pytest.mark.parametrize(
    "query",
    [
        "inclusion?seq=13&tree_size=13",
        "inclusion?seq=0&tree_size=99",
        "inclusion?seq=-1",
        "consistency?first=9&second=5",
        "consistency?first=1&second=99",
        "consistency?first=1",
    ],
)
def test_bad_proof_queries_get_4xx(audited: Settings, query: str) -> None:
    """Out-of-range or missing proof parameters get 400 or 422."""
    [response] = get(audited, f"/v1/ledger/proof/{query}")
    assert response.status_code in (400, 422), response.text
