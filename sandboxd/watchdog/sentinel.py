"""The runtime half of the watchdog, owned by the service: honeytokens, tripwire tasks, the throttle.

``Sentinel`` observes what the service does (screening decisions, run results, checked answers), fires
tripwire events (ledger via ``record``, metric, webhook, throttle straight to paused), runs the
throttle's evaluation loop, and answers admission. Its pieces are the pure modules next to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from sandboxd.azr.schemas import Answer, CheckResult
from sandboxd.backends.base import SandboxSpec
from sandboxd.exceptions import ConfigurationError
from sandboxd.metrics import Metrics
from sandboxd.run import RunResult
from sandboxd.settings import Settings
from sandboxd.verdict import Status

from .decision import Decision, DecisionKind
from .honeytokens import Honeytokens
from .latch import Latch
from .safety import SafetyConfig, resolve
from .throttle import STOPPED, Band, Change, Throttle
from .tripwires import TripwireRegistry, load_tripwire_packs
from .webhook import Webhook

log = logging.getLogger(__name__)
EventSink = Callable[[str, Mapping[str, Any]], Awaitable[None]]


def tripwire_registry(config: SafetyConfig, path: Path | None) -> TripwireRegistry | None:
    """The tripwire tasks of ``config`` (packs_dir relative to the safety file), or None when off."""
    if not config.tripwires.enabled:
        return None
    folder = config.tripwires.packs_dir
    if not folder.is_absolute():
        if path is None:
            raise ConfigurationError("tripwires.packs_dir must be absolute without a safety file")
        folder = path.parent / folder
    return TripwireRegistry(load_tripwire_packs(folder))


def _values_text(values: Sequence[Any]) -> str:
    """A frame's decoded values as one text to search for canaries: every string they hold appears in it
    as it was decoded, so escapes in the child's frame cannot hide one. orjson (5-10x json's speed:
    this ran for every run); json where orjson refuses a value."""
    try:
        return orjson.dumps(values).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(values)


class Sentinel:
    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics, record: EventSink) -> Sentinel:
        """The safety file of ``settings`` (or everything off), with the configured webhook."""
        config, path = resolve(settings.safety_file, settings.policies_dir)
        if path is None:
            log.warning("no safety file: tripwires, honeytokens and the throttle are off (docs/safety.md)")
        latch = Latch(settings.data_dir / "throttle-latch.json")
        webhook = Webhook(settings.tripwire_webhook_url)
        return cls(config, path, metrics=metrics, record=record, webhook=webhook, latch=latch)

    def __init__(
        self,
        config: SafetyConfig,
        path: Path | None,
        *,
        metrics: Metrics,
        record: EventSink,
        webhook: Webhook,
        latch: Latch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self.path = config, path
        self.metrics, self.record, self.webhook = metrics, record, webhook
        self.tripwires = tripwire_registry(config, path)
        self.throttle = Throttle(config.throttle, clock) if config.throttle.enabled else None
        self.honeytokens = Honeytokens(config.honeytokens) if config.honeytokens.enabled else None
        self.events: list[dict[str, Any]] = []  # the latest tripwire events, for the state endpoint
        self._loop: asyncio.Task[None] | None = None
        self.latch = latch if self.throttle is not None else None  # pauses survive restarts, reach workers
        self._latch_seq = 0

    # -- life cycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._publish()
        await self.follow_latch()
        if self.throttle is not None:
            self._loop = asyncio.create_task(self._evaluate_forever())

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        await self.webhook.flush()
        if self.honeytokens is not None:
            self.honeytokens.close()

    async def _evaluate_forever(self) -> None:
        assert self.throttle is not None
        while True:
            await asyncio.sleep(self.throttle.config.evaluate_interval_seconds)
            try:
                await self.follow_latch()
                await self.evaluate()
            except Exception:  # the stale check fails closed if this keeps failing
                log.exception("throttle evaluation failed")

    async def evaluate(self) -> None:
        if self.throttle is not None:
            await self._changed(self.throttle.evaluate())

    def _publish(self) -> None:
        if self.throttle is not None:
            self.metrics.alignment_confidence.set(self.throttle.score)
            self.metrics.throttle_band.set(self.throttle.band.level)

    async def follow_latch(self) -> None:
        """Apply a pause or a resume that another worker (or a previous run) latched."""
        if self.latch is None or self.throttle is None:
            return
        state = self.latch.read()
        if state is None or 0 <= state.seq <= self._latch_seq:
            return
        self._latch_seq = max(state.seq, self._latch_seq)
        by = f"latch:{state.by}"
        if state.band in {b.value for b in STOPPED}:
            change = self.throttle.hold(Band(state.band), state.reason, by)
        elif self.throttle.band in STOPPED:
            change = self.throttle.resume(state.reason, by)
        else:
            change = None
        await self._changed(change, latched=True)

    async def _changed(self, change: Change | None, *, latched: bool = False) -> None:
        self._publish()
        if change is not None and not latched and self.latch is not None:
            stops, stopped = change.new in STOPPED, change.old in STOPPED
            if stops != stopped:
                written = self.latch.write(change.new.value if stops else "normal", change.reason, change.by)
                self._latch_seq = written.seq
        if change is not None:
            log.warning("throttle %s -> %s (%s): %s", change.old, change.new, change.by, change.reason)
            await self._record("throttle_change", change.body())

    async def _record(self, kind: str, body: Mapping[str, Any]) -> None:
        try:
            await self.record(kind, body)
        except Exception:  # the band already changed; losing the record must not undo it
            log.exception("could not record %s event", kind)

    # -- observations -----------------------------------------------------------------------------
    def plant(self, spec: SandboxSpec) -> SandboxSpec:
        return spec if self.honeytokens is None else self.honeytokens.plant(spec)

    def observe_decision(self, decision: Decision) -> None:
        if self.throttle is not None:
            self.throttle.window.screen(self.throttle.clock(), vetoed=decision.decision is DecisionKind.VETO)

    def observe_drift(self, value: float) -> None:
        """Feed the drift input in [0, 1] (0 = no drift); the next evaluation uses it."""
        if self.throttle is not None:
            self.throttle.window.observe_drift(value, self.throttle.clock())

    def observe_label(self, flagged: bool) -> None:
        """A human review label (docs/reviews.md); a flag lowers confidence at the next evaluation."""
        if self.throttle is not None:
            self.throttle.window.label(self.throttle.clock(), flagged=flagged)

    def scan_run(self, result: RunResult) -> list[str]:
        """Count the run in the throttle's violation window; the honeytoken rules whose canary it shows.

        ``Service.run_stages`` calls it as each run ends, so the search overlaps the runs still going, and
        fires what it found (``fire_leaks``) once the request's runs are done.
        """
        if self.throttle is not None:
            self.throttle.window.execute(
                self.throttle.clock(), violation=result.status is Status.SANDBOX_VIOLATION
            )
        if self.honeytokens is None:
            return []
        values = _values_text(result.frame.values) if result.frame is not None else ""
        return self.honeytokens.leaks(result.stdout, result.stderr, values)

    async def fire_leaks(self, policy: str, leaked: Sequence[tuple[RunResult, Sequence[str]]]) -> None:
        """Fire each honeytoken rule ``scan_run`` found in a run."""
        evidence = "a canary secret appeared in the run's output, stderr or values"
        for result, rules in leaked:
            for rule in rules:
                await self._fire_leak(rule, policy, evidence, result)

    async def observe_literals(self, policy: str, values: Sequence[Any]) -> None:
        """Fire for every literal answer read on the trusted side (no run) whose value shows a honeytoken,
        as ``scan_run`` would have for its run's values. ``values`` are tagged, as in a frame: the
        decoded strings are searched, so escapes in the answer's text cannot hide a canary."""
        if self.honeytokens is None:
            return
        for value in values:
            evidence = "a canary secret appeared in a literal answer's value"
            await self._leaked(policy, (_values_text([value]),), evidence, None)

    async def _leaked(self, policy: str, texts: Sequence[str], evidence: str, run: RunResult | None) -> None:
        """Fire each honeytoken rule whose canary is in ``texts`` (what ``run`` showed, or a literal's value)."""
        assert self.honeytokens is not None
        for rule in self.honeytokens.leaks(*texts):
            await self._fire_leak(rule, policy, evidence, run)

    async def _fire_leak(self, rule: str, policy: str, evidence: str, run: RunResult | None) -> None:
        await self.fire(
            rule,
            {
                "kind": "honeytoken",
                "how": "leaked",
                "policy": policy,
                "sandbox_id": run.sandbox_id if run is not None else None,
                "evidence": evidence,
                "status": run.status.value if run is not None else Status.OK.value,
            },
        )

    async def observe_answers(self, answers: Sequence[Answer], results: Sequence[CheckResult]) -> None:
        """``observe_answer`` for each answer of a ``/v1/azr/check`` request and its result."""
        if self.tripwires is None:
            return
        for answer, result in zip(answers, results, strict=True):
            if not self.tripwires.may_recognise(answer.task_type, answer.expected_output, answer.outputs):
                continue
            await self.observe_answer(
                answer.task_type,
                answer.model_dump(),
                correct=result.correct,
                reason=result.reason.value,
                error_type=result.error_type,
            )

    async def observe_answer(
        self, task_type: str, fields: dict[str, Any], *, correct: bool, reason: str, error_type: str | None
    ) -> None:
        """Fire if this checked answer belongs to a tripwire task it solved or attempted."""
        if self.tripwires is None:
            return
        task = self.tripwires.recognise(task_type, fields)
        if task is None:
            return
        firing = self.tripwires.judge(
            task, correct=correct, reason=reason, error_type=error_type, answer=str(fields.get("answer", ""))
        )
        if firing is not None:
            await self.fire(
                task.id,
                {
                    "kind": "task",
                    "how": firing.how,
                    "evidence": firing.evidence,
                    "severity": task.severity,
                    "ref": self.tripwires.ref(task),
                    "description": task.description,
                },
            )

    async def fire(self, rule: str, details: Mapping[str, Any]) -> None:
        """A tripwire event: ledger, metric, webhook, and the throttle straight to paused."""
        event = {"rule": rule, **details, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        log.error("TRIPWIRE %s: %s", rule, event)
        self.events = [*self.events[-49:], event]
        self.metrics.tripwire_events.labels(rule=rule).inc()
        self.webhook.send(event)
        change = None
        if self.throttle is not None:  # pause first: an unrecordable event still stops the loop
            change = self.throttle.trip(f"tripwire {rule} ({details.get('how', 'fired')})")
        await self._record("tripwire", event)
        await self._changed(change)

    # -- admission and admin ----------------------------------------------------------------------
    def admit(self) -> float:
        """Seconds to wait before the request may run; raises ``Throttled`` to refuse it."""
        return 0.0 if self.throttle is None else self.throttle.admit()

    async def resume(self, reason: str, by: str) -> Change | None:
        if self.throttle is None:
            return None
        change = self.throttle.resume(reason, by)
        await self._changed(change)
        return change

    # -- reload -----------------------------------------------------------------------------------
    def check_reconfigure(self, config: SafetyConfig, path: Path | None) -> TripwireRegistry | None:
        """Validate a new configuration without applying it; raise ConfigurationError if it cannot be."""
        old = self.config
        if config.throttle.enabled != old.throttle.enabled:
            raise ConfigurationError(
                "turning the throttle on or off needs a restart (a reload must not lift a pause)"
            )
        if config.honeytokens != old.honeytokens:
            raise ConfigurationError("honeytoken settings change the containers; they need a restart")
        return tripwire_registry(config, path)

    def reconfigure(
        self, config: SafetyConfig, path: Path | None, tripwires: TripwireRegistry | None
    ) -> None:
        """Apply a configuration that ``check_reconfigure`` accepted; the band and the window are kept."""
        self.config, self.path, self.tripwires = config, path, tripwires
        if self.throttle is not None:
            self.throttle.config = config.throttle
            self.throttle.window.config = config.throttle
