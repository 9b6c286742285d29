"""``hpsearch verify``: the causal answers, from paired re-runs on the test split.

The study's own trials are observational (the sampler chose every param at once).
:func:`verify` takes the best (or top-K) complete configs and builds *twins* that differ
only in one question's param, trains every twin on the same seeds ``0..N-1`` (the
trainer's seed fixes init, data order, dropout and augmentation draws, so twin runs with
one seed are paired), measures each on the TEST split and compares the twins pair by pair.

With no question named, every question the study sampled is verified, and all their
comparisons are one Holm family: ``p_holm`` and the intervals are adjusted for all of
them, and the default seed count is the smallest that can reach significance in that
family (the exact signed-rank p of n seeds that all agree is 2 / 2**n; fewer seeds than
that are refused with the minimum in the message). Per comparison (a *row*):

- ``shift``, ``ci_low``, ``ci_high``: the Hodges-Lehmann estimate of the paired difference
  (alternative - baseline, test-accuracy points = 100 x fraction) and its exact
  signed-rank interval at the row's Holm level ``ci_level``; ``mean_diff`` is the mean;
- ``p_wilcoxon`` (exact, zeros counted against the effect), ``p_holm``, ``significant``:
  the interval excludes 0 exactly when ``significant`` is true;
- ``p_improvement``: share of seeds on which the alternative beat the baseline;
- ``baseline_label``, ``alternative_label``: what was compared, in words ("best trial #14
  as found (batch_norm=none)" vs "... with batch_norm switched to before").

The twins themselves (which baseline, which alternatives, what a switched-on param gets) are
:mod:`hpsearch.twins`.

Each question's result is stored as the study user attr ``verify:<question>``
(:meth:`VerifyResult.question_dict`), which ``hpsearch report`` shows as the causal column
of its verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial
from scipy import stats as sps

from hpsearch.analysis.stats import holm, holm_levels, min_pairs_for, signed_rank
from hpsearch.best import (
    complete_trials,
    now_iso,
    study_data,
    study_settings,
    training_threads,
    trial_config,
)
from hpsearch.data import DeviceData
from hpsearch.errors import ConfigError
from hpsearch.fused import train_seeds
from hpsearch.report_format import param_value
from hpsearch.results import SavedResult, save_result
from hpsearch.settings import Settings
from hpsearch.space import QUESTION_BY_ID, QUESTIONS, Question, TrialConfig, Value
from hpsearch.storage import load_study
from hpsearch.train import evaluate
from hpsearch.twins import make_twin, twin_values

ALPHA = 0.05
DEFAULT_SEEDS = 10   # at least this many, and at least what the family needs
MIN_EFFECT = 0.5     # test-accuracy points that "what it would take" plans for
POWER = 0.8

# progress(done, total, what): called after each training run
Progress = Callable[[int, int, str], None]

# ---------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class PairedStats:
    """Paired comparison of two arrays; differences are ``alternative - baseline``."""

    n: int
    mean_diff: float
    shift: float                 # Hodges-Lehmann estimate of the paired difference
    ci_low: float                # exact signed-rank interval at 1 - ci_level's alpha
    ci_high: float
    ci_level: float
    p_wilcoxon: float            # exact two-sided signed-rank p
    p_improvement: float         # share of pairs where the alternative is higher
    wins: int
    ties: int
    losses: int
    sd_diff: float


def paired_stats(baseline: Sequence[float] | np.ndarray, alternative: Sequence[float] | np.ndarray,
                 *, level: float = ALPHA) -> PairedStats:
    """Shift, its interval at ``1 - level``, exact signed-rank p and P(improvement).

    ``baseline[i]`` and ``alternative[i]`` are one pair (the same seed), in any unit.
    """
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(alternative, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equal-length, non-empty 1-D arrays, got shapes {a.shape} "
                         f"and {b.shape}")
    # Rounded: accuracies of twins that agree on every example must difference to exactly 0.
    d = np.round(b - a, 10)
    shift, lo, hi, p = signed_rank(d, level)
    wins, losses = int(np.sum(d > 0)), int(np.sum(d < 0))
    return PairedStats(n=d.size, mean_diff=float(d.mean()), shift=shift, ci_low=lo,
                       ci_high=hi, ci_level=1 - level, p_wilcoxon=p,
                       p_improvement=wins / d.size, wins=wins, ties=d.size - wins - losses,
                       losses=losses, sd_diff=float(d.std(ddof=1)) if d.size > 1 else 0.0)


def seeds_needed(sd_diff: float, level: float, effect: float = MIN_EFFECT) -> int:
    """Seeds for POWER to detect ``effect`` at ``level`` (normal approximation, x 3/pi for
    the signed-rank test's efficiency), and never fewer than the test's minimum."""
    z = sps.norm.ppf(1 - level / 2) + sps.norm.ppf(POWER)
    n = math.ceil((z * sd_diff / effect) ** 2 * math.pi / 3) if sd_diff > 0 else 0
    return max(n, min_pairs_for(level))


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
    baseline_config: TrialConfig
    alternative_config: TrialConfig
    stats: PairedStats
    p_holm: float = float("nan")
    significant: bool = False

    def label(self, value: Value) -> str:
        """``best trial #14 as found (batch_norm=none)``, ``... with dropout switched to 0.5``."""
        who = f"{'best trial' if self.rank == 0 else 'trial'} #{self.trial_number}"
        shown = param_value(self.param, value)
        if value == self.trial_value:
            return f"{who} as found ({self.param}={shown})"
        return f"{who} with {self.param} switched to {shown}"

    def verdict(self) -> str:
        s, base, alt = self.stats, self.label(self.baseline), self.label(self.alternative)
        size = f"{abs(s.shift):.2f} pts [{min(abs(s.ci_low), abs(s.ci_high)):.2f}, " \
               f"{max(abs(s.ci_low), abs(s.ci_high)):.2f}]"
        if self.significant and s.shift > 0:
            return (f"{alt} beats {base} by {size} ({s.wins}/{s.n} seeds; Holm "
                    f"p={_fmt_p(self.p_holm)})")
        if self.significant:
            return (f"{base} beats {alt} by {size} ({s.losses}/{s.n} seeds; Holm "
                    f"p={_fmt_p(self.p_holm)})")
        if s.ties == s.n:
            return (f"no difference at all: {alt} and {base} reached the same test accuracy "
                    "on every seed (for this config the switch changes nothing the test "
                    "set can see)")
        more = seeds_needed(s.sd_diff, 1 - s.ci_level)
        return (f"no detectable difference: {alt} {s.shift:+.2f} pts [{s.ci_low:+.2f}, "
                f"{s.ci_high:+.2f}] vs {base} (better on {s.wins}/{s.n} seeds; Holm "
                f"p={_fmt_p(self.p_holm)}); about {more} seeds would detect a "
                f"{MIN_EFFECT:g}-pt difference with {POWER:.0%} power")

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
            "losses": s.losses, "verdict": self.verdict(),
            "baseline_acc_mean": float(np.mean(self.baseline_accs)),
            "alternative_acc_mean": float(np.mean(self.alternative_accs)),
            "baseline_accs": list(self.baseline_accs),
            "alternative_accs": list(self.alternative_accs),
            "changed": {k: [base[k], alt[k]] for k in base if base[k] != alt[k]},
            "baseline_config": base, "alternative_config": alt,
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
    rows: list[VerifyRow] = field(default_factory=list)
    created: str = field(default_factory=now_iso)
    saved: list[SavedResult] = field(default_factory=list)  # one per question

    def question_dict(self, question: str) -> dict[str, Any]:
        """JSON-safe; stored as the study user attr ``verify:<question>``."""
        q = QUESTION_BY_ID[question]
        return {
            "question": question, "param": q.param, "study_name": self.study_name,
            "seeds": len(self.seeds), "seed_list": list(self.seeds), "top_k": self.top_k,
            "dataset": self.dataset, "epochs": self.epochs, "split": "test",
            "n_test": self.n_test, "alpha": self.alpha, "family": len(self.rows),
            "family_questions": list(self.questions),
            "diff_unit": "test accuracy points, alternative - baseline",
            "rows": [r.to_dict() for r in self.rows if r.question == question],
            "created": self.created,
        }

    def lines(self) -> list[str]:
        """What ``hpsearch verify`` prints: a header, the table, one verdict per row."""
        seeds = (f"{self.seeds[0]}-{self.seeds[-1]}" if len(self.seeds) > 1
                 else str(self.seeds[0]))
        out = [f"verify in study {self.study_name}: {len(self.questions)} question(s), "
               f"{len(self.rows)} comparisons in one Holm family (alpha {self.alpha:g}); "
               f"seeds {seeds} (n={len(self.seeds)}), {self.dataset}, {self.epochs} epochs, "
               f"test split n={self.n_test}",
               "shift = alternative - baseline in test accuracy points (Hodges-Lehmann), "
               "with its signed-rank interval at the row's Holm level"]
        header = ["question", "baseline", "alternative", "acc base", "acc alt", "shift",
                  "interval", "Wilcoxon p", "Holm p", "P(improvement)"]
        table = [[r.question, f"#{r.trial_number} {r.param}="
                  f"{param_value(r.param, r.baseline)}",
                  param_value(r.param, r.alternative), f"{np.mean(r.baseline_accs):.4f}",
                  f"{np.mean(r.alternative_accs):.4f}", f"{r.stats.shift:+.2f}",
                  f"[{r.stats.ci_low:+.2f}, {r.stats.ci_high:+.2f}]",
                  _fmt_p(r.stats.p_wilcoxon), _fmt_p(r.p_holm),
                  f"{r.stats.p_improvement:.2f} ({r.stats.wins}/{r.stats.n})"]
                 for r in self.rows]
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
        out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in [header, *table]]
        out += [f"{r.question}: {r.verdict()}" for r in self.rows]
        if all(s.stored for s in self.saved):
            out.append("stored as study user attrs " + ", ".join(
                f"'verify:{q}'" for q in self.questions))
        return out

    def unsaved(self) -> list[SavedResult]:
        """The questions whose result the study refused (they went to side files)."""
        return [s for s in self.saved if not s.stored]


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """NaN/inf -> None, so the stored attr is strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in d.items()}


# ---------------------------------------------------------------------------- verify

_Twin = tuple[Value, TrialConfig]  # (value of the question's param, the twin's config)


def _plan(q: Question, trials: list[FrozenTrial], prov: Mapping[str, Any],
          ) -> list[tuple[int, int, Value, _Twin, list[_Twin]]]:
    """Per trial: its number, rank, own value, the baseline twin and the alternative twins."""
    plans = []
    for rank, t in enumerate(trials):
        best = trial_config(t)
        base_value, alternatives = twin_values(q, best, prov)
        twins = [(v, make_twin(best, q.param, v, prov)) for v in (base_value, *alternatives)]
        assert len({cfg for _, cfg in twins}) == len(twins)  # every twin differs
        plans.append((t.number, rank, getattr(best, q.param), twins[0], twins[1:]))
    return plans


def sampled_questions(trials: Sequence[FrozenTrial]) -> list[Question]:
    """The questions whose param the study's trials sampled (not fixed by a preset)."""
    sampled = {p for t in trials for p in t.params}
    return [q for q in QUESTIONS if q.param in sampled]


