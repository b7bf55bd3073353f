"""The safety watchdog: YAML rule packs, the static (pre-execution) and post-execution checks, plugins.

``check_source(source, packs, role, task_type)`` is pure: it parses ``source`` with :mod:`ast` and
ast-grep (never runs it) and returns a :class:`Decision`. ``check_outcome(outcome, packs, role, task_type)``
judges a finished run the same way. See ``docs/watchdog.md``. The runtime half (tripwires, honeytokens,
the alignment-confidence throttle) is :mod:`sandboxd.watchdog.sentinel`; see ``docs/safety.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checker import check_source
    from .criteria import Pack
    from .decision import Decision, DecisionKind, Finding
    from .diff import Change, diff_packs
    from .outcome import Outcome
    from .packs import DEFAULT_PACK_DIR, PackError, Problem, default_packs, load_pack, load_packs
    from .plugins import CheckContext, WatchdogCheck
    from .postexec import check_outcome
    from .selftest import CaseResult, run_inline_tests

# Lazy, so that ``sandboxd image tag`` (which registers the ``policy`` CLI group) imports neither pydantic
# nor yaml; ``from sandboxd.watchdog import check_source`` works as usual.
_HOMES = {
    "check_source": "checker",
    "check_outcome": "postexec",
    "Outcome": "outcome",
    "Change": "diff",
    "diff_packs": "diff",
    "CheckContext": "plugins",
    "WatchdogCheck": "plugins",
    "Pack": "criteria",
    "Decision": "decision",
    "DecisionKind": "decision",
    "Finding": "decision",
    "DEFAULT_PACK_DIR": "packs",
    "PackError": "packs",
    "Problem": "packs",
    "default_packs": "packs",
    "load_pack": "packs",
    "load_packs": "packs",
    "CaseResult": "selftest",
    "run_inline_tests": "selftest",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "DEFAULT_PACK_DIR",
    "CaseResult",
    "Change",
    "CheckContext",
    "Decision",
    "DecisionKind",
    "Finding",
    "Outcome",
    "Pack",
    "PackError",
    "Problem",
    "WatchdogCheck",
    "check_outcome",
    "check_source",
    "default_packs",
    "diff_packs",
    "load_pack",
    "load_packs",
    "run_inline_tests",
]
