"""Bearer tokens and roles: the token file (``tokens``), the in-memory keyring (``keyring``), the CLI (``cli``).

Nothing here imports FastAPI; the HTTP dependency lives in ``sandboxd.api.auth``.
"""
