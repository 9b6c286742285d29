"""The text formats of ``hpsearch report``: Markdown, the dashboard note, the terminal summary.

Each takes the report's JSON document (``data``, see ``hpsearch.report``) and, for the
Markdown page, the trial rows. The verdicts (``analysis["answers"]``) and the verify
results each have one function per format here (:func:`answers_md`, :func:`verify_md`,
:func:`note_answers`, :func:`summary_table`); all of them take the verdicts table from
:func:`.format.verdict_rows` and render whatever other keys an entry holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from hpsearch.report.format import (
    ANY_VERIFY,
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
    p_value,
    per_class_items,
    provenance_rows,
    pruning_table,
    records_table,
    split_unsampled,
    states_text,
    top_trials_table,
    trainability_text,
    verdict_rows,
    verify_command,
    verify_facts,
    verify_rows,
)
from hpsearch.text import DASH, num, param_value, plain


def md(value: Any) -> str:
    """Markdown text (a table cell): no pipes, no newlines, no raw HTML, no links.

    Only a ``<`` that could open a tag or an autolink (a letter, ``/``, ``!`` or ``?``
    after it) is escaped, so ``<0.001`` and ``a < b`` stay readable and ``<script>`` is
    text. A ``]`` that could close a link or an image (``](``, ``][``, ``]:``) is escaped,
    and so is every backslash first (it could cancel that escape), so study text such as
    ``[x](javascript:...)`` or ``![x](http://...)`` renders as the text it is.
    """
    text = value if isinstance(value, str) else num(value)
    text = text.replace("\\", "\\\\").replace("&", "&amp;")
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)
    text = re.sub(r"\](?=\s*[(\[:])", "\\\\]", text)
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", " ", text)  # escape codes
    return text.replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return []
    head = list(head) or [""] * len(rows[0])
    out = ["| " + " | ".join(md(h) for h in head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]


# ---------------------------------------------------------------------------- answers, verify


def answers_md(answers: Sequence[Mapping[str, Any]], verify: Mapping[str, Any],
               interactions: Sequence[Mapping[str, Any]] = (),
               command: str | None = ANY_VERIFY,
               reading: str = OBSERVATIONAL) -> list[str]:
    """The verdicts table and, per question, its other keys (choices, effects, caveat)."""
    answers, unsampled = split_unsampled(answers, interactions)
    if not answers:
        return [md(unsampled)] if unsampled else [
            "No question could be answered from this study."]
    cols, rows = verdict_rows(answers, verify, command)
    out = table([label(k) for k in cols], [[r[k] for k in cols] for r in rows])
    if unsampled:
        out += ["", md(unsampled)]
    out += ["", f"> {md(reading)}"]
    for a in answers:
        details = _answer_details(a, set(cols) | {"title", "status", "significant"})
        if details:
            out += ["", f"### {md(a.get('title') or a.get('question'))}", "", *details]
    return out


def _answer_details(a: Mapping[str, Any], shown: set[str]) -> list[str]:
    facts = [(label(k), cell(k, v)) for k, v in a.items()
             if k not in shown and not isinstance(v, Mapping | list) and v not in (None, "")]
    out = [f"- {md(k)}: {md(v)}" for k, v in facts]
    for key, value in a.items():
        if key == "effect_by_epoch":
            if value:
                out += ["", f"{md(label(key))} (95% pointwise; the verdict is the last row):",
                        "", *table(*effect_by_epoch_table(value, str(a.get("unit") or "pts")))]
        elif isinstance(value, list) and value and all(isinstance(r, Mapping) for r in value):
            out += ["", f"{md(label(key))}:", "", *table(*records_table(value))]
    return out


def interactions_md(interactions: Sequence[Mapping[str, Any]]) -> list[str]:
    """The interaction questions: one table, then each answered one's per-level effects."""
    head, rows = interaction_rows(interactions)
    out = table(head, rows)  # those not sampled are named once, under the questions
    for x in interactions:
        if x.get("status") != "answered":
            continue
        effect_of = (x.get("contrast") or {}).get("effect_of", "")
        out += ["", f"### {md(x.get('question'))}: effect of {md(effect_of)} by "
                f"{md((x.get('params') or ['', ''])[1])}", ""]
        out += table(["level", f"effect ({x.get('unit') or 'pts'})", "95% interval", "n"],
                     [[lv.get("level"), cell("diff", lv.get("effect")),
                       f"[{cell('diff', lv.get('ci_low'))}, {cell('diff', lv.get('ci_high'))}]",
                       lv.get("n")] for lv in x.get("levels") or []])
        if x.get("caveat"):
            out += ["", md(x["caveat"])]
    return out


def verify_md(verify: Mapping[str, Any]) -> list[str]:
    """``hpsearch verify`` results: one compact row per comparison, one line per run."""
    head, rows = verify_rows(verify)
    if not rows:
        return []
    return ["", *table(head, rows), "", *[f"- {md(x)}" for x in verify_facts(verify)], "",
            md(VERIFY_NOTE)]


def aligned(head: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "") -> list[str]:
    """A table for a terminal: columns padded to their widest cell, study text made plain."""
    cells = [[plain(c if isinstance(c, str) else num(c)) for c in r] for r in [head, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in cells]


def note_answers(answers: Sequence[Mapping[str, Any]], verify: Mapping[str, Any],
                 command: str | None = ANY_VERIFY) -> list[str]:
    """The verdicts for the dashboard note: question, verdict, p (Holm), verify."""
    cols, rows = verdict_rows(split_unsampled(answers)[0], verify, command)
    cols = [k for k in cols if k not in ("seed_claim", "needed")]
    return table([label(k) for k in cols], [[r[k] for k in cols] for r in rows])


def dashboard_tables(data: Mapping[str, Any]) -> list[tuple[str, str, list[str], list[list[Any]]]]:
    """The tables for the study's page in optuna-dashboard: (graph id, title, head, rows).

    The verdicts with each question's verify result beside it, and the ``best`` results.
    """
    answers, _ = split_unsampled(data["analysis"].get("answers") or [])
    cols, rows = verdict_rows(answers, data.get("verify") or {}, verify_command(data))
    # The dashboard's card is half a page wide: what would settle an open question is in the
    # note and the report, not in a column that would squeeze the verdicts' words.
    cols = [k for k in cols if k not in ("seed_claim", "needed")]
    out = [("hpsearch-verdicts", f"hpsearch verdicts ({data['generated']})",
            [label(k) for k in cols], [[r[k] for k in cols] for r in rows])]
    best = data.get("best")
    if best:
        head, best_rows = best_table(best)
        out.append(("hpsearch-best", "hpsearch best (retrained, test set)", ["", "value"],
                    best_rows))
    return out


def summary_table(data: Mapping[str, Any]) -> str:
    """The questions and their verdicts, aligned for a terminal (printed in every format)."""
    h = data["header"]
    best = (f"best {acc(h['best_value'])} (trial #{h['best_trial_number']})"
            if h["best_value"] is not None else "no completed trial")
    lines = [f"study {plain(h['study_name'])}: {states_text(h['n_trials'])}; {best}"]
    rows = [("question", "param", "verdict", "p (Holm)")]
    answers, unsampled = split_unsampled(data["analysis"].get("answers", []),
                                         data["analysis"].get("interactions") or [])
    for a in answers:
        failing = trainability_text(a) if a.get("verdict") else ""
        rows.append((plain(a.get("question")), plain(a.get("param")),
                     plain(a.get("verdict") or a.get("status") or "")
                     + (f"; {plain(failing)}" if failing else ""),
                     p_value(a.get("p_holm"))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True))
                     + "  " + r[3])
    if unsampled:
        lines.append(plain(unsampled))
    for x in data["analysis"].get("interactions") or []:
        if x.get("status") == "answered":
            lines.append(f"interaction {plain(x.get('question'))}: {plain(x.get('verdict'))}")
    head, verify = verify_rows(data.get("verify") or {})
    if verify:
        lines.append("verify (paired re-runs on the test set; shift and interval in test "
                     "accuracy points, each interval at its Holm level):")
        lines += aligned(head, verify, "  ")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- documents


def notes_markdown(data: Mapping[str, Any]) -> str:
    """The study note optuna-dashboard shows: verdicts, verify and best results."""
    h = data["header"]
    lines = [f"## hpsearch report ({data['generated']})", "",
             f"best value {acc(h['best_value'])} (trial #{h['best_trial_number']}); "
             f"trials: {md(states_text(h['n_trials']))}", ""]
    lines += note_answers(data["analysis"].get("answers", []), data.get("verify") or {},
                          verify_command(data))
    lines += verify_md(data.get("verify") or {})
    best = data.get("best")
    if best:
        lines += ["", "### Best config (`hpsearch best`)", ""] + table(*best_table(best))
    lines += ["", "The full report (figures, importances, learning curves) is the study's "
              "`report.html` artifact."]
    return "\n".join(lines) + "\n"


def markdown(data: Mapping[str, Any], rows: Sequence[Mapping[str, Any]] = ()) -> str:
    """The same findings as the HTML page, as Markdown (a terminal or a PR comment)."""
    h, a = data["header"], data["analysis"]
    maximize = h.get("direction") != "minimize"
    lines = [f"# hpsearch report: {md(h['study_name'])}", ""]
    lines += [f"- {md(k)}: {md(v)}" for k, v in header_facts(h, rows)]
    lines += ["", "## Questions", "", *answers_md(a.get("answers", []),
                                                  data.get("verify") or {},
                                                  a.get("interactions") or [],
                                                  verify_command(data), how_to_read(data))]
    if any(x.get("status") != "not_sampled" for x in a.get("interactions") or []):
        lines += ["", "## Interactions", "", *interactions_md(a["interactions"])]
    for ev, imp in (a.get("importances") or {}).items():
        lines += ["", f"## Importance ({md(ev)})", ""]
        lines += table(["param", "importance", "95% band", "noise floor", "above noise"],
                       [(r["param"], num(r["value"], 3),
                         f"[{num(r.get('ci_low'), 3)}, {num(r.get('ci_high'), 3)}]",
                         num(r.get("noise"), 3),
                         {True: "yes", False: "no"}.get(r.get("above_noise"), DASH))
                        for r in imp])
    agreement = (a.get("importance_agreement") or {}).get("summary")
    if agreement and len(a.get("importances") or {}) > 1:
        lines += ["", f"Agreement between evaluators: {md(agreement)}"]
    order = [r["param"] for r in next(iter((a.get("importances") or {}).values()), [])]
    top = top_trials_table(rows, order, maximize=maximize)
    if top[1]:
        lines += ["", "## Top trials", "", *table(*top)]
    pruning = table(*pruning_table(a.get("pruning") or {}))
    if pruning:
        lines += ["", "## Pruning", "", *pruning]
    verify = verify_md(data.get("verify") or {})
    if verify:
        lines += ["", "## Verify (paired re-runs)", *verify]
    best = data.get("best")
    if best:
        lines += ["", "## Best config", "", *table(*best_table(best)), ""]
        lines += table(["param", "value"], [(k, param_value(k, v))
                                            for k, v in best_config(best).items()])
        per_class = per_class_items(best)
        if per_class:
            lines += ["", *table(["class", "test accuracy"],
                                 [(k, acc(v)) for k, v in per_class])]
    if a.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {md(n)}" for n in a["notes"]]
    prov = provenance_rows(h.get("provenance") or {}, rows)
    if prov:
        lines += ["", "## Provenance", "", *table(["", "value"], prov)]
    return "\n".join(lines) + "\n"
