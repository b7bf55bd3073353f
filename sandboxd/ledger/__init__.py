"""The tamper-evident curriculum ledger: canonical entries in an RFC 6962 Merkle tree with signed checkpoints.

Modules: ``entry`` (canonical JSON), ``merkle`` (tree hashing and proofs), ``note`` (C2SP signed notes),
``store`` (the backend Protocol), ``sqlite`` (the embedded backend), ``verify`` (the auditor's check) and
``cli`` (``sandboxd ledger``). Nothing is imported here, so ``sandboxd.cli`` stays cheap to import.
See docs/ledger.md.
"""
