"""The native spare path (runner/spare.c, runner/spare.py): the same lock-down as the Python path.

The object is compiled here exactly as the image build compiles it (``image.compile_spare``). Host tests
run the fork-server as a plain subprocess (as test_forkserver_bursts.py does) once per path and compare
what a child sees of its own process; the last test checks the real runner image ships and uses it.
Isolation itself is proven on real containers by test_attacks.py, whose children take this path.
"""

from __future__ import annotations

import json
import marshal
import os
import signal
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from forkserver_support import REPO, LocalForkServer

from sandboxd import image
from sandboxd.policy import load_policies
from sandboxd.run import JOB_MARSHAL_VERSION
from sandboxd.runner import child, spare
from sandboxd.runner.private import write_all
from sandboxd.runner.protocol import encode_message
from sandboxd.service import configure_message
from sandboxd.settings import BUILTIN_POLICIES
from sandboxd.testing import ProtocolPipe

SOURCE = REPO / "sandboxd" / "runner" / image.SPARE_SOURCE

needs_cc = pytest.mark.skipif(image.c_compiler() is None, reason="no C compiler: `make test` installs gcc")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if image.c_compiler() is None:
        pytest.skip("no C compiler: `make test` installs gcc")
    out = tmp_path_factory.mktemp("native") / "_spare.so"
    image.compile_spare(SOURCE.read_bytes(), out)
    return out


@pytest.fixture
def servers(tmp_path: Path, library: Path) -> Iterator[dict[str, LocalForkServer]]:
    started: dict[str, LocalForkServer] = {}
    try:
        for name, setting in (("python", "0"), ("native", str(library))):
            folder = tmp_path / name
            folder.mkdir()
            started[name] = LocalForkServer(folder, setting)
        yield started
    finally:
        for server in started.values():
            server.close()


SELF_PORTRAIT = textwrap.dedent(
    """
    import json, os, random, resource, signal, sys
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    limits = {name: resource.getrlimit(getattr(resource, name)) for name in
              ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE")}
    print(json.dumps({
        "fds": [fd for fd in range(1024) if os.path.exists(f"/proc/self/fd/{fd}")],  # no fd of its own
        "session_leader": os.getsid(0) == os.getpid(),
        "cwd_is_scratch": os.path.basename(os.getcwd()).startswith("run-"),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "seccomp": status["Seccomp"].strip(),
        "limits": limits,
        "vm_bytes": int(status["VmSize"].split()[0]) * 1024,
        "sigpipe": int(signal.getsignal(signal.SIGPIPE)),
        "stdin": sys.stdin.read(),
        "random": random.random(),
    }))
    """
)


def test_both_paths_lock_children_down_identically(servers: dict[str, LocalForkServer]) -> None:
    assert servers["native"].configured["spares"] == "native"
    assert servers["native"].configured["spawner"] is True
    assert servers["python"].configured["spares"] == "python"
    seen = {}
    for name, server in servers.items():
        result = server.run(SELF_PORTRAIT, stdin="in\n")
        assert result["exit_code"] == 0, result["stderr"]
        seen[name] = json.loads(result["stdout"])
    randoms = {name: portrait.pop("random") for name, portrait in seen.items()}
    memory = servers["native"].policy.limits.memory_bytes
    for portrait in seen.values():  # RLIMIT_AS is the fork-server's own size plus the memory limit
        headroom = portrait["limits"].pop("RLIMIT_AS")[0] - portrait.pop("vm_bytes")
        assert abs(headroom - memory) < 64 << 20  # give or take the fork-private mappings children lack
    assert seen["native"] == seen["python"]
    native = seen["native"]
    assert native["fds"] == [0, 1, 2, 3]  # stdin, stdout, stderr, the frame pipe; nothing inherited
    assert native["session_leader"]
    assert native["cwd_is_scratch"]
    assert native["no_new_privs"] == "1"
    assert native["seccomp"] == "2"
    assert native["limits"]["RLIMIT_NPROC"] == [0, 0]
    assert native["limits"]["RLIMIT_CORE"] == [0, 0]
    assert native["limits"]["RLIMIT_FSIZE"] == [0, 0]
    assert native["stdin"] == "in\n"
    assert native["sigpipe"] == int(signal.SIG_IGN)
    assert randoms["native"] != randoms["python"]  # reseeded per child


def test_spawned_spares_are_the_fork_servers_own_children(servers: dict[str, LocalForkServer]) -> None:
    """CLONE_PARENT: the fork-server waits for them, signals them and reads their rusage itself."""
    for server in servers.values():
        result = server.run("import os\nprint(os.getppid())")
        assert int(result["stdout"]) == server.configured["pid"]
        assert result["cpu_time_seconds"] > 0  # wait4's rusage: only a parent gets it


