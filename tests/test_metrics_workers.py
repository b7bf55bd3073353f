"""Metrics stay correct with several uvicorn workers (prometheus_client multiprocess mode)."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import Gauge
from prometheus_client.multiprocess import MultiProcessCollector

from sandboxd.exposition import prepare_directory, prune_dead_workers
from sandboxd.image import runner_image_tag
from sandboxd.metrics import Metrics
from sandboxd.settings import BUILTIN_POLICIES
from sandboxd.testing import free_port
from sandboxd.workers import claim_slot, stale_instances

SANDBOXD = Path(sys.executable).with_name("sandboxd")
HEALTH_REQUESTS = 120
RUNS = 6


def _lean_policies(directory: Path) -> Path:
    """The default policy with one warm container per worker, to keep two workers cheap."""
    text = (BUILTIN_POLICIES / "default.yaml").read_text()
    (directory / "default.yaml").write_text(re.sub(r"warm_containers: \d+", "warm_containers: 1", text))
    return directory


@contextlib.contextmanager
def serve_workers(tmp_path: Path, samples: Path, instance: str) -> Iterator[str]:
    """``sandboxd serve --workers 2`` as a subprocess on loopback, with the real Docker backend."""
    port = free_port()
    env = {
        **os.environ,
        "SANDBOXD_INSTANCE": instance,
        "SANDBOXD_POLICIES_DIR": str(_lean_policies(tmp_path)),
        "PROMETHEUS_MULTIPROC_DIR": str(samples),
    }
    env.pop("SANDBOXD_TOKENS_FILE", None)
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(SANDBOXD), "serve", "--port", str(port), "--workers", "2"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "two workers did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _orphan(instance: str) -> str:
    """A stopped container labelled as if an earlier sandboxd with ``instance`` had left it behind."""
    labels = ["--label", "sandboxd.managed=1", "--label", f"sandboxd.instance={instance}"]
    created = subprocess.run(
        ["docker", "create", "--network", "none", *labels, runner_image_tag(), "true"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return created.stdout.strip()[:12]


def _containers(instance: str) -> list[str]:
    """Ids of every container (running or not) with this sandboxd instance label."""
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=sandboxd.instance={instance}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return listed.stdout.split()


def _per_process(samples: Path, name: str, labels: dict[str, str]) -> dict[str, float]:
    """The value of one counter sample in each worker's own sample file, by pid."""
    values: dict[str, float] = {}
    for path in samples.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        for family in MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    values[pid] = sample.value
    return values


def _warm(url: str) -> float:
    """Warm plus starting containers of the default policy, as one scrape of ``url`` reports them."""
    labels = {"policy": "default"}
    return _scrape(url, "sandboxd_pool_containers", {**labels, "state": "warm"}) + _scrape(
        url, "sandboxd_pool_containers", {**labels, "state": "starting"}
    )


def _scrape(url: str, name: str, labels: dict[str, str]) -> float:
    body = httpx.get(f"{url}/metrics", timeout=10).text
    rendered = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(rendered)}\}} (\S+)$", body, re.MULTILINE)
    assert match, f"{name}{{{rendered}}} missing from /metrics"
    return float(match.group(1))


