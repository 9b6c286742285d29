"""The HTML page of ``hpsearch report``: one self-contained file, readable offline.

No JavaScript and no external resource: figures are inline SVG drawn by matplotlib
(:mod:`.figures`, which says why static), styles are inline, and a Content-Security-Policy
forbids scripts and remote loads, so a study name or a param value that holds markup can
neither run nor fetch anything even if it slipped through. It should not slip through:
every string from the study goes through :func:`esc` here, and through matplotlib's own
escaping inside the figures.

The page reads top to bottom: verdicts, then what mattered (importances, the best trials
and their learning curves), then how the study went (history, intermediate values), then
the detail (value by choice, slice, parallel coordinate, pruning), then verify and best.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from hpsearch import __version__
from hpsearch.report.figures import effects as figure_effects
from hpsearch.report.figures import params as figure_params
from hpsearch.report.figures import svg
from hpsearch.report.figures import trials as figure_trials
from hpsearch.report.format import (
    ANY_VERIFY,
    NOT_RUN,
    OBSERVATIONAL,
    VERIFY_NOTE,
    acc,
    best_config,
    best_table,
    cell,
    effect_by_epoch_table,
    header_facts,
    how_to_read,
    interaction_rows,
    label,
    oriented,
    per_class_items,
    provenance_rows,
    pruning_table,
    records_table,
    split_unsampled,
    top_trials_table,
    verdict_rows,
    verify_command,
    verify_facts,
    verify_rows,
)
from hpsearch.space import PARAM_BY_NAME, PARAMS
from hpsearch.text import DASH, num, param_value

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# Params whose learning curves come first (the design asks for BN placement and activation).
CURVES_FIRST = ("batch_norm", "activation")
PARALLEL_AXES = 6
SLICE_PANELS = 4
CURVE_TRIALS = 5      # trials in the per-trial learning-curve figure
MORE_CURVES = 2       # further params' learning curves, most important first (each costs)

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;max-width:1000px;margin:0 auto;padding:0 16px 40px;
color:#222}
h1{font-size:22px;margin:18px 0 4px}h2{margin-top:32px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;
font-variant-numeric:tabular-nums}
.sig{font-weight:600;color:#064}.muted{color:#777}.caveat{color:#555;font-style:italic}
svg.fig{width:100%;height:auto;display:block;margin:6px 0}figcaption{color:#555;
font-size:13px}nav{position:sticky;top:0;background:#fff;padding:6px 0;
border-bottom:1px solid #eee;z-index:1}nav a{margin-right:10px}
code{background:#f4f4f4;padding:0 3px}.nw{white-space:nowrap}.cmd{overflow-wrap:anywhere}
details{margin:6px 0}
summary{cursor:pointer}
.facts th{background:none;font-weight:normal;color:#555}figure{margin:8px 0}
"""


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too: the result may go into an attribute)."""
    return html.escape(str(value), quote=True)


def render(data: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """The whole page: ``data`` is the report's JSON document, ``rows`` the trial rows."""
    h, a = data["header"], data["analysis"]
    maximize = h.get("direction") != "minimize"
    order = _importance_order(a, rows)
    sections = [
        ("questions", "Questions", _questions(a.get("answers") or [],
                                              data.get("verify") or {},
                                              a.get("interactions") or [], verify_command(data),
                                              how_to_read(data))),
        ("interactions", "Interactions", _interactions(a.get("interactions") or [])),
        ("importance", "Importance", _importance(a)),
        ("top", "Top trials", _top(rows, order, maximize)),
        ("history", "Optimization history", _history(rows, maximize)),
        ("intermediate", "Intermediate values", _intermediate(rows, maximize)),
        ("curves", "Learning curves by choice", _curves(a.get("curves") or {}, order)),
        ("distributions", "Value by choice", _distributions(rows, order, maximize)),
        ("slice", "Slice", _slice(rows, order, maximize)),
        ("parallel", "Parallel coordinate", _parallel(rows, order, maximize)),
        ("pruning", "Pruning", _pruning(a.get("pruning") or {})),
        ("verify", "Verify (paired re-runs)", _verify(data.get("verify") or {})),
        ("best", "Best config", _best(data.get("best"))),
        ("notes", "Notes", _list(a.get("notes") or [])),
    ]
    sections = [s for s in sections if s[2]]
    nav = "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{esc(title)}</h2>{page}</section>'
                   for key, title, page in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>hpsearch report: {esc(h["study_name"])}</title><style>{STYLE}</style>'
            f"</head><body>{_header(h, rows)}<nav>{nav}</nav>{body}"
            f'<footer class="muted"><p>hpsearch {esc(__version__)}, generated '
            f"{esc(data['generated'])}</p></footer></body></html>\n")


