"""A run's captured stdout, stderr and result frame, held in private memory (see :mod:`.private`).

Each stream has a region of its cap plus one byte: a read that fills the extra byte means the
child wrote more than the cap, so the stream is truncated to the cap and the child is killed.
Captures are reused from run to run; a child never sees one (it is not in its memory).
"""

from __future__ import annotations

import os

from .private import PrivateBuffer, PrivateMemory
from .protocol import RESULT_SECTIONS

_CHUNK = 1 << 16


class Capture:
    """Regions for stdout, stderr and frame, in one private mapping."""

    def __init__(self, memory: PrivateMemory, output_cap: int, frame_cap: int) -> None:
        self.output_cap = output_cap
        self.frame_cap = frame_cap
        self.caps = {"stdout": output_cap, "stderr": output_cap, "frame": frame_cap}
        self.starts: dict[str, int] = {}
        offset = 0
        for name in RESULT_SECTIONS:
            self.starts[name] = offset
            offset += self.caps[name] + 1
        self.buffer: PrivateBuffer = memory.buffer(offset)
        self.lengths = dict.fromkeys(RESULT_SECTIONS, 0)
        self.truncated = dict.fromkeys(RESULT_SECTIONS, False)

    def fits(self, output_cap: int, frame_cap: int) -> bool:
        return self.output_cap == output_cap and self.frame_cap == frame_cap

    def reset(self) -> None:
        for name in RESULT_SECTIONS:
            self.lengths[name] = 0
            self.truncated[name] = False

    def read(self, fd: int, name: str) -> int:
        """Read one chunk of ``name`` from ``fd``: bytes read (0 at EOF), -1 once over the cap.

        Raises BlockingIOError when the pipe is empty.
        """
        length = self.lengths[name]
        at = self.starts[name] + length
        room = self.caps[name] + 1 - length
        count = os.readv(fd, [self.buffer.view[at : at + min(room, _CHUNK)]])
        length += count
        if length > self.caps[name]:
            self.lengths[name] = self.caps[name]
            self.truncated[name] = True
            return -1
        self.lengths[name] = length
        return count

    def sections(self) -> list[memoryview]:
        view = self.buffer.view
        return [view[self.starts[name] : self.starts[name] + self.lengths[name]] for name in RESULT_SECTIONS]

    def header_fields(self) -> dict[str, object]:
        fields: dict[str, object] = {f"{name}_bytes": self.lengths[name] for name in RESULT_SECTIONS}
        fields.update({f"{name}_truncated": self.truncated[name] for name in RESULT_SECTIONS})
        return fields

    def close(self) -> None:
        self.buffer.close()
