"""What verify found: one row per comparison, and the stored result per question."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpsearch import schema
from hpsearch.analysis import (
    ALPHA,
    FAILURE_MARGIN,
    MIN_EFFECT,
    POWER,
    PairedStats,
    seeds_needed,
)
from hpsearch.objectives import Params
from hpsearch.replay import now_iso
from hpsearch.schema import DIFFERENCE, EQUIVALENT, OPEN
from hpsearch.space import INTERACTION_BY_ID, QUESTION_BY_ID, TrialConfig, Value
from hpsearch.storage import SavedResult, save_result
from hpsearch.text import param_value, plural

# ---------------------------------------------------------------------------- result


def _fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


@dataclass
class VerifyRow:
    """One pair of twins of one top trial: the baseline vs one alternative value."""

    question: str
    trial_number: int
    rank: int                        # 0: the study's best trial
    param: str
    trial_value: Value               # the trial's own value of the param
    baseline: Value
    alternative: Value
    baseline_accs: list[float]       # test accuracy per seed (fractions)
    alternative_accs: list[float]
    baseline_config: TrialConfig | Params   # Params: a user's objective's (verify.own)
    alternative_config: TrialConfig | Params
    stats: PairedStats
    p_holm: float = float("nan")
    significant: bool = False
    settled: str = OPEN              # DIFFERENCE | EQUIVALENT | OPEN (hpsearch.schema)
    margin: float = MIN_EFFECT       # test-accuracy points an equivalence is claimed within
    p_sequential: float = float("nan")  # what Holm adjusted (hpsearch.analysis.seeds.sequential)
    looks: int = 1                   # looks this comparison reached before it stopped
    # An interaction row (kind "interaction"): params (A, B); baseline/alternative are B's
    # two levels, the *_accs are A's per-seed effect (a1 - a0) at each, so alternative -
    # baseline is the interaction contrast; a_levels are A's (a0, a1); cells[(i, j)] holds
    # the per-seed test accuracies of A = a_i, B = b_j.
    kind: str = "main"
    params: tuple[str, str] | None = None
    a_levels: tuple[Value, Value] | None = None
    cells: dict[tuple[int, int], tuple[TrialConfig, list[float]]] = field(default_factory=dict)
    # A user's objective: whether higher is better, and the conditional params a twin
    # needed that its trial lacked ({param: "3 (from trial #7, the best that has it)"}).
    maximize: bool = True
    filled: dict[str, str] = field(default_factory=dict)
    # Failures to learn (test accuracy at chance: hpsearch.analysis.discordant). ``stats``
    # is over the seeds where both twins learned; n_seeds counts every seed used.
    n_seeds: int = -1                # -1: stats.n (no failure information)
    failed_base: int = 0             # seeds on which the baseline twin never learned
    failed_alt: int = 0
    only_base: int = 0               # of them, seeds on which the other twin learned
    only_alt: int = 0
    # The failures' own state: "difference" (exact McNemar, Holm), "equivalent" (their
    # interval inside ±FAILURE_MARGIN), "open"; "none": no failure information (no chance
    # level: a user's objective). An equivalent row needs both its accuracy and its failures
    # equivalent (hpsearch.analysis.discordant.gate); ``accuracy_settled`` is the accuracy's
    # own state ("": as ``settled``, rows stored before it was kept apart).
    failures: str = "none"
    p_failures: float = 1.0
    failures_low: float = -1.0       # alternative's failure rate - baseline's (fractions)
    failures_high: float = 1.0
    failures_seeds: int = 0          # about how many seeds would settle the failures; 0: not
                                     # asked (settled or unknown); -1: no seed count would
    accuracy_settled: str = ""

    @property
    def seeds_used(self) -> int:
        return self.stats.n if self.n_seeds < 0 else self.n_seeds

    def means(self) -> tuple[str, str]:
        """The table's "base" and "alt" cells: each twin's mean test accuracy, or for an
        interaction row A's mean effect (test-accuracy points) at B's two levels."""
        if self.kind == "interaction":
            return (f"{100 * np.mean(self.baseline_accs):+.2f} pts",
                    f"{100 * np.mean(self.alternative_accs):+.2f} pts")
        return f"{np.mean(self.baseline_accs):.4f}", f"{np.mean(self.alternative_accs):.4f}"

    def failure_text(self) -> str:
        """``best trial #3 with activation switched to sigmoid never learned on 1 of 16
        seeds, best trial #3 as found on 0``; empty when no twin failed."""
        if not self.failed_base and not self.failed_alt:
            return ""
        who = ("a cell of " if self.kind == "interaction" else "")
        return (f"{who}{self.label(self.alternative)} never learned on {self.failed_alt} of "
                f"{self.seeds_used} seeds, {who}{self.label(self.baseline)} on "
                f"{self.failed_base}")

    def effect(self) -> str:
        """``effect of dropout (0 -> 0.3)``: what an interaction row's accuracies measure."""
        assert self.params is not None and self.a_levels is not None
        pa, (a0, a1) = self.params[0], self.a_levels
        return f"effect of {pa} ({param_value(pa, a0)} -> {param_value(pa, a1)})"

    def contrast_label(self) -> str:
        """``effect of dropout (0 -> 0.3) with relu minus with sigmoid`` (interaction rows)."""
        return (f"{self.effect()} with {param_value(self.param, self.alternative)} minus "
                f"with {param_value(self.param, self.baseline)}")

    def label(self, value: Value) -> str:
        """``best trial #14 as found (batch_norm=none)``, ``... with dropout switched to 0.5``."""
        if self.kind == "interaction":
            return f"{self.effect()} with {self.param}={param_value(self.param, value)}"
        who = f"{'best trial' if self.rank == 0 else 'trial'} #{self.trial_number}"
        shown = param_value(self.param, value)
        if value == self.trial_value:
            return f"{who} as found ({self.param}={shown})"
        return f"{who} with {self.param} switched to {shown}"

    def verdict(self) -> str:
        s, base, alt = self.stats, self.label(self.baseline), self.label(self.alternative)
        text = self._accuracy_verdict(s, base, alt)
        fails = self.failure_text()
        both = (f"; accuracies compared on the {s.n} seeds where both learned"
                if s.n < self.seeds_used else "")
        if self.failures == DIFFERENCE:
            return (f"{fails}: training fails more often with one of them (exact McNemar on "
                    f"the seeds where only one learned, Holm p={_fmt_p(self.p_failures)})"
                    f"{both}; {text}")
        if self.failures == "none":   # no failure information: the accuracy alone
            return text if not fails else f"{fails}{both}; {text}"
        seen = fails or f"none in {self.seeds_used} seeds each"
        if self.settled == EQUIVALENT:
            return (f"{text}; failures to learn equivalent too ({seen}; {alt} - {base} "
                    f"failure rate {self._failure_interval()} pts, inside "
                    f"±{100 * FAILURE_MARGIN:g} pts)")
        if (self.accuracy_settled or self.settled) == EQUIVALENT:
            # the accuracies agree where both learned; the failures are not settled
            return (f"open: within ±{self.margin:g} pts on the {s.n} seeds where both "
                    f"learned ({s.shift:+.2f} pts [{s.ci_low:+.2f}, {s.ci_high:+.2f}], Holm "
                    f"p={_fmt_p(self.p_holm)}), but failures to learn are not settled "
                    f"({seen}; {self._failures_open()})")
        if self.failures == OPEN and self.only_base + self.only_alt:
            return (f"{fails} (exact McNemar on the {self.only_base + self.only_alt} seed(s) "
                    f"where only one learned: Holm p={_fmt_p(self.p_failures)}): not "
                    f"equivalent while one fails where the other learns{both}; {text}")
        if fails:
            return f"{fails} (both on the same seeds){both}; {text}"
        return text

    def _failure_interval(self) -> str:
        return f"[{100 * self.failures_low:+.0f}, {100 * self.failures_high:+.0f}]"

    def _failures_open(self) -> str:
        """What the failures' interval leaves open, and how many seeds would settle it."""
        margin = 100 * FAILURE_MARGIN
        if self.only_base + self.only_alt == 0:
            apart = 100 * max(abs(self.failures_low), abs(self.failures_high))
            out = f"failure rates up to {apart:.0f} pts apart are not ruled out"
        else:
            out = (f"alternative - baseline failure rate {self._failure_interval()} pts, "
                   f"not inside ±{margin:g}")
        if self.failures_seeds > self.seeds_used:
            more = ("" if self.only_base + self.only_alt == 0 else
                    ", if no more seed failed for one twin alone")
            return (f"{out}; about {self.failures_seeds} seeds would bound them within "
                    f"{margin:g} pts{more} (verify --seeds)")
        if self.failures_seeds < 0:
            return (f"{out}; no seed count would bound them within {margin:g} pts while one "
                    "twin fails where the other learns this often")
        return out

    def _accuracy_verdict(self, s: PairedStats, base: str, alt: str) -> str:
        if s.n == 0:
            return "no seed on which both learned: accuracies not compared"
        size = f"{abs(s.shift):.2f} pts [{min(abs(s.ci_low), abs(s.ci_high)):.2f}, " \
               f"{max(abs(s.ci_low), abs(s.ci_high)):.2f}]"
        wins, losses = (s.wins, s.losses) if self.maximize else (s.losses, s.wins)
        # a row may be a difference by its failures alone: say what the accuracies say
        accuracy_says = self.significant and not s.ci_low <= 0 <= s.ci_high
        if accuracy_says and (s.shift > 0) == self.maximize:
            return (f"{alt} beats {base} by {size} ({wins}/{s.n} seeds; Holm "
                    f"p={_fmt_p(self.p_holm)})")
        if accuracy_says:
            return (f"{base} beats {alt} by {size} ({losses}/{s.n} seeds; Holm "
                    f"p={_fmt_p(self.p_holm)})")
        if (self.accuracy_settled or self.settled) == EQUIVALENT:
            scope = " where both learned" if self.failures != "none" else ""
            return (f"equivalent{scope}: no difference larger than {self.margin:g} pts between "
                    f"{alt} "
                    f"and {base}: {s.shift:+.2f} pts [{s.ci_low:+.2f}, {s.ci_high:+.2f}] "
                    f"({s.n} seeds; Holm p={_fmt_p(self.p_holm)})")
        if s.ties == s.n and self.settled != DIFFERENCE:
            return (f"no difference at all: {alt} and {base} reached the same test accuracy "
                    f"on every seed{' where both learned' if s.n < self.seeds_used else ''} "
                    "(for this config the switch changes nothing the test set can see)")
        more = max(seeds_needed(s.sd_diff, 1 - s.ci_level, effect=self.margin),
                   self.seeds_used + 1)
        return (f"open: {alt} {s.shift:+.2f} pts [{s.ci_low:+.2f}, {s.ci_high:+.2f}] vs "
                f"{base} (better on {wins}/{s.n} seeds; Holm p={_fmt_p(self.p_holm)}), "
                f"neither a difference nor within ±{self.margin:g} pts; about {more} seeds "
                f"would detect a {self.margin:g}-pt difference with {POWER:.0%} power "
                "(verify --seeds)")

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        base, alt = self.baseline_config.as_dict(), self.alternative_config.as_dict()
        return _finite({
            "question": self.question, "trial_number": self.trial_number,
            "baseline": self.baseline, "alternative": self.alternative,
            "baseline_label": self.label(self.baseline),
            "alternative_label": self.label(self.alternative),
            "n": self.seeds_used, "n_learned": s.n,
            "never_learned": {"baseline": self.failed_base, "alternative": self.failed_alt},
            "only_one_learned": {"baseline_failed": self.only_base,
                                 "alternative_failed": self.only_alt},
            "failures": self.failures, "p_failures": self.p_failures,
            **({} if self.failures == "none" else {
                "failures_interval": [100 * self.failures_low, 100 * self.failures_high],
                "failures_margin": 100 * FAILURE_MARGIN,
                "failures_seeds_needed": self.failures_seeds if self.failures_seeds else None}),
            "accuracy_settled": self.accuracy_settled or self.settled,
            "shift": s.shift, "mean_diff": s.mean_diff, "ci_low": s.ci_low,
            "ci_high": s.ci_high, "ci_level": s.ci_level, "p_wilcoxon": s.p_wilcoxon,
            "p_holm": self.p_holm, "significant": self.significant,
            "p_improvement": s.p_improvement, "wins": s.wins, "ties": s.ties,
            "losses": s.losses, "verdict": self.verdict(), "settled": self.settled,
            "margin": self.margin, "p_sequential": self.p_sequential, "looks": self.looks,
            # An interaction row's *_accs are A's per-seed effects: their means are effects
            # in points, never under an accuracy's name.
            **({"baseline_acc_mean": float(np.mean(self.baseline_accs)),
                "alternative_acc_mean": float(np.mean(self.alternative_accs))}
               if self.kind != "interaction" else
               {"baseline_effect_mean": float(100 * np.mean(self.baseline_accs)),
                "alternative_effect_mean": float(100 * np.mean(self.alternative_accs))}),
            "baseline_accs": list(self.baseline_accs),
            "alternative_accs": list(self.alternative_accs),
            "changed": {k: [base[k], alt[k]] for k in base if base[k] != alt[k]},
            "baseline_config": base, "alternative_config": alt,
            **({"filled": dict(self.filled)} if self.filled else {}),
            **({} if self.kind != "interaction" else {
                "kind": "interaction", "params": list(self.params or ()),
                "a_levels": list(self.a_levels or ()), "label": self.contrast_label(),
                "cells": [{"a": (self.a_levels or ())[i],
                           "b": (self.baseline, self.alternative)[j],
                           "config": cfg.as_dict(), "accs": list(accs),
                           "acc_mean": float(np.mean(accs))}
                          for (i, j), (cfg, accs) in sorted(self.cells.items())]}),
        })


