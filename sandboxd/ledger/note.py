"""C2SP signed notes and tlog checkpoints, signed with Ed25519.

A checkpoint body is ``origin\\nsize\\nbase64(root)\\n`` (C2SP tlog-checkpoint). The signed note is the body,
a blank line, and one line ``— <name> <base64(key id || signature)>`` per signature (C2SP signed-note). The
key id is the first 4 bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``, 0x01 being the Ed25519
algorithm byte. Public keys travel as verifier keys: ``<name>+<hex key id>+<base64(0x01 || public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_ED25519 = b"\x01"
_DASH = "\u2014"


class NoteError(ValueError):
    """A malformed note, checkpoint or verifier key."""


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id of an Ed25519 key named ``name``."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size, and the root hash of that many entries."""

    origin: str
    size: int
    root_hash: bytes

    def body(self) -> str:
        """The checkpoint text that gets signed."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root_hash).decode()}\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint body (extension lines are ignored)."""
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "" or not lines[0] or not lines[1].isdigit():
            raise NoteError("checkpoint body must be origin, size and root lines")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except binascii.Error as exc:
            raise NoteError("checkpoint root is not base64") from exc
        return cls(lines[0], int(lines[1]), root)


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key."""

    name: str
    public_key: bytes

    def vkey(self) -> str:
        """The verifier key string."""
        encoded = base64.b64encode(_ED25519 + self.public_key).decode()
        return f"{self.name}+{key_id(self.name, self.public_key).hex()}+{encoded}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse a verifier key string, checking its key id."""
        name, _, rest = vkey.strip().partition("+")  # names cannot hold "+"; base64 can
        kid, _, rest = rest.partition("+")
        try:
            raw = base64.b64decode(rest, validate=True)
        except binascii.Error as exc:
            raise NoteError("verifier key is not base64") from exc
        if not name or len(raw) != 33 or raw[:1] != _ED25519:
            raise NoteError("not an Ed25519 verifier key")
        verifier = cls(name, raw[1:])
        if key_id(name, verifier.public_key).hex() != kid:
            raise NoteError("verifier key id does not match its key")
        return verifier

    def verify(self, note: str) -> str:
        """Return the note's text if one of its signatures is by this key; raise ``NoteError`` otherwise."""
        text, sep, sigs = note.rpartition("\n\n")
        if not sep or not sigs.endswith("\n"):
            raise NoteError("note has no signature block")
        text += "\n"
        kid = key_id(self.name, self.public_key)
        for line in sigs[:-1].split("\n"):
            dash, name, sig64 = [*line.split(" "), "", ""][:3]
            if dash != _DASH or name != self.name:
                continue
            try:
                sig = base64.b64decode(sig64, validate=True)
            except binascii.Error:
                continue
            if sig[:4] != kid:
                continue
            try:
                Ed25519PublicKey.from_public_bytes(self.public_key).verify(sig[4:], text.encode())
            except InvalidSignature as exc:
                raise NoteError(f"bad signature by {self.name}") from exc
            return text
        raise NoteError(f"no signature by {self.name}")


class Signer:
    """A named Ed25519 private key that signs notes."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not name or any(c.isspace() or c == "+" for c in name):
            raise NoteError(f"bad signer name {name!r}")
        self.name = name
        self._key = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verifier = Verifier(name, raw)

    @classmethod
    def from_file(cls, name: str, path: Path) -> Signer:
        """Load the PEM key at ``path``, generating it (mode 0600) and ``path.pub`` (the vkey) if absent."""
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise NoteError(f"{path} is not an Ed25519 private key")
        signer = cls(name, key)
        pub = path.with_name(path.name + ".pub")
        if not pub.exists():
            pub.write_text(signer.verifier.vkey() + "\n", encoding="ascii")
        return signer

    def sign(self, text: str) -> str:
        """The signed note for ``text`` (which must end in a newline)."""
        if not text.endswith("\n"):
            raise NoteError("note text must end with a newline")
        sig = key_id(self.name, self.verifier.public_key) + self._key.sign(text.encode())
        return f"{text}\n{_DASH} {self.name} {base64.b64encode(sig).decode()}\n"
