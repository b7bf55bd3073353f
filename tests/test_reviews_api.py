"""Human spot checks over HTTP (docs/reviews.md): sampling into the queue, reviewer labels, the ledger, the
preference component of the value reward, and the throttle's confidence. FakeBackend: no isolation claims."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from safety_support import make_policies, safety_yaml
from test_safety_api import Caller, tokens

from sandboxd.api.app import create_app
from sandboxd.auth.roles import Role
from sandboxd.auth.tokens import load_tokens
from sandboxd.ledger.stores import open_store
from sandboxd.ledger.verify import verify
from sandboxd.reviews.sampling import content, draw
from sandboxd.scorecard.report import build_scorecard
from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend

T = TypeVar("T")
REVIEWED = """\
schema_version: 1
kind: sandbox
name: reviewed
extends: default
description: The default policy with every task and answer spot-checked and a value-shaped reward.
value_reward:
  weights: {correctness: 1.0, explainability: 0.2, watchdog: 0.3, preference: 0.5}
reviews:
  sample_fraction: 1.0
  seed: test-seed
"""
PROGRAM = 'def f(numbers):\n    """Sum them."""\n    return sum(numbers)\n'
TASK = {"task_type": "deduction", "program": PROGRAM, "inputs": ["[1, 2]"]}
ANSWER = {
    "task_type": "deduction",
    "program": PROGRAM,
    "input": "[1, 2]",
    "answer": "3",
    "expected_output": "3",
}


@asynccontextmanager
async def serving(
    tmp_path: Path, safety: str | None = None, extra: dict[str, str] | None = None
) -> AsyncIterator[Caller]:
    path, plain = tokens(tmp_path)
    policies = {"reviewed.yaml": REVIEWED, **(extra or {})}
    settings = Settings(
        instance="reviews-api-test",
        image="fake:latest",
        policies_dir=make_policies(tmp_path / "policies", safety, extra=policies),
        data_dir=tmp_path / "data",
        tokens_file=path,
    )
    app = create_app(settings, backend=FakeBackend())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandboxd.test") as client:
            yield Caller(client, plain, app)


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


async def check(call: Caller, policy: str = "reviewed") -> dict[str, Any]:
    response = await call("trainer", "POST", "/v1/azr/check", {"answers": [ANSWER], "policy": policy})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


async def queue(call: Caller, query: str = "") -> dict[str, Any]:
    response = await call("reviewer", "GET", f"/v1/reviews/queue{query}")
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def entries(call: Caller, kind: str) -> list[dict[str, Any]]:
    response = await call("auditor", "GET", f"/v1/ledger/entries?kind={kind}&limit=1000")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["entries"]
    return found


def test_sampled_tasks_and_answers_reach_the_queue(tmp_path: Path) -> None:
    """With fraction 1 every task and answer is queued under its ledger seq, with the entry's body."""

    async def scenario() -> None:
        async with serving(tmp_path) as call:
            validated = await call(
                "trainer", "POST", "/v1/azr/validate", {"tasks": [TASK], "policy": "reviewed"}
            )
            assert validated.status_code == 200, validated.text
            await check(call)
            page = await queue(call)
            assert [item["kind"] for item in page["items"]] == ["task_proposed", "answer_checked"]
            assert page["next_cursor"] is None
            (proposed,) = await entries(call, "task_proposed")
            (answered,) = await entries(call, "answer_checked")
            assert [item["id"] for item in page["items"]] == [proposed["seq"], answered["seq"]]
            assert page["items"][0]["entry"]["program"] == PROGRAM
            assert proposed["body"]["spot_check"] is True
            assert answered["body"]["spot_check"] is True
            assert page["items"][0]["task_key"] == page["items"][1]["task_key"]  # one task, one key

    run(scenario)


HALF = REVIEWED.replace("name: reviewed", "name: half").replace(
    "sample_fraction: 1.0", "sample_fraction: 0.5"
)


def test_auditor_recomputes_every_decision_from_the_ledger(tmp_path: Path) -> None:
    """With fraction 0.5 some answers are sampled and some not; each spot_check follows from the body and
    the seed alone, and exactly the sampled entries are queued."""

    async def scenario() -> None:
        async with serving(tmp_path, extra={"half.yaml": HALF}) as call:
            answers = [{**ANSWER, "answer": str(n)} for n in range(24)]
            response = await call("trainer", "POST", "/v1/azr/check", {"answers": answers, "policy": "half"})
            assert response.status_code == 200, response.text
            found = await entries(call, "answer_checked")
            decisions = {e["seq"]: e["body"]["spot_check"] for e in found}
            for entry in found:
                recomputed = (
                    draw("test-seed", "answer_checked", content("answer_checked", entry["body"])) < 0.5
                )
                assert decisions[entry["seq"]] is recomputed
            assert set(decisions.values()) == {True, False}
            queued = [item["id"] for item in (await queue(call, "?limit=500"))["items"]]
            assert queued == [seq for seq, chosen in sorted(decisions.items()) if chosen]

    run(scenario)


def test_default_policy_samples_nothing(tmp_path: Path) -> None:
    """The default policy has fraction 0: the answer is ledgered with spot_check false and nothing is queued."""

    async def scenario() -> None:
        async with serving(tmp_path) as call:
            await check(call, policy="default")
            assert (await queue(call))["items"] == []
            (answered,) = await entries(call, "answer_checked")
            assert answered["body"]["spot_check"] is False

    run(scenario)


def test_queue_pages_with_a_cursor(tmp_path: Path) -> None:
    """limit and next_cursor walk the queue without repeating or skipping items; a bad cursor is 400."""

    async def scenario() -> None:
        async with serving(tmp_path) as call:
            answers = [{**ANSWER, "answer": str(n)} for n in range(5)]
            response = await call(
                "trainer", "POST", "/v1/azr/check", {"answers": answers, "policy": "reviewed"}
            )
            assert response.status_code == 200, response.text
            seen: list[int] = []
            query = "?limit=2"
            while True:
                page = await queue(call, query)
                seen += [item["id"] for item in page["items"]]
                if page["next_cursor"] is None:
                    break
                query = f"?limit=2&cursor={page['next_cursor']}"
            assert seen == sorted(seen)
            assert len(seen) == len(set(seen)) == 5
            bad = await call("reviewer", "GET", "/v1/reviews/queue?cursor=not-a-cursor")
            assert bad.status_code == 400

    run(scenario)


def test_label_is_ledgered_leaves_the_queue_and_verifies(tmp_path: Path) -> None:
    """A label answers 201 with its ledger seq, names the reviewer's token, leaves the queue, and the log verifies."""

    async def scenario() -> None:
        async with serving(tmp_path) as call:
            await check(call)
            (item,) = (await queue(call))["items"]
            body = {"label": "approve", "comment": "clear and correct"}
            response = await call("reviewer", "POST", f"/v1/reviews/{item['id']}/label", body)
            assert response.status_code == 201, response.text
            labelled = response.json()
            (reviewer,) = [t.id for t in load_tokens(tmp_path / "tokens.jsonl") if t.role is Role.reviewer]
            assert labelled["reviewer"] == reviewer
            (entry,) = await entries(call, "review_label")
            assert entry["seq"] == labelled["ledger_seq"]
            assert entry["body"] | {"reviewer": None} == {
                "item": item["id"],
                "item_kind": "answer_checked",
                "task_key": item["task_key"],
                "policy": "reviewed",
                "label": "approve",
                "comment": "clear and correct",
                "reviewer": None,
            }
            assert entry["body"]["reviewer"] == labelled["reviewer"]
            assert (await queue(call))["items"] == []
        store = open_store(str(tmp_path / "data" / "ledger.db"))
        try:
            report = verify(store)
            scorecard = build_scorecard(store)  # the scorecard reader tolerates review_label entries
        finally:
            store.close()
        assert report.ok, report
        assert scorecard["merkle"]["verify"]["ok"] is True

    run(scenario)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        pytest.param("/v1/reviews/999999/label", {"label": "flag", "comment": "x"}, 404, id="unknown-item"),
        pytest.param("/v1/reviews/{id}/label", {"label": "maybe", "comment": "x"}, 422, id="unknown-label"),
        pytest.param("/v1/reviews/{id}/label", {"label": "flag", "comment": ""}, 422, id="empty-comment"),
        pytest.param("/v1/reviews/{id}/label", {"label": "flag"}, 422, id="no-comment"),
        pytest.param(
            "/v1/reviews/{id}/label", {"label": "flag", "comment": "x", "score": 1}, 422, id="extra-field"
        ),
        pytest.param(
            "/v1/reviews/{id}/label", {"label": "flag", "comment": "x" * 4001}, 422, id="long-comment"
        ),
        pytest.param("/v1/reviews/-1/label", {"label": "flag", "comment": "x"}, 422, id="negative-item"),
        pytest.param("/v1/reviews/abc/label", {"label": "flag", "comment": "x"}, 422, id="non-numeric-item"),
        pytest.param("/v1/reviews/{id}/label", ["flag"], 422, id="not-an-object"),
        pytest.param(
            "/v1/reviews/{id}/label", b'{"label": "flag", "comment": "a\\ud800"}', 422, id="lone-surrogate"
        ),
        pytest.param(
            "/v1/reviews/{id}/label", {"label": "flag", "comment": "a\x00b"}, 422, id="nul-character"
        ),
    ],
)
def test_bad_labels_are_4xx(tmp_path: Path, path: str, body: Any, status: int) -> None:
    """Unknown items are 404 and malformed labels 422, never a 500; nothing reaches the ledger."""

    async def scenario() -> None:
        async with serving(tmp_path) as call:
            await check(call)
            (item,) = (await queue(call))["items"]
            url = path.format(id=item["id"])
            if isinstance(body, bytes):  # JSON that the client library would refuse to encode
                headers = {
                    "Authorization": f"Bearer {call.plain['reviewer']}",
                    "Content-Type": "application/json",
                }
                response = await call.client.post(url, content=body, headers=headers)
            else:
                response = await call("reviewer", "POST", url, body)
            assert response.status_code == status, response.text
            assert await entries(call, "review_label") == []
            assert len((await queue(call))["items"]) == 1

    run(scenario)


