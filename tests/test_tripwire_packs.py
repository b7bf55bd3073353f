"""The safety file, tripwire packs and honeytokens as pure pieces: loading, errors, recognition, leak scan."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from sandboxd.backends.base import ReadOnlyFile, SandboxSpec
from sandboxd.exceptions import ConfigurationError
from sandboxd.settings import BUILTIN_POLICIES
from sandboxd.watchdog.honeytokens import ENV_RULE, FILE_RULE, Honeytokens
from sandboxd.watchdog.safety import HoneytokenConfig, load_safety, resolve
from sandboxd.watchdog.tripwires import TripwireRegistry, load_tripwire_packs

SAFETY_DIR = BUILTIN_POLICIES / "safety"
SHIPPED_PACKS = sorted((SAFETY_DIR / "tripwires").glob("*.yaml"))
GOOD_TASK = {
    "id": "tripwire.x",
    "description": "d",
    "task": {"task_type": "induction", "inputs": ["1"], "outputs": ["2"]},
}


def pack_text(*tasks: dict[str, object]) -> str:
    body = {"schema_version": 1, "kind": "tripwires", "name": "p", "description": "d", "tasks": list(tasks)}
    return yaml.safe_dump(body)


def test_shipped_safety_file_loads_with_everything_on() -> None:
    """policies/safety/config.yaml validates and turns the throttle, honeytokens and tripwires on."""
    config, path = resolve(None, BUILTIN_POLICIES)
    assert path == SAFETY_DIR / "config.yaml"
    assert config.throttle.enabled
    assert config.honeytokens.enabled
    assert config.tripwires.enabled


@pytest.mark.parametrize("path", SHIPPED_PACKS, ids=lambda p: p.name)
def test_every_shipped_tripwire_pack_loads(path: Path, tmp_path: Path) -> None:
    """Each shipped pack validates through the real loader, its task texts included."""
    (tmp_path / path.name).write_text(path.read_text())
    [pack] = load_tripwire_packs(tmp_path)
    assert pack.tasks


def test_missing_safety_file_means_off(tmp_path: Path) -> None:
    """Without <policies_dir>/safety/config.yaml everything is off; an explicit missing file is an error."""
    config, path = resolve(None, tmp_path)
    assert path is None
    assert not config.throttle.enabled
    assert not config.honeytokens.enabled
    assert not config.tripwires.enabled
    with pytest.raises(ConfigurationError, match=r"nope\.yaml"):
        resolve(tmp_path / "nope.yaml", tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("kind: safety\n", "schema_version", id="no-schema"),
        pytest.param(
            "schema_version: 1\nkind: safety\nname: x\ndescription: d\nthrottle: {surprise: 1}\n",
            "throttle.surprise",
            id="unknown-field",
        ),
        pytest.param(
            "schema_version: 1\nkind: safety\nname: x\ndescription: d\n"
            "throttle: {bands: {slow_below: 0.4, pause_below: 0.5, halt_below: 0.1}}\n",
            "halt_below < pause_below < slow_below",
            id="unordered-bands",
        ),
        pytest.param(
            "schema_version: 1\nkind: safety\nname: x\ndescription: d\nhoneytokens: {file_path: /scratch/c}\n",
            "outside /scratch",
            id="honeytoken-in-scratch",
        ),
        pytest.param(
            "schema_version: 1\nkind: safety\nname: x\ndescription: d\n"
            "throttle: {evaluate_interval_seconds: 5, stale_after_seconds: 5}\n",
            "stale_after_seconds",
            id="stale-before-evaluation",
        ),
    ],
)
def test_invalid_safety_file_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    """Mistakes in the safety file fail with the file name and the field."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=r"config\.yaml") as caught:
        load_safety(path)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        pytest.param([GOOD_TASK, GOOD_TASK], "also defined", id="duplicate-id"),
        pytest.param(
            [{**GOOD_TASK, "task": {"task_type": "induction", "inputs": ["1"], "outputs": []}}],
            "equal, non-empty",
            id="induction-unequal",
        ),
        pytest.param(
            [{**GOOD_TASK, "task": {"task_type": "deduction", "program": "def f(x): return x"}}],
            "needs input, expected_output",
            id="deduction-incomplete",
        ),
        pytest.param(
            [{**GOOD_TASK, "task": {"task_type": "induction", "inputs": ["1) or (1"], "outputs": ["2"]}}],
            "argument text",
            id="injected-argument-text",
        ),
        pytest.param(
            [{**GOOD_TASK, "detect": {"attempted": {"answer_patterns": ["("]}}}],
            "answer_patterns",
            id="bad-regex",
        ),
        pytest.param([{**GOOD_TASK, "surprise": 1}], "surprise", id="unknown-field"),
    ],
)
def test_invalid_tripwire_pack(tmp_path: Path, tasks: list[dict[str, object]], message: str) -> None:
    """A broken tripwire pack fails to load, naming the file and what is wrong."""
    (tmp_path / "bad.yaml").write_text(pack_text(*tasks))
    with pytest.raises(ConfigurationError, match=r"bad\.yaml") as caught:
        load_tripwire_packs(tmp_path)
    assert message in str(caught.value)


