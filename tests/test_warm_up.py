"""The fork-server's warm-up quickens the child's own path, not only the job's (runner/child.py).

CPython 3.11 counts a function's calls in its code object until the eighth quickens it. A function that
a child calls for the first time therefore writes to the page of its code object, one copy-on-write
fault per function per run. ``warm_up`` runs every job kind, as a child does, in the fork-server before
it forks: reading the job from a memfd, reseeding, the frame and the probes. The check runs in a fresh
interpreter, with ``RESULT_FD`` on ``/dev/null`` as in a fork-server, and reads the quickening from
``dis``: ``RESUME_QUICK`` replaces ``RESUME`` once a code object is quickened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from forkserver_support import REPO

SCRIPT = textwrap.dedent(
    """
    import dis, json, os, random, sys
    report = 40  # above the fds the fork-server owns
    os.dup2(1, report)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 3):  # a fork-server's stdin, stdout and RESULT_FD
        os.dup2(null, fd)
    from sandboxd.runner import child, jobs

    PATH = {
        "read_job": child.read_job,
        "_reseed": child._reseed,
        "_executed": child._executed,
        "_frame": child._frame,
        "_write_all": child._write_all,
        "_probe": child._probe,
        "probe_results": jobs.probe_results,
        "run_calls": jobs.run_calls,
    }

    def quickened(function):
        names = [i.opname for i in dis.get_instructions(function, adaptive=True)]
        return "RESUME_QUICK" in names

    before = {name: quickened(function) for name, function in PATH.items()}
    state, streams = random.getstate(), (sys.stdout, sys.stderr)
    child.warm_up(child.Preparation(None, child.ChildStreams.create(), 0))
    after = {name: quickened(function) for name, function in PATH.items()}
    os.write(report, json.dumps({
        "before": before, "after": after, "random_kept": random.getstate() == state,
        "streams_kept": (sys.stdout, sys.stderr) == streams,
    }).encode())
    """
)


def _python(script: str) -> subprocess.CompletedProcess[bytes]:
    """``script`` in a fresh interpreter that imports this checkout's sandboxd."""
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="module")
def seen() -> dict[str, object]:
    """What one fresh interpreter reports before and after its warm-up (both tests read it)."""
    done = _python(SCRIPT)
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_warm_up_quickens_the_childs_own_path(seen: dict[str, object]) -> None:
    assert not any(seen["before"].values()), seen["before"]  # type: ignore[union-attr]
    assert all(seen["after"].values()), seen["after"]  # type: ignore[union-attr]


def test_the_warm_up_leaves_the_fork_servers_random_state_and_streams_as_they_were(
    seen: dict[str, object],
) -> None:
    assert seen["random_kept"] is True
    assert seen["streams_kept"] is True


def test_the_warm_up_refuses_to_write_frames_anywhere_but_dev_null() -> None:
    script = "import os\nos.dup2(os.open('/tmp', os.O_RDONLY), 3)\n" + (
        "from sandboxd.runner import child\n"
        "child.warm_up(child.Preparation(None, child.ChildStreams.create(), 0))\n"
    )
    done = _python(script)
    assert done.returncode != 0
    assert b"RESULT_FD is not /dev/null" in done.stderr
