"""The fork-server alone: CPU and page faults per run, in the runner image, without the daemon.

One container per runner build, started like the daemon starts a sandbox (the default policy's user,
limits, read-only root, scratch tmpfs and seccomp profile; the fork-server is PID 1), and fed the AZR
workload (``bench/_common.load_workload``, the same scripts as ``throughput.py``) as ``run`` messages
over ``docker run -i``. Rounds alternate between the builds, so load on the host hits them alike.

Per run:

* *cpu*: every process of the container, from its cgroup's ``cpuacct.usage`` (else ``/proc/<PID 1>/stat``:
  the fork-server plus the children it reaped);
* *faults*: minor page faults of the fork-server itself, and of its children.

``--runner DIR[@MODE]`` (repeatable) compares runner trees, and with ``@0`` (the Python spare path) or
``@direct`` (native spares without the spawner) the spare paths of one tree: each ``DIR`` is mounted over the image's
``/opt/sandboxd/sandboxd`` (it must hold ``__init__.py`` and ``runner/``); ``image`` is the image's
own. The first build is the reference of the paired ratios. Example, a change against the image::

    mkdir -p /tmp/b/sandboxd && cp -r sandboxd/__init__.py sandboxd/runner /tmp/b/sandboxd/
    .venv/bin/python bench/forkserver.py --runner image --runner /tmp/b/sandboxd

Host CPU steal makes single figures noisy here (±20% between minutes); compare the paired ratios
and the fault counts, which hardly move.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from sandboxd.backends.docker import scratch_tmpfs
from sandboxd.policy import load_policies
from sandboxd.run import RunSpec, fork_request
from sandboxd.runner.protocol import encode_message
from sandboxd.service import configure_message, sandbox_spec
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import ProtocolPipe

_TICKS = os.sysconf("SC_CLK_TCK")


def docker_args(policy_name: str, profile: Path) -> tuple[list[str], str]:
    """``docker run`` options equivalent to the daemon's sandbox settings, and the image."""
    settings = Settings()
    policy = load_policies(BUILTIN_POLICIES)[policy_name]
    spec = sandbox_spec(policy, settings)
    profile.write_text(spec.seccomp_profile)
    scratch = scratch_tmpfs(spec)
    args = [
        "--network", "none", "--read-only", "--ipc", "none", "--tmpfs", f"/scratch:{scratch}",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
        "--security-opt", f"seccomp={profile}", "--user", spec.user, "--runtime", spec.runtime,
        "--pids-limit", str(spec.pids_limit), "--memory", str(spec.memory_bytes),
        "--memory-swap", str(spec.memory_bytes), "--cpus", str(spec.cpus), "--log-driver", "none",
        "-w", "/scratch",
    ]  # fmt: skip
    for key, value in spec.env.items():
        args += ["-e", f"{key}={value}"]
    return args, spec.image


