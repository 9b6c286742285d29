"""The HTML page of ``hpsearch report``: one self-contained file, readable offline.

No JavaScript and no external resource: figures are inline SVG (``report_svg.py``), styles
are inline, and a Content-Security-Policy forbids scripts and remote loads, so a study name
or a param value that holds markup can neither run nor fetch anything even if it slipped
through. It should not slip through: every string from the study goes through ``esc``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from hpsearch import __version__
from hpsearch.report import OBSERVATIONAL, best_config
from hpsearch.report_svg import (
    bands,
    bars_with_ci,
    box_strip,
    esc,
    fmt,
    heatmap,
    history,
    parallel,
)
from hpsearch.space import PARAM_BY_NAME, PARAMS

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# Params whose learning curves come first (the design asks for BN placement and activation).
CURVES_FIRST = ("batch_norm", "activation")
PARALLEL_AXES = 6

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;max-width:980px;margin:0 auto;padding:0 16px 40px;
color:#222}
h1{font-size:22px;margin:18px 0 4px}h2{margin-top:32px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;
font-variant-numeric:tabular-nums}
.sig{font-weight:600;color:#064}.muted{color:#777}.caveat{color:#555;font-style:italic}
.fig{max-width:100%;height:auto;display:block;margin:6px 0}figcaption{color:#555;
font-size:13px}nav a{margin-right:10px}code{background:#f4f4f4;padding:0 3px}
details{margin:6px 0}summary{cursor:pointer}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:4px 16px}
.facts th{background:none;font-weight:normal;color:#555}figure{margin:8px 0}
"""


def render(data: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """The whole page: ``data`` is the report's JSON document, ``rows`` the trial rows."""
    h, a = data["header"], data["analysis"]
    sections = [
        ("questions", "Questions", _questions(a)),
        ("importance", "Importance", _importance(a)),
        ("history", "Optimization history", _history(rows, h["direction"])),
        ("curves", "Learning curves", _curves(a.get("curves") or {})),
        ("distributions", "Value by choice", _distributions(rows)),
        ("parallel", "Parallel coordinates", _parallel(a, rows)),
        ("pruning", "Pruning", _kv_table(a.get("pruning") or {})),
        ("verify", "Verify (paired re-runs)", _verify(data.get("verify") or {})),
        ("best", "Best config", _best(data.get("best"))),
        ("notes", "Notes", _list(a.get("notes") or [])),
    ]
    sections = [s for s in sections if s[2]]
    nav = "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{esc(title)}</h2>{html}</section>'
                   for key, title, html in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>hpsearch report: {esc(h["study_name"])}</title><style>{STYLE}</style>'
            f"</head><body>{_header(h, data)}<nav>{nav}</nav>{body}"
            f'<footer class="muted"><p>hpsearch {esc(__version__)}, generated '
            f"{esc(data['generated'])}</p></footer></body></html>\n")


# ---------------------------------------------------------------------------- helpers


def _p(value: Any, prefix: str = "") -> str:
    """A p-value for a table cell (or, with ``prefix="p"``, for a sentence)."""
    if not isinstance(value, int | float):
        return "–"
    if value < 0.001:
        return f"{prefix}&lt;0.001"
    return f"{prefix}{'=' if prefix else ''}{value:.3f}"


