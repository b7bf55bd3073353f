"""Zygotes: extra fork-servers that PID 1 starts on first use (or at ``configure``, when the daemon
asks for a ``prestart``) and relays to.

- ``heavy``: forked from PID 1, imports the heavy modules (numpy) and forks children from that
  bigger image, so that every other fork stays small and fast.
- ``seed:N``: a fresh interpreter exec'd with ``PYTHONHASHSEED=N`` and configured like PID 1, for
  determinism checks across hash seeds (str hashes, and so set order, depend on the seed).
- ``formal``: like ``heavy``, but it imports CrossHair and z3 (:mod:`.formal`) instead, for ``formal``
  jobs; nothing else ever loads them.

Both speak the same protocol over a socketpair. PID 1 forwards run messages to them and their
answers to the daemon byte for byte, through private memory (see :mod:`.private`): it decodes only
the headers. A zygote is forked from PID 1 or exec'd, so it starts with no model text either.
"""

from __future__ import annotations

import base64
import contextlib
import os
import selectors
import socket
import sys

from . import formal
from .private import Inbox, write_all
from .protocol import ProtocolError, encode_message

TYPE_CHECKING = False  # typing itself is not imported: see child.ChildFds
if TYPE_CHECKING:
    from typing import Any

    from .forkserver import ForkServer

ZYGOTE_FD = 4  # fds 0-3 are taken (see forkserver._own_protocol_fds)
_MAX_ZYGOTES = 8


def seed_configuration(configuration: dict[str, Any], heavy_modules: list[str], bpf: bytes) -> dict[str, Any]:
    """The configure message of a seed zygote: PID 1's, with the heavy modules preloaded too and PID 1's
    compiled seccomp program. Not PID 1's warm spares or prestarted zygotes: a seed zygote serves the few
    runs of one hash seed, and forks their children as they come."""
    configure = {
        **configuration,
        "preload": [*configuration.get("preload", []), *heavy_modules],
        "heavy_modules": [],
        "bpf": base64.b64encode(bpf).decode("ascii"),
    }
    configure.pop("spares", None)
    configure.pop("prestart", None)
    return configure


class Zygote:
    """A zygote's process, socket and inbox, and the runs it holds. (A plain class: see child.ChildFds.)"""

    __slots__ = ("fd", "inbox", "inflight", "pid")

    def __init__(self, pid: int, fd: int, inbox: Inbox) -> None:
        self.pid = pid
        self.fd = fd
        self.inbox = inbox
        self.inflight: set[str] = set()


class Zygotes:
    def __init__(self, server: ForkServer) -> None:
        self.server = server
        self.by_tag: dict[str, Zygote] = {}
        self.tag_of_pid: dict[int, str] = {}

    def route(self, message: dict[str, Any], whole: memoryview) -> bool:
        """Send a tagged run (``whole``, as received) to its zygote, starting it if needed.

        False means: run it here. A zygote does not route any further.
        """
        tag = str(message.get("zygote"))
        zygote = self.by_tag.get(tag)
        if zygote is None:
            zygote = self._spawn(tag)
            if zygote is None:
                return False
        zygote.inflight.add(str(message.get("id")))
        write_all(zygote.fd, [whole])
        return True

    def prestart(self, tag: str) -> bool:
        """Start the ``heavy`` zygote before any run needs it (``configure``'s ``prestart``); whether it runs.

        Only ``heavy``: a ``seed:N`` zygote serves one hash seed, and ``formal`` is rare."""
        if tag != "heavy":
            return False
        return tag in self.by_tag or self._spawn(tag) is not None

    def _spawn(self, tag: str) -> Zygote | None:
        server = self.server
        if len(self.by_tag) >= _MAX_ZYGOTES:
            return None
        if (tag == "heavy" and server.heavy_modules) or tag == "formal":
            seed = None
        elif tag.startswith("seed:") and tag[5:].isdigit():
            seed = tag[5:]
        else:
            return None
        try:
            inbox = Inbox(server.memory)
        except OSError:
            return None
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the zygote never returns from here
            ours.close()
            if theirs.fileno() != ZYGOTE_FD:
                os.dup2(theirs.fileno(), ZYGOTE_FD)
            os.set_inheritable(ZYGOTE_FD, True)  # dup2 onto itself would keep CLOEXEC
            os.closerange(ZYGOTE_FD + 1, 1 << 16)
            status = 1
            try:
                if seed is None:
                    from .forkserver import heavy_zygote  # noqa: PLC0415 - circular at import time

                    if tag == "formal":  # this process only: PID 1 never imports CrossHair
                        server.heavy_modules = formal.enable()
                    status = heavy_zygote(server, ZYGOTE_FD)
                else:
                    env = {**os.environ, "PYTHONHASHSEED": seed}
                    argv = [
                        sys.executable,
                        "-s",
                        "-B",
                        "-m",
                        "sandboxd.runner",
                        "--zygote-fd",
                        str(ZYGOTE_FD),
                    ]
                    os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter, fixed argv
            finally:
                os._exit(status)
        theirs.close()
        fd = ours.detach()
        os.set_blocking(fd, False)
        server.selector.register(fd, selectors.EVENT_READ, ("zygote", pid))
        zygote = Zygote(pid=pid, fd=fd, inbox=inbox)
        self.by_tag[tag] = zygote
        self.tag_of_pid[pid] = tag
        if seed is not None:  # a fresh interpreter: configure it like PID 1, with the heavy modules too
            assert server.prep is not None
            configure = seed_configuration(
                server.configuration, server.heavy_modules, server.prep.loader.program
            )
            write_all(zygote.fd, [encode_message(configure)])
        return zygote

    def on_readable(self, pid: int) -> None:
        tag = self.tag_of_pid.get(pid)
        zygote = self.by_tag.get(tag) if tag else None
        if zygote is None:
            return
        try:
            count = zygote.inbox.fill(zygote.fd)
            messages = zygote.inbox.messages()
        except BlockingIOError:
            return
        except (ProtocolError, OSError):
            count, messages = 0, []
        for message, _, whole in messages:
            if message.get("op") == "configured":
                continue  # our own configure of an exec'd zygote
            zygote.inflight.discard(str(message.get("id")))
            self.server.send_raw(whole)
        self.server.flush()  # the views point into the inbox, which the next fill reuses
        if not count:  # the zygote died (or broke protocol): fail what it held; respawned on next use
            self._drop(pid, "zygote died")

    def _drop(self, pid: int, reason: str) -> None:
        tag = self.tag_of_pid.pop(pid)
        zygote = self.by_tag.pop(tag)
        self.server.selector.unregister(zygote.fd)
        os.close(zygote.fd)
        zygote.inbox.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(zygote.pid, 0)
        for run_id in zygote.inflight:
            self.server.send({"op": "error", "id": run_id, "message": f"{tag} {reason}"})

    def close_all(self) -> None:
        for zygote in self.by_tag.values():
            with contextlib.suppress(OSError):
                os.close(zygote.fd)
        self.by_tag.clear()
        self.tag_of_pid.clear()
