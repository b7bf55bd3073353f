"""Output signatures over probe inputs (docs/azr.md, "Output signature"): probes derived from the example
input's types run in the validation's own child, after its result frame, and never change its result."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from policy_support import with_warm_containers

from sandboxd.azr import probes
from sandboxd.curriculum import analysis
from sandboxd.curriculum.items import decode, proposals
from sandboxd.ledger.stores import open_store
from sandboxd.limits import Limits
from sandboxd.run import interpret
from sandboxd.runner import jobs
from sandboxd.runner.child import _frame
from sandboxd.runner.encode import Encoder
from sandboxd.settings import Settings
from sandboxd.testing import running_server
from sandboxd.verdict import Status

WALL = 2.0
PROBED = f"""schema_version: 1
kind: sandbox
name: probed
description: Default isolation with a short wall limit and four output-signature probes (tests).
extends: default
limits: {{wall_time_seconds: {WALL}, cpu_time_seconds: {WALL}}}
pool: {{warm_containers: 1}}
azr: {{probe_inputs: 4}}
"""
UNPROBED = PROBED.replace("name: probed", "name: unprobed").replace("probe_inputs: 4", "probe_inputs: 0")


# --- probe inputs (pure) --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param("3", "-12", id="ints"),
        pytest.param("[1, 2]", "[9]", id="int-lists"),
        pytest.param("'abc', {'k': 1}", "'', {'z': 7, 'y': 0}", id="str-and-dict"),
        pytest.param("{'a', 'b'}", "{'q'}", id="str-sets"),
    ],
)
def test_same_types_get_the_same_probes(one: str, other: str) -> None:
    """Example inputs of the same types give the same probe texts, so signatures compare across programs."""
    assert probes.shape(one) == probes.shape(other)
    assert probes.probe_texts(probes.shape(one), 6) == probes.probe_texts(probes.shape(other), 6)


def test_different_types_get_different_probes_and_signatures() -> None:
    """Types are part of the signature: the same results on other types are another signature."""
    ints, strs = probes.shape("1"), probes.shape("'a'")
    assert probes.probe_texts(ints, 4) != probes.probe_texts(strs, 4)
    assert probes.signature(ints, [1, 2]) != probes.signature(strs, [1, 2])
    assert probes.signature(ints, [1, 2]) == probes.signature(ints, [1, 2])
    assert probes.shape("1) or (1") is None


# --- frames after the validation's frame (pure) -----------------------------------------------------------

NONCE = "n" * 32
LIMITS = Limits(wall_time_seconds=WALL, cpu_time_seconds=WALL)


def frame(*values: Any) -> bytes:
    return _frame(NONCE, jobs.Outcome(values=list(values)), Encoder())


def response(raw: bytes, **end: Any) -> dict[str, Any]:
    return {"exit_code": 0, "signal": None, "killed_by": None, "frame": raw, **end}


def test_a_probe_killed_by_the_wall_limit_leaves_the_validation_ok() -> None:
    """Main frame then one probe frame, then the wall limit: status ok, the rest of the probes lost."""
    raw = frame(("ok", 1, "1")) + frame(("ok", 7))
    killed = response(raw, exit_code=None, signal=9, killed_by="wall")
    result = interpret(killed, NONCE, LIMITS, "s", probes=3)
    assert result.status is Status.OK
    assert result.frame is not None
    assert len(result.frame.values) == 1
    assert result.probes is not None
    assert result.probes[1:] == (["lost", "timeout"], ["lost", "timeout"])


@pytest.mark.parametrize(
    ("raw", "probed"),
    [
        pytest.param(frame(("ok", 1, "1")) + frame(("ok", 7)), 0, id="two-frames-without-probes"),
        pytest.param(b"junk" + frame(("ok", 1, "1")), 2, id="junk-before-the-frame"),
        pytest.param(frame(("ok", 1, "1"))[:-1], 2, id="short-frame"),
    ],
)
def test_frames_stay_strict(raw: bytes, probed: int) -> None:
    """Without probes trailing frames are still invalid, and with probes the first frame must be whole."""
    result = interpret(response(raw), NONCE, LIMITS, "s", probes=probed)
    assert result.frame is None
    assert result.status is Status.RUNTIME_ERROR


def test_a_killed_validation_is_still_a_timeout() -> None:
    """No complete validation frame: the wall limit is the validation's own, as without probes."""
    result = interpret(
        response(b"", exit_code=None, signal=9, killed_by="wall"), NONCE, LIMITS, "s", probes=4
    )
    assert result.status is Status.TIMEOUT
    assert result.probes is None


# --- real sandboxes ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real sandboxd with the probed and unprobed policies; its ledger is a SQLite file."""
    root = tmp_path_factory.mktemp("probes")
    policies = root / "policies"
    policies.mkdir()
    for source in Settings().policies_dir.glob("default.yaml"):
        (policies / source.name).write_text(source.read_text())
    (policies / "probed.yaml").write_text(PROBED)
    (policies / "unprobed.yaml").write_text(UNPROBED)
    default = with_warm_containers((policies / "default.yaml").read_text(), 1)
    (policies / "default.yaml").write_text(default)
    settings = Settings(instance="h10-probes", policies_dir=policies, data_dir=root / "data")
    with running_server(settings) as url:
        yield url, root / "data" / "ledger.db"


