"""Wire format between the daemon and the fork-server, and between a child and the fork-server.

Daemon and fork-server exchange *messages*: an 8-byte prefix (two big-endian lengths: the header's
and the body's), a JSON object header, then the body as raw bytes. The header holds only trusted
fields (ids, nonces, limits, lengths). Model text and model output travel only in bodies:

- ``run``: the body is the job (``job_bytes``, in ``marshal``: written by the daemon, read only by the
  child, sandboxd/run.py) followed by the raw stdin (``stdin_bytes``);
- ``result``: the body is stdout, stderr and the child's result frame, with their lengths in the header.

The fork-server never decodes a body: it moves body bytes between the wire, memfds and pipes
through memory its children never inherit (:mod:`.private`), so no child can find an earlier
run's text in the memory it was forked with.

A child writes exactly one *result frame* to its result fd: a 4-byte big-endian length, then JSON.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

TYPE_CHECKING = False  # typing itself is not imported: see child.ChildFds
if TYPE_CHECKING:
    from typing import Any

HEADER = struct.Struct(">I")  # the result frame's length prefix
PREFIX = struct.Struct(">II")  # a message's header length and body length
MAX_HEADER_BYTES = 1024 * 1024
MAX_BODY_BYTES = 256 * 1024 * 1024
RESULT_FD = 3
FRAME_VERSION = 1
RUN_SECTIONS = ("job", "stdin")  # body of a "run", in order; header field "<name>_bytes"
RESULT_SECTIONS = ("stdout", "stderr", "frame")  # body of a "result", in order


class ProtocolError(ValueError):
    """A peer sent bytes that are not a well-formed message."""


class Message:
    """One decoded message: its JSON header and its raw body. (Not a NamedTuple: see child.ChildFds.)"""

    __slots__ = ("body", "header")

    def __init__(self, header: dict[str, Any], body: bytes) -> None:
        self.header = header
        self.body = body


def encode_header(header: dict[str, Any], body_bytes: int = 0) -> bytes:
    """The prefix and header of a message whose body (``body_bytes`` long) follows separately."""
    data = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    if len(data) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(data)} bytes exceeds {MAX_HEADER_BYTES}")
    if body_bytes > MAX_BODY_BYTES:
        raise ProtocolError(f"body of {body_bytes} bytes exceeds {MAX_BODY_BYTES}")
    return PREFIX.pack(len(data), body_bytes) + data


def encode_message(header: dict[str, Any], body: bytes = b"") -> bytes:
    """Serialise one message: prefix, header, body."""
    return encode_header(header, len(body)) + body


def check_prefix(header_bytes: int, body_bytes: int) -> int:
    """The total size of a message with this prefix; raises for sizes over the caps."""
    if header_bytes > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {header_bytes} bytes exceeds {MAX_HEADER_BYTES}")
    if body_bytes > MAX_BODY_BYTES:
        raise ProtocolError(f"body of {body_bytes} bytes exceeds {MAX_BODY_BYTES}")
    return PREFIX.size + header_bytes + body_bytes


def decode_header(data: bytes) -> dict[str, Any]:
    try:
        header = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    return header


def section_sizes(header: dict[str, Any], names: Sequence[str], body_bytes: int) -> list[int]:
    """The sizes of a body's sections, checked to be non-negative ints that add up to the body."""
    sizes = [header.get(f"{name}_bytes", 0) for name in names]
    if any(type(size) is not int or size < 0 for size in sizes) or sum(sizes) != body_bytes:
        raise ProtocolError(f"sections {list(names)} of sizes {sizes} do not make a body of {body_bytes}")
    return sizes


def split_sections(message: Message, names: Sequence[str]) -> dict[str, bytes]:
    """A body cut into its named sections."""
    sections: dict[str, bytes] = {}
    offset = 0
    for name, size in zip(names, section_sizes(message.header, names, len(message.body)), strict=True):
        sections[name] = message.body[offset : offset + size]
        offset += size
    return sections


class MessageReader:
    """Incremental decoder for the daemon side: feed it bytes, get back every complete message."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        view = memoryview(self._buffer)
        at = 0
        try:
            while len(view) - at >= PREFIX.size:
                header_bytes, body_bytes = PREFIX.unpack_from(view, at)
                end = at + check_prefix(header_bytes, body_bytes)
                if len(view) < end:
                    break
                body_at = at + PREFIX.size + header_bytes
                header = decode_header(bytes(view[at + PREFIX.size : body_at]))
                messages.append(Message(header, bytes(view[body_at:end])))
                at = end
        finally:
            view.release()
            del self._buffer[:at]  # once per feed: a read of many messages costs no quadratic copying
        return messages

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole message."""
        return len(self._buffer)
