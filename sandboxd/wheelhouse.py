"""The formal-check toolchain of the runner image: CrossHair and z3, from pinned PyPI wheels.

The formal equivalence check (docs/watchdog.md, "The formal equivalence check") runs CrossHair, which
drives the z3 SMT solver, **inside the sandbox**. Debian bookworm packages neither in a usable version, so
both come from PyPI as wheels for the image's interpreter (CPython 3.11, manylinux x86_64), pinned by
version and sha256 in :data:`WHEELS`. ``pip install --target`` unpacks them on the build host into a
directory cached next to the debootstrap base tarball, with ``.pyc`` files compiled once
(``unchecked-hash``: the image is read-only and its sources never change). Both build methods copy that
directory to :data:`TARGET`.

:data:`TARGET` is **not** on the runner's ``PYTHONPATH``: PID 1 and ordinary children never see it. Only
the ``formal`` zygote adds it to ``sys.path`` and imports CrossHair (``sandboxd/runner/formal.py``), so no
ordinary run gets heavier. The pins are part of the image tag (``describe``), so changing a pin builds a new
image. Only the wheels that ``crosshair.diff_behavior`` imports are pinned (not the language-server
dependencies ``crosshair-tool`` declares), installed with ``--no-deps``.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

TARGET = "/opt/sandboxd-formal"
IMAGE_PYTHON = (3, 11)  # Debian bookworm's python3: the wheels' ABI and the bytecode the image ships
PYTHON = ".".join(map(str, IMAGE_PYTHON))
ARCHITECTURES = ("x86_64",)  # the wheels below; on other hosts the image is built without the toolchain
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")

# (distribution, version, sha256 of the wheel for cp311 / manylinux x86_64 or py3-none-any)
WHEELS: tuple[tuple[str, str, str], ...] = (
    ("crosshair-tool", "0.0.112", "2b0e788387a5b98f9d5a54687b3169a52a1f32e6a78c28c1e3aa1139acc7e626"),
    ("z3-solver", "4.15.4.0", "7e103a6f203f505b8b8b8e5c931cc407c95b61556512d4921c1ddc0b3f41b08e"),
    ("typeshed-client", "2.15.0", "04982c298c9e133977f0a9ec3e66d4ec424a09ec7d4fad63f814eb69dfbbc7fc"),
    ("packaging", "26.4", "81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2"),
    ("typing-inspect", "0.9.0", "9ee6fc59062311ef8547596ab6b955e1b8aa46242d854bfc78f4f6b0eff35f9f"),
    ("typing-extensions", "4.16.0", "481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8"),
    ("mypy-extensions", "1.2.0", "993e7a20aa5671eb41a7132cf555af30062da99729601601b9a8382b11cae768"),
)
# Not needed to run the check: console scripts (bin/ holds a 22 MB z3 executable) and C headers.
_DROPPED = ("bin", "z3/include")

Progress = Callable[[str], None]


def supported() -> bool:
    """Whether the pinned wheels fit this build host's architecture (the image's, with a local engine)."""
    return platform.machine() in ARCHITECTURES


def requirements() -> str:
    """The pins in pip's ``--require-hashes`` format."""
    return "".join(f"{name}=={version} --hash=sha256:{digest}\n" for name, version, digest in WHEELS)


def describe() -> str:
    """What goes into the image tag: the pins, the platform and where they are installed."""
    if not supported():
        return "formal=none\n"
    return f"formal={TARGET}|{PYTHON}|{','.join(PLATFORMS)}|{_DROPPED}\n{requirements()}"


def tree(cache: Path, progress: Progress) -> Path | None:
    """The installed toolchain directory (cached under ``cache``), or None on an unsupported host."""
    if not supported():
        progress(f"formal: no pinned wheels for {platform.machine()}; the image has no CrossHair/z3")
        return None
    key = hashlib.sha256(describe().encode()).hexdigest()[:12]
    cached = cache / f"formal-{key}"
    if (cached / ".complete").is_file():
        progress(f"formal: using the cached CrossHair/z3 toolchain {cached}")
        return cached
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="formal-", dir=cache))
    try:
        _install(partial, progress)
        shutil.rmtree(cached, ignore_errors=True)
        partial.rename(cached)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return cached


def files(root: Path) -> Iterator[tuple[str, Path]]:
    """Each regular file of the installed toolchain, as (in-image path, host path), sorted."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != ".complete":
            yield f"{TARGET}/{path.relative_to(root).as_posix()}", path


def stage(tree: Path | None, context: Path) -> None:
    """Copy the toolchain into a build context at its in-image path, files 0644 (the directory even when
    there is no toolchain: the Dockerfile's ``COPY`` needs it)."""
    (context / TARGET.lstrip("/")).mkdir(mode=0o755, parents=True, exist_ok=True)
    for path, source in files(tree) if tree is not None else ():
        dest = context / path.lstrip("/")
        dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        dest.chmod(0o644)


def _install(target: Path, progress: Progress) -> None:
    from sandboxd.image import ImageBuildError  # noqa: PLC0415 - image.py imports this module

    requirements_file = target / "requirements.txt"
    requirements_file.write_text(requirements())
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    cmd = [
        *pip,
        *("--only-binary", ":all:", "--require-hashes", "--no-compile", "--target", str(target)),
        *(
            "--python-version",
            PYTHON,
            "--implementation",
            "cp",
            "--abi",
            "cp" + "".join(map(str, IMAGE_PYTHON)),
            *platforms,
        ),
        *("-r", str(requirements_file)),
    ]
    progress(f"formal: pip install --target of {len(WHEELS)} pinned wheels (crosshair-tool, z3-solver, ...)")
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)  # noqa: S603 - fixed argv: our interpreter, pinned requirements
    if done.returncode != 0:
        raise ImageBuildError(
            f"installing the CrossHair/z3 wheels failed:\n{done.stdout}{done.stderr}".strip()
        )
    requirements_file.unlink()
    for name in _DROPPED:
        shutil.rmtree(target / name, ignore_errors=True)
    if sys.version_info[:2] == IMAGE_PYTHON:  # same bytecode as the image's python3: compile once, here
        progress("formal: compiling the toolchain's bytecode")
        compile_cmd = [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            str(target),
        ]
        subprocess.run(compile_cmd, capture_output=True, stdin=subprocess.DEVNULL, check=False)  # noqa: S603 - fixed argv: our interpreter
    (target / ".complete").write_text(requirements())
