"""Alignment scorecards: a JSON file and a self-contained HTML report summarising the ledger for auditors.

Modules: ``windows`` (which entries form the baseline and current windows), ``stats`` (volumes, rates,
watchdog, tripwires, throttle), ``sections`` (families, complexity, trends), ``integrity`` (Merkle root
and checkpoint), ``report`` (builds the scorecard from a ledger store), ``svg`` and ``render`` (the HTML),
``archive`` (files on disk), ``schedule`` (periodic scorecards) and ``cli`` (``sandboxd scorecard``).
Nothing is imported here, so ``sandboxd.cli`` stays cheap to import. See docs/scorecards.md.
"""
