"""The fork-server's bursts of spares and its bare fork, on the real runner run as a host process.

These are logic tests of runner/forkserver.py and runner/forking.py: the fork-server runs here as a
plain subprocess (no container), speaking its protocol over pipes. Isolation itself is proven on
real containers (test_attacks.py, test_forkserver_spares.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from forkserver_support import REPO, LocalForkServer

from sandboxd.runner.zygote import seed_configuration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalForkServer]:
    local = LocalForkServer(tmp_path)
    try:
        yield local
    finally:
        local.close()


@pytest.mark.parametrize(("backlog", "spares_left"), [(0, 0), (2, 2), (3, 3), (50, 3)])
def test_a_backlog_hint_forks_a_burst_for_the_runs_still_to_come(
    server: LocalForkServer, backlog: int, spares_left: int
) -> None:
    """One run staged: without a hint one child is forked; with one, a burst (at most four) is."""
    server.send_run("print('hi')", "r1", backlog)
    result = server.next()
    assert result.header["op"] == "result"
    assert result.header["exit_code"] == 0
    assert result.body[: result.header["stdout_bytes"]] == b"hi\n"
    pong = server.ping()
    assert pong["running"] == 0
    assert pong["spares"] == spares_left


def test_spares_from_a_burst_each_run_exactly_one_program(server: LocalForkServer) -> None:
    for index in range(6):
        server.send_run(f"import os\nprint({index}, os.getpid())", f"r{index}", 5 - index)
    outputs = []
    for _ in range(6):
        message = server.next()
        assert message.header["op"] == "result"
        outputs.append(message.body[: message.header["stdout_bytes"]].decode().split())
    assert sorted(int(index) for index, _ in outputs) == list(range(6))
    assert len({pid for _, pid in outputs}) == 6  # a fresh process per program
    assert server.ping()["spares"] == 0


BARE_FORK = textwrap.dedent(
    """
    import json, os, threading, time
    from sandboxd.runner.forking import Forker

    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.register_at_fork(after_in_child=lambda: os.write(write_end, b"hook"))
    forker = Forker()

    def fork_and_read(bare):
        pid = forker.fork(bare)
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
        try:
            seen = os.read(read_end, 16).decode()
        except BlockingIOError:
            seen = ""
        return os.waitstatus_to_exitcode(status), seen

    report = {"single": forker.single_threaded(), "bare": fork_and_read(True), "os": fork_and_read(False)}
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    report["threaded"] = forker.single_threaded()
    stop.set()
    worker.join()
    print(json.dumps(report))
    """
)


def test_the_bare_fork_skips_python_at_fork_hooks_and_is_refused_with_threads() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    output = subprocess.run(
        [sys.executable, "-c", BARE_FORK], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    report = json.loads(output)
    assert report["single"] is True
    assert report["bare"] == [7, ""]  # the child ran and exited; the at-fork hook never ran
    assert report["os"] == [7, "hook"]  # os.fork() runs it: the test can tell the two apart
    assert report["threaded"] is False  # with a second thread the fork-server falls back to os.fork()


@pytest.mark.parametrize("prestart", [[], ["heavy"], ["heavy", "formal", "seed:3", "bogus"]])
def test_configure_prestarts_only_the_heavy_zygote(tmp_path: Path, prestart: list[str]) -> None:
    """``prestart: ["heavy"]`` starts the heavy zygote at configure, before any run needs it; other tags
    are ignored; without it the zygote starts at the first run that mentions a heavy module."""
    local = LocalForkServer(tmp_path, prestart=prestart)
    try:
        expected = ["heavy"] if "heavy" in prestart else []
        assert local.configured["zygotes"] == expected
        assert local.ping()["zygotes"] == expected
        result = local.run("import numpy\nprint('heavy', 40 + 2)")
        assert result["exit_code"] == 0, result
        assert result["stdout"] == b"heavy 42\n"
        assert local.ping()["zygotes"] == ["heavy"]  # started on first use when not prestarted
    finally:
        local.close()


def test_configure_forks_the_warm_spares_asked_for_and_each_runs_one_program(tmp_path: Path) -> None:
    """``spares: 12`` at configure: twelve children wait before any run, ``configured`` says so, and the
    runs use them up one each (the thirteenth run forks its own)."""
    local = LocalForkServer(tmp_path, spares=12)
    try:
        assert local.configured["warm_spares"] == 12
        assert local.ping()["spares"] == 12
        pids = []
        for index in range(13):
            result = local.run(f"import os\nprint({index}, os.getpid())")
            assert result["exit_code"] == 0, result
            number, pid = result["stdout"].decode().split()
            assert number == str(index)
            pids.append(int(pid))
            assert local.ping()["spares"] == max(0, 11 - index)
        assert len(set(pids)) == 13  # a fresh process per program
    finally:
        local.close()


def test_warm_spares_leave_open_files_for_the_runs(tmp_path: Path) -> None:
    """Each spare holds four fds in the fork-server: under an open-files limit of 300 it forks only
    (300 - 256) // 4 = 11 of the 40 asked for, and runs still stage (memfds) and capture (pipes)."""
    local = LocalForkServer(tmp_path, nofile=300, spares=40)
    try:
        assert local.configured["warm_spares"] == 11
        for index in range(15):
            result = local.run(f"print({index})")
            assert (result["exit_code"], result["stdout"]) == (0, f"{index}\n".encode())
    finally:
        local.close()


def test_a_seed_zygote_is_configured_without_pid_1s_warm_spares() -> None:
    """A seed zygote gets PID 1's configuration with the heavy modules preloaded and the compiled filter,
    but not its warm spares or prestarted zygotes (it would fork hundreds for a few runs)."""
    configuration = {"op": "configure", "preload": ["json"], "heavy_modules": ["numpy"], "max_parallel": 4}
    configuration |= {"spares": 190, "prestart": ["heavy"]}
    seeded = seed_configuration(configuration, ["numpy"], b"\x01\x02")
    assert seeded == {
        "op": "configure",
        "preload": ["json", "numpy"],
        "heavy_modules": [],
        "max_parallel": 4,
        "bpf": "AQI=",
    }
    assert configuration["spares"] == 190  # PID 1's own is unchanged