def _cell(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, dict | list):
            return f"<td><code>{esc(json.dumps(value, default=str))}</code></td>"
        return f"<td>{esc('–' if value is None else value)}</td>"
    return f'<td class="num">{esc(fmt(value))}</td>'


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    th = "".join(f"<th>{esc(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _facts(items: Sequence[tuple[str, Any]]) -> str:
    """A two-column table without a header: the name in ``<th>``, the value in ``<td>``."""
    return '<table class="facts"><tbody>' + "".join(
        f"<tr><th>{esc(k)}</th>{_cell(v)}</tr>" for k, v in items) + "</tbody></table>"


def _kv_table(items: Mapping[str, Any]) -> str:
    return _facts(list(items.items())) if items else ""


def _list(items: Sequence[Any]) -> str:
    return "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in items) + "</ul>" if items else ""


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def _ci(d: Mapping[str, Any], key: str = "diff") -> str:
    return f"{fmt(d.get(key))} [{fmt(d.get('ci_low'))}, {fmt(d.get('ci_high'))}]"


# ---------------------------------------------------------------------------- sections


def _header(h: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    states = ", ".join(f"{n} {s.lower()}" for s, n in h["n_trials"].items()) or "none"
    best = (f"{fmt(h['best_value'])} (trial #{h['best_trial_number']})"
            if h["best_value"] is not None else "no completed trial")
    prov = dict(h.get("provenance") or {})
    settings = prov.pop("settings", None) or {}
    versions = ", ".join(f"{k.removesuffix('_version')} {prov.pop(k)}" for k in
                         ("hpsearch_version", "optuna", "torch", "python") if k in prov)
    facts = [("dataset", h.get("dataset")), ("question", h.get("question")),
             ("direction", h["direction"]), ("trials", states), ("best value", best),
             ("storage", h["storage"]), ("preset", prov.pop("preset", None)),
             ("git hash", prov.pop("git_hash", None)), ("versions", versions or None)]
    extra = _facts([*prov.items(), *(("settings." + k, v) for k, v in settings.items())])
    return (f"<header><h1>hpsearch report: <code>{esc(h['study_name'])}</code></h1>"
            + _facts([f for f in facts if f[1] is not None])
            + f"<details><summary>Provenance (settings, seed, host)</summary>{extra}"
            "</details></header>")


def _questions(a: Mapping[str, Any]) -> str:
    answers = a.get("answers") or []
    if not answers:
        return '<p class="muted">No question could be answered from this study.</p>'
    head = "".join(f"<th>{x}</th>" for x in ("question", "param", "seeds' claim", "verdict",
                                               "best", "p (Holm)"))
    rows = []
    for x in answers:
        cls = ' class="sig"' if x.get("significant") else ""
        muted = ' class="muted"'  # a nominal best without a detectable difference
        rows.append(f"<tr><td>{esc(x.get('title') or x.get('question'))}<br>"
                    f"<code>{esc(x.get('question'))}</code></td><td>{esc(x.get('param'))}</td>"
                    f"<td>{esc(x.get('seed_claim') or '')}</td>"
                    f"<td{cls}>{esc(x.get('verdict') or x.get('status') or '')}</td>"
                    f"<td{cls or muted}>"
                    f"{esc(x.get('best') if x.get('best') is not None else '–')}</td>"
                    f'<td class="num">{_p(x.get("p_holm"))}</td></tr>')
    out = [f'<table id="verdicts"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
           f'</tbody></table><p class="caveat">{esc(OBSERVATIONAL)}</p>']
    out += [_answer_details(x) for x in answers if x.get("choices")]
    return "".join(out)


def _answer_details(x: Mapping[str, Any]) -> str:
    """The groups behind one verdict: per-choice summaries and effects vs the best."""
    choices, effects = x.get("choices") or [], x.get("effects") or []
    unit = x.get("unit") or ""
    n = sum(c.get("n") or 0 for c in choices)
    test = f"{esc(x.get('test'))} {_p(x.get('p_value'), 'p')}, Holm {_p(x.get('p_holm'), 'p')}" \
        if x.get("test") else esc(x.get("status") or "")
    out = [f"<details><summary><code>{esc(x.get('question'))}</code>: {len(choices)} groups, "
           f"n={n} complete trials; {test}</summary>",
           _table(["choice", "n", "median", "top quantile", "mean"],
                  [(c.get("value"), c.get("n"), c.get("median"), c.get("top_quantile"),
                    c.get("mean")) for c in choices])]
    if effects:
        out.append(_table(["choice", "vs (best)", f"median diff ({unit})", "95% CI", "n",
                           "n vs"],
                          [(e.get("choice"), e.get("vs"), e.get("diff"),
                            f"[{fmt(e.get('ci_low'))}, {fmt(e.get('ci_high'))}]",
                            e.get("n"), e.get("n_vs")) for e in effects]))
    if x.get("caveat"):
        out.append(f'<p class="caveat">{esc(x["caveat"])}</p>')
    return "".join(out) + "</details>"


def _importance(a: Mapping[str, Any]) -> str:
    out = []
    n = (a.get("n_trials") or {}).get("COMPLETE", 0)
    for ev, rows in (a.get("importances") or {}).items():
        if not rows:
            continue
        bars = [(r["param"], r["value"] or 0.0, r.get("ci_low"), r.get("ci_high"))
                for r in rows]
        out.append(f"<h3>{esc(ev)}</h3>" + _figure(
            bars_with_ci(bars, f"importance ({ev})"),
            f"{ev} importance with 95% bootstrap CI; n={n} complete trials."))
    agreement = a.get("importance_agreement") or {}
    if len(a.get("importances") or {}) > 1 and agreement.get("summary"):
        out.append(f"<p>Agreement between evaluators: {esc(agreement['summary'])}</p>")
        pairs = agreement.get("pairs") or []
        if pairs:
            out.append(_table(["a", "b", "Kendall's tau", "params", "same top param"],
                              [(p.get("a"), p.get("b"), p.get("tau"), p.get("n_params"),
                                p.get("same_top")) for p in pairs]))
    return "".join(out)


def _history(rows: Sequence[Mapping[str, Any]], direction: str) -> str:
    if not rows:
        return ""
    points = [(r["number"], r["value"], r["state"]) for r in rows]
    n_complete = sum(r["state"] == "COMPLETE" for r in rows)
    return _figure(history(points, maximize=direction != "minimize"),
                   f"Value per trial; n={n_complete} complete, {len(rows) - n_complete} "
                   "pruned trials (pruned: value at its last epoch).")


def _curves(curves: Mapping[str, Mapping[str, Any]]) -> str:
    shown = [_curve(p, curves[p]) for p in CURVES_FIRST if p in curves]
    more = [_curve(p, c) for p, c in curves.items() if p not in CURVES_FIRST]
    out = "".join(shown)
    if any(more):
        out += (f"<details><summary>by {len([m for m in more if m])} more params</summary>"
                f'<div class="grid">{"".join(more)}</div></details>')
    return out


def _curve(param: str, curve: Mapping[str, Any]) -> str:
    groups = {g: c for g, c in curve.items() if c.get("epochs")}
    if not groups:
        return ""
    n = sum(_n(c.get("n")) for c in groups.values())
    return f"<div><h3>by {esc(param)}</h3>" + _figure(
        bands(groups, "validation accuracy"),
        f"Median and interquartile band of validation accuracy per epoch, by {param}; "
        f"n={n} trials (pruned trials drop out of later epochs).") + "</div>"


def _n(n: Any) -> int:
    if isinstance(n, list | tuple):
        return int(n[0]) if n else 0
    return int(n or 0)


def _distributions(rows: Sequence[Mapping[str, Any]]) -> str:
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    out = []
    for p in PARAMS:
        if p.kind != "categorical":
            continue
        groups: dict[Any, list[float]] = {}
        for r in complete:
            if p.name in r["params"]:
                groups.setdefault(r["params"][p.name], []).append(r["value"])
        if len(groups) < 2:
            continue
        order = [c for c in p.choices if c in groups] + [c for c in groups
                                                         if c not in p.choices]
        n = sum(len(v) for v in groups.values())
        out.append(_figure(box_strip([(str(c), groups[c]) for c in order], p.name,
                                     width=470), f"{p.name}: n={n} complete trials."))
    if not out:
        return ""
    return ('<p class="muted">Value of complete trials by choice: boxes are quartiles, '
            "whiskers 1.5 IQR, at most 150 points drawn per choice.</p>"
            f'<div class="grid">{"".join(out)}</div>')


def _parallel(a: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    importances: list[dict[str, Any]] = next(iter((a.get("importances") or {}).values()), [])
    names = [r["param"] for r in importances if r["param"] in PARAM_BY_NAME]
    if not names:  # no importance computed: the params that vary most often
        names = [p.name for p in PARAMS if len({repr(r["params"].get(p.name))
                                                for r in complete}) > 1]
    names = names[:PARALLEL_AXES]
    if not complete or not names:
        return ""
    axes = []
    for name in names:
        p = PARAM_BY_NAME[name]
        seen = {repr(r["params"][name]): r["params"][name] for r in complete
                if name in r["params"]}
        choices = ([c for c in p.choices if repr(c) in seen]
                   + [v for k, v in seen.items() if k not in {repr(c) for c in p.choices}]
                   if p.kind == "categorical" else None)
        axes.append((name, choices, p.log))
    lines = [([r["params"].get(n) for n in names], r["value"]) for r in complete]
    return _figure(parallel(axes, lines, "parallel coordinates"),
                   f"The {len(names)} most important params and the value; one line per "
                   f"complete trial, n={len(complete)}; brighter = better; n/a = inactive.")


def _verify(verify: Mapping[str, Any]) -> str:
    out = []
    for question, v in verify.items():
        rows = v.get("rows") or []
        out.append(f"<h3>{esc(question)} ({esc(v.get('param', ''))}), "
                   f"{esc(v.get('seeds', '?'))} seeds</h3>")
        out.append(_table(["baseline", "alternative", "n", "mean diff [95% CI]",
                           "p (Wilcoxon)", "P(improvement)"],
                          [(r.get("baseline"), r.get("alternative"), r.get("n"),
                            _ci(r, "mean_diff"), r.get("p_wilcoxon"),
                            r.get("p_improvement")) for r in rows]))
    if out:
        out.append('<p class="caveat">Twins of the best config that differ only in this '
                   "param, trained on the same seeds (paired): a causal answer.</p>")
    return "".join(out)


def _best(best: Mapping[str, Any] | None) -> str:
    if not best:
        return ""
    skip = ("config", "per_class", "confusion", "classes")
    out = [_kv_table({k: v for k, v in best.items() if k not in skip})]
    config = best_config(best)
    if config:
        out.append(_table(["param", "value"], list(config.items())))
    per_class = best.get("per_class")
    if isinstance(per_class, dict):
        items = list(per_class.items())
    elif isinstance(per_class, list):
        names = best.get("classes") or list(range(len(per_class)))
        items = list(zip(names, per_class, strict=False))
    else:
        items = []
    items = [(str(k), float(v)) for k, v in items if isinstance(v, int | float)]
    if items:
        out.append("<h3>Per-class accuracy</h3>" + _figure(
            bars_with_ci([(k, v, None, None) for k, v in items], "accuracy"),
            f"Test accuracy per class; {len(items)} classes."))
    confusion = best.get("confusion")
    if isinstance(confusion, list) and confusion and all(isinstance(r, list) for r in confusion):
        labels = [str(k) for k, _ in items] if len(items) == len(confusion) else \
            [str(i) for i in range(len(confusion))]
        total = sum(sum(r) for r in confusion)
        out.append("<h3>Confusion matrix</h3>" + _figure(
            heatmap(confusion, labels, "confusion matrix"),
            f"Rows: true class, columns: predicted; n={fmt(total)} test images."))
    return "".join(out)
