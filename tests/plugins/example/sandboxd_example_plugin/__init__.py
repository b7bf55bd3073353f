"""Two example watchdog checks: ``example-todo`` (static) and ``example-loud-output`` (post)."""

from __future__ import annotations

from sandboxd.watchdog.decision import Finding
from sandboxd.watchdog.plugins import CheckContext, finding


class TodoMarker:
    """Static: an answer that still says TODO or FIXME is unfinished (reads the source, never runs it)."""

    name = "example-todo"
    phase = "static"

    def check(self, context: CheckContext) -> list[Finding]:
        found = []
        for number, line in enumerate(context.source.splitlines(), start=1):
            for marker in ("TODO", "FIXME"):
                col = line.find(marker)
                if col >= 0:
                    found.append(
                        finding(
                            "example.todo",
                            "the program still has a TODO/FIXME marker",
                            severity="low",
                            line=number,
                            col=col,
                            evidence=line.strip()[:80],
                        )
                    )
        return found


class _LoudOutput:
    """Post: a run that printed more than 1000 characters to stdout."""

    name = "example-loud-output"
    phase = "post"

    def check(self, context: CheckContext) -> list[Finding]:
        outcome = context.outcome
        if outcome is None or len(outcome.stdout) <= 1000:
            return []
        return [
            finding("example.loud-output", "the run printed a lot", evidence=f"{len(outcome.stdout)} chars")
        ]


loud_output = _LoudOutput()  # an entry point may name an instance as well as a class

NOT_A_CHECK = 42  # registered on purpose: loading it must fail with a clear message