class Box(ProtocolPipe):
    """One container whose PID 1 is the fork-server, configured as a pool would configure it."""

    def __init__(
        self, label: str, runner: str, args: list[str], image: str, configure: dict[str, Any]
    ) -> None:
        self.label = label
        self.name = f"bench-fs-{uuid.uuid4().hex[:8]}"
        runner, _, native = runner.partition("@")
        mount = [] if runner == "image" else ["-v", f"{Path(runner).resolve()}:/opt/sandboxd/sandboxd:ro"]
        if native:  # the spare path to use (runner/spare.py from_environment): 0, direct
            mount += ["-e", f"SANDBOXD_NATIVE_SPARES={native}"]
        super().__init__(["docker", "run", "--rm", "-i", "--name", self.name, *args, *mount, image])
        hello = self.next().header
        if hello.get("op") != "hello":
            raise RuntimeError(f"{label}: no hello: {hello}")
        inspect = ["docker", "inspect", "-f", "{{.State.Pid}} {{.Id}}", self.name]
        pid, container_id = subprocess.check_output(inspect, text=True).split()
        self.pid = int(pid)
        # The container's cgroup counts every process in it (the spawner and live spares too, which
        # PID 1's own figures miss until it reaps them); /proc is the fallback.
        self.cpuacct = Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage")
        self.send(encode_message({"op": "configure", **configure}))
        configured = self.next().header
        if configured.get("op") != "configured":
            raise RuntimeError(f"{label}: configure failed: {configured}")
        self.cpu: list[float] = []
        self.faults: list[tuple[float, float]] = []
        self.split: list[tuple[float, float]] = []  # ms per run: the fork-server's own, its children's

    def usage(self) -> tuple[float, int, int, float, float]:
        """CPU seconds (the container, else self and reaped children), own minor faults, children's
        minor faults, and the fork-server's own CPU seconds and its reaped children's."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = sum(int(value) for value in fields[11:13]) / _TICKS
        reaped = sum(int(value) for value in fields[13:15]) / _TICKS
        cpu = int(self.cpuacct.read_text()) / 1e9 if self.cpuacct.is_file() else own + reaped
        return cpu, int(fields[7]), int(fields[8]), own, reaped

    def round(self, messages: list[bytes], in_flight: int) -> int:
        """Run ``messages`` with ``in_flight`` outstanding; record CPU and faults per run; failed runs."""
        cpu0, own0, children0, server0, reaped0 = self.usage()
        sent = done = failed = 0
        while done < len(messages):
            while sent < len(messages) and sent - done < in_flight:
                self.send(messages[sent])
                sent += 1
            result = self.next().header
            done += 1
            failed += result.get("op") != "result" or result.get("exit_code") != 0
        cpu1, own1, children1, server1, reaped1 = self.usage()
        count = len(messages)
        self.cpu.append(1000 * (cpu1 - cpu0) / count)
        self.split.append((1000 * (server1 - server0) / count, 1000 * (reaped1 - reaped0) / count))
        self.faults.append(((own1 - own0) / count, (children1 - children0) / count))
        return failed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runner",
        action="append",
        help="'image' or a runner tree to mount, optionally @0 or @direct (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=8, help="measured rounds per build (default: 8)")
    parser.add_argument("--runs", type=int, default=256, help="runs per round (default: 256)")
    parser.add_argument(
        "--in-flight", type=int, default=4, help="runs outstanding, as the daemon keeps (default: 4)"
    )
    parser.add_argument("--policy", default="default")
    args = parser.parse_args()
    runners = args.runner or ["image"]
    policy = load_policies(BUILTIN_POLICIES)[args.policy]
    rows, _ = common.load_workload()
    messages = []
    for index in range(args.runs):
        spec = RunSpec(job={"kind": "script", "code": rows[index % len(rows)].script}, limits=policy.limits)
        request = fork_request(spec, policy, f"r{index}", args.runs - index - 1)
        messages.append(encode_message(request.header, request.body))
    with tempfile.TemporaryDirectory() as folder:
        docker, image = docker_args(args.policy, Path(folder) / "seccomp.json")
        boxes = [
            Box(f"{i}:{Path(r).name}", r, docker, image, configure_message(policy))  # name keeps any @mode
            for i, r in enumerate(runners)
        ]
        try:
            for box in boxes:  # warm-up round, not recorded
                box.round(messages, args.in_flight)
                box.cpu.clear()
                box.faults.clear()
                box.split.clear()
            for number in range(args.rounds):
                for box in boxes if number % 2 == 0 else boxes[::-1]:
                    failed = box.round(messages, args.in_flight)
                    if failed:
                        print(f"warning: {box.label}: {failed} runs failed in round {number}")
        finally:
            for box in boxes:
                box.close()
    print(
        f"fork-server alone: {args.rounds} rounds x {args.runs} AZR runs, {args.in_flight} in flight, image {image}"
    )
    for box in boxes:
        own = statistics.median(f[0] for f in box.faults)
        children = statistics.median(f[1] for f in box.faults)
        print(
            f"  {box.label:24s} CPU per run median {statistics.median(box.cpu):.2f} ms (min {min(box.cpu):.2f}); "
            f"faults per run: fork-server {own:.0f}, child {children:.0f}"
        )
        server = statistics.median(s[0] for s in box.split)
        reaped = statistics.median(s[1] for s in box.split)
        rest = statistics.median(box.cpu) - server - reaped
        print(
            f"  {'':24s} of which the fork-server itself {server:.2f} ms, its children {reaped:.2f} ms, "
            f"the rest (spawner, spares not yet reaped) {rest:.2f} ms"
        )
    for box in boxes[1:]:
        ratios = [mine / theirs for mine, theirs in zip(box.cpu, boxes[0].cpu, strict=True)]
        print(f"  {box.label} / {boxes[0].label}: paired CPU ratio median {statistics.median(ratios):.3f}")
    print(json.dumps({box.label: {"cpu_ms": box.cpu, "faults": box.faults} for box in boxes}))


if __name__ == "__main__":
    main()
