"""AZR and CRUXEval conformance: every recorded row goes through the real ``/v1/azr`` service.

For each row of the AZR seed files and of CRUXEval (copied with their licenses into ``tests/data``):

- ``validate`` reproduces every recorded output: the same text, the same text after AZR's truncation,
  or the same value (a deduction check of our repr against the recorded text is correct);
- deduction and abduction rows: a deduction check with our full repr is correct and one with the
  repr wrapped in a list is not; an abduction check with the recorded input is correct, and one with a
  perturbed input is correct exactly when ``validate`` says the perturbed input gives an equal output;
- induction rows: the reference program is correct on the hidden half of the pairs; a program that
  hard-codes the shown half in a dict is correct on the shown half and fails the hidden half (unless the
  hidden half only repeats shown inputs or expects None).

A row fails if any of these fails, or if any of its checks ends in ``internal_error`` (a sandboxd fault,
never a verdict, even where the answer had to be wrong). The failing rows must be exactly the rows listed
below with their reasons, so a new failure and a newly passing row both fail the suite. All rows are sent
in a few batched requests (at most 1024 items each), shared by the tests through a module fixture.
"""

from __future__ import annotations

import ast
import copy
import enum
import json
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandboxd.canonical import DecodeError, decode

pytestmark = pytest.mark.docker

DATA_DIR = Path(__file__).parent / "data"
TRIPLETS = ("azr/7b_coder_seed_io.jsonl", "azr/7b_seed_io.jsonl")
INDUCTION = ("azr/7b_coder_code_f_seed_io.jsonl", "azr/7b_code_f_seed_io.jsonl")
CRUXEVAL = "cruxeval/cruxeval.jsonl"
FILES = (*TRIPLETS, *INDUCTION, CRUXEVAL)
CHUNK = 1024  # the default policy's azr.max_tasks
PERTURBATIONS_PER_ROW = 3
SLOW_SECONDS = 1.0
RowKey = tuple[str, int]


class Why(enum.StrEnum):
    """Why a row cannot reproduce: differences of the data itself, or of sandboxd's deliberate choices."""

    HASH_SEED = "the output's order comes from a set of str, which depends on the hash seed"
    EMPTY_RECORD = "AZR recorded an empty output (f raised or was nondeterministic when AZR ran it)"
    NUMPY = (
        "f returns numpy scalars: their repr matches, but they are not canonical, so never equal plain ints"
    )
    NOT_EVALUABLE = (
        "the record is a repr but no expression (inf, dict_keys(...)); AZR's own eval fails on it too"
    )
    FILE_WRITE = "f writes a file; the sandbox opens files read-only (DESIGN.md §2), so the run is killed"
    NOT_INSTALLED = "f imports a third-party module that the runner image does not ship"
    OUTPUT_CAP = (
        "the output is a >1 MiB str: validate's two calls x (value + repr) exceed the 4 MiB encoder cap, "
        "so output_limit"
    )


