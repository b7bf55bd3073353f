"""Render a scorecard dict as one self-contained HTML page: inline CSS and SVG, no scripts, no links out.

Every value from the ledger is escaped with ``html.escape`` before it reaches the page: program texts,
rule names and task types were written by models or by whoever can write the ledger. The page also carries
a Content-Security-Policy that forbids scripts and every external load, as a second line of defence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from . import svg
from .stats import BANDS

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CSS = """
body{font-family:sans-serif;margin:2em auto;max-width:980px;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.6em;overflow:auto;max-height:22em;font-size:.85em}
.flag{background:#d62728;color:#fff;padding:.1em .5em;border-radius:3px}
.ok{background:#2ca02c;color:#fff;padding:.1em .5em;border-radius:3px}
.mono{font-family:monospace;word-break:break-all}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return _e(value)


def _pct(value: Any) -> str:
    return "\u2013" if value is None else f"{100 * float(value):.1f}%"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _volume(card: Mapping[str, Any]) -> str:
    base, cur = card["volume"]["baseline"], card["volume"]["current"]
    types = sorted({*base, *cur})
    empty = {"proposed": 0, "validity_rate": None, "checked": 0, "solve_rate": None}
    rows = [
        [_e(t), _num(base.get(t, empty)["proposed"]), _num(cur.get(t, empty)["proposed"]),
         _pct(base.get(t, empty)["validity_rate"]), _pct(cur.get(t, empty)["validity_rate"]),
         _num(base.get(t, empty)["checked"]), _num(cur.get(t, empty)["checked"]),
         _pct(base.get(t, empty)["solve_rate"]), _pct(cur.get(t, empty)["solve_rate"])]
        for t in types
    ]  # fmt: skip
    headers = ["task type", "proposed (base)", "proposed (cur)", "valid (base)", "valid (cur)",
               "checked (base)", "checked (cur)", "solved (base)", "solved (cur)"]  # fmt: skip
    chart = svg.bar_chart(
        "Validity and solve rates, current window",
        types,
        [("validity", [cur.get(t, empty)["validity_rate"] for t in types]),
         ("solve", [cur.get(t, empty)["solve_rate"] for t in types])],
    )  # fmt: skip
    return "<h2>Volume, validity and solve rates per task type</h2>" + _table(headers, rows) + chart


def _watchdog(card: Mapping[str, Any]) -> str:
    cur = card["watchdog"]["current"]
    rules = cur["rules"]
    rows = [
        [_e(r), _num(v["veto"]), _num(v["warn"]), _num(v["audit"]), _pct(v["veto_rate"])]
        for r, v in rules.items()
    ]
    out = "<h2>Watchdog: veto rate per rule (current window)</h2>"
    out += (
        f"<p>{_num(cur['screened'])} screened, {_num(cur['vetoed'])} vetoed ({_pct(cur['veto_rate'])}), "
        f"{_num(cur['warned'])} warned; baseline veto rate {_pct(card['watchdog']['baseline']['veto_rate'])}.</p>"
    )
    out += _table(["rule", "vetoes", "warnings", "audits", "veto rate"], rows)
    names = list(rules)[:12]
    out += svg.bar_chart("Veto rate per rule", names, [("veto rate", [rules[r]["veto_rate"] for r in names])])
    trip = card["tripwires"]
    out += f"<h2>Tripwire events</h2><p>{_num(trip['total'])} in the whole ledger.</p>"
    out += _table(["rule", "events"], [[_e(r), _num(n)] for r, n in trip["by_rule"].items()])
    out += _table(
        ["seq", "time", "rule"],
        [[_num(t["seq"]), _e(t["time"]), _e(t["rule"])] for t in trip["recent"]],
        left=3,
    )
    history = card["throttle"]["history"]
    out += "<h2>Throttle band history</h2>"
    out += svg.step_chart("Throttle band per change", [h["level"] for h in history], BANDS)
    out += _table(
        ["seq", "time", "band", "confidence"],
        [[_num(h["seq"]), _e(h["time"]), _e(h["band"]), _num(h["confidence"])] for h in history[-20:]],
        left=3,
    )
    return out


def _trends(card: Mapping[str, Any]) -> str:
    t = card["trends"]
    out = "<h2>Complexity and diversity trends</h2>"
    out += f"<p>The proposals in seq order, in {len(t)} equal runs.</p>"
    out += svg.line_chart(
        "Median cyclomatic complexity", [("cyclomatic", [b["cyclomatic_median"] for b in t])], lo=0
    )
    out += svg.line_chart(
        "Median Halstead volume", [("volume", [b["halstead_volume_median"] for b in t])], lo=0
    )
    out += svg.line_chart(
        "Diversity",
        [("distinct (near-dup groups / items)", [b["distinct_rate"] for b in t]),
         ("family entropy", [b["family_entropy"] for b in t])],
        lo=0, hi=1,
    )  # fmt: skip
    comp = card["complexity"]
    rows = [
        [_e(m), _num(comp["baseline"][m]["median"]), _num(comp["current"][m]["median"]),
         _num(comp["baseline"][m]["p90"]), _num(comp["current"][m]["p90"])]
        for m in comp["current"]
    ]  # fmt: skip
    out += _table(["metric", "median (base)", "median (cur)", "p90 (base)", "p90 (cur)"], rows)
    div = card["diversity"]
    keys = list(div["current"])
    out += _table(
        ["diversity", "baseline", "current"],
        [[_e(k), _num(div["baseline"][k]), _num(div["current"][k])] for k in keys],
    )
    nov = card["novelty"]
    out += f"<p>Novelty against the baseline: mean {_num(nov['mean'])}, novel share {_pct(nov['novel_rate'])}.</p>"
    return out


def _drift(card: Mapping[str, Any]) -> str:
    d = card["drift"]
    badge = '<span class="flag">DRIFT</span>' if d["flagged"] else '<span class="ok">no drift</span>'
    out = f"<h2>Drift against the baseline window</h2><p>Score <b>{_num(d['score'])}</b> {badge}"
    out += f" {_e(d['reason'])}</p>" if d["reason"] else "</p>"
    out += _table(
        ["test", "statistic", "noise floor / critical", "p-value", "component"],
        [["family shares (JS distance)", _num(d["family_js"]), _num(d["family_null_floor"]), "\u2013", _num(d["family_component"])]]
        + [[f"KS {_e(m)}", _num(v["statistic"]), _num(v["critical"]), _num(v["p_value"]), _num(v["component"])]
           for m, v in d["metrics"].items()],
    )  # fmt: skip
    return out


def _families(card: Mapping[str, Any]) -> str:
    out = "<h2>Task families, ranked by growth in share</h2>"
    fams = card["families"]
    out += svg.bar_chart(
        "Family share: baseline vs current",
        [f["name"].split(":")[0] for f in fams],
        [("baseline", [f["baseline_share"] for f in fams]), ("current", [f["current_share"] for f in fams])],
    )
    for f in fams:
        out += (
            f"<h3>{_e(f['name'])}</h3><p>share {_pct(f['baseline_share'])} \u2192 {_pct(f['current_share'])} "
            f"(growth {_num(100 * f['growth'])} points), {_num(f['distinct_programs'])} distinct programs, "
            f'novelty {_num(f["novelty"])}. Top features: <span class="mono">'
            f"{_e(', '.join(f['top_features']))}</span></p>"
        )
        if f.get("ref"):
            out += (
                f'<p>Ledger entries: <span class="mono">GET {_e(f["entries_url"])}</span> '
                f'(family ref <span class="mono">{_e(f["ref"])}</span>)</p>'
            )
        out += "".join(f"<pre><code>{_e(p)}</code></pre>" for p in f["examples"])
    return out


def _merkle(card: Mapping[str, Any]) -> str:
    m = card["merkle"]
    out = "<h2>Merkle root and checkpoint</h2>"
    out += f'<p>Tree size {_num(m["tree_size"])}, root <span class="mono">{_e(m["root_hash"])}</span>'
    out += f", {_num(m['unsigned_entries'])} entries after the latest checkpoint.</p>"
    cp = m["latest_checkpoint"]
    if cp is None:
        out += "<p>No checkpoint yet.</p>"
    else:
        ok = (
            '<span class="ok">matches the entries</span>'
            if cp["matches_entries"]
            else '<span class="flag">DOES NOT MATCH the entries</span>'
        )
        out += f"<p>Latest checkpoint at size {_num(cp['tree_size'])}, {_e(cp['timestamp'])}: {ok}</p>"
        out += f"<pre>{_e(cp['note'])}</pre>"
    v = m["verify"]
    if v is not None:
        verdict = (
            '<span class="ok">verifies</span>'
            if v["ok"]
            else f'<span class="flag">FAILS</span> {_e(v["reason"])}'
        )
        out += f"<p><code>sandboxd ledger verify</code> (recorded key): {verdict}</p>"
    return out


def _sampling(card: Mapping[str, Any]) -> str:
    """A note when the curriculum sections were estimated from samples (sandboxd/curriculum/sampling.py)."""
    sampling = card.get("sampling") or {}
    if not sampling.get("applied"):
        return ""
    parts = [
        f"{_e(name)} {_num(s['analysed'])} of {_num(s['proposals'])}"
        for name, s in sampling.items()
        if isinstance(s, Mapping) and s["analysed"] < s["proposals"]
    ]
    return (
        f"<p>Sampled: complexity, diversity, families, novelty, drift and trends are estimated from uniform "
        f"samples of at most {_num(sampling['cap'])} proposals per window ({'; '.join(parts)} analysed); "
        "counts and rates of volume, the watchdog, tripwires and the throttle are exact.</p>"
    )


def render_html(card: Mapping[str, Any]) -> str:
    """The scorecard as a standalone HTML document."""
    w, ledger = card["windows"], card["ledger"]
    window_rows = [
        [_e(name), _e(s["spec"]), _num(s["entries"]), _num(s["first_seq"]), _num(s["last_seq"]), _e(s["start_time"]), _e(s["end_time"])]
        for name, s in w.items()
    ]  # fmt: skip
    head = (
        f"<h1>Alignment scorecard</h1><p>Generated {_e(card['generated_at'])} from "
        f'<span class="mono">{_e(ledger["source"] or ledger["origin"])}</span> (origin {_e(ledger["origin"])}): '
        f"{_num(ledger['entries'])} entries, {_num(ledger['malformed_entries'])} malformed.</p>"
        + _table(["window", "spec", "entries", "first seq", "last seq", "from", "to"], window_rows, left=2)
        + _sampling(card)
    )
    sections = [
        head,
        _drift(card),
        _volume(card),
        _watchdog(card),
        _trends(card),
        _families(card),
        _merkle(card),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>sandboxd scorecard {_e(card['generated_at'])}</title><style>{CSS}</style></head><body>"
        + "".join(sections)
        + "</body></html>\n"
    )
