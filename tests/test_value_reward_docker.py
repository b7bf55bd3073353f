"""``/v1/azr/check`` on real containers returns the value-shaped reward with its components, ledgers it, and
a human label on a spot-checked answer shapes later answers to the same task (docs/value-reward.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from api_support import posted_results

from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import running_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]
CLEAR = 'def f(numbers):\n    """Sum the even numbers."""\n    return sum(n for n in numbers if n % 2 == 0)\n'
ANSWER = {"task_type": "deduction", "program": CLEAR, "input": "[1, 2, 4]", "expected_output": "6"}
INDUCTION_TERSE = {
    "task_type": "induction",
    "answer": "def f(a):\n    b = a * 2\n    return b\n",
    "inputs": ["1", "5"],
    "outputs": ["2", "10"],
}


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A real sandboxd whose only policy shapes rewards and spot-checks every answer (one warm container)."""
    directory = tmp_path_factory.mktemp("shaped-policies")
    policy: dict[str, Any] = yaml.safe_load((BUILTIN_POLICIES / "default.yaml").read_text())
    policy.update(
        name="shaped",
        description="Default isolation, a value-shaped reward and spot checks of every answer.",
        value_reward={
            "weights": {"correctness": 1.0, "explainability": 0.5, "watchdog": 0.5, "preference": 1.0}
        },
        reviews={"sample_fraction": 1.0, "seed": "docker-test"},
    )
    policy["pool"]["warm_containers"] = 1
    (directory / "shaped.yaml").write_text(yaml.safe_dump(policy))
    settings = Settings(
        instance=f"test-h7-{uuid.uuid4().hex[:8]}",
        policies_dir=directory,
        default_policy="shaped",
        data_dir=tmp_path_factory.mktemp("shaped-data"),
    )
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=120.0) as client:
        yield client


def check(client: httpx.Client, *answers: dict[str, Any]) -> list[dict[str, Any]]:
    return posted_results(client, "/v1/azr/check", {"answers": list(answers)})


@pytest.mark.parametrize(
    ("given", "correct", "documented"),
    [
        pytest.param({**ANSWER, "answer": "6"}, True, 1.0, id="deduction-correct"),
        pytest.param({**ANSWER, "answer": "7"}, False, 1.0, id="deduction-wrong"),
        pytest.param(INDUCTION_TERSE, True, 0.0, id="induction-terse-program"),
    ],
)
def test_check_returns_value_reward_with_components(
    shaped: httpx.Client, given: dict[str, Any], correct: bool, documented: float
) -> None:
    """Values come from the sandbox; the shaped reward sits next to the unchanged binary reward."""
    (result,) = check(shaped, given)
    assert result["correct"] is correct
    assert result["reward"] == float(correct)
    value = result["value_reward"]
    components = value["components"]
    assert set(components) == {"correctness", "explainability", "watchdog", "preference"}
    assert components["correctness"] == float(correct)
    assert components["watchdog"] == 1.0
    assert value["signals"]["documented"] == documented
    if correct:
        available = [(1.0, 1.0), (0.5, components["explainability"]), (0.5, 1.0)]
        if components["preference"] is not None:
            available.append((1.0, components["preference"]))
        expected = sum(w * v for w, v in available) / sum(w for w, _ in available)
        assert value["total"] == pytest.approx(expected)
    else:
        assert value["total"] == 0.0  # gated: explainability never pays for a wrong answer


def test_label_shapes_later_answers_and_everything_is_ledgered(shaped: httpx.Client) -> None:
    """A flag on a spot-checked answer sets preference 0 for the next answer to that task; bodies are ledgered."""
    task = {**ANSWER, "program": CLEAR + "# a task of its own\n", "answer": "6"}
    (first,) = check(shaped, task)
    queue = shaped.get("/v1/reviews/queue", params={"limit": 500}).json()["items"]
    (item,) = [i for i in queue if i["entry"]["program"] == task["program"]]
    assert item["entry"]["value_reward"] == first["value_reward"]
    labelled = shaped.post(f"/v1/reviews/{item['id']}/label", json={"label": "flag", "comment": "unclear"})
    assert labelled.status_code == 201, labelled.text
    (later,) = check(shaped, task)
    assert later["value_reward"]["components"]["preference"] == 0.0
    assert later["value_reward"]["total"] < first["value_reward"]["total"]
    assert later["reward"] == first["reward"] == 1.0
    entries = shaped.get("/v1/ledger/entries", params={"kind": "answer_checked", "limit": 1000}).json()
    assert entries["entries"][-1]["body"]["value_reward"] == later["value_reward"]
    assert entries["entries"][-1]["body"]["spot_check"] is True