@pytest.mark.docker
@pytest.mark.slow
def test_counts_from_two_workers_add_up(tmp_path: Path) -> None:
    """With --workers 2 every scrape reports the sum over both workers, whichever worker answers it."""
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "counter_1.db").write_bytes(b"stale")  # left by an earlier run: must be wiped, not added
    (tmp_path / "run").mkdir()
    instance = f"test-workers-{uuid.uuid4().hex[:8]}"
    orphans = [_orphan(instance), _orphan(f"{instance}.w5")]  # a single-worker run's, and a 6-worker run's
    with serve_workers(tmp_path / "run", samples, instance) as url:
        assert len(orphans) == 2
        assert _containers(instance) == []  # swept by the supervisor before the workers started
        assert _containers(f"{instance}.w5") == []
        with ThreadPoolExecutor(8) as threads:
            health = list(
                threads.map(lambda _: httpx.get(f"{url}/healthz").status_code, range(HEALTH_REQUESTS))
            )
            runs = list(
                threads.map(
                    lambda _: httpx.post(f"{url}/v1/runs", json={"code": "print(1)"}, timeout=60).json(),
                    range(RUNS),
                )
            )
        assert health == [200] * HEALTH_REQUESTS
        assert [run["status"] for run in runs] == ["ok"] * RUNS
        health_labels = {"route": "/healthz", "code": "200"}
        split = _per_process(samples, "sandboxd_http_requests_total", health_labels)
        assert len([pid for pid, count in split.items() if count > 0]) == 2, split  # both workers served
        for _ in range(3):  # consecutive scrapes land on either worker and agree
            assert _scrape(url, "sandboxd_http_requests_total", health_labels) == HEALTH_REQUESTS
            assert _scrape(url, "sandboxd_runs_total", {"policy": "default", "status": "ok"}) == RUNS
        # One warm container per worker, summed over live workers. Refills after the runs are asynchronous,
        # so a worker may still be between handing a container back and starting its replacement.
        deadline = time.monotonic() + 60
        while (warm := _warm(url)) != 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert warm == 2
        # Each worker keeps its own container under its own label: neither swept the other's away.
        assert len(_containers(f"{instance}.w0")) >= 1
        assert len(_containers(f"{instance}.w1")) >= 1
    assert not list(samples.glob("counter_1.db"))
    assert _containers(f"{instance}.w0") + _containers(f"{instance}.w1") == []  # removed at shutdown


def test_dead_workers_live_gauges_are_pruned(tmp_path: Path) -> None:
    """A crashed worker's live gauges (its pool sizes) stop counting; a live worker's stay."""
    dead_pid = 2**22 + 12345  # above the default pid_max, so no process has it
    (tmp_path / f"gauge_livesum_{dead_pid}.db").write_bytes(b"")
    (tmp_path / f"gauge_livesum_{os.getpid()}.db").write_bytes(b"")
    (tmp_path / f"counter_{dead_pid}.db").write_bytes(b"")  # counters of dead workers still count
    assert prune_dead_workers(tmp_path) == [dead_pid]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [f"gauge_livesum_{os.getpid()}.db", f"counter_{dead_pid}.db"]
    )


def test_prepare_directory_wipes_stale_samples_or_makes_a_fresh_one(tmp_path: Path) -> None:
    """A given directory loses its stale sample files (and nothing else); none given means a new one."""
    (tmp_path / "counter_7.db").write_bytes(b"")
    (tmp_path / "keep.txt").write_text("not ours")
    directory, created = prepare_directory(str(tmp_path))
    assert (directory, created) == (tmp_path, False)
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]
    fresh, created = prepare_directory(None)
    try:
        assert created
        assert list(fresh.iterdir()) == []
    finally:
        fresh.rmdir()


def test_build_info_is_exposed_without_workers() -> None:
    """A single process exposes sandboxd_build_info with the version, read from its own registry."""
    from sandboxd import __version__  # noqa: PLC0415 - the value under test

    metrics = Metrics()
    labels = {"version": __version__, "python": platform.python_version()}
    assert metrics.registry.get_sample_value("sandboxd_build_info", labels) == 1.0


def test_every_gauge_says_how_workers_combine() -> None:
    """No gauge keeps the default multiprocess mode, which would expose one series per worker pid."""
    gauges = [value for value in vars(Metrics()).values() if isinstance(value, Gauge)]
    assert gauges
    for gauge in gauges:
        assert gauge._multiprocess_mode != "all", gauge._name  # private: the mode has no public accessor


def test_stale_instances_cover_every_label_no_worker_claims() -> None:
    """With N workers the supervisor sweeps the plain label and slots N and up; with one, every slot."""
    two = stale_instances("prod", 2)
    assert "prod" in two
    assert "prod.w0" not in two
    assert "prod.w1" not in two
    assert "prod.w2" in two
    assert "prod.w63" in two
    one = stale_instances("prod", 1)
    assert "prod" not in one
    assert {"prod.w0", "prod.w63"} <= set(one)


def test_a_dead_workers_slot_is_reclaimed(tmp_path: Path) -> None:
    """Slots go lowest-free first, and a slot frees up when its holder's lock file closes (the worker died)."""
    first, first_lock = claim_slot(tmp_path, 2)
    second, second_lock = claim_slot(tmp_path, 2)
    try:
        assert (first, second) == (0, 1)
        first_lock.close()
        again, again_lock = claim_slot(tmp_path, 2)
        assert again == 0
        again_lock.close()
    finally:
        second_lock.close()
