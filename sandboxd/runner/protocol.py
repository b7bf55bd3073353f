"""Wire format between the daemon and the fork-server, and between a child and the fork-server.

Both directions carry length-prefixed messages: a 4-byte big-endian length, then a JSON object.
The daemon writes requests to the fork-server's stdin and reads responses from its stdout.
A child writes exactly one *result frame* in the same framing to its result fd.
"""

from __future__ import annotations

import json
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
RESULT_FD = 3
FRAME_VERSION = 1


class ProtocolError(ValueError):
    """A peer sent bytes that are not a well-formed message."""


def encode_message(message: dict[str, Any]) -> bytes:
    """Serialise one message with its length prefix."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return HEADER.pack(len(body)) + body


class MessageReader:
    """Incremental decoder: feed it bytes, get back every complete message."""

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._max_bytes = max_bytes

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        messages: list[dict[str, Any]] = []
        while len(self._buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer)
            if length > self._max_bytes:
                raise ProtocolError(f"message of {length} bytes exceeds {self._max_bytes}")
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[HEADER.size : end])
            del self._buffer[:end]
            try:
                message = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise ProtocolError(f"message is not JSON: {exc}") from exc
            if not isinstance(message, dict):
                raise ProtocolError("message is not a JSON object")
            messages.append(message)
        return messages

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole message."""
        return len(self._buffer)


def split_frames(buffer: bytearray, max_bytes: int = MAX_MESSAGE_BYTES) -> list[bytes]:
    """Remove and return every whole length-prefixed message in ``buffer``, still encoded."""
    frames: list[bytes] = []
    while len(buffer) >= HEADER.size:
        (length,) = HEADER.unpack_from(buffer)
        if length > max_bytes:
            raise ProtocolError(f"message of {length} bytes exceeds {max_bytes}")
        end = HEADER.size + length
        if len(buffer) < end:
            break
        frames.append(bytes(buffer[:end]))
        del buffer[:end]
    return frames
