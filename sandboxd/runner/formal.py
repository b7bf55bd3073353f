"""The ``formal`` job: CrossHair searches for an input on which two programs differ, inside the sandbox.

CrossHair executes the code it analyses (symbolically, with z3 deciding the branches), so it runs here,
in a locked-down child like any model code, never on the trusted side. The job holds two programs (the
proposer's ``reference`` and the solver's ``program``), the ``entry`` function name, one type description
per positional argument (derived on the trusted side from the shown inputs) and ``search_seconds``, the
wall-clock time CrossHair may spend searching. It reports one value:

- ``{"status": "searched", "paths", "exhausted", "nondeterministic", "search_seconds", "counterexamples"}``:
  each counterexample is ``{"args": [repr, ...], "reference": {...}, "answer": {...}}`` with each side's
  ``returns``/``raises`` repr. These are **candidates**: the trusted side re-runs both programs on them as
  ordinary ``calls`` jobs and compares the values itself before anything is vetoed.
- ``{"status": "not_defined", "program": "reference"|"answer", "error": name}``: a program raised while
  being defined, or has no plain function ``entry``.
- ``{"status": "unavailable", "error": name}``: the image has no CrossHair (see sandboxd/wheelhouse.py).

CrossHair and z3 live in :data:`TARGET`, which is not on ``sys.path`` of PID 1 or of ordinary children:
the ``formal`` zygote (see :mod:`.zygote`) calls :func:`enable` and preloads :data:`PRELOAD` once, so a
formal child starts warm and every other fork stays as small as before.
"""

from __future__ import annotations

import builtins
import collections
import importlib
import sys
import time
import types

TYPE_CHECKING = False  # typing itself is imported only by formal jobs: see child.ChildFds
if TYPE_CHECKING:
    from typing import Any

    from .jobs import Outcome

TARGET = "/opt/sandboxd-formal"  # = sandboxd.wheelhouse.TARGET (the runner cannot import the daemon)
# What a formal child uses; core_and_libs registers CrossHair's models of the builtins.
_MODULES = ("core_and_libs", "core", "statespace", "diff_behavior", "options")
PRELOAD = tuple(f"crosshair.{name}" for name in _MODULES)
MAX_COUNTEREXAMPLES = 3
_REPR_CHARS = 2000
SMT_RLIMIT = 5_000_000  # z3 work units per solver call (see _threadless_wall_clock)
_SCALARS: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "bytes": bytes,
    "None": type(None),
}


def enable() -> list[str]:
    """Put the toolchain on ``sys.path``; return the modules a formal zygote preloads."""
    if TARGET not in sys.path:
        sys.path.append(TARGET)
    return list(PRELOAD)


def annotation(description: Any) -> Any:
    """The type for a description: ``"int"``, ``["list", E]``, ``["tuple", [E, ...]]``, ``["tuple...", E]``,
    ``["set", E]``, ``["frozenset", E]``, ``["dict", K, V]``, ``["union", [E, ...]]``."""
    if isinstance(description, str):
        return _SCALARS[description]
    kind, *rest = description
    if kind == "list":
        return list[annotation(rest[0])]  # type: ignore[misc]  # built at run time on purpose
    if kind == "set":
        return set[annotation(rest[0])]  # type: ignore[misc]
    if kind == "frozenset":
        return frozenset[annotation(rest[0])]  # type: ignore[misc]
    if kind == "dict":
        return dict[annotation(rest[0]), annotation(rest[1])]  # type: ignore[misc]
    if kind == "tuple":
        return tuple.__class_getitem__(tuple(annotation(item) for item in rest[0]))
    if kind == "tuple...":
        return tuple[annotation(rest[0]), ...]  # type: ignore[misc]
    if kind == "union":
        import typing  # noqa: PLC0415 - only formal jobs need it; every fork-server imports this module

        return typing.Union[tuple(annotation(item) for item in rest[0])]  # noqa: UP007 - built from a tuple at run time
    raise ValueError(f"unknown type description {kind!r}")


