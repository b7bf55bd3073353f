"""The runner's fork-server as a plain host process (no container), speaking its protocol over pipes.

For logic tests of runner/forkserver.py and the spare paths (test_forkserver_bursts.py,
test_native_spares.py). Isolation itself is proven on real containers (test_attacks.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from sandboxd.policy import load_policies
from sandboxd.run import RunSpec, fork_request
from sandboxd.runner.protocol import RESULT_SECTIONS, encode_message, split_sections
from sandboxd.service import configure_message
from sandboxd.settings import BUILTIN_POLICIES
from sandboxd.testing import ProtocolPipe

REPO = Path(__file__).resolve().parent.parent
_WITH_NOFILE = (
    "import os, resource, sys; limit = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


class LocalForkServer(ProtocolPipe):
    """Configured like a pool configures one; ``native`` is its SANDBOXD_NATIVE_SPARES, if given."""

    def __init__(
        self, scratch: Path, native: str | None = None, nofile: int | None = None, **configure_extra: Any
    ) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"}
        env.pop("SANDBOXD_CHANNEL", None)
        if native is not None:
            env["SANDBOXD_NATIVE_SPARES"] = native
        command = [sys.executable, "-m", "sandboxd.runner"]
        if nofile is not None:  # the fork-server's own open-files limit, set just before it starts
            command = [sys.executable, "-c", _WITH_NOFILE, str(nofile), *command]
        super().__init__(command, env)
        self.policy = load_policies(BUILTIN_POLICIES)["default"]
        assert self.next().header["op"] == "hello"
        configure = {
            "op": "configure",
            **configure_message(self.policy),
            "scratch_root": str(scratch),
            **configure_extra,
        }
        self.send(encode_message(configure))
        self.configured = self.next().header
        assert self.configured["op"] == "configured", self.configured

    def send_run(self, code: str, run_id: str, backlog: int, stdin: str = "") -> None:
        spec = RunSpec(job={"kind": "script", "code": code}, stdin=stdin, limits=self.policy.limits)
        request = fork_request(spec, self.policy, run_id, backlog)
        self.send(encode_message(request.header, request.body))

    def run(self, code: str, stdin: str = "") -> dict[str, Any]:
        """One run, waited for: the result header with its stdout, stderr and frame sections."""
        self.send_run(code, "r", 0, stdin)
        message = self.next()
        assert message.header["op"] == "result", message.header
        return {**message.header, **split_sections(message, RESULT_SECTIONS)}

    def ping(self) -> dict[str, Any]:
        self.send(encode_message({"op": "ping", "id": "p"}))
        pong = self.next().header
        assert pong["op"] == "pong", pong
        return pong