def _train_twins(labels: dict[TrialConfig, str], data: DeviceData, settings: Settings,
                 seeds: list[int], progress: Progress | None, fuse: int | None,
                 ) -> dict[tuple[TrialConfig, int], float]:
    """Test accuracy of every distinct config on every seed; ``labels`` name them.

    Each twin's seeds train as one fused model where that pays (:mod:`hpsearch.fused`:
    same architecture, only the seed differs), with one torch thread on a CPU.
    """
    acc: dict[tuple[TrialConfig, int], float] = {}
    total = len(labels) * len(seeds)
    with training_threads(data.device):
        for cfg, label in labels.items():
            runs = train_seeds(cfg, data, seeds, epochs=settings.epochs,
                               patience=settings.patience, fuse=fuse)
            for seed, run in zip(seeds, runs, strict=True):
                assert run.model is not None  # train always returns the model
                acc[cfg, seed] = evaluate(run.model, data, cfg, "test")[1]
            if progress is not None:
                progress(len(acc), total, f"{label}, {len(seeds)} seeds")
    return acc


def verify(storage: str, question: str | None = None, *, seeds: int | None = None,
           top_k: int = 1, study_name: str | None = None, epochs: int | None = None,
           device: str = "auto", progress: Progress | None = None,
           data_dir: str | None = None, alpha: float = ALPHA,
           fuse: int | None = None) -> VerifyResult:
    """Paired re-runs of the top-``top_k`` configs' twins, on the test split.

    ``question`` None verifies every question the study sampled, as one Holm family.
    ``seeds`` None: the family's minimum or ``DEFAULT_SEEDS``, whichever is more; fewer
    than the minimum is a :class:`ConfigError` that names it. Data, epochs and patience
    come from the study's provenance (``epochs`` and ``data_dir`` override); ``fuse`` caps
    how many seeds of a twin train as one fused model (1: one by one). Stores each
    question's result as the study user attr ``verify:<question>`` and returns them all.
    """
    if question is not None and question not in QUESTION_BY_ID:
        raise ConfigError(f"unknown question {question!r}; known: {', '.join(QUESTION_BY_ID)}")
    for name, value in (("seeds", 1 if seeds is None else seeds), ("top-k", top_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name} must be an integer >= 1, got {value!r}")
    study = load_study(storage, study_name)
    trials = complete_trials(study)[:top_k]
    questions = ([QUESTION_BY_ID[question]] if question is not None
                 else sampled_questions(trials))
    if not questions:
        raise ConfigError(f"study {study.study_name!r} sampled none of the questions' params "
                          "(all fixed by its preset?); name one with --question")
    settings = study_settings(study, epochs=epochs, data_dir=data_dir)
    prov = study.user_attrs.get("provenance") or {}
    plans = [(q, *plan) for q in questions for plan in _plan(q, trials, prov)]
    family = sum(len(alts) for *_, alts in plans)
    need = min_pairs_for(alpha / family)
    if seeds is None:
        seeds = max(DEFAULT_SEEDS, need)
    elif seeds < need:
        raise ConfigError(
            f"--seeds {seeds} cannot reach significance: {family} comparison(s) in one Holm "
            f"family need p < {alpha / family:.2g} at Holm's first step, and the signed-rank "
            f"test gets there only with {need} or more seeds; use --seeds {need} (or verify "
            "fewer questions with --question)")
    data = study_data(settings, device)
    seed_list = list(range(seeds))
    # Twins shared by several questions or top trials (same config) are trained once.
    labels = {cfg: f"trial #{n} {q.param}={v}"
              for q, n, _, _, base, alts in plans for v, cfg in (base, *alts)}
    acc = _train_twins(labels, data, settings, seed_list, progress, fuse)

    result = VerifyResult(questions=[q.id for q in questions], study_name=study.study_name,
                          seeds=seed_list, top_k=top_k, dataset=settings.dataset,
                          epochs=settings.epochs, n_test=len(data.test_y), alpha=alpha)
    for q, number, rank, own, (base_value, base_cfg), alt_twins in plans:
        base_accs = [acc[base_cfg, s] for s in seed_list]
        for alt_value, cfg in alt_twins:
            alt_accs = [acc[cfg, s] for s in seed_list]
            stats = paired_stats(100 * np.asarray(base_accs), 100 * np.asarray(alt_accs))
            result.rows.append(VerifyRow(q.id, number, rank, q.param, own, base_value,
                                         alt_value, base_accs, alt_accs, base_cfg, cfg, stats))
    _holm(result.rows, alpha)
    result.saved = [save_result(study, f"verify:{q.id}", result.question_dict(q.id), storage)
                    for q in questions]
    return result


def _holm(rows: list[VerifyRow], alpha: float) -> None:
    """One decision per row: p_holm, and the interval at the level Holm decided it at."""
    p = [r.stats.p_wilcoxon for r in rows]
    for r, p_holm, level in zip(rows, holm(p), holm_levels(p, alpha), strict=True):
        r.stats = paired_stats(100 * np.asarray(r.baseline_accs),
                               100 * np.asarray(r.alternative_accs), level=float(level))
        r.p_holm, r.significant = float(p_holm), bool(p_holm < alpha)