def _server_like_children(forkserver: int) -> list[int]:
    """The fork-server's children that run its command line: the spawner and any idle spares."""
    cmdline = Path(f"/proc/{forkserver}/cmdline").read_bytes()
    kids = Path(f"/proc/{forkserver}/task/{forkserver}/children").read_text().split()
    return [int(pid) for pid in kids if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline]


def _anonymous_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1])
    raise AssertionError(f"no Anonymous line for {pid}")


def test_the_spawner_gives_back_the_free_pages_of_its_heap(servers: dict[str, LocalForkServer]) -> None:
    """Every spare copies the spawner's private page tables and every exit tears them down, so the
    spawner trims malloc's free pages first (spare.c). Without the trim both read the same, to 16 KiB."""
    server = servers["native"]
    forkserver = server.configured["pid"]
    spawners = _server_like_children(forkserver)
    assert len(spawners) == 1, spawners  # no run yet, so no spare
    assert _anonymous_kib(spawners[0]) <= _anonymous_kib(forkserver) - 256


def test_a_dead_spawner_leaves_the_fork_server_forking_spares_itself(
    servers: dict[str, LocalForkServer],
) -> None:
    server = servers["native"]
    assert server.ping()["spawner"] is True
    forkserver = server.configured["pid"]
    spawners = _server_like_children(forkserver)
    assert spawners, Path(f"/proc/{forkserver}/task/{forkserver}/children").read_text()
    for pid in spawners:  # the spawner and any idle spares it made
        os.kill(pid, signal.SIGKILL)
    outputs = [server.run(f"print({index})")["stdout"] for index in range(5)]
    assert outputs == [f"{index}\n".encode() for index in range(5)]
    assert server.ping()["spawner"] is False


def test_direct_mode_forks_native_spares_without_a_spawner(tmp_path: Path, library: Path) -> None:
    server = LocalForkServer(tmp_path, f"direct:{library}")
    try:
        assert server.configured["spares"] == "native"
        assert server.configured["spawner"] is False
        assert server.run("print(6 * 7)")["stdout"] == b"42\n"
    finally:
        server.close()


def test_native_children_get_fresh_processes_and_their_own_jobs(servers: dict[str, LocalForkServer]) -> None:
    server = servers["native"]
    outputs = [server.run(f"import os\nprint({index}, os.getpid())")["stdout"].split() for index in range(6)]
    assert [int(index) for index, _ in outputs] == list(range(6))
    assert len({pid for _, pid in outputs}) == 6
    violation = server.run("import socket\nsocket.socket()")
    assert violation["signal"] == 31  # SIGSYS: the seccomp allowlist kills the process


def test_control_message_matches_the_c_layout() -> None:
    request = {
        "limits": {"cpu_time_seconds": 2.5, "memory_bytes": 1000, "file_size_bytes": 0, "open_files": 32}
    }
    message = spare.control_message(request, "/scratch/run-1", 77, True, 5000)
    fields = struct.unpack_from("<IIQQQQQIIQ", message)
    assert struct.calcsize("<IIQQQQQIIQ") == 64
    assert fields == (spare.ABI, 1, 3, 4, 6000, 0, 32, len("/scratch/run-1"), 0, 77)
    assert message[64:] == b"/scratch/run-1"  # what Python needs travels in the job (child.read_job)


@pytest.mark.parametrize("padding", [0, 70_000], ids=["small", "over-one-read"])
def test_the_child_reads_its_run_and_its_job_from_the_memfd(padding: int) -> None:
    run = {"nonce": "n" * 32, "encoder": {"max_depth": 8}}
    job = {
        "kind": "script",
        "code": "print('\u00e9\ud800')" + "#" * padding,
        "bytecode": compile("1", "<program>", "exec"),
    }
    fd = os.memfd_create("job")
    try:
        write_all(fd, [marshal.dumps([run, job], JOB_MARSHAL_VERSION)])
        assert child.read_job(fd) == (run, job)
    finally:
        os.close(fd)


def test_missing_or_foreign_objects_fall_back_to_python(tmp_path: Path) -> None:
    assert spare.load_native(tmp_path / "absent.so") is None
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not an ELF object")
    assert spare.load_native(junk) is None