# Rows that cannot reproduce, each with the investigation noted beside it; test_listed_reasons_hold
# re-checks every claim on each run.
EXCEPTIONS: dict[RowKey, Why] = {
    # A list or str built from a set of strings: a permutation of the recorded text. Run locally, the
    # recorded order appears under other PYTHONHASHSEED values (151: 4, 7, ...; 223: 13, 52, ...; 60: 184;
    # 219: 1, 2, ...); 228 and 245 have too many orders to hit in 300 seeds. (coder row 185 and induction
    # row 75 differ only in dict or set order too, but compare equal by value, so they pass.)
    ("azr/7b_coder_seed_io.jsonl", 151): Why.HASH_SEED,
    ("azr/7b_coder_seed_io.jsonl", 223): Why.HASH_SEED,
    ("azr/7b_coder_seed_io.jsonl", 228): Why.HASH_SEED,
    ("azr/7b_coder_code_f_seed_io.jsonl", 60): Why.HASH_SEED,
    ("azr/7b_coder_code_f_seed_io.jsonl", 219): Why.HASH_SEED,
    ("azr/7b_coder_code_f_seed_io.jsonl", 245): Why.HASH_SEED,
    # secrets.randbelow: nondeterministic, recorded as ''. (Coder induction row 47 is the same, except
    # for inputs[7], 'AAAAAAAAAA'; it was listed under the non-ASCII bug, and turned out to be this.)
    ("azr/7b_coder_seed_io.jsonl", 175): Why.EMPTY_RECORD,
    ("azr/7b_coder_code_f_seed_io.jsonl", 47): Why.EMPTY_RECORD,
    ("azr/7b_coder_code_f_seed_io.jsonl", 175): Why.EMPTY_RECORD,
    ("azr/7b_coder_code_f_seed_io.jsonl", 201): Why.EMPTY_RECORD,
    # inputs[5] holds a lambda, so the output's repr holds its address: nondeterministic, recorded as ''.
    ("azr/7b_coder_code_f_seed_io.jsonl", 34): Why.EMPTY_RECORD,
    # next() on an exhausted iterator: f raises StopIteration, recorded as ''.
    ("azr/7b_seed_io.jsonl", 124): Why.EMPTY_RECORD,
    # imports cv2 and reads sun.png: recorded as ''.
    ("azr/7b_seed_io.jsonl", 141): Why.EMPTY_RECORD,
    # open('transformed_output.txt', 'w'): AZR let it write and recorded 'Written'.
    ("azr/7b_seed_io.jsonl", 242): Why.FILE_WRITE,
    # from sympy import sympify.
    ("azr/7b_code_f_seed_io.jsonl", 99): Why.NOT_INSTALLED,
    # f('CD123456EFG78') is about 1.3 million characters; AZR stored it truncated. validate: output_limit.
    # (A check of the reference program on that pair alone fails too, with internal_error: the runner
    # cuts reprs at 1 MiB, so the record's last 200 characters never match; test_azr_hacking,
    # repr-over-1-mib.)
    ("azr/7b_coder_code_f_seed_io.jsonl", 131): Why.OUTPUT_CAP,
    # [np.sum(row) for row in arr]: a list of np.int64, repr '[6, 15, 24]' under the image's numpy 1.24.
    # Deduction of the text passes; abduction compares f's value, which is not canonical (DESIGN.md §1).
    ("azr/7b_seed_io.jsonl", 223): Why.NUMPY,
    # '[inf, 5, inf, ...]', 'dict_keys([42, 23, 4])', "deque([...])" with only `import collections`,
    # and '-inf' among induction outputs: the expected output cannot be evaluated (NameError).
    ("azr/7b_seed_io.jsonl", 112): Why.NOT_EVALUABLE,
    ("azr/7b_seed_io.jsonl", 134): Why.NOT_EVALUABLE,
    ("azr/7b_seed_io.jsonl", 211): Why.NOT_EVALUABLE,
    ("azr/7b_code_f_seed_io.jsonl", 26): Why.NOT_EVALUABLE,
    ("azr/7b_code_f_seed_io.jsonl", 225): Why.NOT_EVALUABLE,
}

# Rows that sandboxd bugs once held back, fixed since. They are not listed, so they must reproduce like any
# other row; test_regression_rows_hold_their_trigger checks that each still holds what the bug tripped on.
NON_ASCII = "non-ASCII text (ast offsets count UTF-8 bytes, check_arguments once counted characters)"
UNDERSCORE = "the throwaway name `_` in a comprehension (once rejected as a private name)"
DUNDER_DATA = "plain str data starting with '__' (once rejected as a dunder string)"
INVALID_ESCAPE = "an invalid escape such as '\\d' (ast.parse once obeyed the filterwarnings = error filter)"
REGRESSION_ROWS: dict[RowKey, str] = {
    **{("cruxeval/cruxeval.jsonl", index): NON_ASCII for index in (92, 162, 217, 495, 496, 543)},
    ("azr/7b_seed_io.jsonl", 87): NON_ASCII,
    **{
        ("azr/7b_coder_code_f_seed_io.jsonl", index): NON_ASCII
        for index in (6, 38, 67, 79, 82, 91, 162, 242, 247)
    },
    **{("azr/7b_code_f_seed_io.jsonl", index): NON_ASCII for index in (18, 50, 96, 136, 193, 240)},
    ("azr/7b_coder_code_f_seed_io.jsonl", 101): UNDERSCORE,
    ("azr/7b_code_f_seed_io.jsonl", 228): UNDERSCORE,
    ("cruxeval/cruxeval.jsonl", 310): DUNDER_DATA,
    ("azr/7b_coder_code_f_seed_io.jsonl", 173): DUNDER_DATA,
    ("azr/7b_coder_code_f_seed_io.jsonl", 71): DUNDER_DATA,
    ("azr/7b_coder_code_f_seed_io.jsonl", 209): INVALID_ESCAPE,
    ("azr/7b_code_f_seed_io.jsonl", 252): INVALID_ESCAPE,
}

