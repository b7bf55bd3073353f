"""Script runs compiled on the trusted side, so that their children do not compile them.

A forked child pays for every page it writes with a copy-on-write fault (about 3 us each on the
development host), and compiling is the most writing thing a child does: the parser's and the
compiler's allocations land on pages it shares with the fork-server. ``bench/child_floor.py``
measured, in the runner image: a child that compiles and runs an AZR validation script costs 2.4 ms
of CPU and 370 faults; the same child given the script's bytecode costs 1.0 ms and 190 faults. Here
(the daemon's own heap) compiling costs only the compiling.

So :func:`precompiled` compiles a ``script`` job's code for the child, which loads it with
``marshal`` instead of compiling (``runner/jobs.py``). The source still travels with it, and the child
compiles that whenever the bytecode is missing or does not load. Nothing is precompiled when:

* the daemon's Python is not the image's (:data:`.wheelhouse.IMAGE_PYTHON`): bytecode is only
  portable within one minor version;
* the code is longer than :data:`MAX_SOURCE_CHARS`: the daemon's event loop never spends more than
  about a millisecond on one run's text, whatever a request holds;
* compiling fails or warns (``SyntaxError``, ``SyntaxWarning``, null bytes, nesting too deep): the
  child compiles it, so errors and warnings reach the run's stderr exactly as before.

Compiling is not running: no model code executes on the trusted side (docs/security-model.md).
"""

from __future__ import annotations
import __future__

import base64
import marshal
import sys
import warnings

from .wheelhouse import IMAGE_PYTHON

MAX_SOURCE_CHARS = 8192
FILENAME = "<program>"  # runner/jobs.py compiles under this name too, and tracebacks start there
# runner/jobs.py calls compile() from a module with ``from __future__ import annotations``, so the
# child's own compile inherits that flag: the same flags here give the same code object.
_FLAGS = __future__.annotations.compiler_flag


def precompiled(source: str) -> str | None:
    """The base64 of ``marshal.dumps(compile(source))`` for a script run, or None (the child compiles)."""
    if sys.version_info[:2] != IMAGE_PYTHON or len(source) > MAX_SOURCE_CHARS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning would go to the child's stderr: let it compile
            code = compile(source, FILENAME, "exec", flags=_FLAGS, dont_inherit=True)
    except Exception:
        return None
    return base64.b64encode(marshal.dumps(code)).decode("ascii")