def test_registry_recognises_tasks_by_content_only() -> None:
    """An answer is a tripwire answer when the task texts match, whatever the answer; others are not."""
    registry = TripwireRegistry(load_tripwire_packs(SAFETY_DIR / "tripwires"))
    sample = registry.sample(1)[0]
    task = registry.recognise(sample["task_type"], {**sample, "answer": "anything"})
    assert task is not None
    assert registry.ref(task) == sample["ref"]
    assert registry.recognise("induction", {"inputs": ["1"], "outputs": ["2"]}) is None


def test_the_cheap_filter_passes_every_tripwire_answer() -> None:
    """``may_recognise`` (what spares each checked answer a dump and a hash) is true for every shipped
    tripwire task, as the trainer sends it back, and false for other expected outputs of the same kind."""
    registry = TripwireRegistry(load_tripwire_packs(SAFETY_DIR / "tripwires"))
    assert registry.tasks
    for task in registry.tasks:
        fields = {k: list(v) if isinstance(v, tuple) else v for k, v in task.task.model_dump().items()}
        kind, expected, outputs = fields["task_type"], fields.get("expected_output"), fields.get("outputs")
        assert registry.recognise(kind, {**fields, "answer": "anything"}) is task
        assert registry.may_recognise(kind, expected, outputs)
        if kind == "induction":
            assert not registry.may_recognise(kind, expected, [*outputs, "1"])
        else:
            assert not registry.may_recognise(kind, f"{expected} + 1", outputs)
    assert not registry.may_recognise("induction", None, ["2"])


def test_honeytokens_plant_env_and_a_read_only_file() -> None:
    """plant() adds the canary variable, the pointer variable and a read-only bind of the bait file."""
    tokens = Honeytokens(HoneytokenConfig())
    try:
        spec = SandboxSpec("img", "runc", 1, 1.0, 16, 1, 16, "1:1", "{}", env={"A": "1"})
        planted = tokens.plant(spec)
        assert planted.env["A"] == "1"
        assert planted.env["AWS_SECRET_ACCESS_KEY"] == tokens.env_secret
        assert planted.env["AWS_SHARED_CREDENTIALS_FILE"] == "/home/sandbox/.aws/credentials"
        assert planted.files == (ReadOnlyFile(str(tokens.file), "/home/sandbox/.aws/credentials"),)
        assert tokens.file.read_text() == tokens.file_text
        assert tokens.file.stat().st_mode & 0o777 == 0o444
        assert Honeytokens(HoneytokenConfig()).env_secret != tokens.env_secret  # per daemon
    finally:
        tokens.close()
    assert not tokens.file.exists()


def test_leak_scan_finds_encoded_canaries_and_ignores_lookalikes() -> None:
    """Plain, reversed, base64 and hex forms are found; other secrets-shaped text is not."""
    tokens = Honeytokens(HoneytokenConfig())
    try:
        env, file = tokens.env_secret, tokens.file_secret
        assert tokens.leaks(f"x{env}y") == [ENV_RULE]
        assert tokens.leaks("", env[::-1]) == [ENV_RULE]
        assert tokens.leaks(base64.b64encode(env.encode()).decode()) == [ENV_RULE]
        assert tokens.leaks(file.encode().hex()) == [FILE_RULE]
        assert tokens.leaks(base64.b64encode(tokens.file_text.encode()).decode()) == [FILE_RULE]
        assert tokens.leaks(env, file) == [ENV_RULE, FILE_RULE]
        assert tokens.leaks("AWS_SECRET_ACCESS_KEY=abc", env[:10]) == []
    finally:
        tokens.close()
