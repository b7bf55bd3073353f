"""A drop-in for Absolute Zero Reasoner's ``PythonExecutor``, backed by sandboxd.

Same method names, arguments and return shapes as AZR's executor (see docs/trainer_client.md for the
exact conventions and the few deliberate differences). Programs run in sandboxd; the trainer process
never executes model text, and comparisons happen on sandboxd's trusted side, not by ``eval``.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from .client import SandboxClient
from .exceptions import SandboxServerError
from .models import FAULT_REASONS, Answer, CheckResult, ProposedTask, Reason, TaskType, ValidateResult

log = logging.getLogger(__name__)

DONE = "Done"  # AZR's status of a run that returned
TIMEOUT_STATUS = "Timeout Error"  # AZR's status of a run that was killed for time
_RAISED = re.compile(r"raised (\w+)")
_WORD = re.compile(r"\w+")


def _import_list(imports: Iterable[Any] | None) -> list[str]:
    """AZR passes imports as a list or a numpy array of strings; both are iterables of str."""
    return [] if imports is None else [str(item) for item in imports]


def uses_banned(code: str, banned: Sequence[str], banned_for_errors: Sequence[str] = ()) -> bool:
    """AZR's banned-keyword rule, by parsing only: an import of a banned module (any dotted part), or,
    for error tasks, a banned statement kind (``assert``, ``raise``, ``try``, ``except``).
    Code that does not parse falls back to a whole-word search for the banned words."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return any(re.search(rf"\b{re.escape(word)}\b", code) for word in banned)
    statements = {"assert": ast.Assert, "raise": ast.Raise, "try": ast.Try, "except": ast.ExceptHandler}
    kinds = tuple(statements[word] for word in banned_for_errors if word in statements)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or "", *(alias.name for alias in node.names)]
        if any(word in name.split(".") for name in names for word in banned):
            return True
        if kinds and isinstance(node, kinds):
            return True
    return False


def error_name(result: ValidateResult) -> str:
    """The exception type a failed run raised, as AZR's ``parse_error`` reports it (``"Error"`` if unknown)."""
    detail = result.detail or ""
    match = _RAISED.search(detail)
    if match:
        return match.group(1)
    return detail if _WORD.fullmatch(detail) else "Error"


def status_of(result: ValidateResult) -> str:
    """AZR's status string: ``"Done"``, ``"Timeout Error"``, or text containing ``"Error"``."""
    if result.valid:
        return DONE
    if result.reason == Reason.TIMEOUT:
        return TIMEOUT_STATUS
    if result.reason == Reason.RUNTIME_ERROR:
        return f"Error: {error_name(result)}"
    return f"Error: {result.reason}" + (f" ({result.detail})" if result.detail else "")


def _no_internal_errors(results: Sequence[CheckResult | ValidateResult]) -> None:
    """A result with reason ``internal_error`` is a sandboxd fault: raise it rather than score it."""
    for result in results:
        if result.reason in FAULT_REASONS:
            raise SandboxServerError(200, result.reason, result.detail)


