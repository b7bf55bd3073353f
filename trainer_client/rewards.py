"""Ready-made reward functions for verl and TRL, scoring AZR-style answers with ``/v1/azr/check``.

A completion's answer is the text of its last ``<answer>...</answer>`` (after any ``</think>``), with
Markdown code fences removed. The ground truth of a sample (a dict, or its JSON text) is one of::

    {"task_type": "deduction", "program": "def f(x): ...", "input": "3", "output": "9", "imports": []}
    {"task_type": "abduction", "program": "def f(x): ...", "output": "9", "imports": []}
    {"task_type": "induction", "inputs": ["3", "4"], "outputs": ["9", "16"], "imports": []}

``task_type`` also accepts AZR's names (``code_o``, ``code_i``, ``code_f``) and ``program`` AZR's
``snippet``. A completion without an answer scores 0.0 and never reaches the sandbox.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Absolute imports: verl loads a custom reward function from a file path, outside any package.
from trainer_client.base import resolve_base_url
from trainer_client.client import SandboxClient
from trainer_client.models import FAULT_REASONS, Answer, CheckResult, TaskType

log = logging.getLogger(__name__)

TASK_TYPES: dict[str, TaskType] = {
    "deduction": "deduction",
    "code_o": "deduction",
    "abduction": "abduction",
    "code_i": "abduction",
    "induction": "induction",
    "code_f": "induction",
}
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FENCE = re.compile(r"```[\w+-]*\n(.*?)```", re.DOTALL)


def extract_answer(completion: str) -> str | None:
    """The last ``<answer>`` block after the reasoning, unfenced and stripped; None if there is none."""
    matches = _ANSWER.findall(completion.rsplit("</think>", 1)[-1])
    if not matches:
        return None
    text: str = matches[-1]
    fenced = _FENCE.findall(text)
    if fenced:
        text = fenced[-1]
    return text.strip() or None


def parse_ground_truth(ground_truth: str | Mapping[str, Any]) -> dict[str, Any]:
    """The ground truth as a dict with a canonical ``task_type``; ValueError if it is malformed."""
    truth = json.loads(ground_truth) if isinstance(ground_truth, str) else dict(ground_truth)
    if not isinstance(truth, dict):
        raise ValueError("ground truth must be a JSON object")
    kind = TASK_TYPES.get(str(truth.get("task_type", "")))
    if kind is None:
        raise ValueError(f"ground truth has no known task_type: {truth.get('task_type')!r}")
    needed = {"deduction": ("output",), "abduction": ("output",), "induction": ("inputs", "outputs")}[kind]
    if kind != "induction" and "program" not in truth and "snippet" not in truth:
        raise ValueError(f"{kind} ground truth needs program")
    missing = [key for key in needed if key not in truth]
    if missing:
        raise ValueError(f"{kind} ground truth needs {', '.join(missing)}")
    return {**truth, "task_type": kind}


def to_answer(answer: str, ground_truth: str | Mapping[str, Any]) -> Answer:
    """The ``/v1/azr/check`` request that scores ``answer`` against ``ground_truth``."""
    truth = parse_ground_truth(ground_truth)
    kind: TaskType = truth["task_type"]
    imports = truth.get("imports") or []
    if kind == "induction":
        return Answer(
            task_type=kind,
            answer=answer,
            imports=imports,
            inputs=list(truth["inputs"]),
            outputs=list(truth["outputs"]),
        )
    return Answer(
        task_type=kind,
        answer=answer,
        imports=imports,
        program=truth.get("program", truth.get("snippet")),
        input=truth.get("input"),
        expected_output=truth["output"],
    )


def score_completions(
    client: SandboxClient,
    completions: Sequence[str],
    ground_truths: Sequence[str | Mapping[str, Any]],
    *,
    policy: str | None = None,
) -> list[CheckResult | None]:
    """One check per completion with an answer (one request per chunk); None where there is no answer."""
    if len(completions) != len(ground_truths):
        raise ValueError(f"{len(completions)} completions but {len(ground_truths)} ground truths")
    answers = [extract_answer(text) for text in completions]
    wanted = [index for index, answer in enumerate(answers) if answer is not None]
    requests = [to_answer(answers[index] or "", ground_truths[index]) for index in wanted]
    checked = client.check(requests, policy=policy) if requests else []
    results: list[CheckResult | None] = [None] * len(completions)
    for index, result in zip(wanted, checked, strict=True):
        if result.reason in FAULT_REASONS:
            log.warning("sandboxd could not score completion %d: %s", index, result.detail)
        results[index] = result
    return results


def _as_dict(result: CheckResult | None) -> dict[str, Any]:
    if result is None:
        return {"score": 0.0, "correct": False, "reason": "no_answer"}
    return {"score": result.reward, "correct": result.correct, "reason": result.reason}


def _completion_text(completion: Any) -> str:
    """TRL completions are strings, or (conversational) lists of messages: take the last message."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"cannot read a completion of type {type(completion).__name__}")


_clients: dict[str, SandboxClient] = {}


def _default_client(url: str | None) -> SandboxClient:
    """One client per URL per process, created on first use (reward workers are separate processes)."""
    url = resolve_base_url(url)
    if url not in _clients:
        _clients[url] = SandboxClient(url)
    return _clients[url]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | Mapping[str, Any],
    extra_info: Mapping[str, Any] | None = None,
    *,
    sandbox_url: str | None = None,
    policy: str | None = None,
) -> dict[str, Any]:
    """verl's ``custom_reward_function``: ``{"score": 1.0 or 0.0, "correct": bool, "reason": str}``.

    sandboxd is at ``sandbox_url``, else ``$SANDBOXD_URL``, else http://127.0.0.1:8080 (both can be set
    through verl's ``custom_reward_function.reward_kwargs``).
    """
    [result] = score_completions(_default_client(sandbox_url), [solution_str], [ground_truth], policy=policy)
    return _as_dict(result)


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[str | Mapping[str, Any]],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    sandbox_url: str | None = None,
    policy: str | None = None,
) -> list[dict[str, Any]]:
    """verl's batched reward manager variant: the same dicts, for a whole batch in few requests."""
    results = score_completions(_default_client(sandbox_url), solution_strs, ground_truths, policy=policy)
    return [_as_dict(result) for result in results]


def make_trl_reward(
    client: SandboxClient | None = None,
    *,
    sandbox_url: str | None = None,
    policy: str | None = None,
    ground_truth_key: str = "ground_truth",
) -> Callable[..., list[float]]:
    """A TRL reward function ``reward_func(completions, **kwargs) -> list[float]``.

    TRL passes the dataset's columns as keyword arguments; ``ground_truth_key`` names the column that
    holds each sample's ground truth.
    """

    def azr_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
        if ground_truth_key not in kwargs:
            raise KeyError(f"the dataset has no {ground_truth_key!r} column")
        sandbox = client or _default_client(sandbox_url)
        texts = [_completion_text(completion) for completion in completions]
        results = score_completions(sandbox, texts, kwargs[ground_truth_key], policy=policy)
        return [0.0 if result is None else result.reward for result in results]

    return azr_reward


def trl_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """A TRL reward function using ``$SANDBOXD_URL`` and the ``ground_truth`` column."""
    return make_trl_reward()(completions, **kwargs)