SPARE_PROBE = textwrap.dedent(
    """
    import ctypes, os, socket, sys
    from pathlib import Path
    from sandboxd.runner import spare
    native = spare.load_native(Path(sys.argv[1]))
    fprog = ctypes.create_string_buffer(16)  # never loaded: every case below ends before seccomp
    results = []
    for case in ("eof", "short", "abi", "reserved", "fds"):
        pid, (control, out, err, frame) = native.fork(ctypes.addressof(fprog))
        if pid == 0:
            os._exit(99)  # never reached: every case exits inside spare.c
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0, fileno=control)
        good = spare.control_message(
            {"limits": {"cpu_time_seconds": 1, "memory_bytes": 1 << 20}}, "/nonexistent", 0, False, 0
        )
        if case == "short":
            sock.send(b"tiny")
        elif case == "abi":
            sock.send(b"\\x07" + good[1:])
        elif case == "reserved":  # the field that once held a request for Python must be 0
            sock.send(good[:52] + b"\\x01" + good[53:])
        elif case == "fds":  # the header promises no stdin but two fds arrive
            r, w = os.pipe()
            socket.send_fds(sock, [good], [r, w])
        sock.close()
        _, status = os.waitpid(pid, 0)
        results.append(f"{case}={os.waitstatus_to_exitcode(status)}")
        for fd in (out, err, frame):
            os.close(fd)
    print(" ".join(results))
    """
)


def test_spare_c_exits_on_eof_and_refuses_malformed_control_messages(library: Path) -> None:
    """EOF (the fork-server dropping a spare) exits 0; anything malformed exits 121 before any lock-down."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", SPARE_PROBE, str(library)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["eof=0", "short=121", "abi=121", "reserved=121", "fds=121"]


@needs_cc
def test_compile_refuses_an_object_that_needs_a_newer_glibc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image, "IMAGE_GLIBC", (2, 1))
    with pytest.raises(image.ImageBuildError, match="needs glibc"):
        image.compile_spare(SOURCE.read_bytes(), tmp_path / "_spare.so")


@pytest.mark.docker
@needs_cc
def test_the_runner_image_ships_and_uses_the_native_path() -> None:
    tag = image.runner_image_tag()
    if not image.image_present(tag):
        pytest.skip(f"{tag} is not built: `make test` builds it")
    policy = load_policies(BUILTIN_POLICIES)["default"]
    pipe = ProtocolPipe(["docker", "run", "--rm", "-i", "--network", "none", "--user", "65534:65534", tag])
    try:
        assert pipe.next().header["op"] == "hello"
        pipe.send(encode_message({"op": "configure", **configure_message(policy)}))
        configured = pipe.next().header
    finally:
        pipe.close()
    assert configured["op"] == "configured", configured
    assert configured["spares"] == "native"
    assert configured["spawner"] is True  # runc: CLONE_PARENT works, spares come from the spawner


def _private_dirty_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1])
    raise AssertionError(f"no Private_Dirty for {pid}")


@needs_cc
@pytest.mark.parametrize(
    "case",
    [(40, 512, True, False), (40, 512, True, True), (40, 0, False, False), (6, 512, False, False)],
    ids=["spawner", "direct", "no-pages", "few-spares"],
)
def test_warm_spares_write_the_pages_a_probe_run_wrote(
    tmp_path: Path, library: Path, case: tuple[int, int, bool, bool]
) -> None:
    """``spare_pages``: a probe child runs every job kind once and lists the pages it copied on write; each
    warm spare writes them to itself while it waits, so it holds about that many private pages (with 0,
    or fewer than 32 warm spares, almost none), and its run still sees exactly its own job. ``direct``:
    without a spawner, the spares are forked from the fork-server itself."""
    spares, pages, touched, direct = case
    setting = f"direct:{library}" if direct else str(library)
    local = LocalForkServer(tmp_path, setting, spares=spares, spare_pages=pages)
    try:
        found = local.configured["touch_pages"]
        assert local.configured["warm_spares"] == spares
        if touched:
            assert 100 <= found <= pages, found  # about 370 in the runner image
        else:
            assert found == 0
        server = psutil.Process(local.process.pid)
        children = server.children()
        assert local.ping()["spawner"] is not direct
        assert len(children) == spares + (0 if direct else 1)
        dirty = sorted(_private_dirty_kb(process.pid) for process in children)
        median = dirty[len(dirty) // 2]
        if touched:
            assert median >= found * 4 * 0.9, (dirty, found)
        else:
            assert median < 400, dirty
        for index in range(8):
            result = local.run(f"print({index} * 7)")
            assert (result["exit_code"], result["stdout"]) == (0, f"{index * 7}\n".encode())
    finally:
        local.close()
