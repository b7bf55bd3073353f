"""Curriculum interpretability: per-program features, task families, novelty and drift.

Modules: ``items`` (curriculum items read from ledger entries), ``features`` (AST histogram, tokens,
complexity, output signature), ``minhash`` (near-duplicates and novelty), ``families`` (clustering into
named task families), ``drift`` (the drift score the throttle consumes) and ``analysis`` (all of it over
a list of proposals). Nothing is imported here, so ``sandboxd.cli`` stays cheap to import. Model programs
are only ever parsed, never run. See docs/scorecards.md.
"""