# Rows that fail because of a sandboxd bug; each bug is also an xfail(strict=True) test below, so a fix
# shows up as both an XPASS and a "now passing" row: then delete the entries.
BUG_TRUNCATED = (
    "check reports internal_error ('expected output 0 could not be evaluated') for any answer that does "
    "not match an AZR-truncated record, instead of wrong_answer (here: our repr wrapped in a list, a "
    "perturbed input, the shown-half lookup table on a hidden truncated output)"
)
# Rows once held back by that bug (fixed): they must reproduce now.
TRUNCATED_ROWS: tuple[RowKey, ...] = (
    *(("azr/7b_coder_seed_io.jsonl", index) for index in (37, 76, 90, 113, 177, 191, 212)),
    *(("azr/7b_seed_io.jsonl", index) for index in (2, 22)),
    *(("azr/7b_coder_code_f_seed_io.jsonl", index) for index in (35, 101, 138)),
)
KNOWN_BUGS: dict[RowKey, str] = {}


# -- rows ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One record, in one shape for all files: a deduction/abduction row has one input and output."""

    file: str
    index: int
    program: str
    imports: list[str] | str
    inputs: list[str]
    outputs: list[str]

    @property
    def key(self) -> RowKey:
        return (self.file, self.index)

    @property
    def induction(self) -> bool:
        return self.file in INDUCTION


def load_rows(name: str) -> list[Row]:
    rows = []
    with (DATA_DIR / name).open(encoding="utf-8") as lines:
        for index, line in enumerate(lines):
            record = json.loads(line)
            if name == CRUXEVAL:
                rows.append(Row(name, index, record["code"], [], [record["input"]], [record["output"]]))
            elif name in INDUCTION:
                rows.append(
                    Row(
                        name, index, record["snippet"], record["imports"], record["inputs"], record["outputs"]
                    )
                )
            else:
                rows.append(
                    Row(
                        name,
                        index,
                        record["snippet"],
                        record["imports"],
                        [record["input"]],
                        [record["output"]],
                    )
                )
    return rows


def is_truncated(text: str) -> bool:
    """AZR's truncated records: 200 characters, ``...``, 200 characters."""
    return len(text) == 403 and text[200:203] == "..."


def truncate(text: str) -> str:
    """AZR's truncation, written out here independently of sandboxd."""
    return text if len(text) <= 400 else text[:200] + "..." + text[-200:]


def same_multiset(ours: str, recorded: str) -> bool:
    return sorted(ours) == sorted(recorded)


