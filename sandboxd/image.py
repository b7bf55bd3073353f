"""Build the runner image: Debian bookworm with python3, numpy and libseccomp2, plus the sandboxd runner
and the CrossHair/z3 toolchain of the formal check (pinned wheels, see :mod:`sandboxd.wheelhouse`).

Two build methods produce the same layout (see images/runner/README.md):

* ``dockerfile``: ``docker build`` of images/runner/Dockerfile. It needs ``debian:bookworm-slim`` locally or
  a registry.
* ``debootstrap``: needs no registry. A minbase rootfs comes from the Debian mirror that this machine's apt
  uses. It is cached as a tarball and streamed, together with the runner files, into ``docker import``.

The tag is a content hash of the runner files and of the base description, so a changed runner gets a new
image and an unchanged one is never rebuilt. The docker CLI is driven through subprocess: only
``sandboxd/backends/docker.py`` talks to the Docker SDK. Every command below is built from constants and
resolved executables, never from request data (hence the ``noqa: S603`` markers).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import json
import marshal
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from sandboxd import wheelhouse
from sandboxd.exceptions import SandboxdError

Progress = Callable[[str], None]

SUITE = "bookworm"
PACKAGES = ("python3", "python3-numpy", "libseccomp2")
BASE_IMAGE = "debian:bookworm-slim"
REPOSITORY = "sandboxd-runner"
LATEST_TAG = f"{REPOSITORY}:latest"
METHODS = ("auto", "dockerfile", "debootstrap")

PYTHONPATH = "/opt/sandboxd"
RUNNER_DIR = f"{PYTHONPATH}/sandboxd/runner"  # importable as the package sandboxd.runner
PYSECCOMP_PATH = "/usr/lib/python3/dist-packages/pyseccomp.py"
SCRATCH_DIR = "/scratch"
CMD = ("python3", "-s", "-B", "-m", "sandboxd.runner")
# The image config that `docker import` applies; the Dockerfile sets the same values.
IMPORT_CHANGES = (
    "USER 65534:65534",
    f"WORKDIR {SCRATCH_DIR}",
    "ENV PYTHONDONTWRITEBYTECODE=1",
    f"ENV PYTHONPATH={PYTHONPATH}",
    f"CMD {json.dumps(list(CMD))}",
)
DOCKERFILE = Path(__file__).resolve().parent.parent / "images" / "runner" / "Dockerfile"

# Left out of the cached base tarball: package indexes, docs, and directories that the runtime mounts over.
_SLIM_EXCLUDES = (
    "./var/lib/apt/lists/*", "./var/cache/apt/*", "./var/cache/debconf/*-old", "./var/log/*",
    "./usr/share/doc/*", "./usr/share/man/*", "./usr/share/info/*", "./usr/share/locale/*",
    "./dev/*", "./proc/*", "./sys/*", "./tmp/*",
)  # fmt: skip
# debootstrap reports each of its ~100 packages five times; these lines are kept only for error messages.
_DEBOOTSTRAP_CHATTER = ("I: Retrieving", "I: Validating", "I: Extracting", "I: Unpacking", "I: Configuring")
_FIXED_MTIME = 0  # runner files get a fixed mtime so that two builds of the same content are identical


class ImageBuildError(SandboxdError):
    """The runner image could not be built; the message says why and what to install."""


def runner_files(progress: Progress = lambda _: None) -> dict[str, bytes]:
    """Map each in-image path to its content: the sources, plus their bytecode where it ships, plus the
    native spare path (``_spare.so``) where this host can compile it."""
    sources = runner_sources()
    return sources | _bytecode(sources) | _native(sources, progress)


def runner_sources() -> dict[str, bytes]:
    """Map each in-image path to its source: every runner module and the pyseccomp binding."""
    runner = Path(__file__).parent / "runner"
    files = {f"{RUNNER_DIR}/{p.name}": p.read_bytes() for p in sorted(runner.glob("*.py"))}
    files[f"{RUNNER_DIR}/{SPARE_SOURCE}"] = (runner / SPARE_SOURCE).read_bytes()
    files[f"{PYTHONPATH}/sandboxd/__init__.py"] = b""  # only the runner is in the image, not the daemon
    spec = importlib.util.find_spec("pyseccomp")
    if spec is None or spec.origin is None:
        raise ImageBuildError("the pyseccomp module is not installed; run `pip install -e .`")
    files[PYSECCOMP_PATH] = Path(spec.origin).read_bytes()
    return files


# The image's python3 (wheelhouse.IMAGE_PYTHON) runs read-only with -B, so without shipped bytecode every
# container start compiled the runner from source: ~35 ms of CPU per start, and starts are per request.
IMAGE_PYTHON = wheelhouse.IMAGE_PYTHON


def _bytecode(sources: Mapping[str, bytes]) -> dict[str, bytes]:
    """``__pycache__`` entries for the ``.py`` files, when this interpreter shares the image's bytecode format.

    Checked-hash pycs: the interpreter verifies each one against its source's hash on import, so a pyc
    can never run stale code, and no mtime is involved (the image's files have a fixed mtime).
    """
    if sys.version_info[:2] != IMAGE_PYTHON:
        return {}
    modules = tuple(sorted((path, source) for path, source in sources.items() if path.endswith(".py")))
    return _compiled(modules)


# Compiled in a fresh interpreter with a fixed hash seed: the order of frozenset constants follows str
# hashes, and marshal's back-references follow refcounts, so bytes compiled in a busy process differ.
_COMPILE = """
import importlib.util, marshal, sys
out = {}
for path, source in marshal.loads(sys.stdin.buffer.read()):
    code = compile(source, path, "exec", dont_inherit=True, optimize=0)
    directory, _, name = path.rpartition("/")
    head = importlib.util.MAGIC_NUMBER + (0b11).to_bytes(4, "little") + importlib.util.source_hash(source)
    out[directory + "/__pycache__/" + name[:-3] + "." + sys.implementation.cache_tag + ".pyc"] = (
        head + marshal.dumps(code)
    )
sys.stdout.buffer.write(marshal.dumps(out))
"""


# The native spare path (runner/spare.c, loaded by runner/spare.py). Compiled on the build host, so the
# object may only need glibc symbol versions that the image's glibc (bookworm: 2.36) has; it uses plain
# POSIX calls whose versions are decades old, and _native() checks. Without a C compiler the image
# ships without it and the fork-server locks spares down in Python (same steps, slower).
SPARE_SOURCE = "spare.c"
SPARE_LIBRARY = f"{RUNNER_DIR}/_spare.so"
CC_FLAGS = ("-std=c11", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror", "-Wl,--build-id=none")
IMAGE_GLIBC = (2, 36)
_GLIBC_VERSION = re.compile(rb"GLIBC_(\d+)\.(\d+)")


def c_compiler() -> str | None:
    """The C compiler for the native spare path: ``$CC``, else ``cc`` or ``gcc`` on PATH."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


def compile_spare(source: bytes, out: Path) -> None:
    """Compile ``spare.c`` to ``out``; raise ImageBuildError if that fails or the object needs a newer glibc."""
    compiler = c_compiler()
    if compiler is None:
        raise ImageBuildError("no C compiler (cc/gcc); install gcc to build the native spare path")
    with tempfile.TemporaryDirectory(prefix="sandboxd-cc-") as folder:
        src = Path(folder) / SPARE_SOURCE
        src.write_bytes(source)
        done = subprocess.run(  # noqa: S603 - a resolved compiler, fixed flags, our own source
            [compiler, *CC_FLAGS, "-o", str(out), str(src)], capture_output=True, check=False
        )
    if done.returncode != 0:
        raise ImageBuildError(
            f"compiling {SPARE_SOURCE} failed: {done.stderr.decode(errors='replace')[-2000:]}"
        )
    needed = [tuple(int(x) for x in m.groups()) for m in _GLIBC_VERSION.finditer(out.read_bytes())]
    if any(version > IMAGE_GLIBC for version in needed):
        raise ImageBuildError(
            f"{SPARE_SOURCE} compiled here needs glibc {max(needed)}; the image has {IMAGE_GLIBC}"
        )


def _native(sources: Mapping[str, bytes], progress: Progress) -> dict[str, bytes]:
    if c_compiler() is None:
        progress(
            "native spare path: no C compiler here (install gcc); the runner locks children down in Python"
        )
        return {}
    with tempfile.TemporaryDirectory(prefix="sandboxd-cc-") as folder:
        out = Path(folder) / "_spare.so"
        compile_spare(sources[f"{RUNNER_DIR}/{SPARE_SOURCE}"], out)
        return {SPARE_LIBRARY: out.read_bytes()}


@functools.lru_cache(maxsize=4)
def _compiled(modules: tuple[tuple[str, bytes], ...]) -> dict[str, bytes]:
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed argv; the sources are ours
        [sys.executable, "-I", "-S", "-c", _COMPILE],
        input=marshal.dumps(list(modules)),
        capture_output=True,
        env={"PYTHONHASHSEED": "0"},
        check=False,
    )
    if done.returncode != 0:
        raise ImageBuildError(f"compiling the runner failed: {done.stderr.decode(errors='replace')[-2000:]}")
    compiled: dict[str, bytes] = marshal.loads(done.stdout)  # noqa: S302 - our own compiler child's output, never model data
    return compiled