# ---------------------------------------------------------------------------- helpers


def _cell(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"<td>{esc(DASH if value is None else value)}</td>"
    return f'<td class="num">{esc(num(value))}</td>'


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    if not rows:
        return ""
    th = "".join(f"<th>{esc(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _facts(items: Sequence[tuple[str, Any]]) -> str:
    """A two-column table without a header: the name in ``<th>``, the value in ``<td>``."""
    if not items:
        return ""
    return '<table class="facts"><tbody>' + "".join(
        f"<tr><th>{esc(k)}</th>{_cell(v)}</tr>" for k, v in items) + "</tbody></table>"


def _list(items: Sequence[Any]) -> str:
    return "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in items) + "</ul>" if items else ""


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>" if svg else ""


def _importance_order(a: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Params most important first (the first evaluator's ranking), then the others that
    vary across the trials, in the search-space table's order."""
    first: list[dict[str, Any]] = next(iter((a.get("importances") or {}).values()), [])
    order = [r["param"] for r in first]
    names = {p for r in rows for p in r["params"]}
    order += [p.name for p in PARAMS if p.name in names and p.name not in order]
    return order + sorted(names - set(order))


def _categorical(name: str, values: Sequence[Any]) -> bool:
    p = PARAM_BY_NAME.get(name)
    if p is not None:
        return p.kind == "categorical"
    return any(isinstance(v, str | bool) for v in values)


# ---------------------------------------------------------------------------- header


def _header(h: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    extra = _facts(provenance_rows(h.get("provenance") or {}, rows))
    return (f"<header><h1>hpsearch report: <code>{esc(h['study_name'])}</code></h1>"
            + _facts(header_facts(h, rows))
            + (f"<details><summary>Provenance (every setting, seed, host)</summary>{extra}"
               "</details>" if extra else "") + "</header>")


# ---------------------------------------------------------------------------- answers, verify


def _questions(answers: Sequence[Mapping[str, Any]], verify: Mapping[str, Any],
               interactions: Sequence[Mapping[str, Any]] = (),
               command: str | None = ANY_VERIFY,
               reading: str = OBSERVATIONAL) -> str:
    """The verdicts table, then one collapsed block per question with its other keys."""
    answers, unsampled = split_unsampled(answers, interactions)
    if not answers:
        return (f'<p class="muted">{esc(unsampled)}</p>' if unsampled else
                '<p class="muted">No question could be answered from this study.</p>')
    cols, rows = verdict_rows(answers, verify, command)
    head = "".join(f"<th>{esc(label(k))}</th>" for k in cols)
    body = []
    for x, row in zip(answers, rows, strict=True):
        sig = ' class="sig"' if x.get("significant") else ""
        cells = []
        for k in cols:
            if k == "question":
                cells.append(f"<td>{esc(x.get('title') or x.get(k))}<br>"
                             f"<code>{esc(x.get(k))}</code></td>")
            elif k == "verdict":
                cells.append(f"<td{sig}>{esc(row[k])}</td>")
            elif k.startswith("p_"):
                cells.append(f'<td class="num">{esc(row[k])}</td>')
            elif k == "verify" and command and str(row[k]).startswith(NOT_RUN + command):
                cells.append(f"<td>{NOT_RUN}{_command(str(row[k]).removeprefix(NOT_RUN))}</td>")
            else:
                cells.append(f"<td>{esc(row[k])}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    out = [f'<table id="verdicts"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
           f'</tbody></table>'
           + (f'<p class="muted">{esc(unsampled)}</p>' if unsampled else "")
           + f'<p class="caveat">{esc(reading)}</p>']
    out.append(_answer_figures(answers))
    shown = set(cols) | {"title", "status", "significant"}
    for x in answers:
        details = _answer_details(x, shown)
        if details:
            out.append(f"<details><summary><code>{esc(x.get('question'))}</code>: "
                       f"{esc(x.get('fidelity') or x.get('status') or 'details')}</summary>"
                       f"{details}</details>")
    return "".join(out)


def _command(text: str) -> str:
    """A command line as code for a narrow cell: its options whole (a cell would break
    ``--study-name`` at its hyphens), a long path or name broken where it must be."""
    words = " ".join(f'<span class="nw">{esc(w)}</span>' if w.startswith("-") else esc(w)
                     for w in text.split(" "))
    return f'<code class="cmd">{words}</code>'


def _answer_details(x: Mapping[str, Any], shown: set[str]) -> str:
    facts = [(label(k), cell(k, v)) for k, v in x.items()
             if k not in shown and not isinstance(v, Mapping | list) and v not in (None, "")]
    out = [_facts(facts)]
    for key, value in x.items():
        if key == "effect_by_epoch":
            if value:
                out.append(f"<h3>{esc(label(key))}</h3>" + _table(
                    *effect_by_epoch_table(value, str(x.get("unit") or "pts"))))
        elif isinstance(value, list) and value and all(isinstance(r, Mapping) for r in value):
            out.append(f"<h3>{esc(label(key))}</h3>" + _table(*records_table(value)))
    return "".join(out)


def _answer_figures(answers: Sequence[Mapping[str, Any]]) -> str:
    """The effect over training of every answered question, and each numeric question's
    adjusted curve."""
    answered = [{**x, "effect_by_epoch": oriented(x.get("effect_by_epoch") or [])}
                for x in answers if x.get("status") == "answered"]
    n = max((sum(int(c.get("n") or 0) for c in x.get("choices") or []) for x in answered),
            default=0)
    out = _figure(svg.draw(figure_effects.effect_over_training, answered, name="over-training"),
                  "Effect over training: each question's headline difference, signed as its "
                  "verdict reads (the first choice named minus the second), at every epoch "
                  "all trials reached and at the end of training, with 95% pointwise bars "
                  "and band; the grey band is the equivalence margin. The verdict is the "
                  "filled point (end: every finished trial, pruned ones followed to the end); "
                  f"earlier epochs are shown, never used by it. n up to {n} trials.")
    out += _figure(svg.draw(figure_effects.adjusted_curves, answered, name="adjusted-curves"),
                   "Adjusted curves of the numeric questions: the effect of each value against "
                   "its best one, the other params held fixed (95% pointwise band; grey: the "
                   "equivalence margin).")
    return out


def _interactions(interactions: Sequence[Mapping[str, Any]]) -> str:
    """The interaction questions: a table, an interaction plot, per-level effects."""
    head, rows = interaction_rows(interactions)
    if not rows:  # those not sampled are named once, under the questions
        return ""
    out = [_table(head, rows)]
    answered = [x for x in interactions if x.get("status") == "answered"]
    out.append(_figure(svg.draw(figure_effects.interaction_plots, answered,
                                name="interactions"),
                       "Interaction plots: the effect of the first param (the contrast named "
                       "above each panel) at each level of the second, with 95% intervals; "
                       "parallel effects mean no interaction. Orange: a settled dependence."))
    for x in answered:
        out.append(f"<details><summary><code>{esc(x.get('question'))}</code>: per-level "
                   f"effects</summary>"
                   + _table(["level", f"effect ({x.get('unit') or 'pts'})", "95% low",
                             "95% high", "n"],
                            [[lv.get("level"), cell("diff", lv.get("effect")),
                              cell("diff", lv.get("ci_low")), cell("diff", lv.get("ci_high")),
                              lv.get("n")] for lv in x.get("levels") or []])
                   + f'<p class="caveat">{esc(x.get("caveat") or "")}</p></details>')
    return "".join(out)


def _verify(verify: Mapping[str, Any]) -> str:
    """One compact row per comparison (:func:`verify_rows`), how each run was made in a
    line, and each comparison's verdict in full behind a summary."""
    head, rows = verify_rows(verify)
    if not rows:
        return ""
    sentences = [(q, r.get("verdict")) for q, v in verify.items() for r in v.get("rows") or []
                 if r.get("verdict")]
    return (_table(head, rows, "verify") + _list(verify_facts(verify))
            + f'<p class="caveat">{esc(VERIFY_NOTE)}</p>'
            + ("<details><summary>Each comparison's verdict in full</summary>"
               + _list([f"{q}: {s}" for q, s in sentences]) + "</details>"
               if sentences else ""))


# ---------------------------------------------------------------------------- figures


def _importance(a: Mapping[str, Any]) -> str:
    out = []
    counts = a.get("n_trials") or {}
    n = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    for ev, rows in (a.get("importances") or {}).items():
        fig = svg.draw(figure_trials.importance, rows, ev, name=f"importance-{ev}")
        out.append(_figure(fig, f"{ev} importance (normalized to sum to 1) with 95% bootstrap "
                                "band where computed; the tick is the noise floor (the share "
                                "this evaluator gives the param on shuffled objectives, "
                                "family-wise 95%): pale bars are within noise; n="
                                f"{n} finished trials (pruned ones at the epoch all reached)."))
    agreement = a.get("importance_agreement") or {}
    if len(a.get("importances") or {}) > 1 and agreement.get("summary"):
        out.append(f"<p>Agreement between evaluators: {esc(agreement['summary'])}</p>")
        out.append(_table(["a", "b", "Kendall's tau", "params", "same top param"],
                          [(p.get("a"), p.get("b"), p.get("tau"), p.get("n_params"),
                            p.get("same_top")) for p in agreement.get("pairs") or []]))
    return "".join(out)


def _top(rows: Sequence[Mapping[str, Any]], order: Sequence[str], maximize: bool) -> str:
    head, table = top_trials_table(rows, order, maximize=maximize)
    if not table:
        return ""
    numbers = [int(str(r[1]).lstrip("#")) for r in table[:CURVE_TRIALS]]
    by_number = {r["number"]: r for r in rows}
    fig = svg.draw(figure_trials.trial_curves, [by_number[k] for k in numbers],
                      name="trial-curves")
    return (_table(head, table) + '<p class="muted">The complete trials with the best values; '
            "time is the trial's training and validation seconds; the most important params "
            "first.</p>" + _figure(fig, f"Learning curves of the {len(numbers)} best trials: "
                                        "train and validation loss, validation accuracy per "
                                        "epoch (the best epoch's weights are kept)."))


def _history(rows: Sequence[Mapping[str, Any]], maximize: bool) -> str:
    n_complete = sum(r["state"] == "COMPLETE" for r in rows)
    fig = svg.draw(figure_trials.history, rows, maximize, name="history")
    return _figure(fig, f"Value per trial; n={n_complete} complete, {len(rows) - n_complete} "
                        "pruned trials (pruned: the value at its last epoch). The axis covers "
                        "the good trials; ▼ marks trials below it.")


def _intermediate(rows: Sequence[Mapping[str, Any]], maximize: bool) -> str:
    with_values = [r for r in rows if r.get("intermediate")]
    fig = svg.draw(figure_trials.intermediate, with_values, maximize, name="intermediate")
    shown = min(len(with_values), svg.MAX_POINTS)
    return _figure(fig, f"Validation accuracy per epoch, one line per trial; {shown} of "
                        f"n={len(with_values)} trials drawn (the 40 best always). Pruned "
                        "trials stop where the pruner stopped them.")


def _curves(curves: Mapping[str, Mapping[str, Any]], order: Sequence[str]) -> str:
    """Batch norm and activation first, then the most important other questions' params:
    one figure (a figure's fixed cost is most of what it costs to draw)."""
    first = [p for p in CURVES_FIRST if p in curves]
    rest = [p for p in order if p in curves and p not in first]
    rest += [p for p in curves if p not in first and p not in rest]
    shown = {p: curves[p] for p in first + rest[:MORE_CURVES]}
    if not shown:
        return ""
    n = sum(int(c.get("n") or 0) for c in next(iter(shown.values())).values())
    left = [p for p in rest[MORE_CURVES:]]
    return _figure(svg.draw(figure_trials.curves_by, shown, name="curves"),
                   "Median and interquartile band of validation accuracy per epoch, by "
                   f"choice; n={n} trials (pruned trials drop out of later epochs, so late "
                   "epochs flatter the groups that were pruned more)."
                   + (f" Not drawn: {', '.join(left)} (in the JSON report)." if left else ""))


def _distributions(rows: Sequence[Mapping[str, Any]], order: Sequence[str],
                   maximize: bool) -> str:
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    groups = []
    for name in order:
        values = [r["params"][name] for r in complete if name in r["params"]]
        if not values or not _categorical(name, values):
            continue
        by: dict[str, list[float]] = {}
        for r in complete:
            if name in r["params"]:
                by.setdefault(repr(r["params"][name]), []).append(r["value"])
        if len(by) < 2:
            continue
        p = PARAM_BY_NAME.get(name)
        known = [repr(c) for c in p.choices] if p else []
        keys = [k for k in known if k in by] + sorted(k for k in by if k not in known)
        shown = {repr(v): param_value(name, v) for v in values}
        groups.append((name, [(shown[k], by[k]) for k in keys]))
    fig = svg.draw(figure_params.value_by_choice, groups, maximize, name="by-choice")
    n = len(complete)
    return _figure(fig, f"Value of complete trials by choice (n={n}), params most important "
                        "first: boxes are quartiles, whiskers 1.5 IQR, and a choice with at most "
                        "30 trials also shows each trial as a dot over its box. The axis covers "
                        "the good trials; a red arrowhead and the label count the trials of a "
                        "choice below it.")


def _slice(rows: Sequence[Mapping[str, Any]], order: Sequence[str], maximize: bool) -> str:
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    panels = []
    for name in order:
        pts = [(r["params"][name], r["value"]) for r in complete if name in r["params"]]
        if len(pts) < 2 or _categorical(name, [x for x, _ in pts]):
            continue
        xs = [float(x) for x, _ in pts]
        if len(set(xs)) < 2:
            continue
        p = PARAM_BY_NAME.get(name)
        log = p.log if p else (min(xs) > 0 and max(xs) / min(xs) > 100)
        panels.append((name, xs, [v for _, v in pts], log))
        if len(panels) == SLICE_PANELS:
            break
    fig = svg.draw(figure_params.slice_plot, panels, maximize, name="slice")
    return _figure(fig, f"Value against the {len(panels)} most important numeric params; one "
                        f"dot per complete trial where the param is active (n≤{len(complete)}; "
                        "at most 150 drawn per param, the 30 best always); darker = later.")


def _parallel(rows: Sequence[Mapping[str, Any]], order: Sequence[str], maximize: bool) -> str:
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    names = [n for n in order if len({repr(r["params"].get(n)) for r in complete}) > 1]
    names = names[:PARALLEL_AXES]
    if not complete or not names:
        return ""
    spec: list[tuple[str, Sequence[Any] | None, bool]] = []
    for name in names:
        values = [r["params"][name] for r in complete if name in r["params"]]
        p = PARAM_BY_NAME.get(name)
        if _categorical(name, values):
            seen = {repr(v): v for v in values}
            known = [c for c in (p.choices if p else ()) if repr(c) in seen]
            spec.append((name, known + [v for k, v in seen.items()
                                        if k not in {repr(c) for c in known}], False))
        else:
            spec.append((name, None, bool(p and p.log)))
    lines = [([r["params"].get(n) for n in names], r["value"]) for r in complete]
    fig = svg.draw(figure_params.parallel, spec, lines, maximize, name="parallel")
    return _figure(fig, f"The {len(names)} most important params and the value; one line per "
                        f"complete trial (n={len(complete)}; at most {svg.MAX_POINTS} drawn, "
                        "the best always, on top); darker blue = better; n/a = inactive.")


# ---------------------------------------------------------------------------- tables


def _pruning(pruning: Mapping[str, Any]) -> str:
    head, rows = pruning_table(pruning)
    return _facts([(r[0], r[1]) for r in rows]) if rows else ""


def _best(best: Mapping[str, Any] | None) -> str:
    if not best:
        return ""
    out = [_facts([(r[0], r[1]) for r in best_table(best)[1]])]
    config = best_config(best)
    if config:
        out.append("<h3>Config</h3>" + _table(["param", "value"],
                                              [(k, param_value(k, v)) for k, v in
                                               config.items()]))
    per_class = per_class_items(best)
    confusion = best.get("confusion")
    if not (isinstance(confusion, list) and confusion
            and all(isinstance(r, list) for r in confusion)):
        confusion = None
    fig = svg.draw(figure_trials.best_model, per_class, confusion, name="best")
    total = sum(sum(r) for r in confusion) if confusion else 0
    out.append(_figure(fig, f"Test accuracy per class ({len(per_class)} classes) and the "
                            f"confusion matrix (rows: true class; n={num(total)} test images; "
                            "colour: square root of the count)."))
    if per_class:
        out.append("<details><summary>Per-class accuracy as a table</summary>"
                   + _table(["class", "test accuracy"], [(k, acc(v)) for k, v in per_class])
                   + "</details>")
    return "".join(out)

