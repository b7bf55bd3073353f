"""Bearer tokens and roles on the real app (docs/auth.md): every protected endpoint against every role."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from sandboxd.api.app import create_app
from sandboxd.auth.keyring import TokenBucket
from sandboxd.auth.roles import Role, allows
from sandboxd.auth.tokens import hash_token, load_tokens
from sandboxd.cli import main
from sandboxd.exceptions import ConfigurationError
from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend

PROTECTED = ("/v1/runs", "/v1/runs/batch", "/v1/azr/validate", "/v1/azr/check", "/run_code")
OPEN = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json")
CALLERS = ("none", "bad", "trainer", "auditor", "reviewer", "admin")
EXPECTED = {
    "none": 401,
    "bad": 401,
    "trainer": None,
    "auditor": 403,
    "reviewer": 403,
    "admin": None,
}  # None: allowed
AUDITED = (  # read-only audit endpoints (GET), Role.auditor
    "/v1/ledger/entries",
    "/v1/ledger/checkpoints",
    "/v1/ledger/proof/inclusion",
    "/v1/ledger/proof/consistency",
    "/v1/watchdog/state",
    "/v1/scorecards",
    "/v1/scorecards/latest",
    "/v1/scorecards/{scorecard_id}",
    "/v1/scorecards/{scorecard_id}/html",
)
AUDITOR_EXPECTED = {"none": 401, "bad": 401, "trainer": 403, "auditor": None, "reviewer": 403, "admin": None}
TRAINER_GET = ("/v1/tripwires/sample",)  # trainer endpoints read with GET
ADMINISTERED = ("/v1/admin/resume", "/v1/admin/policies/reload")  # mutating admin endpoints (POST)
ADMIN_EXPECTED = {"none": 401, "bad": 401, "trainer": 403, "auditor": 403, "reviewer": 403, "admin": None}
REVIEWER_GET = ("/v1/reviews/queue",)  # human spot checks, Role.reviewer (docs/reviews.md)
REVIEWER_POST = ("/v1/reviews/{item}/label",)
REVIEWER_EXPECTED = {"none": 401, "bad": 401, "trainer": 403, "auditor": 403, "reviewer": None, "admin": None}


def _tokens(tmp_path: Path, rate: float | None = None) -> tuple[Path, dict[str, str]]:
    """A tokens file with one token per role; returns it and the plain tokens by role."""
    path = tmp_path / "tokens.jsonl"
    plain: dict[str, str] = {}
    for role in Role:
        args = ["token", "create", "--role", role.value, "--file", str(path)]
        if rate is not None:
            args += ["--rate", str(rate)]
        plain[role.value] = _create(args)
    return path, plain


def _create(args: list[str]) -> str:
    import contextlib  # noqa: PLC0415 - only this helper captures stdout
    import io  # noqa: PLC0415 - only this helper captures stdout

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args) == 0
    return out.getvalue().strip()


def _app(tokens_file: Path | None) -> object:
    settings = Settings(instance="auth-test", image="fake:latest", tokens_file=tokens_file)
    return create_app(settings, backend=FakeBackend())


async def _send(app: object, method: str, path: str, token: str | None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        if method == "POST":
            return await client.post(path, json={}, headers=headers)
        return await client.get(path, headers=headers)


def _token_for(caller: str, plain: dict[str, str]) -> str | None:
    return {"none": None, "bad": "sbx_not-a-real-token"}.get(caller, plain.get(caller))


@pytest.fixture
def secured(tmp_path: Path) -> tuple[object, dict[str, str]]:
    path, plain = _tokens(tmp_path)
    return _app(path), plain


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("path", PROTECTED)
def test_protected_endpoint_by_caller(secured: tuple[object, dict[str, str]], path: str, caller: str) -> None:
    """No or bad token gets 401, the auditor 403, and trainer and admin get past the auth layer."""
    app, plain = secured
    response = asyncio.run(_send(app, "POST", path, _token_for(caller, plain)))
    expected = EXPECTED[caller]
    if expected is None:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == expected, response.text
        assert response.json()["error"] == {401: "unauthorized", 403: "forbidden"}[expected]
    if expected == 401:
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("path", AUDITED)
def test_audit_endpoint_by_caller(secured: tuple[object, dict[str, str]], path: str, caller: str) -> None:
    """Audit endpoints admit auditor and admin tokens; no or bad token gets 401, a trainer 403."""
    app, plain = secured
    response = asyncio.run(_send(app, "GET", path, _token_for(caller, plain)))
    expected = AUDITOR_EXPECTED[caller]
    if expected is None:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == expected, response.text


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("method", "path", "table"),
    [
        *[pytest.param("GET", p, EXPECTED, id=p) for p in TRAINER_GET],
        *[pytest.param("POST", p, ADMIN_EXPECTED, id=p) for p in ADMINISTERED],
        *[pytest.param("GET", p, REVIEWER_EXPECTED, id=p) for p in REVIEWER_GET],
        *[pytest.param("POST", p.replace("{item}", "0"), REVIEWER_EXPECTED, id=p) for p in REVIEWER_POST],
    ],
)
def test_safety_endpoint_by_caller(
    secured: tuple[object, dict[str, str]], method: str, path: str, table: dict[str, int | None], caller: str
) -> None:
    """Tripwire sampling admits trainer and admin; resume and reload admit only admin; reviews reviewer and admin."""
    app, plain = secured
    response = asyncio.run(_send(app, method, path, _token_for(caller, plain)))
    expected = table[caller]
    if expected is None:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == expected, response.text


@pytest.mark.parametrize("path", OPEN)
def test_open_endpoints_need_no_token(secured: tuple[object, dict[str, str]], path: str) -> None:
    """Health, readiness, metrics and the API docs answer without a token."""
    app, _ = secured
    response = asyncio.run(_send(app, "GET", path, None))
    assert response.status_code not in (401, 403)


def test_every_route_is_protected_or_open(secured: tuple[object, dict[str, str]]) -> None:
    """A new route cannot slip in without being listed as protected or open here."""
    app, _ = secured
    # The OpenAPI schema lists every API route, including those of included routers (FastAPI nests
    # them, so app.routes alone does not show them); /docs and /openapi.json are not in it.
    paths = set(app.openapi()["paths"])  # type: ignore[attr-defined]
    listed = set(PROTECTED) | set(AUDITED) | set(TRAINER_GET) | set(ADMINISTERED) | set(OPEN)
    listed |= set(REVIEWER_GET) | set(REVIEWER_POST)
    assert paths == listed - {"/docs", "/openapi.json"}


def test_auth_disabled_without_tokens_file(caplog: pytest.LogCaptureFixture) -> None:
    """Without SANDBOXD_TOKENS_FILE requests need no token and startup warns."""
    with caplog.at_level("WARNING", logger="sandboxd.api.app"):
        app = _app(None)
    assert "authentication is DISABLED" in caplog.text
    response = asyncio.run(_send(app, "POST", "/v1/runs", None))
    assert response.status_code not in (401, 403)


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    """A token over its rate_per_second gets 429 with Retry-After."""
    path, plain = _tokens(tmp_path, rate=0.01)
    app = _app(path)
    first = asyncio.run(_send(app, "POST", "/v1/runs", plain["trainer"]))
    second = asyncio.run(_send(app, "POST", "/v1/runs", plain["trainer"]))
    assert first.status_code not in (401, 403, 429)
    assert second.status_code == 429
    assert second.json()["error"] == "rate_limited"
    assert int(second.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("start_tokens", "elapsed", "allowed"),
    [
        pytest.param(None, 0.0, True, id="full-bucket"),
        pytest.param(0.0, 0.0, False, id="empty-bucket"),
        pytest.param(0.0, 0.5, True, id="refilled"),
    ],
)
def test_token_bucket(start_tokens: float | None, elapsed: float, allowed: bool) -> None:
    """A bucket of 2/s admits while it holds a whole token and refills with time."""
    bucket = TokenBucket(2.0)
    bucket.take(0.0)
    if start_tokens is not None:
        bucket.tokens = start_tokens
    assert (bucket.take(elapsed) == 0.0) is allowed


@pytest.mark.parametrize(
    ("have", "need", "ok"),
    [
        (Role.admin, Role.trainer, True),
        (Role.admin, Role.auditor, True),
        (Role.trainer, Role.trainer, True),
        (Role.auditor, Role.trainer, False),
        (Role.trainer, Role.auditor, False),
        (Role.trainer, Role.admin, False),
        (Role.admin, Role.reviewer, True),
        (Role.reviewer, Role.reviewer, True),
        (Role.reviewer, Role.auditor, False),
        (Role.auditor, Role.reviewer, False),
        (Role.trainer, Role.reviewer, False),
    ],
)
def test_role_model(have: Role, need: Role, ok: bool) -> None:
    """Admin may do everything; the other roles only their own."""
    assert allows(have, need) is ok


def test_cli_stores_only_the_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """token create prints the plain token once and the file holds only its sha256; list shows no hashes."""
    path = tmp_path / "tokens.jsonl"
    assert main(["token", "create", "--role", "admin", "--file", str(path), "--rate", "5"]) == 0
    token = capsys.readouterr().out.strip()
    text = path.read_text()
    assert token not in text
    assert hash_token(token) in text
    assert path.stat().st_mode & 0o777 == 0o600
    (entry,) = load_tokens(path)
    assert (entry.role, entry.rate_per_second) == (Role.admin, 5.0)
    assert main(["token", "list", "--file", str(path)]) == 0
    listed = capsys.readouterr().out
    assert entry.id in listed
    assert "admin" in listed
    assert entry.sha256 not in listed


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("not json", id="not-json"),
        pytest.param(
            json.dumps({"id": "x", "role": "root", "sha256": "0" * 64, "created": "2026-01-01T00:00:00Z"}),
            id="bad-role",
        ),
        pytest.param(
            json.dumps({"id": "x", "role": "admin", "token": "plain", "created": "2026-01-01T00:00:00Z"}),
            id="plain-token",
        ),
    ],
)
def test_malformed_tokens_file_fails_startup(tmp_path: Path, line: str) -> None:
    """A malformed tokens file stops the app factory instead of dropping a token."""
    path = tmp_path / "tokens.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ConfigurationError):
        _app(path)


@pytest.mark.parametrize(
    ("caller", "status"),
    [("none", 401), ("bad", 401), ("trainer", 200), ("auditor", 200), ("admin", 200)],
)
def test_metrics_can_require_a_token(tmp_path: Path, caller: str, status: int) -> None:
    """With SANDBOXD_METRICS_REQUIRE_TOKEN any valid token may scrape, and nothing else."""
    path, plain = _tokens(tmp_path)
    settings = Settings(
        instance="auth-test", image="fake:latest", tokens_file=path, metrics_require_token=True
    )
    app = create_app(settings, backend=FakeBackend())
    response = asyncio.run(_send(app, "GET", "/metrics", _token_for(caller, plain)))
    assert response.status_code == status, response.text
    if status == 200:
        assert "sandboxd_" in response.text


def test_trainer_client_sends_its_token(
    secured: tuple[object, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """trainer_client passes token= (or $SANDBOXD_TOKEN) as a bearer token; a wrong one raises 401."""
    from trainer_client import AsyncSandboxClient  # noqa: PLC0415 - only these cases need the client
    from trainer_client.exceptions import SandboxRequestError  # noqa: PLC0415 - only these cases need the client

    app, plain = secured
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]

    task = {"task_type": "deduction", "program": "def f(x):\n    return x", "inputs": ["1) or (1"]}

    async def validate(token: str | None) -> str:
        async with AsyncSandboxClient("http://127.0.0.1", token=token, transport=transport) as client:
            [result] = await client.validate([task])
            return str(result.reason)

    assert asyncio.run(validate(plain["trainer"])) == "bad_arguments"  # judged on the trusted side
    monkeypatch.setenv("SANDBOXD_TOKEN", plain["trainer"])
    assert asyncio.run(validate(None)) == "bad_arguments"
    with pytest.raises(SandboxRequestError) as caught:
        asyncio.run(validate("sbx_wrong"))
    assert caught.value.status_code == 401