def runner_image_tag() -> str:
    """The content-addressed tag, ``sandboxd-runner:<12 hex digits>``, of the image for the current runner."""
    return _tag_for(runner_sources())  # the bytecode is derived from them: no need to compile for a tag


def _tag_for(files: Mapping[str, bytes]) -> str:
    dockerfile = DOCKERFILE.read_bytes() if DOCKERFILE.is_file() else b""
    base = f"suite={SUITE}\npackages={','.join(PACKAGES)}\nslim={_SLIM_EXCLUDES}\nchanges={IMPORT_CHANGES}\n"
    base += wheelhouse.describe()  # the pinned CrossHair/z3 wheels (sandboxd/wheelhouse.py)
    digest = hashlib.sha256(base.encode() + dockerfile)
    # Bytecode is derived from the sources: whether it ships and how it is made (_COMPILE) are hashed,
    # not its bytes, so the tag is the same with or without the compiled entries in ``files``.
    ships = sys.version_info[:2] == IMAGE_PYTHON
    digest.update(f"bytecode={ships}\n".encode() + _COMPILE.encode())
    # Likewise the native spare path: its flags, not the compiler's bytes. Whether it ships (a C compiler
    # on the build host) is not hashed: both images are complete, and a daemon's tag must not change
    # when a compiler is installed or removed.
    digest.update(f"native={CC_FLAGS} {IMAGE_GLIBC}\n".encode())
    for path, content in sorted(files.items()):
        if "/__pycache__/" not in path and path != SPARE_LIBRARY:  # derived: see above
            digest.update(b"\0%s\0%d\0" % (path.encode(), len(content)) + content)
    return f"{REPOSITORY}:{digest.hexdigest()[:12]}"


def image_present(tag: str) -> bool:
    """Whether the local Docker engine has an image called ``tag``."""
    return _quiet([_require("docker", "install docker.io"), "image", "inspect", tag])


def build(method: str = "auto", *, force: bool = False, progress: Progress = lambda _: None) -> str:
    """Build the runner image unless it is present (or ``force``), tag it ``:latest`` and return its tag."""
    if method not in METHODS:
        raise ImageBuildError(f"unknown build method {method!r}; choose one of {', '.join(METHODS)}")
    if not _quiet([_require("docker", "install docker.io"), "info"]):
        raise ImageBuildError("the Docker engine is not reachable (`docker info` fails); start dockerd")
    tag = runner_image_tag()  # from the sources: no bytecode or C compiled when the image is present
    if not force and image_present(tag):
        progress(f"image: {tag} is already present")
    else:
        files = runner_files(progress)
        if method == "auto":
            method = "dockerfile" if image_present(BASE_IMAGE) else "debootstrap"
            progress(f"auto: {BASE_IMAGE} is {'' if method == 'dockerfile' else 'not '}present: {method}")
        formal = wheelhouse.tree(cache_dir(), progress)
        if method == "dockerfile":
            _build_dockerfile(tag, files, progress, formal)
        else:
            _build_debootstrap(tag, files, progress, formal)
    _run([_require("docker", "install docker.io"), "tag", tag, LATEST_TAG], progress, "tag")
    progress(f"image: {tag} is ready (also tagged {LATEST_TAG})")
    return tag


def cache_dir() -> Path:
    """Where the debootstrap base tarball is cached: ``$SANDBOXD_CACHE_DIR`` or ``~/.cache/sandboxd``."""
    configured = os.environ.get("SANDBOXD_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "sandboxd"


def debian_mirror() -> str:
    """The Debian mirror for ``SUITE``: ``SANDBOXD_DEBIAN_MIRROR``, else what apt on this machine uses."""
    override = os.environ.get("SANDBOXD_DEBIAN_MIRROR")
    if override:
        return override
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#")
            )
            if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split():
                return fields["URIs"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        for line in path.read_text().splitlines() if path.is_file() else []:
            words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    raise ImageBuildError(
        f"no apt source for Debian {SUITE} under /etc/apt; set SANDBOXD_DEBIAN_MIRROR to a Debian mirror URL"
    )


def _build_dockerfile(tag: str, files: Mapping[str, bytes], progress: Progress, formal: Path | None) -> None:
    docker = _require("docker", "install docker.io")
    if not DOCKERFILE.is_file():
        raise ImageBuildError(f"{DOCKERFILE} is missing; the dockerfile method needs a source checkout")
    with tempfile.TemporaryDirectory(prefix="sandboxd-build-") as context:
        root = Path(context)
        shutil.copyfile(DOCKERFILE, root / "Dockerfile")
        for path, content in files.items():
            dest = root / path.lstrip("/")
            dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            dest.write_bytes(content)
            dest.chmod(0o644)
        wheelhouse.stage(formal, root)  # opt/sandboxd-formal/, 0644 like the runner files (empty: no wheels)
        progress(f"dockerfile: docker build of {DOCKERFILE} with {len(files)} staged files")
        # --network=host: the engine may run without a bridge, and apt inside the build needs the network.
        cmd = [docker, "build", "--network=host", "-t", tag, context]
        _run(cmd, progress, "docker build", env={**os.environ, "DOCKER_BUILDKIT": "0"})


def _build_debootstrap(tag: str, files: Mapping[str, bytes], progress: Progress, formal: Path | None) -> None:
    docker = _require("docker", "install docker.io")
    base = _base_tarball(progress)
    progress(f"import: streaming {base} and {len(files)} runner files into `docker import` as {tag}")
    cmd = [docker, "import", *[arg for change in IMPORT_CHANGES for arg in ("--change", change)], "-", tag]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - fixed argv of resolved tools, see the module docstring
        assert proc.stdin is not None
        try:
            _write_image_tar(proc.stdin, base, files, dict(wheelhouse.files(formal)) if formal else {})
        except BrokenPipeError:
            pass  # docker import exited early; its own message below says more than the broken pipe
        except BaseException:
            proc.kill()  # before stdin closes, so that a truncated tar can never become an image
            proc.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        if proc.wait() != 0:
            log.seek(0)
            raise ImageBuildError(f"docker import failed: {log.read().decode(errors='replace').strip()}")
    progress(f"import: created {tag}")


def _write_image_tar(
    out: IO[bytes], base: Path, files: Mapping[str, bytes], copied: Mapping[str, Path] | None = None
) -> None:
    """Stream one tar: the base rootfs, the runner files and ``copied`` host files (0644, root) and an
    empty ``/scratch`` (1777)."""
    copied = copied or {}
    ours = {path.strip("/") for path in [*files, *copied]} | {SCRATCH_DIR.strip("/")}
    dirs: set[str] = set()
    with (
        tarfile.open(base, "r|") as src,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst,
    ):
        for member in src:
            name = _normalise(member.name)
            if name in ours:
                continue
            if member.isdir():
                dirs.add(name)
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
        for path, content in sorted(files.items()):
            _add_parents(dst, path, dirs)
            dst.addfile(_entry(path.strip("/"), tarfile.REGTYPE, 0o644, len(content)), io.BytesIO(content))
        for path, source in sorted(copied.items()):
            _add_parents(dst, path, dirs)
            with source.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                dst.addfile(_entry(path.strip("/"), tarfile.REGTYPE, 0o644, size), handle)
        dst.addfile(_entry(SCRATCH_DIR.strip("/"), tarfile.DIRTYPE, 0o1777))


def _add_parents(dst: tarfile.TarFile, path: str, dirs: set[str]) -> None:
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        if parent not in dirs:
            dst.addfile(_entry(parent, tarfile.DIRTYPE, 0o755))
            dirs.add(parent)


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, _FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _normalise(name: str) -> str:
    return name.removeprefix("./").strip("/")


def _base_tarball(progress: Progress) -> Path:
    """Return the cached, slimmed minbase rootfs tarball, running debootstrap first if it is not cached."""
    key = hashlib.sha256(f"{SUITE}|minbase|{','.join(PACKAGES)}|{_SLIM_EXCLUDES}".encode()).hexdigest()[:12]
    cached = cache_dir() / f"rootfs-{SUITE}-{key}.tar"
    if cached.is_file():
        progress(f"debootstrap: using the cached base {cached}")
        return cached
    debootstrap = _require("debootstrap", "apt-get install debootstrap")
    tar = _require("tar", "apt-get install tar")
    mirror = debian_mirror()
    sudo = _privileged()
    cached.parent.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cached.parent))
    partial = cached.with_suffix(".partial")
    include = ",".join(PACKAGES)
    progress(f"debootstrap: fetching base {SUITE} + {include} from {mirror} (cached at {cached})")
    try:
        fetch = [debootstrap, "--variant=minbase", f"--include={include}", SUITE, str(rootfs), mirror]
        _run([*sudo, *fetch], progress, "debootstrap", quiet=_DEBOOTSTRAP_CHATTER)
        progress("debootstrap: slimming and packing the base tarball")
        excludes = [f"--exclude={pattern}" for pattern in _SLIM_EXCLUDES]
        pack = [tar, "--numeric-owner", *excludes, "-C", str(rootfs), "-cf", str(partial), "."]
        _run([*sudo, *pack], progress, "tar")
        partial.replace(cached)
    finally:
        for mount in ("proc", "sys", "dev/pts"):  # debootstrap unmounts these itself unless it failed midway
            if os.path.ismount(rootfs / mount):
                _quiet([*sudo, "umount", "-l", str(rootfs / mount)])
        _quiet([*sudo, "rm", "-rf", "--one-file-system", str(rootfs), str(partial)])
    return cached


def _privileged() -> list[str]:
    """The prefix that runs a command as root: nothing when we are root, else sudo."""
    if os.geteuid() == 0:
        return []
    return [_require("sudo", "run as root, or install sudo: debootstrap needs root")]


def _require(program: str, hint: str) -> str:
    found = shutil.which(program, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found is None:
        raise ImageBuildError(f"`{program}` was not found; {hint} (scripts/setup.sh installs it)")
    return found


def _run(
    cmd: list[str],
    progress: Progress,
    label: str,
    env: Mapping[str, str] | None = None,
    quiet: tuple[str, ...] = (),
) -> None:
    """Run ``cmd``, forwarding output lines (except ``quiet`` prefixes) to ``progress``; raise if it fails."""
    tail: deque[str] = deque(maxlen=20)
    with subprocess.Popen(  # noqa: S603 - fixed argv of resolved tools, see the module docstring
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            if not line.startswith(quiet):
                progress(f"{label}: {line.rstrip()}")
    if proc.returncode != 0:
        output = "\n".join(tail)
        raise ImageBuildError(f"{label} failed with exit code {proc.returncode}:\n{output}")


def _quiet(cmd: list[str]) -> bool:
    """Run ``cmd`` with its output discarded; whether it succeeded."""
    return subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, check=False).returncode == 0  # noqa: S603 - fixed argv of resolved tools, see the module docstring
