"""The tamper-evident curriculum ledger: canonical entries in an RFC 6962 Merkle tree with signed checkpoints.

Modules: ``entry`` (canonical JSON), ``merkle`` (tree hashing and proofs), ``note`` (C2SP signed notes),
``store`` (the backend Protocol), ``sqlite`` and ``postgres`` (the backends), ``stores`` (choosing one by
URL), ``query`` (filter columns), ``verify`` (the auditor's check), ``config``, ``recorder`` (the service's
group-committed appends and periodic checkpoints), ``sinks`` (checkpoint copies) and ``cli``
(``sandboxd ledger``). Nothing is imported here, so ``sandboxd.cli`` stays cheap to import. See
docs/ledger.md.
"""
