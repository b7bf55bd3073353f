"""Runs' texts compiled on the trusted side, so that their children do not compile them.

A forked child pays for every page it writes with a copy-on-write fault (about 3 us each on the
development host), and compiling is the most writing thing a child does: the parser's and the
compiler's allocations land on pages it shares with the fork-server. ``bench/child_floor.py``
measured, in the runner image: a child that compiles and runs an AZR validation script costs 2.4 ms
of CPU and 370 faults; the same child given the script's bytecode costs 1.0 ms and 190 faults. Here
(the daemon's own heap) compiling costs only the compiling.

So :func:`with_bytecode` adds the code object of a ``script`` job's code, or of every text of a
``calls`` job, for the child. The job travels in ``marshal`` (run.py), so the child's one
``marshal.loads`` of its job makes the code objects too, instead of compiling (``runner/jobs.py``).
The source still travels with it, and the child compiles that whenever the code object is missing.
Nothing is precompiled when:

* the daemon's Python is not the image's (:data:`.wheelhouse.IMAGE_PYTHON`): bytecode is only
  portable within one minor version;
* the code is longer than :data:`MAX_SOURCE_CHARS`, or its batch has used its compiling budget
  (:class:`Compiler`): the daemon's event loop spends at most about a millisecond per run on it,
  whatever a request holds;
* compiling fails or warns (``SyntaxError``, ``SyntaxWarning``, null bytes, nesting too deep): the
  child compiles it, so errors and warnings reach the run's stderr exactly as before;
* the code holds a set constant of two or more elements (:func:`_orders_by_hash`): after ``marshal``
  its order would follow the daemon's hash seed, not the child's.

Compiling is not running: no model code executes on the trusted side (docs/security-model.md).
"""

from __future__ import annotations
import __future__

import sys
import time
import warnings
from types import CodeType
from typing import Any, cast

from .runner.jobs import bytecode_field
from .textcache import MISSING, TextCache
from .wheelhouse import IMAGE_PYTHON

MAX_SOURCE_CHARS = 4096  # per text
MAX_JOB_CHARS = 16384  # all the texts of one job together; the rest the child compiles
SECONDS_PER_RUN = 0.001  # a batch's compiling budget, per run (:class:`Compiler`)
# A code object's size, estimated for the shared cache's bound: measured on AZR's programs and inputs
# (tracemalloc) as about 4 bytes per character of source plus about 400 per code object; 5 to be safe.
CODE_BYTES_PER_CHAR = 5
CODE_BYTES = 400
FILENAME = "<program>"  # runner/jobs.py compiles under this name too, and tracebacks start there
# runner/jobs.py calls compile() from a module with ``from __future__ import annotations``, so the
# child's own compile inherits that flag: the same flags here give the same code object.
_FLAGS = __future__.annotations.compiler_flag


def precompiled(source: str, name: str = FILENAME, mode: str = "exec") -> CodeType | None:
    """``compile(source, name, mode)`` as the child would compile it, or None (the child compiles it)."""
    if sys.version_info[:2] != IMAGE_PYTHON or len(source) > MAX_SOURCE_CHARS:
        return None
    try:
        # Recorded, not raised: the filters are process-wide, and an "error" filter would turn a warning
        # of another thread (the engine client's) into an exception there. A warning recorded here,
        # ours or by chance another thread's, only means the child compiles the text itself.
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            code: CodeType = compile(source, name, mode, flags=_FLAGS, dont_inherit=True)
    except Exception:  # any failure: the child compiles it, and reports it as it always did
        return None
    if warned or _orders_by_hash(code):  # a warning would go to the child's stderr: let it compile
        return None
    return code


def _orders_by_hash(code: CodeType) -> bool:
    """Whether ``code`` (or a function in it) holds a frozenset constant of two or more elements.

    The compiler folds set displays of constants (``{'a', 'b'}``, ``x in {1, 2}``) into frozensets.
    ``marshal`` stores one in the daemon's iteration order, which follows the daemon's hash seed, and
    loading it inserts the elements in that order; colliding elements then land in other slots than
    the child's own compile would put them in, under the child's pinned ``PYTHONHASHSEED``. A set the
    program prints could come out in another order, so such code is compiled by the child.
    """
    for constant in code.co_consts:
        if isinstance(constant, frozenset) and len(constant) > 1:
            return True
        if isinstance(constant, CodeType) and _orders_by_hash(constant):
            return True
    return False


class Compiler:
    """One batch's precompiling: each distinct text once, within a time budget.

    The executor makes one per batch (``Executor.run_batch``) with :data:`SECONDS_PER_RUN` for each
    of its runs. Once the batch has spent that much time compiling, its remaining texts go to their
    children uncompiled, so a batch of hostile texts that are slow to compile (long f-string chains
    take about 1.5 ms per 1,000 characters) costs the event loop at most about a millisecond per run.
    Repeats are free: the k answers to one task share its program, and with ``shared`` (the daemon's
    :class:`~sandboxd.textcache.TextCache`) so are texts an earlier request compiled. Code objects are
    immutable, so sharing them across requests shares nothing a request could change.
    """

    def __init__(self, runs: int, shared: TextCache | None = None) -> None:
        self.budget_seconds = runs * SECONDS_PER_RUN
        self.spent_seconds = 0.0
        self._seen: dict[tuple[str, str, str], CodeType | None] = {}
        self._shared = shared if shared is not None else TextCache(0)  # 0: keeps nothing

    def __call__(self, text: str, name: str = FILENAME, mode: str = "exec") -> CodeType | None:
        key = (text, name, mode)
        if key in self._seen:
            return self._seen[key]
        kept = self._shared.get(key)
        if kept is not MISSING:
            self._seen[key] = kept
            return cast(CodeType | None, kept)
        if self.spent_seconds >= self.budget_seconds:
            return None
        started = time.perf_counter()
        blob = precompiled(text, name, mode)
        self.spent_seconds += time.perf_counter() - started
        self._seen[key] = blob
        self._shared.put(key, blob, len(text) * CODE_BYTES_PER_CHAR + CODE_BYTES)
        return blob


def with_bytecode(job: dict[str, Any], compiler: Compiler | None = None) -> dict[str, Any]:
    """``job`` plus the bytecode of every text its child would compile, laid out by
    :func:`.runner.jobs.bytecode_field`; ``job`` itself where there is none (other kinds, another Python,
    a script that is not precompiled)."""
    if sys.version_info[:2] != IMAGE_PYTHON:
        return job
    compile_text = compiler if compiler is not None else Compiler(1)
    budget = [MAX_JOB_CHARS]

    def one(text: Any, name: str, mode: str) -> CodeType | None:
        if not isinstance(text, str) or len(text) > budget[0]:
            return None
        budget[0] -= len(text)
        return compile_text(text, name, mode)

    field = bytecode_field(job, one)
    return job if field is None else {**job, "bytecode": field}
