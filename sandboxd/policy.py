"""The sandbox policy: one frozen model that YAML files, settings and requests validate into.

Every field defaults to the restrictive choice and carries its unit in its name. A policy file
may ``extends:`` another by name; the child's mappings are merged over the parent's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .exceptions import ConfigurationError
from .limits import Limits
from .reviews.policy import ReviewPolicy
from .reward.policy import ValueRewardPolicy

MiB = 1024 * 1024
# Pids a container keeps for everything but its warm spares: the fork-servers (PID 1 and its zygotes), their
# spawners, the spares of a burst and the running children (the default policy's whole limit before warm
# spares). The pool never asks for more warm spares than the rest of ``container.pids_limit``.
RESERVED_PIDS = 24
# A waiting spare's memory, as the container's cgroup counts it: its page tables, kernel stack and the pages
# it writes before it waits (measured about 230 KB under the default policy: docs/design.md, "Warm spares").
SPARE_BYTES = 256 * 1024
PAGE_BYTES = 4096  # each of pool.spare_pages, in each warm spare
PolicyName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContainerOptions(_Frozen):
    """How each sandbox container is started."""

    runtime: Literal["runc", "runsc"] = "runc"  # runsc = gVisor, a user-space kernel
    image: str | None = None  # None: the runner image built from this checkout
    memory_bytes: int = Field(1536 * MiB, ge=64 * MiB)  # cgroup cap; memory+swap is set equal
    cpus: float = Field(1.0, gt=0, le=64)  # CPU quota of the whole container
    pids_limit: int = Field(16, ge=4, le=4096)
    scratch_bytes: int = Field(16 * MiB, ge=MiB, le=1024 * MiB)  # tmpfs size
    scratch_inodes: int = Field(1024, ge=16, le=1_000_000)
    user: str = Field("65534:65534", pattern=r"^[1-9][0-9]*:[1-9][0-9]*$")  # never root
    start_timeout_seconds: float = Field(30.0, gt=0, le=300)
    # The kernel's scheduling policy of the fork-server and everything it forks (docs/design.md,
    # "Sandboxes are scheduled as batch work"). batch (SCHED_BATCH) only stops their wake-ups from
    # preempting whatever else runs on the CPU; priority and CPU shares are unchanged.
    scheduling: Literal["batch", "normal"] = "batch"


class PoolOptions(_Frozen):
    """The warm pool of started containers for this policy."""

    warm_containers: int = Field(2, ge=0, le=256)
    # While requests hold sandboxes, the pool starts replacements only to keep this many warm (plus one
    # per waiting lease); the rest start once it is quiet (pool.QUIET_SECONDS). None: warm_containers.
    busy_warm_containers: int | None = Field(None, ge=0, le=256)
    max_starting: int = Field(2, ge=1, le=64)  # container starts in flight at once
    max_requests_per_container: int = Field(1, ge=1)  # 1 = no two requests ever share a container
    max_runs_per_container: int = Field(10_000, ge=1)
    max_parallel_runs: int = Field(1, ge=1, le=64)  # forked children running at once per container
    admission_timeout_seconds: float = Field(30.0, gt=0)  # wait this long for a free container
    max_waiting_requests: int = Field(64, ge=0)  # more waiting requests than this: 503 at once (backpressure)
    # Children a container forks while it waits in the pool, so that as many runs of its request skip their
    # fork (runner/forkserver.py). A container that replaces a used one forks as many as that one ran, at
    # most this many (and at most what the pids limit and the memory beyond the children allow:
    # SandboxPolicy.warm_spares_cap), and a request leases the warm containers whose spares fit it best:
    # docs/design.md, "Warm spares". 0: children are forked only as runs come, a few ahead.
    warm_spares: int = Field(0, ge=0, le=4096)
    # Pages of the fork-server's image that each warm spare writes to itself while it waits, at most this
    # many: those a probe run wrote (runner/forkserver.py), so that the spare's run takes no copy-on-write
    # fault on them. Each costs the spare 4 KiB while it waits. 0: none (docs/design.md, "Warm spares").
    spare_pages: int = Field(0, ge=0, le=4096)


class BatchOptions(_Frozen):
    max_runs: int = Field(256, ge=1, le=100_000)
    max_containers: int = Field(2, ge=1, le=256)  # containers one batch may fan out over
    # One container per this many runs of a batch, up to max_containers: a small batch saves the
    # start and teardown of containers it could not keep busy (docs/design.md, "Pools").
    runs_per_container: int = Field(1, ge=1, le=100_000)


class RequestCaps(_Frozen):
    code_bytes: int = Field(64 * 1024, ge=1)
    stdin_bytes: int = Field(1 * MiB, ge=0)
    metadata_bytes: int = Field(4096, ge=0)


class EncoderCaps(_Frozen):
    """Caps on the canonical values a child may report (DESIGN.md §1)."""

    max_depth: int = Field(64, ge=1, le=1000)
    max_nodes: int = Field(100_000, ge=1)
    max_int_digits: int = Field(4000, ge=1, le=100_000)
    max_text_bytes: int = Field(4 * MiB, ge=1)
    allow_repr: bool = False


class AzrOptions(_Frozen):
    """Caps of the AZR verification API."""

    max_inputs: int = Field(10, ge=1, le=1000)  # induction inputs per proposed task
    max_tasks: int = Field(1024, ge=1)  # tasks or answers per request
    expressions_per_run: int = Field(32, ge=1, le=1024)  # expected outputs evaluated per child
    # Extra validation runs, each in a separate process of an interpreter started with this
    # PYTHONHASHSEED; an output that differs (set order of strings, say) is nondeterministic.
    hash_seeds: tuple[int, ...] = Field((), max_length=4)
    # Output-signature probes (docs/azr.md): after validating a task, ``f`` is called once on this many
    # inputs derived from the example input's types, in the same child, for the curriculum's output
    # signature. They never change the validation's result; 0 turns them off.
    probe_inputs: int = Field(4, ge=0, le=16)
    # A deduction answer that is a plain literal (``[1, 'a']``, as nearly all are) is read on the trusted
    # side by the same literal reader as expected outputs, through the child's encoder, and no process
    # runs (docs/azr.md, "Literal answers"). False: every answer is evaluated in a sandbox.
    literal_answers: bool = True


class WatchdogOptions(_Frozen):
    """The static watchdog checks before execution (docs/watchdog.md, "Wiring"); off by default."""

    enabled: bool = False
    packs_dir: Path | None = None  # None: the repository's policies/watchdog/; relative: to policies_dir
    packs: tuple[PolicyName, ...] = ()  # () = every pack that is enabled_by_default; else exactly these
    # Induction hard-coding detector (docs/watchdog.md): an answer checked with a ``reference_program``
    # is run with the reference on this many generated inputs, in the sandbox; 0 turns it off.
    induction_samples: int = Field(20, ge=0, le=200)
    induction_mode: Literal["enforce", "warn", "audit"] = "enforce"  # what a counterexample does
    induction_budget_seconds: float = Field(5.0, gt=0, le=60)  # wall and CPU time of each detector run
    # Formal equivalence check (docs/watchdog.md): CrossHair searches, inside the sandbox, for an input on
    # which a small pure induction answer and its reference_program differ. Off unless formal_check.
    formal_check: bool = False
    formal_mode: Literal["enforce", "warn", "audit"] = "enforce"  # what a confirmed counterexample does
    formal_budget_seconds: float = Field(5.0, gt=0, le=60)  # wall and CPU time of each formal run
    formal_max_ast_nodes: int = Field(300, ge=1, le=4000)  # larger programs (either one) are not checked


class SandboxPolicy(_Frozen):
    """A named sandbox policy (``kind: sandbox``)."""

    schema_version: Literal[1]
    kind: Literal["sandbox"] = "sandbox"
    name: PolicyName
    description: str = Field(min_length=1)
    limits: Limits = Limits()  # what a request gets when it asks for nothing
    caps: Limits = Limits()  # the most a request may ask for
    syscalls: tuple[str, ...] = Field(min_length=1)  # the child's allowlist; everything else kills
    preload_modules: tuple[str, ...] = ()  # imported once by the fork-server (PID 1)
    # Imported by a second fork-server that PID 1 starts on first use; runs whose text mentions one
    # of these names are forked from it. Keeps every other fork small and fast (docs/design.md).
    heavy_modules: tuple[str, ...] = ()
    container: ContainerOptions = ContainerOptions()
    pool: PoolOptions = PoolOptions()
    batch: BatchOptions = BatchOptions()
    request: RequestCaps = RequestCaps()
    encoder: EncoderCaps = EncoderCaps()
    azr: AzrOptions = AzrOptions()
    watchdog: WatchdogOptions = WatchdogOptions()
    value_reward: ValueRewardPolicy = ValueRewardPolicy()  # the shaped reward in check (docs/value-reward.md)
    reviews: ReviewPolicy = ReviewPolicy()  # human spot checks, off by default (docs/reviews.md)

    @model_validator(mode="after")
    def _consistent(self) -> SandboxPolicy:
        exceeded = self.limits.exceeding(self.caps)
        if exceeded:
            raise ValueError(f"default limits exceed caps: {', '.join(exceeded)}")
        needed = self._children_bytes
        if self.container.memory_bytes < needed:
            raise ValueError(
                f"container.memory_bytes={self.container.memory_bytes} cannot hold "
                f"{self.pool.max_parallel_runs} children at caps.memory_bytes plus the fork-server ({needed})"
            )
        return self

    @property
    def _children_bytes(self) -> int:
        return self.pool.max_parallel_runs * self.caps.memory_bytes + 64 * MiB

    @property
    def warm_spares_cap(self) -> int:
        """The most warm spares the pool asks a container for: ``pool.warm_spares``, within the pids
        the container has beyond :data:`RESERVED_PIDS`, and within the memory it has beyond its children
        at the memory cap and the fork-server (:data:`SPARE_BYTES` and ``pool.spare_pages`` each)."""
        each = SPARE_BYTES + self.pool.spare_pages * PAGE_BYTES
        room = (self.container.memory_bytes - self._children_bytes) // each
        return max(0, min(self.pool.warm_spares, self.container.pids_limit - RESERVED_PIDS, room))

    @property
    def reuses_containers(self) -> bool:
        return self.pool.max_requests_per_container > 1


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: a policy file must be a mapping")
    return data


def load_policies(directory: Path) -> dict[str, SandboxPolicy]:
    """Load every ``kind: sandbox`` YAML file in ``directory``, resolving ``extends``."""
    raw: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.yaml")):
        data = _read(path)
        if data.get("kind", "sandbox") != "sandbox":
            continue
        name = str(data.get("name", path.stem))
        if name in raw:
            raise ConfigurationError(f"{path}: policy {name!r} is also defined in {raw[name][0]}")
        raw[name] = (path, data)

    def resolve(name: str, seen: tuple[str, ...]) -> dict[str, Any]:
        path, data = raw[name]
        parent = data.get("extends")
        if parent is None:
            return data
        if parent not in raw or parent in seen:
            raise ConfigurationError(f"{path}: extends unknown or circular policy {parent!r}")
        body = {key: value for key, value in data.items() if key != "extends"}
        return _merge(resolve(str(parent), (*seen, name)), body)

    policies: dict[str, SandboxPolicy] = {}
    for name, (path, _) in raw.items():
        try:
            policies[name] = SandboxPolicy.model_validate(resolve(name, (name,)))
        except ValidationError as exc:
            raise ConfigurationError(f"{path}: {exc}") from exc
    if not policies:
        raise ConfigurationError(f"{directory}: no sandbox policies found")
    return policies