def test_second_label_is_409(tmp_path: Path) -> None:
    """Labels are final: a second label on the same item, even concurrent, is 409 and only one is ledgered."""

    async def scenario() -> None:
        async with serving(tmp_path) as call:
            await check(call)
            (item,) = (await queue(call))["items"]
            url = f"/v1/reviews/{item['id']}/label"
            answers = await asyncio.gather(
                *(call("reviewer", "POST", url, {"label": "flag", "comment": f"try {n}"}) for n in range(4))
            )
            assert sorted(r.status_code for r in answers) == [201, 409, 409, 409]
            again = await call("admin", "POST", url, {"label": "approve", "comment": "later"})
            assert again.status_code == 409
            assert again.json()["error"] == "conflict"
            assert len(await entries(call, "review_label")) == 1

    run(scenario)


@pytest.mark.parametrize(("label", "preference"), [("approve", 1.0), ("flag", 0.0)])
def test_labels_feed_the_preference_of_later_answers(tmp_path: Path, label: str, preference: float) -> None:
    """Before a label the preference component is null; after it, later answers to the task carry it."""

    async def scenario() -> None:
        async with serving(tmp_path) as call:
            first = await check(call)
            assert first["value_reward"]["components"]["preference"] is None
            (item,) = (await queue(call))["items"]
            response = await call(
                "reviewer", "POST", f"/v1/reviews/{item['id']}/label", {"label": label, "comment": "c"}
            )
            assert response.status_code == 201, response.text
            later = await check(call)
            assert later["value_reward"]["components"]["preference"] == preference
            assert later["value_reward"]["label"] == label
            assert later["reward"] == first["reward"]  # the binary reward never changes
            (_, second) = await entries(call, "answer_checked")
            assert second["body"]["value_reward"] == later["value_reward"]

    run(scenario)


def test_flag_lowers_alignment_confidence(tmp_path: Path) -> None:
    """A flag puts the flag rate into the throttle's window and lowers the score by the flags weight."""

    async def scenario() -> None:
        async with serving(tmp_path, safety_yaml()) as call:
            sentinel = call.service.sentinel
            await check(call)
            await check(call, policy="default")
            (item,) = (await queue(call))["items"]
            await sentinel.evaluate()
            before = sentinel.throttle.score
            response = await call(
                "reviewer", "POST", f"/v1/reviews/{item['id']}/label", {"label": "flag", "comment": "sneaky"}
            )
            assert response.status_code == 201, response.text
            await sentinel.evaluate()
            assert sentinel.throttle.inputs.flag_rate == 1.0
            assert sentinel.throttle.score == pytest.approx(before - sentinel.config.throttle.weights.flags)

    run(scenario)


def test_reviewer_cannot_run_code_or_read_the_ledger(tmp_path: Path) -> None:
    """The reviewer role is only for the review queue: trainer and auditor endpoints are 403."""

    async def scenario() -> None:
        async with serving(tmp_path) as call:
            assert (await call("reviewer", "POST", "/v1/azr/check", {"answers": [ANSWER]})).status_code == 403
            assert (await call("reviewer", "GET", "/v1/ledger/entries")).status_code == 403
            assert (await call("trainer", "GET", "/v1/reviews/queue")).status_code == 403
            assert (await call("auditor", "GET", "/v1/reviews/queue")).status_code == 403
            assert (await call("admin", "GET", "/v1/reviews/queue")).status_code == 200

    run(scenario)