def parse(source: str) -> ast.Expression:
    """``ast.parse`` in eval mode, whatever the warning filters (pytest runs with filterwarnings = error,
    under which an invalid escape such as '\\d' in the data would raise SyntaxError)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source, mode="eval")


# -- perturbed inputs ------------------------------------------------------------------------------------
def _variants(node: ast.AST) -> list[Callable[[ast.AST], None]]:
    """Ways to change one literal in place, strongest first (ints by 5, strs reversed, sequences shortened)."""

    def put(value: Any) -> Callable[[ast.AST], None]:
        return lambda target: setattr(target, "value", value)

    def elements(items: list[ast.expr]) -> Callable[[ast.AST], None]:
        return lambda target: setattr(target, "elts", items)

    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            return [put(not value)]
        if isinstance(value, int):
            return [put(value + 5), put(-value - 2)]
        if isinstance(value, float):
            return [put(value + 1.5)]
        if isinstance(value, str):
            return [put(value[::-1] + "Q"), put(value + "z")]  # never "": it sends some f into endless loops
        return []
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = node.elts
        if not items:
            return [elements([ast.Constant(0)]), elements([ast.Constant("a")])]
        return [elements(items[1:]), elements(items + copy.deepcopy(items))]
    if isinstance(node, ast.Dict) and node.keys:
        return [_drop_last_item]
    return []


def _drop_last_item(node: ast.AST) -> None:
    assert isinstance(node, ast.Dict)
    node.keys.pop()
    node.values.pop()


def perturbations(text: str, limit: int = PERTURBATIONS_PER_ROW) -> list[str]:
    """Argument texts that differ from ``text`` in one literal (parsed with ast, never evaluated)."""
    try:
        call = parse(f"f({text})").body
    except SyntaxError:
        return []
    found: list[str] = []
    for position, node in enumerate(ast.walk(call)):
        for index in range(len(_variants(node))):
            changed = copy.deepcopy(call)
            target = list(ast.walk(changed))[position]
            _variants(target)[index](target)
            try:
                candidate = ast.unparse(changed)[2:-1]
            except (ValueError, RecursionError):
                continue
            if candidate != text and candidate not in found:
                found.append(candidate)
            if len(found) == limit:
                return found
    return found


# -- induction answers -----------------------------------------------------------------------------------
def hardcoded_program(inputs: list[str], outputs: list[str]) -> str:
    """A program that answers the given pairs from a dict keyed by the repr of the arguments, else None.

    ``f`` comes first because some inputs call it (``f(1234)``), and ``inf``/``nan`` are bound because
    some reprs use them.
    """
    lines = [
        "inf, nan = float('inf'), float('nan')",
        "def _key(*args, **kwargs):",
        "    return repr((args, sorted(kwargs.items())))",
        "def f(*args, **kwargs):",
        "    return _TABLE.get(_key(*args, **kwargs))",
        "_TABLE = {}",
    ]
    lines += [f"_TABLE[_key({text}\n)] = ({output}\n)" for text, output in zip(inputs, outputs, strict=True)]
    return "\n".join(lines)


def calls_f(text: str) -> bool:
    """Whether an argument text calls ``f`` itself; a table keyed by argument values cannot answer it."""
    call = parse(f"g({text}\n)")
    return any(isinstance(node, ast.Name) and node.id == "f" for node in ast.walk(call))


def hidden_pairs_covered(row: Row, half: int) -> bool:
    """Whether a shown-half lookup table is *right* on the hidden half (repeated inputs, or None)."""
    shown = set(row.inputs[:half])
    return all(
        text in shown or output == "None"
        for text, output in zip(row.inputs[half:], row.outputs[half:], strict=True)
    )


# -- the run ---------------------------------------------------------------------------------------------
@dataclass
class Probe:
    """One check answer and the verdict it must get (``None``: decided later from a validation)."""

    row: RowKey
    label: str
    answer: dict[str, Any]
    want_correct: bool | None


@dataclass
class Conformance:
    rows: dict[RowKey, Row]
    failures: dict[RowKey, list[str]]
    validations: dict[RowKey, dict[str, Any]]
    undistinguished: set[RowKey] = field(default_factory=set)  # no perturbation changed f's output

    def failing(self, name: str) -> dict[RowKey, list[str]]:
        return {key: why for key, why in self.failures.items() if why and key[0] == name}


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def post_all(client: httpx.Client, path: str, field_name: str, items: list[dict[str, Any]]) -> list[Any]:
    """POST ``items`` in chunks of at most CHUNK; the results in order."""
    results: list[Any] = []
    for chunk in _chunks(items):
        response = client.post(path, json={field_name: chunk})
        assert response.status_code == 200, response.text[:2000]
        results.extend(response.json()["results"])
    assert len(results) == len(items)
    return results


def _task(row: Row, inputs: list[str]) -> dict[str, Any]:
    kind = "induction" if row.induction else "deduction"
    return {"task_type": kind, "program": row.program, "imports": row.imports, "inputs": inputs}


def _decoded(tagged: Any) -> tuple[bool, Any]:
    try:
        return True, decode(tagged)
    except DecodeError:
        return False, None


def _perturbation_verdict(original: dict[str, Any], perturbed: dict[str, Any], recorded: str) -> bool | None:
    """Must an abduction with the perturbed input be correct? None when the answer is not clear-cut."""
    if not perturbed["valid"]:
        return False if perturbed["reason"] == "runtime_error" else None
    if perturbed["usage"]["wall_time_seconds"] > SLOW_SECONDS:  # could time out when checked under load
        return None
    ours, theirs = original["outputs"][0], perturbed["outputs"][0]
    if is_truncated(recorded):  # only the truncated text is known: f may differ in the middle
        return truncate(theirs) == recorded
    if ours == theirs and original["values"][0] == perturbed["values"][0]:
        return None if "nan" in ours else True
    if original["values"][0] is not None and perturbed["values"][0] is not None:
        ok_left, left = _decoded(original["values"][0])
        ok_right, right = _decoded(perturbed["values"][0])
        if ok_left and ok_right:  # Python's == is looser than the service's rules: only "differs" is sure
            return None if left == right else False
    return False if ours != theirs else None


def _row_probes(row: Row, outputs: list[str]) -> list[Probe]:
    probes: list[Probe] = []
    for position, (ours, recorded) in enumerate(zip(outputs, row.outputs, strict=True)):
        if is_truncated(recorded) or (row.induction and ours == recorded):
            continue
        probes.append(
            Probe(
                row.key,
                f"deduction check of output {position} (our repr vs the record)",
                {
                    "task_type": "deduction",
                    "imports": row.imports,
                    "answer": ours,
                    "expected_output": recorded,
                },
                want_correct=True,
            )
        )
    if row.induction:
        half = len(row.inputs) // 2
        shown, hidden = slice(None, half), slice(half, None)
        induction = {"task_type": "induction", "imports": row.imports}
        table = hardcoded_program(row.inputs[shown], outputs[shown])
        probes += [
            Probe(
                row.key,
                "the reference program on the hidden pairs",
                {
                    **induction,
                    "answer": row.program,
                    "inputs": row.inputs[hidden],
                    "outputs": row.outputs[hidden],
                },
                want_correct=True,
            ),
            Probe(
                row.key,
                "the shown-half lookup table on the shown pairs",
                {**induction, "answer": table, "inputs": row.inputs[shown], "outputs": row.outputs[shown]},
                want_correct=not any(calls_f(text) for text in row.inputs[shown]),
            ),
            Probe(
                row.key,
                "the shown-half lookup table on the hidden pairs",
                {**induction, "answer": table, "inputs": row.inputs[hidden], "outputs": row.outputs[hidden]},
                want_correct=hidden_pairs_covered(row, half),
            ),
        ]
        return probes
    ours, recorded = outputs[0], row.outputs[0]
    if is_truncated(recorded):
        probes.append(
            Probe(
                row.key,
                "deduction check with our full repr against the truncated record",
                {
                    "task_type": "deduction",
                    "imports": row.imports,
                    "answer": ours,
                    "expected_output": recorded,
                },
                want_correct=True,
            )
        )
    abduction = {"task_type": "abduction", "imports": row.imports, "program": row.program}
    probes += [
        Probe(
            row.key,
            "deduction check with our repr wrapped in a list",
            {
                "task_type": "deduction",
                "imports": row.imports,
                "answer": f"[{ours}]",
                "expected_output": recorded,
            },
            want_correct=False,
        ),
        Probe(
            row.key,
            "abduction check with the recorded input",
            {**abduction, "answer": row.inputs[0], "expected_output": recorded},
            want_correct=True,
        ),
    ]
    return probes


def perturbation_probes(
    client: httpx.Client, validations: dict[RowKey, dict[str, Any]], candidates: list[tuple[Row, str]]
) -> list[Probe]:
    """Validate perturbed inputs; keep at most one that changes f's output and one that does not, per row."""
    perturbed = post_all(
        client, "/v1/azr/validate", "tasks", [_task(row, [text]) for row, text in candidates]
    )
    chosen: dict[tuple[RowKey, bool], Probe] = {}
    for (row, text), result in zip(candidates, perturbed, strict=True):
        want = _perturbation_verdict(validations[row.key], result, row.outputs[0])
        if want is None or (row.key, want) in chosen:
            continue
        chosen[row.key, want] = Probe(
            row.key,
            f"abduction check with the perturbed input {text[:80]!r}",
            {
                "task_type": "abduction",
                "imports": row.imports,
                "program": row.program,
                "answer": text,
                "expected_output": row.outputs[0],
            },
            want_correct=want,
        )
    return list(chosen.values())


