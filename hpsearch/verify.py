"""``hpsearch verify``: the causal answer to one question, from paired re-runs.

The study's own trials are observational (the sampler changed every param at once).
:func:`verify` takes the best (or top-K) complete configs and builds *twins* that differ
only in the question's param, trains every twin on the same seeds ``0..N-1`` (the
trainer's seed fixes init, data order, dropout and augmentation draws, so twin runs with
one seed are paired), measures each on the TEST split and compares the twins pair by pair:

- ``mean_diff``, ``ci_low``, ``ci_high``: mean of the paired differences
  (alternative - baseline) in test-accuracy points (100 x fraction) and its percentile
  bootstrap 95% CI;
- ``p_wilcoxon``: Wilcoxon signed-rank test of the differences (pairs with no difference
  are dropped; all-zero differences give p = 1);
- ``p_improvement``: share of seeds on which the alternative beat the baseline, and
  ``p_improvement_bootstrap``: share of bootstrap means above 0;
- ``baseline_acc_mean``, ``alternative_acc_mean``: mean test accuracies (fractions).

The baseline is the best config's own value of the param, except where the question needs
another: ``bn_placement`` compares before vs after (baseline "before" when the best config
has no BN), ``batch_norm`` and ``dropout`` compare off vs on (the best config's placement or
rate; "before" or 0.5 when it has none). A param the twin switches on gets the best
config's value if it has one, else the middle of its range (``weight_penalty=l2`` with no
``l2`` in the best config: the geometric middle of the l2 range).

The result is stored as the study user attr ``verify:<question>`` (:meth:`VerifyResult.to_dict`),
which ``hpsearch report`` shows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial
from scipy import stats as sps

from hpsearch.best import (
    complete_trials,
    now_iso,
    study_data,
    study_settings,
    trial_config,
)
from hpsearch.data import DeviceData
from hpsearch.errors import ConfigError
from hpsearch.settings import Settings
from hpsearch.space import PARAM_BY_NAME, QUESTION_BY_ID, Question, TrialConfig, Value
from hpsearch.stats import percentile_ci
from hpsearch.storage import load_study
from hpsearch.train import evaluate, train

N_BOOTSTRAP = 10_000
ALPHA = 0.05
# The smallest n whose exact two-sided Wilcoxon p can fall below ALPHA (2 / 2**6 = 0.031).
MIN_SEEDS_FOR_SIGNIFICANCE = 6
_CHUNK_VALUES = 2_000_000  # bootstrap draws per chunk, so 1000 seeds do not need 80 MB

# progress(done, total, what): called after each training run
Progress = Callable[[int, int, str], None]

# ---------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class PairedStats:
    """Paired comparison of two arrays; differences are ``alternative - baseline``."""

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_wilcoxon: float
    p_improvement: float            # share of pairs where the alternative is higher
    p_improvement_bootstrap: float  # share of bootstrap means > 0 (ties count half)
    wins: int                       # pairs where the alternative is higher
    ties: int
    losses: int


def wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences; 1.0 when all are zero."""
    diffs = np.asarray(diffs, dtype=float)
    if not np.any(diffs != 0):
        return 1.0  # no pair differs: no evidence (scipy would raise)
    with warnings.catch_warnings():
        # Ties and zeros make scipy fall back to the normal approximation and warn.
        warnings.simplefilter("ignore")
        p = float(sps.wilcoxon(diffs, zero_method="wilcox").pvalue)
    return p if math.isfinite(p) else 1.0


