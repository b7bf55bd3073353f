"""Deduction answers that are plain literals, read on the trusted side instead of in a sandbox.

A deduction answer is the model's prediction of ``f(input)``: nearly always a literal such as
``[1, 'a']`` (170 of the 171 in ``bench/azr_step.py``). Evaluating a literal runs no model code, so
a fresh sandboxed process for it buys no isolation and costs a fork, a lock-down and a frame. The
literal is read by the same reader as literal expected outputs (:mod:`.literal`: an ``ast`` walk over
constants and containers, never ``eval``), and the value then takes the child's own path: the runner's
:class:`~sandboxd.runner.encode.Encoder` under the policy's caps, and the decoder every frame takes
(:func:`.outcomes.outcome_of_tagged`). So the value, its caps and its canonical form are exactly what
a sandbox would report.

Anything else runs in the sandbox as before: text that is not a literal, a value the encoder refuses
(too deep, too many nodes or digits), an expected output stored truncated (compared by repr, which
the sandbox takes), and a task whose imports could change the answer's meaning or fail there. Only
``import X`` of a module the fork-server preloads is accepted, because that cannot fail and binds no
name the reader uses. ``policy.azr.literal_answers: false`` turns all of this off.
"""

from __future__ import annotations

import ast
import json

from sandboxd.azr.literal import NotLiteral
from sandboxd.azr.memo import TextMemo
from sandboxd.azr.outcomes import CallOutcome, outcome_of_tagged
from sandboxd.canonical import DecodeError
from sandboxd.policy import SandboxPolicy
from sandboxd.runner import jobs
from sandboxd.runner.encode import EncodeLimitError, Encoder

_READER_NAMES = frozenset({"set", "frozenset", "list", "tuple", "dict"})  # the reader's empty constructors


def harmless_imports(imports: list[str], preloaded: tuple[str, ...]) -> bool:
    """Whether every import line is ``import X`` (no alias) of a module the fork-server preloads."""
    for line in imports:
        try:
            tree = ast.parse(line)
        except SyntaxError:
            return False
        for node in tree.body:
            if not isinstance(node, ast.Import):
                return False
            for alias in node.names:
                if alias.asname is not None or alias.name not in preloaded or alias.name in _READER_NAMES:
                    return False
    return True


def read(text: str, imports: list[str], policy: SandboxPolicy, memo: TextMemo) -> CallOutcome | None:
    """The answer's outcome as a sandbox would report it, or None when it must run in one."""
    if not policy.azr.literal_answers or not harmless_imports(imports, policy.preload_modules):
        return None
    try:
        value = memo.literal(text)
    except NotLiteral:
        return None
    encoder = Encoder(**policy.encoder.model_dump())
    try:
        encoded = encoder.to_json(jobs.reported(value))
    except (EncodeLimitError, RecursionError, MemoryError, ValueError):
        return None  # the sandbox reports the encoder's refusal in its own words
    if encoder.non_canonical:
        return None
    try:
        return outcome_of_tagged(json.loads(encoded))
    except DecodeError:
        return None
