"""Policy texts for tests that start a daemon with a changed copy of the built-in policies."""

from __future__ import annotations

import re


def with_warm_containers(policy_yaml: str, count: int) -> str:
    """``policy_yaml`` with its pool's ``warm_containers`` set to ``count`` (which must be there)."""
    changed, found = re.subn(r"(?m)^(  warm_containers: )\d+", rf"\g<1>{count}", policy_yaml)
    assert found == 1, "the policy has no pool.warm_containers line to change"
    return changed
