"""Bounded analysis of large curricula: each window is analysed through a uniform sample of its proposals.

Featurizing a program (tokenize, parse, radon's complexity visitors, MinHash) costs one to a few ms of
CPU, so a scorecard over 100,000 distinct programs would spend minutes there. Above ``CAP`` proposals, a
window (baseline, current, and the run the trends are drawn from) is analysed through a uniform sample of
``CAP`` of them, without replacement. The sample is chosen by a hash of each entry's seq, so the same
ledger always gives the same scorecard. Counts that need no featurizing (volume, validity, solve and
veto rates, tripwires, throttle) are always exact.

The bound: for a uniform sample of ``m`` proposals out of ``N``, any share estimated from it (a family's
share, the near-duplicate rate, the novel rate) has a standard error of at most ``0.5 / sqrt(m)``, and by
the Dvoretzky-Kiefer-Wolfowitz inequality the sample's distribution of each complexity metric lies within
``epsilon(m) = sqrt(ln(2 / alpha) / (2 m))`` of the window's, everywhere, with probability ``1 - alpha``
(sampling without replacement only tightens both). With ``CAP = 5000``: a standard error of at most
0.0071, and ``epsilon = 0.0192`` at 95%. The KS statistic between two windows therefore moves by at most
``2 epsilon`` = 0.038 (with probability at least 90%). That is about the KS critical value for two
samples of 5,000 (0.033 at ``KS_ALPHA`` 0.01), so a shift right at the significance threshold may be judged
differently on the samples than on the whole windows; a clear drift is not.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from .items import Record

CAP = 5000  # proposals analysed per window at most


def _rank(record: Record) -> bytes:
    return hashlib.blake2b(record.seq.to_bytes(8, "big"), digest_size=8).digest()


def uniform(items: Sequence[Record], cap: int | None = None) -> list[Record]:
    """``items`` if there are at most ``cap`` (default ``CAP``); else a deterministic uniform sample of ``cap``,
    in seq order."""
    cap = CAP if cap is None else cap
    if len(items) <= cap:
        return list(items)
    return sorted(sorted(items, key=_rank)[:cap], key=lambda r: r.seq)


def union(*samples: Sequence[Record]) -> list[Record]:
    """The records of every sample, each once, in seq order."""
    by_seq = {r.seq: r for sample in samples for r in sample}
    return [by_seq[s] for s in sorted(by_seq)]


def dkw_epsilon(m: int, confidence: float = 0.95) -> float:
    """The DKW band: a sample of ``m`` has its empirical CDF this close to the population's, at ``confidence``."""
    if m <= 0:
        return 1.0
    return math.sqrt(math.log(2 / (1 - confidence)) / (2 * m))


def summary(windows: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """The scorecard's ``sampling`` section: per window, proposals in it and proposals analysed."""
    out: dict[str, Any] = {"cap": CAP, "applied": any(n > m for n, m in windows.values())}
    for name, (n, m) in windows.items():
        out[name] = {
            "proposals": n,
            "analysed": m,
            "share_standard_error_max": 0.0 if m >= n else 0.5 / math.sqrt(m),
            "dkw_epsilon_95": 0.0 if m >= n else dkw_epsilon(m),
        }
    return out
