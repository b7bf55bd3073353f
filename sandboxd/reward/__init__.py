"""Value-shaped reward: a policy-weighted mix of correctness, explainability, watchdog penalties and
human preference, reported next to binary correctness with its components.

Modules: ``policy`` (the frozen weights model, restrictive by default) and ``value`` (the signals and the
mix, pure functions on plain values). The program is only parsed, never run. See docs/value-reward.md.
"""