class SandboxdExecutor:
    """AZR's ``PythonExecutor`` interface on top of ``/v1/azr/validate`` and ``/v1/azr/check``.

    ``timeout_length``, ``ast_check`` and ``max_workers`` are accepted so AZR's constructor call works
    unchanged; limits come from the sandboxd ``policy`` instead, and sandboxd always parses the texts.
    Faults of sandboxd itself raise :class:`~trainer_client.SandboxError` rather than becoming a verdict
    about the model, except in :meth:`eval_input_prediction` and :meth:`eval_output_prediction`, which
    return None as AZR does when it could not score.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        policy: str | None = None,
        client: SandboxClient | None = None,
        timeout_length: int = 10,
        ast_check: bool = False,
        max_workers: int = 1,
    ) -> None:
        self.client = client or SandboxClient(base_url, policy=policy)
        self._owns_client = client is None
        self.timeout_length = timeout_length
        self.ast_check = ast_check
        self.max_workers = max_workers

    # --- proposer side: is a task valid, and what does f(input) return? ---

    def _validate(self, code: str, inputs: str, imports: Iterable[Any] | None) -> ValidateResult:
        [result] = self._validate_many([(code, inputs, imports)])
        return result

    def _validate_many(
        self, programs: Sequence[tuple[str, str, Iterable[Any] | None]]
    ) -> list[ValidateResult]:
        if not programs:
            return []
        tasks = [
            ProposedTask(task_type="deduction", program=code, imports=_import_list(imports), inputs=[inputs])
            for code, inputs, imports in programs
        ]
        # AZR records outputs truncated to 400 characters and accepts any repr.
        results = self.client.validate(tasks, truncate_outputs=True, allow_non_canonical=True)
        _no_internal_errors(results)
        return results

    def run_code(self, code: str, inputs: str, imports: Iterable[Any] | None = None) -> tuple[str, str]:
        """``(repr(f(inputs)), "Done")``, or ``("", status)`` with ``"error"`` in the status."""
        result = self._validate(code, inputs, imports)
        if result.valid:
            return (result.outputs[0] or "").strip(), DONE
        return "", status_of(result)

    def validate_code(self, code: str, inputs: str, imports: Iterable[Any] | None = None) -> bool:
        """True when ``f(inputs)`` returns (deterministically)."""
        return self._validate(code, inputs, imports).valid

    def check_all(  # noqa: PLR0917 - AZR's signature, positional arguments included
        self,
        code: str,
        inputs: str,
        banned_keywords: Sequence[str] = (),
        check_determinism: bool = True,
        imports: Iterable[Any] | None = None,
        check_error: bool = False,
        banned_keywords_for_errors_and_exceptions: Sequence[str] = (),
    ) -> tuple[bool, str | None]:
        """AZR's proposal check: ``(True, output repr)``, ``(False, "")`` if it fails, ``(False, None)`` if banned.

        With ``check_error``: ``(True, "NoError")`` or ``(True, exception name)``; ``(False, "error")``
        when the program does not parse, times out, or behaves differently on two calls.
        """
        [verdict] = self.check_all_batch(
            [(code, inputs, imports)],
            banned_keywords=banned_keywords,
            check_determinism=check_determinism,
            check_error=check_error,
            banned_keywords_for_errors_and_exceptions=banned_keywords_for_errors_and_exceptions,
        )
        return verdict

    def check_all_batch(
        self,
        programs: Sequence[tuple[str, str, Iterable[Any] | None]],
        *,
        banned_keywords: Sequence[str] = (),
        check_determinism: bool = True,
        check_error: bool = False,
        banned_keywords_for_errors_and_exceptions: Sequence[str] = (),
    ) -> list[tuple[bool, str | None]]:
        """:meth:`check_all` for many ``(code, inputs, imports)`` at once, in one validate request per chunk.

        sandboxd always calls ``f`` twice, so ``check_determinism=False`` does not relax anything.
        """
        banned_for_errors = banned_keywords_for_errors_and_exceptions if check_error else ()
        allowed = [
            index
            for index, (code, _, imports) in enumerate(programs)
            if not uses_banned("\n".join([*_import_list(imports), code]), banned_keywords, banned_for_errors)
        ]
        results = dict(zip(allowed, self._validate_many([programs[i] for i in allowed]), strict=True))
        verdicts: list[tuple[bool, str | None]] = []
        for index in range(len(programs)):
            result = results.get(index)
            if result is None:
                verdicts.append((False, None))
            elif check_error:
                verdicts.append(self._error_verdict(result))
            elif result.valid:
                verdicts.append((True, (result.outputs[0] or "").strip()))
            else:
                verdicts.append((False, ""))  # AZR: the (empty) output of a run that failed
        return verdicts

    @staticmethod
    def _error_verdict(result: ValidateResult) -> tuple[bool, str]:
        if result.valid:
            return True, "NoError"
        if result.reason == Reason.RUNTIME_ERROR:
            return True, error_name(result)
        return False, "error"

    # --- solver side: is a predicted input or output right? ---

    def _check_results(
        self,
        code: str,
        gold_output: str,
        answers: Sequence[str],
        task_type: TaskType,
        imports: Iterable[Any] | None,
    ) -> list[CheckResult]:
        unique = list(dict.fromkeys(answers))  # AZR's answer cache: each distinct answer runs once
        requests = [
            Answer(
                task_type=task_type,
                answer=answer,
                program=code,
                expected_output=gold_output,
                imports=_import_list(imports),
            )
            for answer in unique
        ]
        results = dict(zip(unique, self.client.check(requests) if requests else [], strict=True))
        return [results[answer] for answer in answers]

    def _check_k(
        self,
        code: str,
        gold_output: str,
        answers: Sequence[str],
        task_type: TaskType,
        imports: Iterable[Any] | None,
    ) -> list[float]:
        results = self._check_results(code, gold_output, answers, task_type, imports)
        _no_internal_errors(results)
        return [result.reward for result in results]

    def _check_one(
        self, code: str, gold_output: str, answer: str, task_type: TaskType, imports: Iterable[Any] | None
    ) -> float | None:
        [result] = self._check_results(code, gold_output, [answer], task_type, imports)
        if result.reason in FAULT_REASONS:
            log.warning("sandboxd could not score a %s answer: %s", task_type, result.detail)
            return None
        return result.reward

    def eval_input_prediction(
        self, code: str, gold_output: str, agent_input: str, imports: Iterable[Any] | None = None
    ) -> float | None:
        """1.0 when ``f(agent_input) == gold_output`` (abduction), else 0.0; None if sandboxd could not score."""
        return self._check_one(code, gold_output, agent_input, "abduction", imports)

    def eval_output_prediction(
        self, code: str, gold_output: str, agent_output: str, imports: Iterable[Any] | None = None
    ) -> float | None:
        """1.0 when ``agent_output == gold_output`` as values (deduction), else 0.0; None if not scored."""
        return self._check_one(code, gold_output, agent_output, "deduction", imports)

    def eval_k_input_prediction(
        self, code: str, gold_output: str, k_agent_inputs: Sequence[str], imports: Iterable[Any] | None = None
    ) -> list[float]:
        """One 1.0/0.0 per agent input, in the order given."""
        return self._check_k(code, gold_output, list(k_agent_inputs), "abduction", imports)

    def eval_k_output_prediction(
        self,
        code: str,
        gold_output: str,
        k_agent_outputs: Sequence[str],
        imports: Iterable[Any] | None = None,
    ) -> list[float]:
        """One 1.0/0.0 per agent output, in the order given."""
        return self._check_k(code, gold_output, list(k_agent_outputs), "deduction", imports)

    # --- lifecycle ---

    def cleanup(self) -> None:
        """AZR calls this periodically and keeps using the executor: nothing to clean up here."""

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> SandboxdExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


PythonExecutor = SandboxdExecutor  # so ``from trainer_client.azr import PythonExecutor`` also works
