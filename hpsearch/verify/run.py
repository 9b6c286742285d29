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

Seeds are added in looks (:mod:`hpsearch.analysis.sequential`: the design and why): each
comparison stops at the first look where it is settled (``settled``: "difference",
"equivalent" inside ±``margin`` pts, or "open" after the last look), the others go on; the
Holm family and the printed intervals stay valid after stopping (``p_sequential`` is what
Holm adjusts). ``--seeds`` is the most seeds a comparison may use; the stored result says
how many trainings ran (``trainings``) against the fixed plan's (``trainings_fixed``).
Every (twin, seed) training is stored as it finishes (:mod:`.store`), so a re-run resumes
and ``jobs`` processes (or machines on one storage) share the work.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from hpsearch.analysis import ALPHA, paired_stats
from hpsearch.analysis.sequential import MARGIN, Decision, LookPlan, plan_looks, run_looks
from hpsearch.analysis.stats import min_pairs_for
from hpsearch.errors import ConfigError
from hpsearch.replay import complete_trials, study_data, study_settings, trial_config
from hpsearch.space import QUESTION_BY_ID, QUESTIONS, Question, TrialConfig, Value
from hpsearch.storage import save_result
from hpsearch.training import DeviceData
from hpsearch.verify.result import VerifyResult, VerifyRow
from hpsearch.verify.store import Training, TrainingStore, open_study
from hpsearch.verify.twins import make_twin, twin_values

DEFAULT_SEEDS = 16   # at least this many, and enough for the first look to stop (default_seeds)

# progress(done, total, what): called after each training this process stored
Progress = Callable[[int, int, str], None]


# ---------------------------------------------------------------------------- verify

_Twin = tuple[Value, TrialConfig]  # (value of the question's param, the twin's config)
# (question, trial number, rank, own value, baseline twin, alternative twin): one row
_Row = tuple[Question, int, int, Value, _Twin, _Twin]


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


def default_seeds(family: int, alpha: float = ALPHA) -> int:
    """The most seeds a comparison may use by default: ``DEFAULT_SEEDS``, or twice what the
    first look (half the seeds, a quarter of the alpha) needs to stop when every seed agrees."""
    return max(DEFAULT_SEEDS, 2 * min_pairs_for(alpha / family / 4))


