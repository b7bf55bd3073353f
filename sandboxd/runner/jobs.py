"""What a child runs once it is locked down. Each job kind returns an :class:`Outcome`.

- ``script``: run the program as ``__main__``.
- ``calls``: run the imports and the program, then evaluate ``f(<argument text>)`` (each call
  ``repeat`` times) and standalone expressions, reporting every result as a value through the
  canonical encoder, never through stdout. The argument and expression texts were already parsed
  and restricted on the trusted side; here they are only compiled and evaluated, inside the sandbox.
  Each result is ``("ok", value, repr_text)`` or ``("error", exception_type_name)``.
"""

from __future__ import annotations

import builtins
import types
from collections.abc import Callable

from .formal import run_formal  # the ``formal`` job: CrossHair, in the formal zygote only

TYPE_CHECKING = False  # typing itself is not imported: see child.ChildFds
if TYPE_CHECKING:
    from typing import Any

_type = type
_issubclass = issubclass
_type_name = type.__dict__["__name__"].__get__
_compile = compile
_CodeType = types.CodeType
_exec = exec
_eval = eval
_repr = repr
_REPR_CAP = 1 << 20
_builtins_module = builtins
_BUILTIN_EXCEPTIONS = frozenset(
    value for value in vars(builtins).values() if isinstance(value, type) and issubclass(value, BaseException)
)


class Outcome:
    """How the job ended, before encoding into the result frame. (A plain class: see child.ChildFds.)"""

    __slots__ = ("exc_builtin", "exc_type", "exit_code", "outcome", "probe_namespace", "values")

    def __init__(  # noqa: PLR0917 - one argument per field, as a dataclass would take them
        self,
        outcome: str = "ok",  # ok | exception | exit
        exc_type: str | None = None,
        exc_builtin: bool = False,
        exit_code: int = 0,
        values: list[Any] | None = None,
        probe_namespace: dict[str, Any] | None = None,  # set when the job asks for probes (``probe_results``)
    ) -> None:
        self.outcome = outcome
        self.exc_type = exc_type
        self.exc_builtin = exc_builtin
        self.exit_code = exit_code
        self.values: list[Any] = [] if values is None else values
        self.probe_namespace = probe_namespace


def describe_exception(exc: BaseException) -> Outcome:
    """Classify an exception without calling any of its methods."""
    cls = _type(exc)
    name = _type_name(cls)
    if _type(name) is not str:
        name = "?"
    if cls is SystemExit:
        code = exc.code  # type: ignore[attr-defined]  # cls is exactly SystemExit
        exit_code = code if _type(code) is int else (0 if code is None else 1)
        return Outcome(outcome="exit", exc_type=name, exc_builtin=True, exit_code=exit_code)
    if _issubclass(cls, MemoryError):  # numpy's _ArrayMemoryError and friends: the limit was hit
        return Outcome(outcome="exception", exc_type="MemoryError", exc_builtin=True, exit_code=1)
    return Outcome(outcome="exception", exc_type=name, exc_builtin=cls in _BUILTIN_EXCEPTIONS, exit_code=1)


def _code(compiled: Any, source: str, name: str, mode: str) -> Any:
    """The daemon's code object for ``compile(source, name, mode)`` (sandboxd/bytecode.py), else that compile.

    The code object comes from the trusted side with the source, inside the job's marshal; where it
    is missing (or is anything but a code object), the source is compiled here exactly as it would
    have been without it.
    """
    if _type(compiled) is _CodeType:
        return compiled
    return _compile(source, name, mode)


def _nth(table: Any, key: str, index: int) -> Any:
    """``table[key][index]`` of a ``calls`` job's bytecode table, or None."""
    column = table.get(key) if _type(table) is dict else None
    return column[index] if _type(column) is list and index < len(column) else None


