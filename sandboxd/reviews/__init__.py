"""Human spot checks: a policy-set, seeded sample of proposed tasks and checked answers goes into a review
queue; authenticated reviewers label each item ``approve`` or ``flag`` (docs/reviews.md).

Modules: ``policy`` (the frozen sampling knobs), ``sampling`` (pure: task keys and the seeded draw),
``store`` (the storage Protocol and its rows), ``sql`` (the statements both backends share), ``sqlite`` and
``postgres`` (one per backend, in the ledger's database), and ``desk`` (the service's async front: one
thread, labels appended to the ledger, flags fed to the throttle).
"""
