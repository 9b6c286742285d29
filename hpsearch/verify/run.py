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
:mod:`.twins`.

Each question's result is stored as the study user attr ``verify:<question>``
(:meth:`VerifyResult.question_dict`), which ``hpsearch report`` shows as the causal column
of its verdicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from hpsearch.analysis import ALPHA, paired_stats
from hpsearch.analysis.stats import holm, holm_levels, min_pairs_for
from hpsearch.errors import ConfigError
from hpsearch.replay import complete_trials, study_data, study_settings, trial_config
from hpsearch.settings import Settings
from hpsearch.space import QUESTION_BY_ID, QUESTIONS, Question, TrialConfig, Value
from hpsearch.storage import load_study, save_result
from hpsearch.training import DeviceData, evaluate, train_seeds, training_threads
from hpsearch.verify.result import VerifyResult, VerifyRow
from hpsearch.verify.twins import make_twin, twin_values

DEFAULT_SEEDS = 10   # at least this many, and at least what the family needs






# progress(done, total, what): called after each training run
Progress = Callable[[int, int, str], None]


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

    Each twin's seeds train as one fused model where that pays (:mod:`hpsearch.training.fused`:
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
