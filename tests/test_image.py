"""The runner image: a content-addressed tag, and the layout and config that the fork-server relies on."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandboxd import image

FORKSERVER = f"{image.RUNNER_DIR}/forkserver.py"

# Runs inside the image; prints one JSON object of facts for the tests below to check.
PROBE = """
import hashlib, json, os, stat, sys
import numpy, pyseccomp
pyseccomp.SyscallFilter(pyseccomp.ALLOW)  # loads libseccomp through ctypes
paths = [os.path.join(root, name) for root in ("/opt/sandboxd/runner",) for name in os.listdir(root)]
paths.append("/usr/lib/python3/dist-packages/pyseccomp.py")
print(json.dumps({
    "python": list(sys.version_info[:2]),
    "numpy": numpy.__version__,
    "uid": os.getuid(),
    "gid": os.getgid(),
    "cwd": os.getcwd(),
    "scratch_mode": stat.S_IMODE(os.stat("/scratch").st_mode),
    "files": {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths},
    "modes": {p: [stat.S_IMODE(os.stat(p).st_mode), os.stat(p).st_uid] for p in paths},
}))
"""


def test_tag_is_deterministic() -> None:
    """Two computations of the tag over the same runner files agree and have the documented form."""
    tag = image.runner_image_tag()
    assert tag == image.runner_image_tag()
    assert re.fullmatch(r"sandboxd-runner:[0-9a-f]{12}", tag)


def test_tag_changes_when_a_runner_file_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing one byte of one runner file gives a different tag."""
    files = image.runner_files()
    before = image.runner_image_tag()
    changed = {**files, image.PYSECCOMP_PATH: files[image.PYSECCOMP_PATH] + b"#"}
    monkeypatch.setattr(image, "runner_files", lambda: changed)
    assert image.runner_image_tag() != before


def test_tag_changes_when_a_runner_file_is_added(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a runner module gives a different tag."""
    files = image.runner_files()
    before = image.runner_image_tag()
    monkeypatch.setattr(image, "runner_files", lambda: {**files, f"{image.RUNNER_DIR}/extra.py": b""})
    assert image.runner_image_tag() != before


def test_runner_files_cover_the_runner_package_and_pyseccomp() -> None:
    """Every runner module and the pyseccomp binding are mapped to their in-image paths."""
    files = image.runner_files()
    package = sorted(p.name for p in (Path(image.__file__).parent / "runner").glob("*.py"))
    mapped = sorted(path.rsplit("/", 1)[1] for path in files if path != image.PYSECCOMP_PATH)
    assert mapped == package
    spec = importlib.util.find_spec("pyseccomp")
    assert spec is not None
    assert spec.origin is not None
    assert files[image.PYSECCOMP_PATH] == Path(spec.origin).read_bytes()


def test_debian_mirror_is_read_from_apt_sources() -> None:
    """The debootstrap mirror is an http(s) URL taken from this machine's apt configuration."""
    assert re.match(r"https?://", image.debian_mirror())


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; fail the test with docker's stderr if it fails."""
    docker = shutil.which("docker")
    assert docker is not None, "the docker CLI is not installed (scripts/setup.sh installs it)"
    done = subprocess.run([docker, *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="session")
def runner_image() -> str:
    """The runner image for the current runner files, built if it is missing."""
    return image.build(progress=lambda message: print(message, file=sys.stderr))


@pytest.fixture(scope="session")
def probe(runner_image: str) -> dict[str, Any]:
    """Facts reported by python3 inside the image, run with no network and a read-only root."""
    done = _docker("run", "--rm", "--network", "none", "--read-only", runner_image, "python3", "-c", PROBE)
    facts: dict[str, Any] = json.loads(done.stdout)
    return facts


@pytest.mark.docker
def test_image_has_python_3_11(probe: dict[str, Any]) -> None:
    """The image's python3 is Debian bookworm's Python 3.11."""
    assert probe["python"] == [3, 11]


@pytest.mark.docker
def test_image_has_numpy_1(probe: dict[str, Any]) -> None:
    """numpy imports and is a 1.x release."""
    assert probe["numpy"].split(".")[0] == "1"


@pytest.mark.docker
def test_image_runs_as_nobody_in_scratch(probe: dict[str, Any]) -> None:
    """The default user is 65534:65534 and the working directory is the world-writable, sticky /scratch."""
    assert (probe["uid"], probe["gid"]) == (65534, 65534)
    assert probe["cwd"] == "/scratch"
    assert probe["scratch_mode"] == 0o1777


@pytest.mark.docker
def test_image_contains_the_current_runner_files(probe: dict[str, Any]) -> None:
    """Every runner file, the fork-server included, is in the image unchanged, root-owned and mode 0644."""
    expected = {path: hashlib.sha256(content).hexdigest() for path, content in image.runner_files().items()}
    assert FORKSERVER in probe["files"]
    assert probe["files"] == expected
    assert all(mode == [0o644, 0] for mode in probe["modes"].values())


@pytest.mark.docker
def test_image_config_starts_the_forkserver(runner_image: str) -> None:
    """The image's config runs the fork-server unprivileged, without writing bytecode."""
    config = json.loads(_docker("image", "inspect", "--format", "{{json .Config}}", runner_image).stdout)
    assert config["Cmd"] == ["python3", "-s", "-B", FORKSERVER]
    assert config["User"] == "65534:65534"
    assert config["WorkingDir"] == "/scratch"
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]


@pytest.mark.docker
def test_latest_tag_points_at_the_current_image(runner_image: str) -> None:
    """After a build, sandboxd-runner:latest is the same image as the content-addressed tag."""
    refs = (runner_image, image.LATEST_TAG)
    ids = {_docker("image", "inspect", "--format", "{{.Id}}", ref).stdout for ref in refs}
    assert len(ids) == 1
