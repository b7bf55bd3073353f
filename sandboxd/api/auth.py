"""``require(role)``: the per-router dependency that checks bearer tokens (docs/auth.md).

When ``app.state.keyring`` is None (no ``SANDBOXD_TOKENS_FILE``) it lets every request through.
Otherwise: no or unknown token → 401 with ``WWW-Authenticate: Bearer``, wrong role → 403, over the
token's rate → 429 with ``Retry-After``.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from sandboxd.auth.keyring import Keyring, retry_after_header
from sandboxd.auth.roles import Role, allows

_bearer = HTTPBearer(auto_error=False, description="An API token from `sandboxd token create`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def require(role: Role | None) -> DependsParam:
    """A dependency (for ``include_router(dependencies=[...])``) that admits tokens allowed ``role``.

    ``None`` admits any valid token, whatever its role (used for ``/metrics``).
    """

    async def check(request: Request, credentials: Credentials) -> None:
        keyring: Keyring | None = request.app.state.keyring
        if keyring is None:
            return
        entry = None if credentials is None else keyring.authenticate(credentials.credentials)
        if entry is None:
            raise HTTPException(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})
        if role is not None and not allows(entry.role, role):
            raise HTTPException(403, f"token {entry.id} has role {entry.role.value}; this needs {role.value}")
        wait = keyring.throttle(entry, time.monotonic())
        if wait > 0:
            raise HTTPException(
                429, f"token {entry.id} is over its rate limit", {"Retry-After": retry_after_header(wait)}
            )

    dependency: DependsParam = Depends(check)
    return dependency