def validate(url: str, policy: str, program: str, inputs: list[str]) -> tuple[dict[str, Any], float]:
    task = {"task_type": "deduction", "program": program, "inputs": inputs}
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=60) as client:
        reply = client.post("/v1/azr/validate", json={"policy": policy, "tasks": [task]})
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()["results"][0]
    return result, time.monotonic() - started


DOUBLE = "def f(x):\n    return x * 2"
DOUBLE_AGAIN = "def f(value):\n    # the same behaviour, written differently\n    total = value\n    total += value\n    return total"
TRIPLE = "def f(x):\n    return x * 3"
DIVIDE = "def f(x):\n    return 100 // x"


@pytest.mark.docker
def test_equal_behaviour_gives_equal_signatures(server: tuple[str, Path]) -> None:
    """Different texts that agree on the probes share a signature; another behaviour, another one."""
    url, _ = server
    double, _ = validate(url, "probed", DOUBLE, ["21"])
    again, _ = validate(url, "probed", DOUBLE_AGAIN, ["5"])
    triple, _ = validate(url, "probed", TRIPLE, ["21"])
    divide, _ = validate(url, "probed", DIVIDE, ["4"])  # f(0) raises on the first probe
    repeat, _ = validate(url, "probed", DIVIDE, ["4"])
    assert double["valid"]
    assert again["valid"]
    assert triple["valid"]
    assert divide["valid"]
    assert double["output_signature"] == again["output_signature"] is not None
    assert len({double["output_signature"], triple["output_signature"], divide["output_signature"]}) == 3
    assert divide["output_signature"] == repeat["output_signature"]  # deterministic
    off, _ = validate(url, "unprobed", DOUBLE, ["21"])
    assert off["output_signature"] is None
    assert {k: v for k, v in off.items() if k not in ("usage", "output_signature")} == {
        k: v for k, v in double.items() if k not in ("usage", "output_signature")
    }


HOSTILE = [
    pytest.param("def f(x):\n    while x != 5:\n        pass\n    return x", id="python-loop"),
    pytest.param(
        "import itertools\ndef f(x):\n    if x != 5:\n        any(itertools.repeat(0))\n    return x",
        id="c-level-loop",
    ),
    pytest.param(
        "import os\ndef f(x):\n    while x != 5:\n        os.write(1, b'x' * 65536)\n    return x",
        id="output-flood",
    ),
    pytest.param(
        "import socket\ndef f(x):\n    if x != 5:\n        socket.socket()\n    return x",
        id="forbidden-syscall",
    ),
    pytest.param("def f(x):\n    if x != 5:\n        print('noise' * 100000)\n    return x", id="prints"),
]


@pytest.mark.docker
@pytest.mark.parametrize("program", HOSTILE)
def test_hostile_probes_change_nothing_and_stay_within_the_wall_limit(
    server: tuple[str, Path], program: str
) -> None:
    """A program that misbehaves only on probe inputs validates exactly as without probes, within the limit."""
    url, _ = server
    probed, seconds = validate(url, "probed", program, ["5"])
    unprobed, _ = validate(url, "unprobed", program, ["5"])
    assert probed["valid"] is True, probed
    assert probed["reason"] == "ok"
    assert probed["outputs"] == unprobed["outputs"] == ["5"]
    assert probed["values"] == unprobed["values"]
    assert probed["output_signature"] is not None
    assert seconds < WALL + 3.0  # the wall limit, plus the request's own overhead


@pytest.mark.docker
def test_a_program_failing_its_own_input_is_judged_as_before(server: tuple[str, Path]) -> None:
    """Probes run only after a complete validation: a timeout on the task's own input is still a timeout."""
    url, _ = server
    program = "def f(x):\n    while True:\n        pass"
    probed, _ = validate(url, "probed", program, ["5"])
    unprobed, _ = validate(url, "unprobed", program, ["5"])
    assert probed["reason"] == unprobed["reason"] == "timeout"
    assert probed["output_signature"] is None


@pytest.mark.docker
def test_signature_reaches_the_ledger_and_the_curriculum(server: tuple[str, Path]) -> None:
    """The proposal's ledger entry carries the signature; the curriculum counts behaviours by it."""
    url, ledger = server
    double, _ = validate(url, "probed", DOUBLE, ["21"])
    validate(url, "probed", DOUBLE_AGAIN, ["5"])
    store = open_store(str(ledger))
    try:
        records = list(proposals(decode(store.entries()).records))
    finally:
        store.close()
    mine = [
        r for r in records if r.text("program") in (DOUBLE, DOUBLE_AGAIN) and r.text("policy") == "probed"
    ]
    assert {r.body["output_signature"] for r in mine} == {double["output_signature"]}
    built = analysis.build(mine)
    assert analysis.diversity(built, mine)["distinct_output_signatures"] == 1