def check_all(client: httpx.Client, probes: list[Probe]) -> list[tuple[Probe, dict[str, Any]]]:
    results = post_all(client, "/v1/azr/check", "answers", [probe.answer for probe in probes])
    return list(zip(probes, results, strict=True))


def run_conformance(client: httpx.Client) -> Conformance:
    rows = {row.key: row for name in FILES for row in load_rows(name)}
    failures: dict[RowKey, list[str]] = {key: [] for key in rows}
    ordered = list(rows.values())

    # 1. validate every row, as AZR proposes it
    validated = post_all(client, "/v1/azr/validate", "tasks", [_task(row, row.inputs) for row in ordered])
    validations = {row.key: result for row, result in zip(ordered, validated, strict=True)}
    probes: list[Probe] = []
    candidates: list[tuple[Row, str]] = []
    for row in ordered:
        result = validations[row.key]
        if not result["valid"]:
            failures[row.key].append(f"validate: {result['reason']}: {result['detail']}")
            continue
        for position, (ours, recorded) in enumerate(zip(result["outputs"], row.outputs, strict=True)):
            if is_truncated(recorded) and truncate(ours) != recorded:
                failures[row.key].append(f"output {position}: truncated record differs from our repr")
        probes += _row_probes(row, result["outputs"])
        if not row.induction:
            candidates += [(row, text) for text in perturbations(row.inputs[0])]

    # 2. the check answers, while perturbed inputs are validated and checked alongside (a perturbed
    # input that loops until its timeout then costs no time)
    def perturbed() -> list[tuple[Probe, dict[str, Any]]]:
        return check_all(client, perturbation_probes(client, validations, candidates))

    with ThreadPoolExecutor(1) as background:
        pending = background.submit(perturbed)
        checked = check_all(client, probes)
        checked += pending.result()
    for probe, result in checked:
        wrong = probe.want_correct is not None and result["correct"] is not probe.want_correct
        if wrong or result["reason"] == "internal_error":  # a sandboxd fault, whatever was wanted
            failures[probe.row].append(
                f"{probe.label}: correct={result['correct']} ({result['reason']}: {result['detail']})"
            )
    distinguished = {
        probe.row for probe, _ in checked if probe.want_correct is False and "perturbed" in probe.label
    }
    undistinguished = {
        row.key
        for row in ordered
        if not row.induction and validations[row.key]["valid"] and row.key not in distinguished
    }
    return Conformance(rows, failures, validations, undistinguished)


