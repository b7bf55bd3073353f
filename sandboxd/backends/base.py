"""The backend Protocol: how the core starts, talks to and destroys sandboxes.

A backend turns a :class:`SandboxSpec` into a running fork-server and exposes the fork-server's
stdin and stdout as a byte stream. It knows nothing about runs, verdicts or policies. All its
errors are translated into :mod:`sandboxd.exceptions` before they leave it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ReadOnlyFile:
    """A host file the backend makes visible, read-only, at ``target`` inside the sandbox."""

    source: str  # absolute host path, readable by the sandbox's user
    target: str  # absolute path inside the sandbox, outside its scratch


@dataclass(frozen=True)
class SandboxSpec:
    """Everything needed to start one sandbox. Every field is enforced by the engine."""

    image: str
    runtime: str  # "runc" or "runsc"
    memory_bytes: int  # memory and memory+swap
    cpus: float
    pids_limit: int
    scratch_bytes: int
    scratch_inodes: int
    user: str  # "uid:gid", never root
    seccomp_profile: str  # engine-level syscall profile (JSON), applied to the whole container
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    files: tuple[ReadOnlyFile, ...] = ()  # e.g. honeytokens (sandboxd.watchdog.honeytokens)


@dataclass(frozen=True)
class SandboxExit:
    """Why a sandbox stopped, as far as the engine knows."""

    oom_killed: bool
    exit_code: int | None


class SandboxHandle(Protocol):
    """One started sandbox whose main process is the fork-server."""

    @property
    def id(self) -> str:
        """A short, stable identifier (safe to show to clients, never used as a metric label)."""
        ...

    async def receive(self) -> bytes:
        """The next bytes the fork-server wrote to stdout; ``b""`` once it has exited."""
        ...

    async def send(self, data: bytes) -> None:
        """Write bytes to the fork-server's stdin."""
        ...

    async def exit_info(self) -> SandboxExit:
        """How the sandbox ended (call after :meth:`receive` returned ``b""``)."""
        ...

    async def destroy(self) -> None:
        """Kill and remove the sandbox. Idempotent; never raises for an already-gone sandbox."""
        ...


class Backend(Protocol):
    """A container engine that can start sandboxes."""

    name: str

    async def check(self, images: set[str], runtimes: set[str]) -> None:
        """Raise :class:`~sandboxd.exceptions.Unavailable` unless isolation can be provided now:
        the engine answers, supports seccomp, has every runtime and every image."""
        ...

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        """Start a sandbox and return once its stdin/stdout are attached."""
        ...

    async def remove_labelled(self, labels: Mapping[str, str]) -> int:
        """Remove every sandbox carrying all ``labels`` (orphans of a crashed daemon)."""
        ...

    async def aclose(self) -> None:
        """Release engine connections and threads."""
        ...