@dataclass
class VerifyResult:
    questions: list[str]
    study_name: str
    seeds: list[int]
    top_k: int
    dataset: str
    epochs: int
    n_test: int
    alpha: float = ALPHA
    margin: float = MIN_EFFECT
    looks: list[int] = field(default_factory=list)   # planned looks (seeds per comparison)
    trainings: int = 0          # distinct (twin, seed) trainings the looks used
    trainings_fixed: int = 0    # what every comparison on all seeds would have used
    trained_here: int = 0       # of them, trained by this process (the rest were stored)
    family: int = 0             # comparisons in the Holm family (0: as many as rows)
    rows: list[VerifyRow] = field(default_factory=list)
    created: str = field(default_factory=now_iso)
    saved: list[SavedResult] = field(default_factory=list)  # one per question
    objective: str | None = None    # a user's objective (its spec): values are its own
    direction: str = "maximize"
    baseline: str | None = None     # the value compared with, where not the config's own
    # question -> the stored answer this run did not replace (a larger family's, or one on
    # more seeds): this run's answer went beside it (see :func:`merge_stored`)
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)

    def store(self, study: Any, question: str, storage: str) -> SavedResult:
        """Store this run's answer for ``question``, merged with what the study holds
        (:func:`merge_stored`): a stored answer is never replaced by a smaller family's or
        one on fewer seeds."""
        key = schema.verify_key(question)
        try:
            old = study.user_attrs.get(key)
        except Exception:  # the study cannot be read back: save_result says why
            old = None
        value, replaced = merge_stored(old, self.question_dict(question))
        if not replaced and isinstance(old, dict):
            self.kept[question] = old
        return save_result(study, key, value, storage)

    def question_dict(self, question: str) -> dict[str, Any]:
        """JSON-safe; stored as the study user attr ``verify:<question>``."""
        inter = INTERACTION_BY_ID.get(question)
        q = QUESTION_BY_ID.get(question)
        about = ({"param": q.param if q is not None else question} if inter is None
                 else {"kind": "interaction", "params": list(inter.params)})
        own = ({"objective": self.objective, "direction": self.direction}
               if self.objective else {})
        against = {"baseline": self.baseline} if self.baseline is not None else {}
        return {
            "question": question, **about, **own, **against, "study_name": self.study_name,
            "seeds": len(self.seeds), "seed_list": list(self.seeds), "top_k": self.top_k,
            "dataset": self.dataset, "epochs": self.epochs, "split": "test",
            "n_test": self.n_test, "alpha": self.alpha, "family": len(self.rows),
            "margin": self.margin, "looks": list(self.looks), "trainings": self.trainings,
            "trainings_fixed": self.trainings_fixed, "trained_here": self.trained_here,
            "settled": _settled([r.settled for r in self.rows if r.question == question]),
            "family_questions": list(self.questions),
            "diff_unit": "test accuracy points, alternative - baseline" if inter is None else
                         "test accuracy points, (A's effect at B=alternative) - (A's effect "
                         "at B=baseline): per seed (y[a1,b1] - y[a0,b1]) - (y[a1,b0] - "
                         "y[a0,b0])",
            "rows": [r.to_dict() for r in self.rows if r.question == question],
            "created": self.created,
        }

    def plan_line(self) -> str:
        """The plan in one line: questions, the Holm family, the looks, the data."""
        looks = ", ".join(str(n) for n in self.looks) or str(len(self.seeds))
        failures = ("" if self.objective is not None else
                    f" (and its failure rates to learn within ±{100 * FAILURE_MARGIN:g} pts)")
        what = (f"{self.dataset}, {plural(self.epochs, 'epoch')}, test split n={self.n_test}"
                if self.objective is None else
                f"objective {self.objective} on its test split ({self.direction})")
        return (f"verify in study {self.study_name}: "
                f"{plural(len(self.questions), 'question')}, "
                f"{plural(self.family or len(self.rows), 'comparison')} in one Holm family "
                f"(alpha {self.alpha:g}); seeds added in looks at {looks} seeds, each "
                "comparison stopping once it is a difference or equivalent within "
                f"±{self.margin:g} pts{failures}; {what}")

    def lines(self, *, plan: bool = True) -> list[str]:
        """What ``hpsearch verify`` prints: the plan (unless ``plan`` is False: it was
        printed before the trainings), the table, one verdict per row."""
        unit = ("test accuracy points" if self.objective is None
                else "points (100 x the objective's test value)")
        out = [self.plan_line()] if plan else []
        out += [f"shift = alternative - baseline in {unit} (Hodges-Lehmann), "
               "with its sequential signed-rank interval at the row's Holm level"]
        inter = any(r.kind == "interaction" for r in self.rows)
        if inter:
            out.append("an interaction row's base and alt are the mean effect of its first "
                       "param (a1 - a0, test-accuracy points) with the second at its baseline "
                       "and at its alternative; shift = alt - base, per seed")
        means = (["base", "alt"] if inter or self.objective is not None
                 else ["acc base", "acc alt"])
        header = ["question", "baseline", "alternative", "seeds", *means,
                  "shift", "interval", "Holm p", "P(improvement)", "settled"]
        table = [[r.question, f"#{r.trial_number} {r.param}="
                  f"{param_value(r.param, r.baseline)}",
                  param_value(r.param, r.alternative), str(r.seeds_used), *r.means(),
                  f"{r.stats.shift:+.2f}", f"[{r.stats.ci_low:+.2f}, {r.stats.ci_high:+.2f}]",
                  _fmt_p(r.p_holm), f"{r.stats.p_improvement:.2f} ({r.stats.wins}/{r.stats.n})",
                  r.settled]
                 for r in self.rows]
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
        out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in [header, *table]]
        out += [f"{r.question}: {r.verdict()}" for r in self.rows]
        out += [f"{r.question}: {r.param}={param_value(r.param, r.alternative)} needs {k}, "
                f"which trial #{r.trial_number} lacks: {v}"
                for r in self.rows for k, v in r.filled.items()]
        saved = (f"{self.trainings_fixed - self.trainings} fewer than"
                 if self.trainings < self.trainings_fixed else "as many as")
        out.append(f"trainings: {self.trainings} ({saved} the fixed plan's "
                   f"{self.trainings_fixed}); {self.trained_here} trained now, "
                   f"{self.trainings - self.trained_here} found stored")
        for q, old in self.kept.items():
            mine = self.question_dict(q)
            out.append(f"{q}: the stored answer stays {old.get('settled')!r}, from "
                       f"{family_name(old)}; this run's, {mine['settled']!r} from "
                       f"{family_name(mine)}, is stored beside it (a smaller family or "
                       "fewer seeds never replaces an answer; run that family again to "
                       "renew it)")
        if all(s.stored for s in self.saved):
            out.append("stored as study user attrs " + ", ".join(
                f"'verify:{q}'" for q in self.questions))
        return out

    def unsaved(self) -> list[SavedResult]:
        """The questions whose result the study refused (they went to side files)."""
        return [s for s in self.saved if not s.stored]