def _threadless_wall_clock(core: Any, statespace: Any) -> None:
    """Adapt this process's CrossHair to the child: no threads, and budgets in wall-clock seconds.

    - z3 enforces a ``timeout`` with a timer thread, and a child cannot start threads (``RLIMIT_NPROC`` is
      0 for every child, formal or not): z3 would abort. So each solver call gets a deterministic
      ``rlimit`` (abstract solver work) instead, and no ``timeout``.
    - CrossHair measures its search and path budgets in CPU time; on a busy host that is far less than
      the wall time the fork-server allows, so the search would be killed before it reports. Both
      modules' clock becomes ``time.monotonic``.

    The fork-server's wall-clock kill still bounds everything. Idempotent.
    """
    statespace.CROSSHAIR_SMT_RLIMIT = SMT_RLIMIT
    core.process_time = statespace.process_time = time.monotonic
    if getattr(core.StateSpace, "sandboxd_threadless", False):
        return

    class ThreadlessStateSpace(statespace.StateSpace):  # type: ignore[misc]  # a base of type Any
        sandboxd_threadless = True

        def __init__(self, execution_deadline: float, model_check_timeout: float, search_root: Any) -> None:
            super().__init__(execution_deadline, float("inf"), search_root)

    core.StateSpace = ThreadlessStateSpace


def _define(imports: list[str], program: str, entry: str) -> Any:
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    for line in imports:
        exec(compile(line, "<imports>", "exec"), namespace)  # model code, run only inside the sandbox
    exec(compile(program, "<program>", "exec"), namespace)  # model code, run only inside the sandbox
    function = namespace.get(entry)
    if type(function) is not types.FunctionType:
        raise TypeError(f"{entry} is not a plain function")
    return function


def _side(result: Any) -> dict[str, Any]:
    raises = result.error
    return {
        "returns": None if raises is not None else str(result.return_repr)[:_REPR_CHARS],
        "raises": None if raises is None else str(raises)[:_REPR_CHARS],
    }


def search(job: dict[str, Any]) -> dict[str, Any]:
    """The job's one value (see the module docstring)."""
    import inspect  # noqa: PLC0415 - only formal jobs need it; every fork-server imports this module

    try:
        enable()  # CrossHair lives only in the image (sandboxd/wheelhouse.py), never in the daemon
        modules = {name: importlib.import_module(f"crosshair.{name}") for name in _MODULES}
    except ImportError as exc:
        return {"status": "unavailable", "error": type(exc).__name__}
    _threadless_wall_clock(modules["core"], modules["statespace"])
    diff_behavior, options_module = modules["diff_behavior"], modules["options"]
    entry = str(job.get("entry", "f"))
    functions = []
    for role, key in (("reference", "reference"), ("answer", "program")):
        try:
            functions.append(_define(list(job.get("imports", [])), str(job[key]), entry))
        except BaseException as exc:  # model code may raise anything while being defined
            return {"status": "not_defined", "program": role, "error": type(exc).__name__}
    parameters = [
        inspect.Parameter(f"a{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation(t))
        for i, t in enumerate(job["types"])
    ]
    budget = max(0.05, float(job["search_seconds"]))
    options = options_module.DEFAULT_OPTIONS.overlay(
        per_condition_timeout=budget, per_path_timeout=max(0.05, min(1.0, budget / 4))
    )
    stats: collections.Counter[str] = collections.Counter()
    options.stats = stats
    started = time.monotonic()
    diffs = diff_behavior.diff_behavior_with_signature(
        functions[0],
        functions[1],
        inspect.Signature(parameters),
        options,
        diff_behavior.ExceptionEquivalenceType.ALL,  # both raising is agreement: the check is about returned values
        lambda: stats.update(["nondeterministic"]),
    )
    diffs.sort(key=lambda diff: diff.result1.error is not None)  # where the reference returns first
    return {
        "status": "searched",
        "paths": stats["num_paths"],
        "exhausted": stats["exhaustion"] > 0,
        "nondeterministic": stats["nondeterministic"],
        "search_seconds": round(time.monotonic() - started, 3),
        "counterexamples": [
            {
                "args": [str(diff.args.get(p.name, ""))[:_REPR_CHARS] for p in parameters],
                "reference": _side(diff.result1),
                "answer": _side(diff.result2),
            }
            for diff in diffs[:MAX_COUNTEREXAMPLES]
        ],
    }


def run_formal(job: dict[str, Any]) -> Outcome:
    """The job kind: one value, the search's report."""
    from .jobs import Outcome  # noqa: PLC0415 - jobs.py imports this module to register the kind

    return Outcome(values=[search(job)])