@pytest.fixture(scope="module")
def conformance(client: httpx.Client) -> Conformance:
    """Every row of every file through validate and check, once per module."""
    return run_conformance(client)


# -- tests -----------------------------------------------------------------------------------------------
def _describe(conformance: Conformance, keys: set[RowKey]) -> str:
    return "\n".join(f"  {key}: {conformance.failures[key]}" for key in sorted(keys))


@pytest.mark.parametrize("name", FILES)
def test_rows_reproduce_except_listed(conformance: Conformance, name: str) -> None:
    """Every row of the file reproduces under validate and check, except exactly the listed rows."""
    failing = set(conformance.failing(name))
    listed = {key for key in [*EXCEPTIONS, *KNOWN_BUGS] if key[0] == name}
    unexpected, now_passing = failing - listed, listed - failing
    assert not unexpected, f"rows failing but not listed:\n{_describe(conformance, unexpected)}"
    assert not now_passing, f"listed rows that now pass (remove them from the lists): {sorted(now_passing)}"


def test_every_file_is_complete() -> None:
    """The data files hold the documented number of rows, so nothing is skipped by accident."""
    sizes = {name: len(load_rows(name)) for name in FILES}
    assert sizes == {**dict.fromkeys((*TRIPLETS, *INDUCTION), 256), CRUXEVAL: 800}