def bytecode_field(job: dict[str, Any], compile_text: Callable[[Any, str, str], Any]) -> Any:
    """The ``bytecode`` field that :func:`_code` reads back for ``job``, from ``compile_text(text, name,
    mode)`` (None where the child compiles the text itself); None for other kinds.

    ``script``: one string. ``calls``: a table by field, position for position (``imports``,
    ``program``, ``calls``, ``expressions`` with their own ``imports`` and ``text``, ``probes``); call
    and probe texts as the child builds them, ``<entry>(<arguments>)``. Built by the daemon
    (sandboxd/bytecode.py) and by the fork-server's warm-up (child.py).
    """
    kind = job.get("kind")
    if kind == "script":
        return compile_text(job.get("code"), "<program>", "exec")
    if kind != "calls":
        return None
    entry = str(job.get("entry", "f"))

    def lines(texts: Any) -> list[Any]:
        return [compile_text(line, "<imports>", "exec") for line in texts] if _type(texts) is list else []

    def calls(texts: Any, name: str) -> list[Any]:
        if _type(texts) is not list:
            return []
        return [
            compile_text(entry + "(" + text + ")" if _type(text) is str else None, name, "eval")
            for text in texts
        ]

    return {
        "imports": lines(job.get("imports")),
        "program": compile_text(job.get("program"), "<program>", "exec"),
        "calls": calls(job.get("calls"), "<input>"),
        "expressions": [
            {
                "imports": lines(item.get("imports")),
                "text": compile_text(item.get("text"), "<expression>", "eval"),
            }
            if _type(item) is dict
            else {}
            for item in job.get("expressions") or []
        ],
        "probes": calls(job.get("probes"), "<probe>"),
    }


def _script_code(job: dict[str, Any]) -> Any:
    return _code(job.get("bytecode"), job["code"], "<program>", "exec")


def run_script(job: dict[str, Any]) -> Outcome:
    """Execute ``job["code"]`` as the ``__main__`` module (from the daemon's bytecode when it sent it)."""
    code = _script_code(job)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": _builtins_module}
    _exec(code, namespace)
    return Outcome()


def _result(code: Any, namespace: dict[str, Any]) -> tuple[Any, ...]:
    """Evaluate once; never lets an exception (even SystemExit) escape."""
    try:
        value = _eval(code, namespace)
    except BaseException as exc:
        return ("error", describe_exception(exc).exc_type)
    return reported(value)


def reported(value: Any) -> tuple[Any, ...]:
    """A value as a ``calls`` job reports it: ``("ok", value, repr_text)``. The daemon builds the same
    tuple for a literal answer it reads itself (``sandboxd.azr.check``), so both take one encoding."""
    try:
        text = _repr(value)
    except BaseException:
        return ("ok", value, None)
    if _type(text) is not str:
        return ("ok", value, None)
    if len(text) > _REPR_CAP:  # keep both ends: AZR's truncation compares the first and last 200
        text = text[: _REPR_CAP - 1024] + text[-1024:]
    return ("ok", value, text)


def _namespace(imports: list[str], program: str | None, table: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": _builtins_module}
    for index, line in enumerate(imports):
        _exec(_code(_nth(table, "imports", index), line, "<imports>", "exec"), namespace)
    if program:
        blob = table.get("program") if _type(table) is dict else None
        _exec(_code(blob, program, "<program>", "exec"), namespace)
    return namespace


def run_calls(job: dict[str, Any]) -> Outcome:
    """Run ``program`` once, then each call and each expression; report results as values."""
    table = job.get("bytecode")
    namespace = _namespace(job.get("imports", []), job.get("program"), table)
    entry = job.get("entry", "f")
    results: list[Any] = []
    for index, arguments in enumerate(job.get("calls", [])):
        code = _code(_nth(table, "calls", index), entry + "(" + arguments + ")", "<input>", "eval")
        for _ in range(int(job.get("repeat", 1))):
            results.append(_result(code, namespace))
    for index, expression in enumerate(job.get("expressions", [])):
        own = _nth(table, "expressions", index)
        own = own if _type(own) is dict else {}
        try:
            scope = _namespace(expression.get("imports", []), None, own)
            code = _code(own.get("text"), expression["text"], "<expression>", "eval")
        except BaseException as exc:
            results.append(("error", describe_exception(exc).exc_type))
            continue
        results.append(_result(code, scope))
    return Outcome(values=results, probe_namespace=namespace if job.get("probes") else None)


def probe_results(job: dict[str, Any], namespace: dict[str, Any]) -> Any:
    """Yield ``f(<probe>)`` for each of the job's ``probes``, once each, after the result frame is written.

    Probes feed only the output signature (docs/azr.md); a result is ``("ok", value)`` (no repr) or
    ``("error", exception_type_name)``.
    """
    entry = job.get("entry", "f")
    table = job.get("bytecode")
    for index, arguments in enumerate(job.get("probes", [])):
        try:
            code = _code(_nth(table, "probes", index), entry + "(" + arguments + ")", "<probe>", "eval")
            value = _eval(code, namespace)
        except BaseException as exc:  # model code may raise anything, SystemExit included
            yield ("error", describe_exception(exc).exc_type)
            continue
        yield ("ok", value)


JOB_KINDS: dict[str, Callable[[dict[str, Any]], Outcome]] = {
    "script": run_script,
    "calls": run_calls,
    "formal": run_formal,
}
