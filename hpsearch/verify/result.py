"""What verify found: one row per comparison, and the stored result per question."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpsearch.analysis import ALPHA, MIN_EFFECT, POWER, PairedStats, seeds_needed
from hpsearch.objectives import Params
from hpsearch.replay import now_iso
from hpsearch.schema import DIFFERENCE, EQUIVALENT, OPEN
from hpsearch.space import INTERACTION_BY_ID, QUESTION_BY_ID, TrialConfig, Value
from hpsearch.storage import SavedResult
from hpsearch.text import param_value

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
        size = f"{abs(s.shift):.2f} pts [{min(abs(s.ci_low), abs(s.ci_high)):.2f}, " \
               f"{max(abs(s.ci_low), abs(s.ci_high)):.2f}]"
        wins, losses = (s.wins, s.losses) if self.maximize else (s.losses, s.wins)
        if self.significant and (s.shift > 0) == self.maximize:
            return (f"{alt} beats {base} by {size} ({wins}/{s.n} seeds; Holm "
                    f"p={_fmt_p(self.p_holm)})")
        if self.significant:
            return (f"{base} beats {alt} by {size} ({losses}/{s.n} seeds; Holm "
                    f"p={_fmt_p(self.p_holm)})")
        if self.settled == EQUIVALENT:
            return (f"equivalent: no difference larger than {self.margin:g} pts between {alt} "
                    f"and {base}: {s.shift:+.2f} pts [{s.ci_low:+.2f}, {s.ci_high:+.2f}] "
                    f"({s.n} seeds; Holm p={_fmt_p(self.p_holm)})")
        if s.ties == s.n:
            return (f"no difference at all: {alt} and {base} reached the same test accuracy "
                    "on every seed (for this config the switch changes nothing the test "
                    "set can see)")
        more = seeds_needed(s.sd_diff, 1 - s.ci_level, effect=self.margin)
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
            "n": s.n, "shift": s.shift, "mean_diff": s.mean_diff, "ci_low": s.ci_low,
            "ci_high": s.ci_high, "ci_level": s.ci_level, "p_wilcoxon": s.p_wilcoxon,
            "p_holm": self.p_holm, "significant": self.significant,
            "p_improvement": s.p_improvement, "wins": s.wins, "ties": s.ties,
            "losses": s.losses, "verdict": self.verdict(), "settled": self.settled,
            "margin": self.margin, "p_sequential": self.p_sequential, "looks": self.looks,
            "baseline_acc_mean": float(np.mean(self.baseline_accs)),
            "alternative_acc_mean": float(np.mean(self.alternative_accs)),
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
    rows: list[VerifyRow] = field(default_factory=list)
    created: str = field(default_factory=now_iso)
    saved: list[SavedResult] = field(default_factory=list)  # one per question
    objective: str | None = None    # a user's objective (its spec): values are its own
    direction: str = "maximize"

    def question_dict(self, question: str) -> dict[str, Any]:
        """JSON-safe; stored as the study user attr ``verify:<question>``."""
        inter = INTERACTION_BY_ID.get(question)
        q = QUESTION_BY_ID.get(question)
        about = ({"param": q.param if q is not None else question} if inter is None
                 else {"kind": "interaction", "params": list(inter.params)})
        own = ({"objective": self.objective, "direction": self.direction}
               if self.objective else {})
        return {
            "question": question, **about, **own, "study_name": self.study_name,
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

    def lines(self) -> list[str]:
        """What ``hpsearch verify`` prints: a header, the table, one verdict per row."""
        looks = ", ".join(str(n) for n in self.looks) or str(len(self.seeds))
        what = (f"{self.dataset}, {self.epochs} epochs, test split n={self.n_test}"
                if self.objective is None else
                f"objective {self.objective} on its test split ({self.direction})")
        unit = ("test accuracy points" if self.objective is None
                else "points (100 x the objective's test value)")
        out = [f"verify in study {self.study_name}: {len(self.questions)} question(s), "
               f"{len(self.rows)} comparisons in one Holm family (alpha {self.alpha:g}); "
               f"seeds added in looks at {looks} seeds, each comparison stopping once it is "
               f"a difference or equivalent within ±{self.margin:g} pts; {what}",
               f"shift = alternative - baseline in {unit} (Hodges-Lehmann), "
               "with its sequential signed-rank interval at the row's Holm level"]
        header = ["question", "baseline", "alternative", "seeds", "acc base", "acc alt",
                  "shift", "interval", "Holm p", "P(improvement)", "settled"]
        table = [[r.question, f"#{r.trial_number} {r.param}="
                  f"{param_value(r.param, r.baseline)}",
                  param_value(r.param, r.alternative), str(r.stats.n),
                  f"{np.mean(r.baseline_accs):.4f}", f"{np.mean(r.alternative_accs):.4f}",
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
        if all(s.stored for s in self.saved):
            out.append("stored as study user attrs " + ", ".join(
                f"'verify:{q}'" for q in self.questions))
        return out

    def unsaved(self) -> list[SavedResult]:
        """The questions whose result the study refused (they went to side files)."""
        return [s for s in self.saved if not s.stored]


def _settled(states: list[str]) -> str:
    """A question's state: a difference if any comparison is one, equivalent if all are."""
    if DIFFERENCE in states:
        return DIFFERENCE
    return EQUIVALENT if states and all(x == EQUIVALENT for x in states) else OPEN


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """NaN/inf -> None, so the stored attr is strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in d.items()}
