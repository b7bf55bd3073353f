"""Features of one proposed program, computed by parsing it; model programs are never run here.

A program is hostile text. It is tokenized and parsed with ``ast`` (never compiled or executed), and
anything that does not parse, or is too large or too deeply nested to parse, still gets lexical features
with ``parses=False`` and zero complexity. The output signature is a hash the validator recorded in the
ledger entry (over probe inputs run in the sandbox, or over the task's own inputs and outputs), so it needs
no execution on the trusted side.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import tokenize
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sandboxd.ledger.entry import canonical_json

MAX_PROGRAM_CHARS = 64 * 1024  # longer programs are truncated before analysis (the policy caps them anyway)
_FALLBACK_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+|\S")
_SKIP = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


@dataclass(frozen=True)
class ProgramFeatures:
    """What the analysis knows about one program text."""

    parses: bool  # ast.parse accepted it
    node_types: dict[str, int]  # AST node-type histogram, e.g. {"For": 1, "Call": 3}
    tokens: tuple[str, ...]  # lexical tokens; numbers become <num> and strings <str>
    cyclomatic: int  # radon's total cyclomatic complexity (0 if it does not parse)
    halstead_volume: float  # radon's Halstead volume (operators and operands) of the whole program
    halstead_difficulty: float  # radon's Halstead difficulty of the whole program
    sloc: int  # source lines holding code (not blank, not only a comment)
    node_count: int  # number of AST nodes

    def documents(self) -> list[str]:
        """The bag of terms clustering sees: tokens plus ``ast:<NodeType>`` for each node."""
        return [*self.tokens, *(f"ast:{k}" for k, n in self.node_types.items() for _ in range(n))]

    def metrics(self) -> dict[str, float]:
        """The complexity metrics, by name (the names used in drift and scorecards)."""
        return {
            "cyclomatic": float(self.cyclomatic),
            "halstead_volume": self.halstead_volume,
            "halstead_difficulty": self.halstead_difficulty,
            "sloc": float(self.sloc),
            "ast_nodes": float(self.node_count),
        }


METRICS = ("cyclomatic", "halstead_volume", "halstead_difficulty", "sloc", "ast_nodes")


def _lex(program: str) -> tuple[tuple[str, ...], int]:
    """Lexical tokens (literals abstracted, so a tweaked constant still looks the same) and source lines."""
    out: list[str] = []
    lines: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(program).readline):
            if tok.type in _SKIP:
                continue
            lines.add(tok.start[0])
            if tok.end[0] != tok.start[0]:  # a multi-line string
                lines.update(range(tok.start[0] + 1, tok.end[0] + 1))
            if tok.type == tokenize.NUMBER:
                out.append("<num>")
            elif tok.type == tokenize.STRING or tok.type in _FSTRING_TYPES:
                if not out or out[-1] != "<str>":
                    out.append("<str>")
            else:
                out.append(tok.string)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return tuple(_FALLBACK_TOKEN.findall(program)), 0
    return tuple(out), len(lines)


def tokens(program: str) -> tuple[str, ...]:
    """Lexical tokens with literals abstracted (``<num>``, ``<str>``), comments and layout dropped."""
    return _lex(program)[0]


_FSTRING_TYPES = frozenset(
    getattr(tokenize, name)
    for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
    if hasattr(tokenize, name)
)


def _complexity(tree: ast.Module) -> tuple[int, float, float]:
    from radon.metrics import h_visit_ast  # noqa: PLC0415 - radon is imported only when programs are analysed
    from radon.visitors import ComplexityVisitor  # noqa: PLC0415 - as above

    cyclomatic = int(ComplexityVisitor.from_ast(tree).total_complexity)
    halstead = h_visit_ast(tree).total
    return cyclomatic, float(halstead.volume), float(halstead.difficulty)


def featurize(program: str) -> ProgramFeatures:
    """Parse (never run) ``program`` and measure it."""
    text = program[:MAX_PROGRAM_CHARS]
    toks, sloc = _lex(text)
    try:
        tree = ast.parse(text)
        histogram = Counter(type(node).__name__ for node in ast.walk(tree))
        cyclomatic, volume, difficulty = _complexity(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ProgramFeatures(False, {}, toks, 0, 0.0, 0.0, sloc, 0)
    return ProgramFeatures(
        True, dict(histogram), toks, cyclomatic, volume, difficulty, sloc, sum(histogram.values())
    )


def output_signature(inputs: Any, outputs: Any) -> str | None:
    """A short hash of the recorded (inputs, outputs) pairs, or ``None`` without outputs.

    Two programs with the same signature behaved the same on the same inputs. The outputs are the ones the
    validator recorded in the sandbox; nothing is run here.
    """
    if outputs is None or outputs == []:
        return None
    try:
        data = canonical_json([inputs, outputs])
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(data).hexdigest()[:16]


def behaviour_signature(body: Any) -> str | None:
    """A proposal's behaviour: the probe signature the validator recorded (``output_signature``, the same
    probe inputs for every program with the same argument types, docs/azr.md), else the hash of its
    own recorded (inputs, outputs), which only compares tasks with equal inputs."""
    probed = body.get("output_signature") if isinstance(body, dict) else None
    if isinstance(probed, str):
        return f"probe:{probed}"
    return output_signature(body.get("inputs"), body.get("outputs")) if isinstance(body, dict) else None
