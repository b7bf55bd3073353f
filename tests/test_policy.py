"""Sandbox policies load through one strict model; mistakes fail fast with the file name."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxd.exceptions import ConfigurationError
from sandboxd.limits import Limits, LimitsRequest
from sandboxd.policy import SandboxPolicy, load_policies
from sandboxd.settings import BUILTIN_POLICIES

SHIPPED = sorted(BUILTIN_POLICIES.glob("*.yaml")) + sorted(
    (Path(__file__).parent / "policies").glob("*.yaml")
)
MINIMAL = "schema_version: 1\nkind: sandbox\nname: base\ndescription: d\nsyscalls: [read, exit_group]\n"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_policy_loads(path: Path, tmp_path: Path) -> None:
    """Each policy file in the repo validates through the real loader (with its parent, if any)."""
    for source in BUILTIN_POLICIES.glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / path.name).write_text(path.read_text())
    policies = load_policies(tmp_path)
    assert path.stem in policies


def test_default_policy_is_per_request() -> None:
    """The default policy never shares a container between requests; pooled does."""
    policies = load_policies(BUILTIN_POLICIES)
    assert not policies["default"].reuses_containers
    assert policies["pooled"].reuses_containers
    assert policies["pooled"].syscalls == policies["default"].syscalls


def write(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / f"{name}.yaml").write_text(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(MINIMAL + "surprise: 1\n", "surprise", id="unknown-field"),
        pytest.param(
            MINIMAL.replace("schema_version: 1", "schema_version: 2"), "schema_version", id="schema"
        ),
        pytest.param(MINIMAL + "container: {user: '0:0'}\n", "user", id="root-user"),
        pytest.param(MINIMAL + "container: {runtime: kata}\n", "runtime", id="unknown-runtime"),
        pytest.param(
            MINIMAL + "limits: {wall_time_seconds: 100}\ncaps: {wall_time_seconds: 10}\n",
            "exceed caps",
            id="limits-over-caps",
        ),
        pytest.param(
            MINIMAL + "container: {memory_bytes: 134217728}\n", "cannot hold", id="container-too-small"
        ),
        pytest.param(MINIMAL + "extends: nowhere\n", "extends", id="unknown-parent"),
        pytest.param("- just\n- a list\n", "mapping", id="not-a-mapping"),
        pytest.param("name: [unclosed\n", "base.yaml", id="bad-yaml"),
    ],
)
def test_invalid_policies_fail_with_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    """An invalid policy file raises ConfigurationError naming the file and the problem."""
    write(tmp_path, "base", text)
    with pytest.raises(ConfigurationError) as caught:
        load_policies(tmp_path)
    assert "base.yaml" in str(caught.value)
    assert message in str(caught.value)


def test_extends_merges_mappings(tmp_path: Path) -> None:
    """A child policy overrides single fields of nested mappings and inherits the rest."""
    write(tmp_path, "base", MINIMAL + "pool: {warm_containers: 5, max_parallel_runs: 2}\n")
    write(
        tmp_path,
        "child",
        "schema_version: 1\nname: child\nextends: base\ndescription: c\npool: {warm_containers: 1}\n",
    )
    child = load_policies(tmp_path)["child"]
    assert child.pool.warm_containers == 1
    assert child.pool.max_parallel_runs == 2
    assert child.syscalls == ("read", "exit_group")


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    """Two files may not define the same policy name."""
    write(tmp_path, "a", MINIMAL)
    write(tmp_path, "b", MINIMAL)
    with pytest.raises(ConfigurationError, match="also defined"):
        load_policies(tmp_path)


def test_policy_is_frozen() -> None:
    """Policies cannot be mutated after loading."""
    policy = load_policies(BUILTIN_POLICIES)["default"]
    with pytest.raises(ValueError, match="frozen"):
        policy.name = "other"  # type: ignore[misc]
    assert isinstance(policy, SandboxPolicy)


@pytest.mark.parametrize(
    ("request_limits", "exceeded"),
    [
        pytest.param({"wall_time_seconds": 5}, [], id="lower-is-fine"),
        pytest.param({"wall_time_seconds": 61}, ["wall_time_seconds=61.0 > 60.0"], id="over-cap"),
        pytest.param(
            {"memory_bytes": 2**31, "output_bytes": 2**30}, ["memory_bytes", "output_bytes"], id="two-caps"
        ),
    ],
)
def test_request_limits_against_caps(request_limits: dict[str, float], exceeded: list[str]) -> None:
    """Requested limits merge over the defaults; anything over a cap is named."""
    policy = load_policies(BUILTIN_POLICIES)["default"]
    limits = LimitsRequest(**request_limits).over(policy.limits)
    found = limits.exceeding(policy.caps)
    assert len(found) == len(exceeded)
    for fragment, text in zip(exceeded, found, strict=True):
        assert fragment in text
    assert isinstance(limits, Limits)
