"""The daemon's heap settling (sandboxd/heap.py), in a fresh interpreter: freezing is process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json, weakref
from sandboxd.heap import settle

class Node:
    pass

settle()
report = {"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle: only the collector can free it
alive = weakref.ref(a)
del a, b
gc.collect()
report["cycle_freed"] = alive() is None
print(json.dumps(report))
"""


def test_settle_freezes_the_startup_heap_and_still_collects_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(done.stdout)
    assert report["frozen"] > 1000  # the interpreter's and sandboxd's import-time objects
    assert report["threshold"] == [100000, 20, 20]
    assert report["cycle_freed"] is True
