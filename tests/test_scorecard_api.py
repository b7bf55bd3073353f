"""Periodic scorecards (the scheduler) and ``GET /v1/scorecards``, over a real SQLite ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from curriculum_data import entries, pool, sample

from sandboxd.api.app import create_app
from sandboxd.ledger.sqlite import SqliteLedgerStore
from sandboxd.ledger.store import LedgerStore
from sandboxd.scorecard import archive
from sandboxd.scorecard.schedule import ScorecardScheduler
from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "ledger.db"
    store = SqliteLedgerStore(path)
    try:
        store.append_many(entries(sample(pool(), 200, 0)))
    finally:
        store.close()
    return path


def _scheduler(ledger: Path, out: Path, *, interval: float = 60.0, keep: int = 100) -> ScorecardScheduler:
    def opener() -> LedgerStore:
        return SqliteLedgerStore(ledger)

    return ScorecardScheduler(opener, out, interval, source="test", keep=keep)


def test_run_once_writes_and_prunes(ledger: Path, tmp_path: Path) -> None:
    """Each run writes a JSON and an HTML file; only the newest ``keep`` are kept."""
    scheduler = _scheduler(ledger, tmp_path, keep=2)
    written = [scheduler.run_once() for _ in range(3)]
    assert all(w.html_path.exists() for w in written[1:])
    assert not written[0].json_path.exists()
    assert not written[0].html_path.exists()
    assert archive.listing(tmp_path) == [w.json_path.stem for w in written[1:]]


def test_background_task_writes_periodically(ledger: Path, tmp_path: Path) -> None:
    """Started, the scheduler writes a scorecard and reports its drift after each interval; stopped, no more."""

    drifts: list[float] = []

    async def scenario() -> int:
        scheduler = _scheduler(ledger, tmp_path, interval=0.5)  # polled every 0.1 s: stops while it sleeps
        scheduler.on_drift = drifts.append
        scheduler.start()
        for _ in range(600):
            await asyncio.sleep(0.1)
            if drifts:
                break
        await scheduler.stop()
        count = len(archive.listing(tmp_path))
        await asyncio.sleep(0.5)
        assert len(archive.listing(tmp_path)) == count
        return count

    assert asyncio.run(scenario()) >= 1
    assert drifts  # each scorecard's drift score went to the callback (the throttle's observe_drift)
    assert all(0.0 <= d <= 1.0 for d in drifts)


def test_failing_run_does_not_kill_the_loop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A run that fails (here: the ledger cannot be opened) is logged and retried, not fatal."""
    attempts = 0

    def broken() -> LedgerStore:
        nonlocal attempts
        attempts += 1
        raise OSError("ledger unavailable")

    async def scenario() -> None:
        scheduler = ScorecardScheduler(broken, tmp_path, 0.05)
        scheduler.start()
        for _ in range(100):
            await asyncio.sleep(0.05)
            if attempts >= 2:
                break
        await scheduler.stop()

    asyncio.run(scenario())
    assert attempts >= 2
    assert "periodic scorecard failed" in caplog.text


def test_settings_make_a_scheduler(tmp_path: Path) -> None:
    """Periodic scorecards are off by default, and on with an interval; bad window specs fail at startup."""
    assert ScorecardScheduler.from_settings(Settings(data_dir=tmp_path)) is None
    scheduler = ScorecardScheduler.from_settings(Settings(data_dir=tmp_path, scorecard_interval_seconds=3600))
    assert scheduler is not None
    assert scheduler.out_dir == tmp_path / "scorecards"
    with pytest.raises(ValueError, match="bad window"):
        Settings(scorecard_window="yesterday")
    with pytest.raises(ValueError, match="greater than or equal"):
        Settings(scorecard_interval_seconds=1)


async def _get(app: object, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.get(path)


def test_api_serves_scorecards(ledger: Path, tmp_path: Path) -> None:
    """The API lists scorecards newest first and serves the latest JSON and each HTML page with a CSP."""
    settings = Settings(instance="scorecard-api", image="fake:latest", scorecard_dir=tmp_path)
    app = create_app(settings, backend=FakeBackend())
    assert asyncio.run(_get(app, "/v1/scorecards/latest")).status_code == 404
    scheduler = _scheduler(ledger, tmp_path)
    first, second = scheduler.run_once(), scheduler.run_once()
    listed = asyncio.run(_get(app, "/v1/scorecards")).json()["scorecards"]
    assert [c["id"] for c in listed] == [second.json_path.stem, first.json_path.stem]
    latest = asyncio.run(_get(app, "/v1/scorecards/latest"))
    assert latest.status_code == 200
    assert latest.json()["ledger"]["entries"] == 200
    one = asyncio.run(_get(app, listed[1]["json"]))
    assert one.json()["generated_at"]
    page = asyncio.run(_get(app, listed[0]["html"]))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.text.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/scorecards/nope",
        "/v1/scorecards/..%2f..%2fetc%2fpasswd",
        "/v1/scorecards/scorecard-20260101T000000Z/html",
        "/v1/scorecards/..%2Fledger/html",
    ],
)
def test_api_unknown_or_traversing_ids_are_404(tmp_path: Path, path: str) -> None:
    """Unknown ids and ids that try to leave the scorecard directory get 404."""
    (tmp_path / "secret.json").write_text("{}")
    settings = Settings(instance="scorecard-api", image="fake:latest", scorecard_dir=tmp_path / "cards")
    response = asyncio.run(_get(create_app(settings, backend=FakeBackend()), path))
    assert response.status_code == 404


def test_app_runs_the_scheduler_and_feeds_drift_to_the_throttle(ledger: Path, tmp_path: Path) -> None:
    """With an interval set, the app's lifespan starts the scheduler, whose drift reaches the sentinel."""
    own = tmp_path / "ledger.db"  # the app's ledger may write (checkpoints): keep the shared fixture intact
    own.write_bytes(ledger.read_bytes())
    settings = Settings(
        instance="scorecard-wiring",
        image="fake:latest",
        data_dir=tmp_path,
        ledger_url=str(own),
        scorecard_interval_seconds=3600,
        warm_pools=False,
    )
    app = create_app(settings, backend=FakeBackend())
    schedule = app.state.scorecards_schedule
    assert isinstance(schedule, ScorecardScheduler)
    assert schedule.on_drift == app.state.service.sentinel.observe_drift
    assert (
        create_app(Settings(instance="off", image="fake:latest", data_dir=tmp_path)).state.scorecards_schedule
        is None
    )

    async def lifespan() -> tuple[bool, bool]:
        async with app.router.lifespan_context(app):
            running = schedule._task is not None and not schedule._task.done()
        return running, schedule._task is None

    assert asyncio.run(lifespan()) == (True, True)  # started with the app, stopped with it
    written = schedule.run_once()
    assert written.json_path.parent == tmp_path / "scorecards"
    assert schedule.last_drift is not None
