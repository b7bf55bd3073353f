"""The runner image: a content-addressed tag, and the layout and config that the fork-server relies on."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandboxd import image

FORKSERVER = f"{image.RUNNER_DIR}/forkserver.py"
RUNNER_TREE = "/opt/sandboxd"  # everything sandboxd puts in the image, except pyseccomp, lives under here

# Runs inside the image with the paths of the runner files as argv[1]; prints one JSON object of facts.
PROBE = """
import hashlib, importlib.util, json, os, stat, sys
import numpy, pyseccomp
pyseccomp.SyscallFilter(pyseccomp.ALLOW)  # loads libseccomp through ctypes
expected, tree = json.loads(sys.argv[1]), sys.argv[2]
paths = sorted({os.path.join(d, n) for d, _, names in os.walk(tree) for n in names} | set(expected))
print(json.dumps({
    "python": list(sys.version_info[:2]),
    "numpy": numpy.__version__,
    "uid": os.getuid(),
    "gid": os.getgid(),
    "cwd": os.getcwd(),
    "scratch_mode": stat.S_IMODE(os.stat("/scratch").st_mode),
    "files": {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths},
    "modes": {p: [stat.S_IMODE(os.stat(p).st_mode), os.stat(p).st_uid] for p in paths},
    "forkserver": importlib.util.find_spec("sandboxd.runner.forkserver").origin,
}))
"""


def test_tag_is_deterministic() -> None:
    """Two computations of the tag over the same runner files agree and have the documented form."""
    tag = image.runner_image_tag()
    assert tag == image.runner_image_tag()
    assert re.fullmatch(r"sandboxd-runner:[0-9a-f]{12}", tag)


def test_tag_changes_when_a_runner_file_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing one byte of one runner file gives a different tag."""
    files = image.runner_sources()
    before = image.runner_image_tag()
    changed = {**files, image.PYSECCOMP_PATH: files[image.PYSECCOMP_PATH] + b"#"}
    monkeypatch.setattr(image, "runner_sources", lambda: changed)
    assert image.runner_image_tag() != before


def test_tag_changes_when_a_runner_file_is_added(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a runner module gives a different tag."""
    files = image.runner_sources()
    before = image.runner_image_tag()
    monkeypatch.setattr(image, "runner_sources", lambda: {**files, f"{image.RUNNER_DIR}/extra.py": b""})
    assert image.runner_image_tag() != before


def test_runner_files_cover_the_runner_package_and_pyseccomp() -> None:
    """Every runner module and the pyseccomp binding are mapped to their in-image paths."""
    files = image.runner_files()
    package = sorted(p.name for p in (Path(image.__file__).parent / "runner").glob("*.py"))
    package.append(image.SPARE_SOURCE)  # the native spare path's source ships beside its object
    if image.c_compiler() is not None:
        package.append(Path(image.SPARE_LIBRARY).name)
    prefix = image.RUNNER_DIR + "/"
    mapped = sorted(
        path.removeprefix(prefix) for path in files if path.startswith(prefix) and "__pycache__" not in path
    )
    assert mapped == sorted(package)
    assert FORKSERVER in files
    spec = importlib.util.find_spec("pyseccomp")
    assert spec is not None
    assert spec.origin is not None
    assert files[image.PYSECCOMP_PATH] == Path(spec.origin).read_bytes()


@pytest.mark.skipif(sys.version_info[:2] != image.IMAGE_PYTHON, reason="bytecode only ships from a 3.11 host")
def test_runner_ships_checked_hash_bytecode_that_matches_its_source() -> None:
    """Each module has a pyc that the image's Python validates against the source hash on import."""
    files = image.runner_files()
    tag = sys.implementation.cache_tag
    sources = [path for path in files if path.endswith(".py")]
    for path in sources:
        directory, _, name = path.rpartition("/")
        pyc = files[f"{directory}/__pycache__/{name[:-3]}.{tag}.pyc"]
        assert pyc[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(pyc[4:8], "little") == 0b11  # hash-based and checked on every import
        assert pyc[8:16] == importlib.util.source_hash(files[path])
        code = marshal.loads(pyc[16:])
        assert code.co_filename == path
    assert len([path for path in files if "/__pycache__/" in path]) == len(sources)


def test_image_tag_ignores_bytecode_bytes_but_not_sources() -> None:
    """Bytecode is derived from the sources, so only the sources decide the content-addressed tag."""
    files = image.runner_files()
    pyc = next(path for path in files if "/__pycache__/" in path)
    assert image._tag_for({**files, pyc: b"different bytes"}) == image._tag_for(files)
    assert image._tag_for({**files, image.SPARE_LIBRARY: b"other object"}) == image._tag_for(files)
    assert image._tag_for(files) == image.runner_image_tag()  # the tag needs no compilation
    spare_c = f"{image.RUNNER_DIR}/{image.SPARE_SOURCE}"
    assert image._tag_for({**files, spare_c: files[spare_c] + b"\n"}) != image._tag_for(files)
    assert image._tag_for({**files, FORKSERVER: files[FORKSERVER] + b"\n"}) != image._tag_for(files)


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
    expected = json.dumps(sorted(image.runner_files()))
    run = ("run", "--rm", "--network", "none", "--read-only", runner_image)
    done = _docker(*run, "python3", "-c", PROBE, expected, RUNNER_TREE)
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
    """The image holds exactly the current runner files, unchanged, root-owned and mode 0644."""
    expected = {path: hashlib.sha256(content).hexdigest() for path, content in image.runner_files().items()}
    assert probe["files"] == expected
    assert all(mode == [0o644, 0] for mode in probe["modes"].values())


@pytest.mark.docker
def test_image_imports_the_forkserver_from_the_runner_dir(probe: dict[str, Any]) -> None:
    """With the image's environment, ``sandboxd.runner.forkserver`` resolves to the copied runner file."""
    assert probe["forkserver"] == FORKSERVER


@pytest.mark.docker
def test_image_config_starts_the_forkserver(runner_image: str) -> None:
    """The image's config runs the fork-server unprivileged, without writing bytecode."""
    config = json.loads(_docker("image", "inspect", "--format", "{{json .Config}}", runner_image).stdout)
    assert config["Cmd"][:3] == ["python3", "-s", "-B"]
    assert config["Cmd"] == list(image.CMD)
    assert config["User"] == "65534:65534"
    assert config["WorkingDir"] == "/scratch"
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]


@pytest.mark.docker
def test_latest_tag_points_at_the_current_image(runner_image: str) -> None:
    """After a build, sandboxd-runner:latest is the same image as the content-addressed tag."""
    refs = (runner_image, image.LATEST_TAG)
    ids = {_docker("image", "inspect", "--format", "{{.Id}}", ref).stdout for ref in refs}
    assert len(ids) == 1
