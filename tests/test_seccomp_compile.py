"""The child allowlist compiled in a throwaway process (runner/syscalls.py, ``compile_filter_apart``).

Runs where the daemon runs (pyseccomp is a dependency of the package): the container side is covered by
``test_api.py::test_children_inherit_no_seccomp_compiler_modules`` and the attack suite.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sandboxd.runner.syscalls import compile_filter, compile_filter_apart

ALLOWED = ["read", "write", "exit_group", "openat", "ioctl", "clone", "prlimit64", "mmap"]


def test_the_program_is_the_one_compiled_in_process() -> None:
    program = compile_filter_apart(ALLOWED)
    assert program == compile_filter(ALLOWED)
    assert len(program) % 8 == 0
    assert len(program) > 8 * len(ALLOWED)


def test_a_refused_syscall_is_raised_here_with_its_reason() -> None:
    with pytest.raises(ValueError, match="cannot allow syscall 'no_such_call'"):
        compile_filter_apart(["read", "no_such_call"])


def test_the_compilers_imports_stay_in_the_throwaway_process() -> None:
    probe = (
        "import json, sys\n"
        "from sandboxd.runner.syscalls import compile_filter_apart\n"
        "compile_filter_apart(['read', 'write', 'exit_group'])\n"
        "print(json.dumps([m for m in ('pyseccomp', 'ctypes.util', 'subprocess', 'shutil') if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []
