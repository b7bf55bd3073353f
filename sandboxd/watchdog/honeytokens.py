"""Honeytokens: canary secrets planted in every sandbox, and the scan that notices when one comes back.

Per daemon, two random canaries are made at start-up: one goes into a fake environment variable, the
other into a fake credentials file that the backend bind-mounts read-only into each container. Nothing
in the runner image changes. A run whose stdout, stderr or result values contain a canary, reversed,
base64- or hex-encoded, fires the tripwire ``honeytoken.env`` or ``honeytoken.file``.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import shutil
import string
import tempfile
import weakref
from pathlib import Path

from sandboxd.backends.base import ReadOnlyFile, SandboxSpec

from .safety import HoneytokenConfig

ENV_RULE = "honeytoken.env"
FILE_RULE = "honeytoken.file"
_KEY_ALPHABET = string.ascii_uppercase + string.digits


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        secret[::-1],
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    ]


class Honeytokens:
    """The canaries of one daemon, the file that holds one of them, and the leak scan."""

    def __init__(self, config: HoneytokenConfig) -> None:
        self.config = config
        self.env_secret = secrets.token_urlsafe(30)
        self.file_secret = secrets.token_urlsafe(30)
        key_id = "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
        self.file_text = (
            f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {self.file_secret}\n"
        )
        self._folder: Path | None = None
        self._cleanup: weakref.finalize[[str, bool], Honeytokens] | None = None
        needles = {form: ENV_RULE for form in _forms(self.env_secret)}
        needles.update({form: FILE_RULE for form in [*_forms(self.file_secret), *_forms(self.file_text)]})
        self._needles = tuple(needles.items())

    @property
    def file(self) -> Path:
        """The bait file on the host, written on first use (an app that never starts writes nothing)."""
        if self._folder is None:
            folder = Path(tempfile.mkdtemp(prefix="sandboxd-honeytokens-"))
            folder.chmod(0o711)  # the engine reads it; nobody may list it
            bait = folder / "credentials"
            bait.write_text(self.file_text, encoding="ascii")
            bait.chmod(0o444)  # the sandbox user must be able to read the bait
            self._folder = folder
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(folder), True)  # also at exit
        return self._folder / "credentials"

    def plant(self, spec: SandboxSpec) -> SandboxSpec:
        """``spec`` with the fake variable(s) and the read-only credentials file added."""
        env = {**spec.env, self.config.env_var: self.env_secret}
        if self.config.file_env_var:
            env[self.config.file_env_var] = self.config.file_path
        files = (*spec.files, ReadOnlyFile(str(self.file), self.config.file_path))
        return dataclasses.replace(spec, env=env, files=files)

    def leaks(self, *texts: str) -> list[str]:
        """The honeytoken rules whose canary appears in any of ``texts`` (sorted, no duplicates)."""
        found = {rule for text in texts if text for needle, rule in self._needles if needle in text}
        return sorted(found)  # substring search (two-way) beats a regex alternation here by ~5x

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()
