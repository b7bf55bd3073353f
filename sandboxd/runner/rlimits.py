"""A child's rlimits, from its run's limits: one definition for both lock-down paths.

``child.lock_down`` sets them in Python; ``spare.control_message`` packs them for ``spare.c``.
RLIMIT_NPROC and RLIMIT_CORE are 0 on both paths, whatever the limits say.
"""

from __future__ import annotations

import math

TYPE_CHECKING = False  # typing itself is not imported: see child.ChildFds
if TYPE_CHECKING:
    from typing import Any


def child_rlimits(limits: dict[str, Any], base_vm_bytes: int) -> tuple[int, int, int, int, int]:
    """(CPU soft, CPU hard, address space, file size, open files) for a run with ``limits``.

    CPU seconds are rounded up (at least 1), with one more second before SIGKILL; the address space is
    the fork-server's own (``base_vm_bytes``, which the child inherits) plus the run's memory.
    """
    cpu = max(1, math.ceil(float(limits["cpu_time_seconds"])))
    return (
        cpu,
        cpu + 1,
        base_vm_bytes + int(limits["memory_bytes"]),
        int(limits.get("file_size_bytes", 0)),
        int(limits.get("open_files", 64)),
    )
