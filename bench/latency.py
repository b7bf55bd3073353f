"""Single-run latency over HTTP (``POST /v1/runs`` of a trivial program), in two modes.

* **default @ 4 rps, open loop**: the default policy (fresh containers for every request, so each
  request also retires a container and the pool starts another) with requests sent on a fixed
  schedule whatever the answers do. Latency is measured from the *scheduled* send time, so a slow
  answer that delays the client is not hidden (no coordinated omission).
* **pooled, back to back**: the ``pooled`` policy (containers reused across requests), one request
  after the other on one keep-alive connection.

For each mode: client-side p50/p90/p99/max, and the same percentiles of the server-side
``wall_time_seconds`` (fork to reap of the child, as the fork-server measured it).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

PROGRAM = "print(1)"
WARMUP_REQUESTS = 20


def _record(body: dict[str, Any], server: list[float], statuses: collections.Counter[str]) -> None:
    statuses[body["status"]] += 1
    server.append(body["wall_time_seconds"])


async def _open_loop(base_url: str, policy: str, rate: float, count: int) -> dict[str, Any]:
    client_seconds: list[float] = []
    server_seconds: list[float] = []
    statuses: collections.Counter[str] = collections.Counter()
    lateness: list[float] = []
    by_index: dict[int, float] = {}
    payload = {"code": PROGRAM, "policy": policy}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0, limits=limits) as client:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.5

        async def one(index: int) -> None:
            scheduled = start + index / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            lateness.append(loop.time() - scheduled)
            response = await client.post("/v1/runs", json=payload)
            client_seconds.append(loop.time() - scheduled)
            by_index[index] = client_seconds[-1]
            if response.status_code != 200:
                statuses[f"http {response.status_code}"] += 1
                return
            _record(response.json(), server_seconds, statuses)

        await asyncio.gather(*(one(index) for index in range(count)))
    ordered = [by_index[index] for index in sorted(by_index)]
    return {
        "mode": f"{policy} @ {rate:g} rps, open loop",
        "policy": policy,
        "rate": rate,
        "client": common.summarize_ms(client_seconds),
        "server_wall": common.summarize_ms(server_seconds),
        "max_send_lateness_ms": max(lateness) * 1000,
        "client_ms_in_send_order": [round(1000 * value, 2) for value in ordered],
        "statuses": dict(statuses),
    }


def _queue_wait(daemon: common.Daemon, policy: str) -> tuple[float, float]:
    name = "sandboxd_queue_wait_seconds"
    return daemon.metric(f"{name}_sum", policy=policy), daemon.metric(f"{name}_count", policy=policy)


def open_loop(daemon: common.Daemon, policy: str, rate: float, count: int) -> dict[str, Any]:
    """Also profiles host CPU per request (coarsely, at 2 Hz) and reads the pool's queue wait."""
    common.wait_quiet(daemon)  # no container start or teardown left from earlier work
    wait_sum, wait_count = _queue_wait(daemon, policy)
    profile = common.CpuProfile(daemon, interval=0.5)
    with profile:
        result = asyncio.run(_open_loop(daemon.base_url, policy, rate, count))
    wait_sum2, wait_count2 = _queue_wait(daemon, policy)
    waited = wait_count2 - wait_count
    result["mean_queue_wait_ms"] = 1000 * (wait_sum2 - wait_sum) / waited if waited else 0.0
    result["cpu_ms_per_request"] = {group: 1000 * sec / count for group, sec in profile.breakdown().items()}
    return result


def back_to_back(daemon: common.Daemon, policy: str, count: int) -> dict[str, Any]:
    common.wait_quiet(daemon)
    client_seconds: list[float] = []
    server_seconds: list[float] = []
    statuses: collections.Counter[str] = collections.Counter()
    payload = {"code": PROGRAM, "policy": policy}
    with daemon.client(120.0) as client:
        for _ in range(WARMUP_REQUESTS):
            client.post("/v1/runs", json=payload).raise_for_status()
        started = time.perf_counter()
        for _ in range(count):
            sent = time.perf_counter()
            response = client.post("/v1/runs", json=payload)
            client_seconds.append(time.perf_counter() - sent)
            if response.status_code != 200:
                statuses[f"http {response.status_code}"] += 1
                continue
            _record(response.json(), server_seconds, statuses)
        elapsed = time.perf_counter() - started
    return {
        "mode": f"{policy}, back to back",
        "policy": policy,
        "requests_per_second": count / elapsed,
        "client": common.summarize_ms(client_seconds),
        "server_wall": common.summarize_ms(server_seconds),
        "statuses": dict(statuses),
    }


def measure(daemon: common.Daemon, args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"latency: default @ {args.rate:g} rps x {args.default_requests}, pooled back to back x {args.pooled_requests}"
    )
    modes = {
        "default_open_loop": open_loop(daemon, "default", args.rate, args.default_requests),
        "pooled_back_to_back": back_to_back(daemon, "pooled", args.pooled_requests),
    }
    for result in modes.values():
        client, server = result["client"], result["server_wall"]
        print(
            f"  {result['mode']:<28} client p50 {client['p50_ms']:.1f} ms, p99 {client['p99_ms']:.1f} ms, "
            f"max {client['max_ms']:.1f} ms | server wall p50 {server['p50_ms']:.2f} ms, "
            f"p99 {server['p99_ms']:.2f} ms | {result['statuses']}"
        )
        if "cpu_ms_per_request" in result:
            profile = ", ".join(f"{k} {v:.1f}" for k, v in result["cpu_ms_per_request"].items())
            print(
                f"    mean wait for a warm container {result['mean_queue_wait_ms']:.1f} ms; host CPU ms per request: {profile}"
            )
    return modes


def targets(result: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    pooled = result["pooled_back_to_back"]["client"]
    default = result["default_open_loop"]["client"]
    return [
        ("pooled back-to-back p50", f"{pooled['p50_ms']:.1f} ms", "<= 15 ms", pooled["p50_ms"] <= 15),
        ("pooled back-to-back p99", f"{pooled['p99_ms']:.1f} ms", "<= 60 ms", pooled["p99_ms"] <= 60),
        ("default @4rps p50", f"{default['p50_ms']:.1f} ms", "<= 25 ms", default["p50_ms"] <= 25),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=float, default=4.0, help="default-policy request rate, 1/s (default: %(default)s)"
    )
    parser.add_argument(
        "--default-requests", type=int, default=200, help="open-loop requests (default: %(default)s)"
    )
    parser.add_argument(
        "--pooled-requests", type=int, default=1000, help="back-to-back requests (default: %(default)s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    with common.running_daemon(tag="lat") as daemon:
        result = measure(daemon, args)
        peak = daemon.rss.peak_bytes
    print(f"  daemon peak RSS {peak / 2**20:.1f} MiB")
    print("targets:")
    for row in targets(result):
        print(common.target_line(*row))
    if args.json:
        common.write_json(
            Path(args.json), {"machine": common.machine(), "latency": result, "daemon_peak_rss_bytes": peak}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
