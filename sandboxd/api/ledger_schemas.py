"""Response models of the auditor API (``/v1/ledger``). Hashes are standard base64, as in checkpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class EntryPublic(BaseModel):
    seq: int = Field(description="Leaf index in the Merkle tree")
    kind: str
    time: str = Field(description="RFC 3339 UTC, microseconds")
    body: dict[str, Any]
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || canonical entry bytes), as stored")


class EntryPage(BaseModel):
    entries: list[EntryPublic]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class CheckpointPublic(BaseModel):
    origin: str
    tree_size: int
    root_hash: str
    timestamp: str = Field(description="When it was signed (not itself signed)")
    note: str = Field(description="The C2SP signed note: verify it with the ledger's public key")


class CheckpointList(BaseModel):
    origin: str
    vkey: str | None = Field(description="Verifier key the log recorded; pin your own copy")
    checkpoints: list[CheckpointPublic] = Field(description="The latest ones, oldest first")


class InclusionProof(BaseModel):
    seq: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    audit_path: list[str] = Field(description="RFC 6962 audit path, bottom up")


class ConsistencyProof(BaseModel):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str] = Field(description="RFC 6962 consistency proof")
