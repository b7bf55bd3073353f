"""One run, from request to result: what goes to the fork-server and how its answer is read."""

from __future__ import annotations

import marshal
import secrets
from dataclasses import dataclass, field
from typing import Any

from .bytecode import Compiler, with_bytecode
from .frame import ResultFrame, parse_frame, split_frames
from .limits import Limits
from .policy import SandboxPolicy
from .verdict import Status, Termination, classify

# A run's job goes to its child in marshal, as ``[run, job]`` (runner/child.py, ``read_job``): ``run`` is
# what the child needs of the run itself (its nonce and encoder options), and the child decodes both in
# one C call, code objects included (bytecode.py). The daemon writes marshal and never reads it; the
# version is pinned so that a daemon on a newer Python still writes what the image's Python reads (code
# objects are only sent when both Pythons are the same minor version).
JOB_MARSHAL_VERSION = 4


@dataclass(frozen=True)
class RunSpec:
    """A job plus its stdin and effective limits, already validated against the policy."""

    job: dict[str, Any]  # {"kind": "script", "code": ...} or a verifier job kind
    limits: Limits
    stdin: str = ""


@dataclass(frozen=True)
class RunResult:
    status: Status
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wall_time_seconds: float = 0.0
    cpu_time_seconds: float = 0.0
    peak_memory_bytes: int = 0
    sandbox_id: str = ""
    frame: ResultFrame | None = field(default=None, repr=False)
    detail: str | None = None  # why, for statuses a client cannot infer (internal_error)
    # One per probe the job asked for (docs/azr.md, "Output signature"): the probe frame's tagged result,
    # or ``["lost", why]`` (the status that ended the child, or ``unencodable``); None without probes.
    probes: tuple[Any, ...] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ForkRequest:
    """A fork-server ``run``: a header of trusted fields, and a body of model text (job, stdin)."""

    header: dict[str, Any]
    body: bytes
    nonce: str


def fork_request(
    spec: RunSpec, policy: SandboxPolicy, run_id: str, backlog: int = 0, compiler: Compiler | None = None
) -> ForkRequest:
    """Build the fork-server ``run`` message with the run's fresh nonce.

    Model text goes only into the body, which the fork-server never decodes (runner/protocol.py).
    ``backlog`` is how many runs of the same request are still waiting to be sent: a hint that lets
    the fork-server fork children for them in one burst (runner/forkserver.py, ``Spare``).
    ``compiler`` is the batch's precompiling (bytecode.py).
    """
    nonce = secrets.token_hex(16)
    fields = with_bytecode(_plain(spec.job), compiler)  # the child loads it, not compiles (bytecode.py)
    run = {"nonce": nonce, "encoder": policy.encoder.model_dump()}
    job = marshal.dumps([run, fields], JOB_MARSHAL_VERSION)
    stdin = spec.stdin.encode("utf-8", "surrogatepass")
    message: dict[str, Any] = {
        "op": "run",
        "id": run_id,
        "nonce": nonce,
        "limits": spec.limits.model_dump(),
        # Room for the validation's frame, plus one small frame per output-signature probe (runner/child.py).
        "frame_bytes": policy.encoder.max_text_bytes + 65536 + len(spec.job.get("probes") or ()) * 20480,
        "job_bytes": len(job),
        "stdin_bytes": len(stdin),
        "backlog": backlog,
    }
    if spec.job.get("hash_seed") is not None:
        message["zygote"] = f"seed:{int(spec.job['hash_seed'])}"
    elif spec.job.get("kind") == "formal":  # CrossHair and z3 are loaded only there (runner/formal.py)
        message["zygote"] = "formal"
    elif needs_heavy_zygote(spec.job, policy.heavy_modules):
        message["zygote"] = "heavy"
    return ForkRequest(message, job + stdin, nonce)


def _plain(value: Any) -> Any:
    """``value`` with every tuple a list, as the child reads its job (it checks ``type(x) is list``)."""
    kind = type(value)
    if kind is dict:
        return {key: _plain(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_plain(item) for item in value]
    return value


def needs_heavy_zygote(job: dict[str, Any], heavy_modules: tuple[str, ...]) -> bool:
    """A speed hint only: a wrong answer makes a run slower, never less isolated."""
    if not heavy_modules:
        return False
    texts = [job.get("code") or "", job.get("program") or "", *job.get("imports", [])]
    return any(name in text for text in texts for name in heavy_modules)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "replace")


def _probed(chunks: list[bytes], count: int, nonce: str, end: Termination) -> tuple[Any, ...]:
    """Each probe's tagged result, or why it is missing: how the child ended after the validation frame."""
    ended = classify(end, None).value if end.killed_by or end.signal is not None else None
    out: list[Any] = []
    for index in range(count):
        frame = parse_frame(chunks[index], nonce) if index < len(chunks) else None
        if frame is not None and frame.encode_error is None and len(frame.values) == 1:
            out.append(frame.values[0])
        else:
            out.append(["lost", "unencodable" if frame is not None else (ended or "missing")])
    return tuple(out)


def interpret(
    response: dict[str, Any], nonce: str, limits: Limits, sandbox_id: str, *, probes: int = 0
) -> RunResult:
    """Turn the fork-server's report into a result. Pure: no I/O, no model text evaluated.

    ``stdout``, ``stderr`` and ``frame`` are the raw sections of the result's body. With ``probes``, the
    frame section holds the validation's frame, then one frame per probe: once the validation's frame is
    complete, how the child ended afterwards (a probe that hung, say) concerns only the probes, so the
    status is decided as if the child had exited right after that frame.
    """
    raw = bytes(response.get("frame") or b"")
    end = Termination(
        exit_code=response.get("exit_code"),
        signal=response.get("signal"),
        killed_by=response.get("killed_by"),
        cpu_time_seconds=float(response.get("cpu_time_seconds", 0.0)),
        cpu_limit_seconds=limits.cpu_time_seconds,
    )
    probed: tuple[Any, ...] | None = None
    if probes > 0:
        chunks = split_frames(raw, 1 + probes)
        frame = parse_frame(chunks[0], nonce) if chunks else None
        if frame is not None and frame.outcome == "ok":
            probed = _probed(chunks[1:], probes, nonce, end)
            end = Termination(0, None, None, end.cpu_time_seconds, end.cpu_limit_seconds)
    else:
        frame = parse_frame(raw, nonce)
    return RunResult(
        status=classify(end, frame),
        exit_code=end.exit_code,
        signal=end.signal,
        stdout=_text(response.get("stdout")),
        stderr=_text(response.get("stderr")),
        stdout_truncated=bool(response.get("stdout_truncated")),
        stderr_truncated=bool(response.get("stderr_truncated")),
        wall_time_seconds=float(response.get("wall_time_seconds", 0.0)),
        cpu_time_seconds=end.cpu_time_seconds,
        peak_memory_bytes=int(response.get("peak_memory_kib", 0)) * 1024,
        sandbox_id=sandbox_id,
        frame=frame,
        probes=probed,
    )