def verify(storage: str, question: str | None = None, *, seeds: int | None = None,
           top_k: int = 1, study_name: str | None = None, epochs: int | None = None,
           device: str = "auto", progress: Progress | None = None,
           data_dir: str | None = None, alpha: float = ALPHA, margin: float = MARGIN,
           fuse: int | None = None, jobs: int = 1) -> VerifyResult:
    """Paired re-runs of the top-``top_k`` configs' twins, on the test split, in looks.

    ``question`` None verifies every question the study sampled, as one Holm family.
    ``seeds``: the most seeds a comparison may use (None: :func:`default_seeds`); fewer
    than the family's minimum is a :class:`ConfigError` that names it. Each comparison
    stops at the first look where it is a difference or an equivalence (inside ``±margin``
    test-accuracy points). Data, epochs and patience come from the study's provenance
    (``epochs`` and ``data_dir`` override); ``fuse`` caps how many trainings train as one
    fused model (1: one by one); ``jobs`` processes share the trainings. Every training is
    stored as it finishes in the companion study ``<study>:verify``; each question's result
    is stored as the study user attr ``verify:<question>`` and all are returned.
    """
    if question is not None and question not in QUESTION_BY_ID:
        raise ConfigError(f"unknown question {question!r}; known: {', '.join(QUESTION_BY_ID)}")
    for name, value in (("seeds", 1 if seeds is None else seeds), ("top-k", top_k),
                        ("jobs", jobs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name} must be an integer >= 1, got {value!r}")
    if isinstance(margin, bool) or not isinstance(margin, int | float) \
            or not 0 < margin < 100:
        raise ConfigError(f"--margin must be a number of accuracy points in (0, 100), got "
                          f"{margin!r}")
    study, opened = open_study(storage, study_name)
    trials = complete_trials(study)[:top_k]
    questions = ([QUESTION_BY_ID[question]] if question is not None
                 else sampled_questions(trials))
    if not questions:
        raise ConfigError(f"study {study.study_name!r} sampled none of the questions' params "
                          "(all fixed by its preset?); name one with --question")
    settings = study_settings(study, epochs=epochs, data_dir=data_dir)
    prov = study.user_attrs.get("provenance") or {}
    rows: list[_Row] = [(q, n, rank, own, base, alt) for q in questions
                        for n, rank, own, base, alts in _plan(q, trials, prov) for alt in alts]
    family = len(rows)
    need = min_pairs_for(alpha / family)
    if seeds is None:
        seeds = default_seeds(family, alpha)
    elif seeds < need:
        raise ConfigError(
            f"--seeds {seeds} cannot reach significance: {family} comparison(s) in one Holm "
            f"family need p < {alpha / family:.2g} at Holm's first step, and the signed-rank "
            f"test gets there only with {need} or more seeds; use --seeds {need} (or verify "
            "fewer questions with --question)")
    data = study_data(settings, device)
    store = TrainingStore(storage, opened, study.study_name, settings, fuse=fuse)
    plan = plan_looks(seeds, alpha / family)
    twins = {cfg for *_, base, alt in rows for _, cfg in (base, alt)}
    workers = _start_workers(jobs - 1, dict(
        storage=storage, question=question, seeds=seeds, top_k=top_k,
        study_name=study.study_name, epochs=epochs, device=device, data_dir=data_dir,
        alpha=alpha, margin=margin, fuse=fuse))
    try:
        decisions, acc = _run(rows, plan, store, data, len(twins) * seeds, progress,
                              alpha=alpha, margin=margin)
    except BaseException:
        _stop_workers(workers)
        raise
    for w in workers:
        w.join()

    result = VerifyResult(questions=[q.id for q in questions], study_name=study.study_name,
                          seeds=list(range(seeds)), top_k=top_k, dataset=settings.dataset,
                          epochs=settings.epochs, n_test=len(data.test_y), alpha=alpha,
                          margin=float(margin), looks=list(plan.looks), trainings=len(acc),
                          trainings_fixed=len(twins) * seeds, trained_here=store.trained)
    for (q, number, rank, own, (base_value, base_cfg), (alt_value, cfg)), d in zip(
            rows, decisions, strict=True):
        base_accs = [acc[Training(base_cfg, s)] for s in range(d.n)]
        alt_accs = [acc[Training(cfg, s)] for s in range(d.n)]
        result.rows.append(_row(q, number, rank, own, base_value, alt_value, base_accs,
                                alt_accs, base_cfg, cfg, d))
    result.saved = [save_result(study, f"verify:{q.id}", result.question_dict(q.id), storage)
                    for q in questions]
    return result


def _run(rows: list[_Row], plan: LookPlan, store: TrainingStore, data: DeviceData,
         total: int, progress: Progress | None, *, alpha: float, margin: float,
         ) -> tuple[list[Decision], dict[Training, float]]:
    """The looks: each trains (or reads) the seeds its open rows need, then decides."""
    acc: dict[Training, float] = {}
    labels = {cfg: f"#{n} {q.param}={value}" for q, n, _, _, *twins in rows
              for value, cfg in twins}

    def fetch(active: list[int], n: int) -> list[np.ndarray]:
        need = sorted({Training(cfg, s) for i in active for _, cfg in rows[i][4:6]
                       for s in range(n)} - acc.keys(), key=lambda t: (str(t.config), t.seed))
        done = len(acc)

        def stored(t: Training, acc: float) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, f"{labels.get(t.config, 'another plan')} seed {t.seed}: "
                                      f"test accuracy {acc:.4f}")

        acc.update(store.results(need, data, stored))
        out = []
        for i in active:
            (_, base), (_, alt) = rows[i][4], rows[i][5]
            b = np.array([acc[Training(base, s)] for s in range(n)])
            a = np.array([acc[Training(alt, s)] for s in range(n)])
            # Rounded as paired_stats does: twins that agree on every example differ by 0.
            out.append(np.round(100 * a - 100 * b, 10))
        return out

    return run_looks(len(rows), plan, fetch, alpha=alpha, margin=margin), acc


def _row(q: Question, number: int, rank: int, own: Value, base_value: Value,
         alt_value: Value, base_accs: list[float], alt_accs: list[float],
         base_cfg: TrialConfig, cfg: TrialConfig, d: Decision) -> VerifyRow:
    """A row whose interval, Holm p and state are the sequential decision's."""
    stats = paired_stats(100 * np.asarray(base_accs), 100 * np.asarray(alt_accs),
                         level=d.level)
    stats = replace(stats, ci_low=d.ci_low, ci_high=d.ci_high, p_wilcoxon=d.p_look)
    return VerifyRow(q.id, number, rank, q.param, own, base_value, alt_value, base_accs,
                     alt_accs, base_cfg, cfg, stats, p_holm=d.p_holm,
                     significant=d.settled == "difference", settled=d.settled,
                     margin=d.margin, p_sequential=d.p_sequential, looks=d.looks)


# ---------------------------------------------------------------------------- workers


def _worker_entry(kwargs: dict[str, Any]) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        verify(**kwargs)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _start_workers(n: int, kwargs: dict[str, Any]) -> list[Any]:
    """``n`` more processes running the same verify: they share its trainings."""
    procs = [mp.get_context("spawn").Process(target=_worker_entry, args=(kwargs,))
             for _ in range(n)]
    for p in procs:
        p.start()
    return procs


def _stop_workers(procs: list[Any]) -> None:
    for p in procs:
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGINT)
    for p in procs:
        p.join(timeout=10)