def test_listed_reasons_hold(conformance: Conformance) -> None:
    """Each listed row fails the way its reason says (empty record, permutation, NameError, and so on)."""
    for key, why in EXCEPTIONS.items():
        row, result = conformance.rows[key], conformance.validations[key]
        failures = " ".join(conformance.failures[key])
        if why is Why.EMPTY_RECORD:
            assert "" in row.outputs, key
        elif why is Why.HASH_SEED:
            if result["valid"]:  # a validator that varies the seed flags these as nondeterministic instead
                pairs = list(zip(result["outputs"], row.outputs, strict=True))
                assert any(ours != recorded for ours, recorded in pairs), key
                whole = [(ours, recorded) for ours, recorded in pairs if not is_truncated(recorded)]
                assert all(same_multiset(ours, recorded) for ours, recorded in whole), key
            else:
                assert result["reason"] == "nondeterministic", key
        elif why is Why.NUMPY:
            assert ("numpy" in row.program, "not canonical" in failures) == (True, True), key
        elif why is Why.NOT_EVALUABLE:
            assert (result["valid"], "could not be evaluated" in failures) == (True, True), key
        elif why is Why.FILE_WRITE:
            assert ("open(" in row.program, result["reason"]) == (True, "sandbox_violation"), key
        elif why is Why.NOT_INSTALLED:
            assert (result["reason"], result["detail"]) == ("runtime_error", "ModuleNotFoundError"), key
        else:
            assert why is Why.OUTPUT_CAP, key
            assert result["reason"] == "output_limit", key
            assert "bytes of text" in (result["detail"] or ""), key


def test_regression_rows_hold_their_trigger(conformance: Conformance) -> None:
    """Each row a fixed bug once held back still holds what the bug tripped on, and now validates and
    reproduces (unless a bug listed in KNOWN_BUGS holds it back)."""
    for key, trigger in REGRESSION_ROWS.items():
        texts = [*conformance.rows[key].inputs, *conformance.rows[key].outputs]
        if trigger == NON_ASCII:
            assert any(not text.isascii() for text in texts), key
        elif trigger == INVALID_ESCAPE:
            assert any("\\d" in text or "\\$" in text for text in texts), key
        elif trigger == UNDERSCORE:
            assert any(" _ in " in text for text in texts), key
        else:
            assert trigger == DUNDER_DATA, key
            assert any("'__" in text or '"__' in text for text in texts), key
        assert conformance.validations[key]["valid"], (key, conformance.validations[key])
        assert key in KNOWN_BUGS or not conformance.failures[key], (key, conformance.failures[key])


def test_perturbations_distinguish_most_rows(conformance: Conformance) -> None:
    """For at least 85% of valid deduction/abduction rows, a perturbed input changes f's output."""
    # Those rows get an abduction check that must be wrong. For the rest, f is constant on the three
    # perturbed inputs tried (or they raise or time out), so only checks that must be correct remain.
    valid = [
        key
        for key, row in conformance.rows.items()
        if not row.induction and conformance.validations[key]["valid"]
    ]
    assert len(conformance.undistinguished) <= 0.15 * len(valid), sorted(conformance.undistinguished)


def test_truncated_record_rows_reproduce(conformance: Conformance) -> None:
    """Rows whose records AZR truncated compare by truncated repr and reproduce (a fixed bug)."""
    for key in TRUNCATED_ROWS:
        assert any(is_truncated(output) for output in conformance.rows[key].outputs), key
        assert not conformance.failures[key], (key, conformance.failures[key])