def paired_stats(baseline: Sequence[float] | np.ndarray, alternative: Sequence[float] | np.ndarray,
                 *, n_bootstrap: int = N_BOOTSTRAP, alpha: float = ALPHA,
                 rng: np.random.Generator | None = None) -> PairedStats:
    """Mean paired difference, its bootstrap CI, Wilcoxon p and P(improvement).

    ``baseline[i]`` and ``alternative[i]`` are one pair (the same seed). Values are in any
    unit; the differences come back in that unit. The bootstrap resamples pairs, so the
    CI is of the *paired* difference (vectorized: one ``(draws, n)`` index array per chunk).
    """
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(alternative, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equal-length, non-empty 1-D arrays, got shapes {a.shape} "
                         f"and {b.shape}")
    # Rounded: accuracies of twins that agree on every example must difference to exactly 0.
    d = np.round(b - a, 10)
    n = d.size
    rng = rng if rng is not None else np.random.default_rng(0)
    means = np.empty(n_bootstrap)
    rows = max(1, _CHUNK_VALUES // n)
    for start in range(0, n_bootstrap, rows):
        stop = min(n_bootstrap, start + rows)
        means[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    lo, hi = percentile_ci(means, alpha)
    wins, losses = int(np.sum(d > 0)), int(np.sum(d < 0))
    return PairedStats(
        n=n, mean_diff=float(d.mean()), ci_low=lo, ci_high=hi, p_wilcoxon=wilcoxon_p(d),
        p_improvement=wins / n,
        p_improvement_bootstrap=float(np.mean(means > 0) + 0.5 * np.mean(means == 0)),
        wins=wins, ties=n - wins - losses, losses=losses)


# ---------------------------------------------------------------------------- twins


def _provenance_part(prov: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    part = prov.get(key)
    return part if isinstance(part, Mapping) else {}


def allowed_choices(param: str, prov: Mapping[str, Any]) -> tuple[Value, ...]:
    """The choices of a categorical param the study's space allowed.

    A preset's narrowed choices when it narrowed them, else the full table's. A param
    the preset *fixed* allows the full table's choices: twins then differ from the fixed
    value, which is still a question worth a paired answer.
    """
    narrowed = _provenance_part(prov, "narrowed").get(param)
    if isinstance(narrowed, list) and len(narrowed) > 1:
        return tuple(narrowed)
    return PARAM_BY_NAME[param].choices


def _range(param: str, prov: Mapping[str, Any]) -> tuple[float, float]:
    p = PARAM_BY_NAME[param]
    narrowed = _provenance_part(prov, "narrowed").get(param)
    if isinstance(narrowed, list) and len(narrowed) == 2 and p.kind != "categorical":
        return float(narrowed[0]), float(narrowed[1])
    return p.low, p.high


def middle_value(param: str, prov: Mapping[str, Any]) -> Value:
    """A value for a param a twin switches on: the study's fixed value, else mid-range.

    Geometric middle for log-scaled params, arithmetic otherwise, on the param's step;
    categorical params keep their default.
    """
    fixed = _provenance_part(prov, "fixed")
    p = PARAM_BY_NAME[param]
    if param in fixed and fixed[param] != p.default:  # a fixed "off" (l2 = 0) would not switch on
        return fixed[param]  # type: ignore[no-any-return]
    if p.kind == "categorical":
        return p.default
    low, high = _range(param, prov)
    mid = math.sqrt(low * high) if p.log else (low + high) / 2
    if p.step:
        mid = round(round(mid / p.step) * p.step, 10)
    return int(round(mid)) if p.kind == "int" else float(mid)


def make_twin(best: TrialConfig, param: str, value: Value,
              prov: Mapping[str, Any]) -> TrialConfig:
    """``best`` with ``param = value``; params that only the change switches on get values.

    ``TrialConfig.replace`` resets params the change switches off; a param it switches on
    would otherwise keep its "off" default (l2 = 0 for ``weight_penalty=l2``, strength 0
    for an augmentation), making the twin a copy of the baseline in disguise.
    """
    twin = best.replace(**{param: value})
    for _ in range(len(PARAM_BY_NAME)):  # conditions can chain; each pass settles one level
        base = best.as_dict()
        fills: dict[str, Value] = {}
        for name, p in PARAM_BY_NAME.items():
            switched_on = p.active(twin.as_dict()) and not p.active(base)
            if switched_on and name != param and getattr(twin, name) == p.default:
                fills[name] = middle_value(name, prov)
        fills = {k: v for k, v in fills.items() if getattr(twin, k) != v}
        if not fills:
            break
        twin = twin.replace(**fills)
    return twin


def twin_values(question: Question, best: TrialConfig,
                prov: Mapping[str, Any]) -> tuple[Value, list[Value]]:
    """The baseline value of the question's param and the alternatives to compare with it."""
    param = question.param
    p = PARAM_BY_NAME[param]
    current: Value = getattr(best, param)
    off = question.off_value
    if p.kind != "categorical":  # dropout: the best rate vs off, or off vs a middle rate
        if off is None:
            raise ConfigError(f"question {question.id!r}: numeric param {param} needs an "
                              "off value to compare with")
        if current != off:
            return current, [off]
        low, high = _range(param, prov)
        on = 0.5 if low <= 0.5 <= high and low < high else middle_value(param, {})
        return off, [on]
    allowed = allowed_choices(param, prov)
    if question.id == "bn_placement":  # before vs after, whatever the best config has
        choices = [v for v in allowed if v != "none"]
        if len(choices) < 2:
            choices = [v for v in p.choices if v != "none"]
        baseline = current if current in choices else choices[0]
    elif off is not None:  # batch_norm: none vs the best's placement
        if current != off:
            return current, [off]
        on = next(v for v in (*allowed, *p.choices) if v != off)
        return off, [on]
    else:
        choices, baseline = list(allowed), current
    alternatives = [v for v in choices if v != baseline]
    if not alternatives:  # the study allowed one value only: compare with the whole table
        alternatives = [v for v in p.choices if v != baseline]
    return baseline, alternatives


# ---------------------------------------------------------------------------- result


def _fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


@dataclass
class VerifyRow:
    """One pair: the baseline twin vs one alternative twin of one top trial."""

    trial_number: int
    param: str
    baseline: Value
    alternative: Value
    stats: PairedStats
    baseline_accs: list[float]       # test accuracy per seed (fractions)
    alternative_accs: list[float]
    baseline_config: TrialConfig
    alternative_config: TrialConfig

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        base, alt = self.baseline_config.as_dict(), self.alternative_config.as_dict()
        return {
            "trial_number": self.trial_number, "baseline": self.baseline,
            "alternative": self.alternative, "n": s.n, "mean_diff": s.mean_diff,
            "ci_low": s.ci_low, "ci_high": s.ci_high, "p_wilcoxon": s.p_wilcoxon,
            "p_improvement": s.p_improvement,
            "p_improvement_bootstrap": s.p_improvement_bootstrap,
            "wins": s.wins, "ties": s.ties, "losses": s.losses,
            "baseline_acc_mean": float(np.mean(self.baseline_accs)),
            "alternative_acc_mean": float(np.mean(self.alternative_accs)),
            "baseline_accs": list(self.baseline_accs),
            "alternative_accs": list(self.alternative_accs),
            "changed": {k: [base[k], alt[k]] for k in base if base[k] != alt[k]},
            "baseline_config": base, "alternative_config": alt,
        }

    def _name(self, value: Value) -> str:
        """``before`` reads on its own; ``0.5`` needs its param (``dropout=0.5``)."""
        return value if isinstance(value, str) else f"{self.param}={value}"

    def verdict(self) -> str:
        """One line: who wins by how much, or that this budget detects no difference."""
        s, base, alt = self.stats, self._name(self.baseline), self._name(self.alternative)
        significant = s.p_wilcoxon < ALPHA and (s.ci_low > 0 or s.ci_high < 0)
        if significant and s.mean_diff > 0:
            return (f"{alt} beats {base} by {s.mean_diff:.2f} pts [{s.ci_low:.2f}, "
                    f"{s.ci_high:.2f}], p={_fmt_p(s.p_wilcoxon)}, {s.wins}/{s.n} seeds")
        if significant:
            return (f"{base} beats {alt} by {-s.mean_diff:.2f} pts [{-s.ci_high:.2f}, "
                    f"{-s.ci_low:.2f}], p={_fmt_p(s.p_wilcoxon)}, {s.losses}/{s.n} seeds")
        hint = (f" ({s.n} seeds cannot reach p<{ALPHA:g}; use --seeds "
                f"{MIN_SEEDS_FOR_SIGNIFICANCE} or more)"
                if s.n < MIN_SEEDS_FOR_SIGNIFICANCE else "")
        return (f"no detectable difference between {base} and {alt}: {alt} {s.mean_diff:+.2f} "
                f"pts [{s.ci_low:+.2f}, {s.ci_high:+.2f}], p={_fmt_p(s.p_wilcoxon)}, "
                f"{alt} better on {s.wins}/{s.n} seeds{hint}")


@dataclass
class VerifyResult:
    question: str
    param: str
    study_name: str
    seeds: list[int]
    top_k: int
    dataset: str
    epochs: int
    n_test: int
    rows: list[VerifyRow] = field(default_factory=list)
    created: str = field(default_factory=now_iso)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; stored as the study user attr ``verify:<question>``."""
        return {
            "question": self.question, "param": self.param, "study_name": self.study_name,
            "seeds": len(self.seeds), "seed_list": list(self.seeds), "top_k": self.top_k,
            "dataset": self.dataset, "epochs": self.epochs, "split": "test",
            "n_test": self.n_test, "diff_unit": "test accuracy points, alternative - baseline",
            "rows": [_finite(r.to_dict()) for r in self.rows], "created": self.created,
        }

    def lines(self) -> list[str]:
        """What ``hpsearch verify`` prints: a header, the table, one verdict per row."""
        trials = ", ".join(f"#{n}" for n in dict.fromkeys(r.trial_number for r in self.rows))
        seeds = (f"{self.seeds[0]}-{self.seeds[-1]}" if len(self.seeds) > 1
                 else str(self.seeds[0]))
        out = [f"verify {self.question} ({self.param}) in study {self.study_name}: trial(s) "
               f"{trials}, seeds {seeds} (n={len(self.seeds)}), {self.dataset}, "
               f"{self.epochs} epochs, test split n={self.n_test}",
               "diff = alternative - baseline in test accuracy points; 95% bootstrap CI"]
        header = ["trial", "baseline", "alternative", "acc base", "acc alt", "diff",
                  "95% CI", "Wilcoxon p", "P(improvement)", "n"]
        table = [[f"#{r.trial_number}", str(r.baseline), str(r.alternative),
                  f"{np.mean(r.baseline_accs):.4f}", f"{np.mean(r.alternative_accs):.4f}",
                  f"{r.stats.mean_diff:+.2f}",
                  f"[{r.stats.ci_low:+.2f}, {r.stats.ci_high:+.2f}]",
                  _fmt_p(r.stats.p_wilcoxon),
                  f"{r.stats.p_improvement:.2f} ({r.stats.wins}/{r.stats.n})", str(r.stats.n)]
                 for r in self.rows]
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
        out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in [header, *table]]
        out += [f"verdict{'' if self.top_k == 1 else f' (trial #{r.trial_number})'}: "
                f"{r.verdict()}" for r in self.rows]
        out.append(f"stored as study user attr 'verify:{self.question}'")
        return out


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """NaN/inf -> None, so the stored attr is strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in d.items()}


# ---------------------------------------------------------------------------- verify

_Twin = tuple[Value, TrialConfig]  # (value of the question's param, the twin's config)


def _plan(q: Question, trials: list[FrozenTrial], prov: Mapping[str, Any],
          ) -> list[tuple[int, _Twin, list[_Twin]]]:
    """Per trial: its number, the baseline twin and the alternative twins."""
    plans = []
    for t in trials:
        best = trial_config(t)
        base_value, alternatives = twin_values(q, best, prov)
        twins = [(v, make_twin(best, q.param, v, prov)) for v in (base_value, *alternatives)]
        assert len({cfg for _, cfg in twins}) == len(twins)  # every twin differs
        plans.append((t.number, twins[0], twins[1:]))
    return plans


def _train_twins(labels: dict[TrialConfig, str], data: DeviceData, settings: Settings,
                 seeds: list[int], progress: Progress | None,
                 ) -> dict[tuple[TrialConfig, int], float]:
    """Test accuracy of every distinct config on every seed; ``labels`` name them."""
    acc: dict[tuple[TrialConfig, int], float] = {}
    total = len(labels) * len(seeds)
    for seed in seeds:  # seed-major: an interrupted run has every twin on early seeds
        for cfg, label in labels.items():
            run = train(cfg, data, epochs=settings.epochs, patience=settings.patience,
                        seed=seed)
            assert run.model is not None  # train always returns the model
            acc[cfg, seed] = evaluate(run.model, data, cfg, "test")[1]
            if progress is not None:
                progress(len(acc), total, f"{label}, seed {seed}")
    return acc


def verify(storage: str, question: str, *, seeds: int = 10, top_k: int = 1,
           study_name: str | None = None, epochs: int | None = None, device: str = "auto",
           progress: Progress | None = None, data_dir: str | None = None) -> VerifyResult:
    """Paired re-runs of the top-``top_k`` configs' twins for ``question``, on the test split.

    Every twin is trained on seeds ``0..seeds-1``; data, epochs and patience come from the
    study's provenance (``epochs`` and ``data_dir`` override). Stores the result as the
    study user attr ``verify:<question>`` and returns it.
    """
    q = QUESTION_BY_ID.get(question)
    if q is None:
        raise ConfigError(f"unknown question {question!r}; known: {', '.join(QUESTION_BY_ID)}")
    for name, value in (("seeds", seeds), ("top-k", top_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name} must be an integer >= 1, got {value!r}")
    study = load_study(storage, study_name)
    trials = complete_trials(study)[:top_k]
    settings = study_settings(study, epochs=epochs, data_dir=data_dir)
    prov = study.user_attrs.get("provenance") or {}

    plans = _plan(q, trials, prov)
    data = study_data(settings, device)
    seed_list = list(range(seeds))
    # Twins shared by several top trials (same config) are trained once per seed.
    labels = {cfg: f"trial #{n} {q.param}={v}"
              for n, base, alts in plans for v, cfg in (base, *alts)}
    acc = _train_twins(labels, data, settings, seed_list, progress)

    result = VerifyResult(question=q.id, param=q.param, study_name=study.study_name,
                          seeds=seed_list, top_k=top_k, dataset=settings.dataset,
                          epochs=settings.epochs, n_test=len(data.test_y))
    for number, (base_value, base_cfg), alt_twins in plans:
        base_accs = [acc[base_cfg, s] for s in seed_list]
        for alt_value, cfg in alt_twins:
            alt_accs = [acc[cfg, s] for s in seed_list]
            stats = paired_stats(100 * np.asarray(base_accs), 100 * np.asarray(alt_accs))
            result.rows.append(VerifyRow(number, q.param, base_value, alt_value, stats,
                                         base_accs, alt_accs, base_cfg, cfg))
    study.set_user_attr(f"verify:{q.id}", result.to_dict())
    return result