def family_name(answer: dict[str, Any]) -> str:
    """``the family of 5 questions (bn_placement, ...) on up to 26 seeds``."""
    qs = [str(q) for q in answer.get("family_questions") or [answer.get("question")]]
    which = (f"{qs[0]} alone" if len(qs) == 1 else
             f"the family of {len(qs)} questions ({', '.join(qs)})")
    against = (f" against {answer['baseline']}" if answer.get("baseline") is not None
               else "")
    return f"{which}{against} on up to {answer.get('seeds')} seeds"


def merge_stored(old: Any, new: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(what to store for a question, whether ``new`` replaced ``old``).

    verify's stored trainings are evidence, and so is the answer a run drew from them: a
    run replaces the stored answer only when its family holds every question of the stored
    one's and it may use as many seeds, so that a narrower re-run (``--question``, or a
    smaller ``--seeds``), reading the same trainings, can never flip it; and only a run
    against the same baseline (``--baseline``: other comparisons). Otherwise the stored
    answer stays, and the new one is kept beside it under ``beside``, named by its
    family (:func:`family_name`). Answers stored beside an answer that is replaced stay.
    """
    if not isinstance(old, dict) or not isinstance(old.get("rows"), list):
        return new, True
    old_family = {str(q) for q in old.get("family_questions") or [old.get("question")]}
    new_family = {str(q) for q in new.get("family_questions") or [new.get("question")]}
    old_seeds, new_seeds = old.get("seeds"), new.get("seeds")
    covers = new_family >= old_family and old.get("baseline") == new.get("baseline") and (
        not isinstance(old_seeds, int) or not isinstance(new_seeds, int)
        or new_seeds >= old_seeds)
    beside = {k: v for k, v in (old.get("beside") or {}).items() if isinstance(v, dict)}
    if covers:
        beside.pop(family_name(new), None)
        return ({**new, "beside": beside} if beside else new), True
    entry = {k: v for k, v in new.items() if k != "beside"}
    return {**old, "beside": {**beside, family_name(new): entry}}, False


def _settled(states: list[str]) -> str:
    """A question's state: a difference if any comparison is one, equivalent if all are."""
    if DIFFERENCE in states:
        return DIFFERENCE
    return EQUIVALENT if states and all(x == EQUIVALENT for x in states) else OPEN


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """NaN/inf -> None, so the stored attr is strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in d.items()}
