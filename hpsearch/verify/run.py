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

An interaction id (``dropout_x_activation``, ...: :data:`hpsearch.space.INTERACTIONS`) as
``question`` trains the 2x2 factorial twins of each top config (:func:`.twins.factorial_cells`:
A's two levels x B's reference and each other level, 2xk) and tests, per seed, the
interaction contrast ``(y[a1,b1] - y[a0,b1]) - (y[a1,b0] - y[a0,b0])`` (test-accuracy
points) with the same sequential machinery, in place of alternative - baseline; its rows
have ``kind: "interaction"``, ``params`` and a ``label`` ("effect of dropout (0 -> 0.3)
with sigmoid minus with relu"). With no question named, interactions are not verified.

Seeds are added in looks (:mod:`hpsearch.analysis.seeds.sequential`: the design and why): each
comparison stops at the first look where it is settled (``settled``: "difference",
"equivalent" inside ±``margin`` pts with the failures to learn equivalent too, or "open"
after the last look), the others go on; the
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

from hpsearch import schema
from hpsearch.analysis import (
    ALPHA,
    Decision,
    LookPlan,
    PairedStats,
    min_pairs_for,
    never_learned,
    paired_stats,
    plan_looks,
    run_looks,
)
from hpsearch.errors import ConfigError
from hpsearch.objectives import Params
from hpsearch.replay import (
    complete_trials,
    fallback_values,
    foreign_message,
    own_data_message,
    study_data,
    study_objective,
    study_settings,
    trial_config,
)
from hpsearch.settings import MARGIN, MAX_JOBS, verify_seed_cap
from hpsearch.space import (
    INTERACTION_BY_ID,
    QUESTION_BY_ID,
    QUESTIONS,
    Interaction,
    Question,
    TrialConfig,
    Value,
)
from hpsearch.training import DeviceData
from hpsearch.verify.own import (
    ObjectiveMeasure,
    filled_text,
    own_plan,
    own_questions,
    own_settings,
)
from hpsearch.verify.result import VerifyResult, VerifyRow
from hpsearch.verify.store import Training, TrainingStore, open_study
from hpsearch.verify.twins import factorial_cells, make_twin, twin_values

# progress(done, total, what): called after each training this process stored
Progress = Callable[[int, int, str], None]


# ---------------------------------------------------------------------------- verify

# A twin's config: hpsearch's own, or a user's objective's params (.own)
Config = TrialConfig | Params
_Twin = tuple[Value, Config]  # (value of the question's param, the twin's config)
# (question, trial number, rank, own value, baseline twin, alternative twin): one row
_Row = tuple[Question, int, int, Value, _Twin, _Twin]
# (interaction, trial number, rank, A's levels, B's levels, cells {(i, j): A=a_i, B=b_j}): one row
_IRow = tuple[Interaction, int, int, tuple[Value, Value], tuple[Value, Value],
              dict[tuple[int, int], TrialConfig]]


def _plan(q: Question, trials: list[FrozenTrial], prov: Mapping[str, Any],
          baseline: str | None = None) -> list[tuple[int, int, Value, _Twin, list[_Twin]]]:
    """Per trial: its number, rank, own value, the baseline twin and the alternative twins
    (``baseline``: the twin whose value of the param reads so, in place of the config's)."""
    plans = []
    for rank, t in enumerate(trials):
        best = trial_config(t)
        base_value, alternatives = twin_values(q, best, prov)
        values = [base_value, *alternatives]
        if baseline is not None:
            at = next((i for i, v in enumerate(values) if str(v) == baseline), None)
            if at is None:
                raise ConfigError(f"--baseline {baseline!r} is not a value verify compares "
                                  f"for {q.id}; choose from "
                                  f"{', '.join(str(v) for v in values)}")
            values = [values[at], *values[:at], *values[at + 1:]]
        twins: list[_Twin] = [(v, make_twin(best, q.param, v, prov)) for v in values]
        assert len({cfg for _, cfg in twins}) == len(twins)  # every twin differs
        plans.append((t.number, rank, getattr(best, q.param), twins[0], twins[1:]))
    return plans


def _comparisons(questions: Sequence[Question], inters: Sequence[Interaction],
                 trials: list[FrozenTrial], prov: Mapping[str, Any],
                 own: Callable[[Question], Any] | None = None,
                 baseline: str | None = None) -> tuple[list[_Row], list[_IRow]]:
    """verify's comparisons at ``trials``: a row per alternative twin of each question
    (``own``: the plan of a user's objective's question) and per factorial contrast of
    each interaction; ``baseline``: see :func:`_plan`)."""
    plans = ((q, own(q) if own else _plan(q, trials, prov, baseline)) for q in questions)
    rows: list[_Row] = [(q, n, rank, value, base, alt) for q, plan in plans
                        for n, rank, value, base, alts in plan for alt in alts]
    irows: list[_IRow] = [(x, t.number, rank, a, b, cells) for x in inters
                          for rank, t in enumerate(trials)
                          for a, b, cells in factorial_cells(x.params, trial_config(t), prov)]
    return rows, irows


def planned_trainings(study: Any, question: str, *, top_k: int = 1,
                      alpha: float = ALPHA) -> tuple[int, int, int]:
    """What ``verify(question=...)`` of one built-in question or interaction would train at
    the study's top-``top_k``, before it trains anything: ``(twins, first, most)``, each
    twin trained once per seed, ``first`` seeds at its first look (where it stops if every
    seed agrees) and ``most`` by default."""
    trials = complete_trials(study)[:top_k]
    prov = schema.provenance(study) or {}
    rows, irows = _comparisons(
        [QUESTION_BY_ID[question]] if question in QUESTION_BY_ID else [],
        [INTERACTION_BY_ID[question]] if question in INTERACTION_BY_ID else [], trials, prov)
    terms = [_terms(r) for r in rows] + [_cell_terms(r[5]) for r in irows]
    if not terms:
        raise ConfigError(f"verify of {question!r} has nothing to compare in study "
                          f"{study.study_name!r}")
    family = len(terms)
    most = default_seeds(family, alpha)
    return (len({cfg for t in terms for cfg, _ in t}),
            plan_looks(most, alpha / family).looks[0], most)


def sampled_questions(trials: Sequence[FrozenTrial]) -> list[Question]:
    """The questions whose param the study's trials sampled (not fixed by a preset)."""
    sampled = {p for t in trials for p in t.params}
    return [q for q in QUESTIONS if q.param in sampled]


def default_seeds(family: int, alpha: float = ALPHA) -> int:
    """The most seeds a comparison may use by default (:func:`hpsearch.settings.verify_seed_cap`:
    what ``verify --help`` prints)."""
    return verify_seed_cap(family, alpha)


def verify(storage: str, question: str | None = None, *, seeds: int | None = None,
           top_k: int = 1, study_name: str | None = None, epochs: int | None = None,
           device: str = "auto", progress: Progress | None = None,
           data_dir: str | None = None, alpha: float = ALPHA, margin: float = MARGIN,
           fuse: int | None = None, jobs: int = 1,
           objective: str | None = None,
           on_start: Callable[[str], None] | None = None,
           dataset: str | None = None, baseline: str | None = None) -> VerifyResult:
    """Paired re-runs of the top-``top_k`` configs' twins, on the test split, in looks.

    ``question`` None verifies every question the study sampled, as one Holm family.
    ``seeds``: the most seeds a comparison may use (None: :func:`default_seeds`); fewer
    than the family's minimum is a :class:`ConfigError` that names it. Each comparison
    stops at the first look where it is a difference or an equivalence (inside ``±margin``
    test-accuracy points, and its failure rates inside ±5 pts where a chance level is known).
    Data, epochs and patience come from the study's provenance (``epochs`` and ``data_dir``
    override; ``dataset`` is where its ``.npz`` or image folder is now, checked against the
    study's record of its data); ``fuse`` caps how many trainings train as one fused model
    (1: one by one); ``jobs`` processes share the trainings. Every training is stored as it
    finishes in the companion study ``<study>:verify``; each question's result is stored as
    the study user attr ``verify:<question>`` and all are returned.

    A study that runs a user's objective (``optimize --objective``: the study records it;
    ``objective`` points at it when it moved, or gives one to a study another tool made)
    is verified through it (:mod:`.own`): its categorical params are the questions, and
    each training is one call of the objective with the twin's params on the test split.
    ``on_start`` gets the plan (:meth:`VerifyResult.plan_line`) before the first training,
    so a log reads plan, then progress. ``baseline`` (one built-in ``question``): the value
    of its param the others are compared with, in place of the config's own (a claim about
    one value against another, at a config that has neither).
    """
    for name, value in (("seeds", 1 if seeds is None else seeds), ("top-k", top_k),
                        ("jobs", jobs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name} must be an integer >= 1, got {value!r}")
    if jobs > MAX_JOBS:  # each is a process that loads the data: bounded as optimize's are
        raise ConfigError(f"--jobs must be an integer in 1..{MAX_JOBS}, got {jobs}")
    if isinstance(margin, bool) or not isinstance(margin, int | float) \
            or not 0 < margin < 100:
        raise ConfigError(f"--margin must be a number of accuracy points in (0, 100), got "
                          f"{margin!r}")
    study, opened = open_study(storage, study_name)
    loaded = study_objective(study, objective, "verify")
    if loaded is not None and dataset is not None:
        raise ConfigError(own_data_message(study.study_name))
    if loaded is None and question is not None and question not in QUESTION_BY_ID \
            and question not in INTERACTION_BY_ID:
        raise ConfigError(f"unknown question {question!r}; known: "
                          f"{', '.join([*QUESTION_BY_ID, *INTERACTION_BY_ID])}")
    if baseline is not None and (question is None or question not in QUESTION_BY_ID
                                 or loaded is not None):
        raise ConfigError("--baseline needs one built-in --question (one of "
                          f"{', '.join(QUESTION_BY_ID)})")
    ranked = complete_trials(study)
    if loaded is None and schema.provenance(study) is None:
        raise ConfigError(foreign_message(study.study_name, "verify"))
    trials = ranked[:top_k]
    inters = ([INTERACTION_BY_ID[question]] if question in INTERACTION_BY_ID and not loaded
              else [])
    questions = (own_questions(study, question) if loaded
                 else [QUESTION_BY_ID[question]] if question in QUESTION_BY_ID
                 else [] if inters else sampled_questions(trials))
    if not questions and not inters:
        raise ConfigError(f"study {study.study_name!r} sampled none of the questions' params "
                          "(all fixed by its preset?); name one with --question")
    settings = (own_settings(study) if loaded
                else study_settings(study, epochs=epochs, data_dir=data_dir, dataset=dataset))
    prov = schema.provenance(study) or {}
    rows, irows = _comparisons(questions, inters, trials, prov,
                               (lambda q: own_plan(q, trials, study)) if loaded else None,
                               baseline)
    terms = [_terms(r) for r in rows] + [_cell_terms(r[5]) for r in irows]
    labels = {cfg: f"#{n} {q.param}={value}" for q, n, _, _, *tw in rows for value, cfg in tw}
    labels.update({cfg: f"#{n} {x.params[0]}={a[i]} {x.params[1]}={b[j]}"
                   for x, n, _, a, b, cells in irows for (i, j), cfg in cells.items()})
    family = len(terms)
    need = min_pairs_for(alpha / family)
    if seeds is None:
        seeds = default_seeds(family, alpha)
    elif seeds < need:
        raise ConfigError(
            f"--seeds {seeds} cannot reach significance: {family} comparison(s) in one Holm "
            f"family need p < {alpha / family:.2g} at Holm's first step, and the signed-rank "
            f"test gets there only with {need} or more seeds; use --seeds {need} (or verify "
            "fewer questions with --question)")
    data = study_data(settings, device, study, dataset=dataset) if loaded is None else None
    store = (TrainingStore(storage, opened, study.study_name, settings, fuse=fuse)
             if loaded is None else
             TrainingStore(storage, opened, study.study_name, settings,
                           measure=ObjectiveMeasure(loaded, fallback_values(ranked, study)),
                           key={"objective": loaded.sha256}))
    plan = plan_looks(seeds, alpha / family)
    twins = {cfg for t in terms for cfg, _ in t}
    workers = _start_workers(jobs - 1, dict(
        storage=storage, question=question, seeds=seeds, top_k=top_k,
        study_name=study.study_name, epochs=epochs, device=device, data_dir=data_dir,
        alpha=alpha, margin=margin, fuse=fuse, objective=objective, dataset=dataset,
        baseline=baseline))
    result = VerifyResult(questions=[q.id for q in questions] + [x.id for x in inters],
                          study_name=study.study_name,
                          seeds=list(range(seeds)), top_k=top_k,
                          dataset=settings.dataset if loaded is None else "",
                          epochs=settings.epochs if loaded is None else 0,
                          n_test=len(data.test_y) if data is not None else 0, alpha=alpha,
                          margin=float(margin), looks=list(plan.looks),
                          trainings_fixed=len(twins) * seeds, family=family,
                          objective=loaded.spec if loaded else None,
                          direction=study.direction.name.lower(), baseline=baseline)
    try:
        if on_start is not None:
            on_start(result.plan_line())
        decisions, acc = _run(terms, labels, plan, store, data, len(twins) * seeds,
                              progress, alpha=alpha, margin=margin)
    except BaseException:
        _stop_workers(workers)
        raise
    for w in workers:
        w.join()
    result.trainings, result.trained_here = len(acc), store.trained
    for (q, number, rank, own, (base_value, base_cfg), (alt_value, cfg)), d in zip(
            rows, decisions, strict=False):
        base_accs = [acc[Training(base_cfg, s)] for s in range(d.n)]
        alt_accs = [acc[Training(cfg, s)] for s in range(d.n)]
        row = _row(q, number, rank, own, base_value, alt_value, base_accs, alt_accs,
                   base_cfg, cfg, d, chance_of(data))
        row.maximize = result.direction == "maximize"
        for twin in (base_cfg, cfg):
            notes = [store.notes[t] for t in store.notes if t.config == twin]
            row.filled.update(filled_text(notes[0]) if notes else {})
        result.rows.append(row)
    for ir, d in zip(irows, decisions[len(rows):], strict=True):
        result.rows.append(_interaction_row(ir, acc, d, chance_of(data)))
    result.saved = [result.store(study, qid, storage) for qid in result.questions]
    return result


# A comparison's per-seed difference: sum of coefficient x test accuracy over its twins
# (main rows: alternative - baseline; interaction rows: the 2x2 contrast).
_Terms = list[tuple[Config, int]]


def _terms(row: _Row) -> _Terms:
    return [(row[5][1], 1), (row[4][1], -1)]


def _cell_terms(cells: Mapping[tuple[int, int], TrialConfig]) -> _Terms:
    """(y[a1,b1] - y[a0,b1]) - (y[a1,b0] - y[a0,b0])."""
    return [(cells[1, 1], 1), (cells[0, 1], -1), (cells[1, 0], -1), (cells[0, 0], 1)]


def contrast(accs: Mapping[tuple[int, int], Sequence[float]]) -> np.ndarray:
    """Per-seed interaction contrast in test-accuracy points from the four cells' accuracies
    (fractions), rounded as paired_stats does: a contrast of exactly 0 stays 0."""
    y = {k: 100 * np.asarray(v, dtype=float) for k, v in accs.items()}
    return np.round((y[1, 1] - y[0, 1]) - (y[1, 0] - y[0, 0]), 10)


def _failed(accs: Sequence[np.ndarray], chance: float | None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per seed: (a baseline-side twin never learned, an alternative-side one did). A
    comparison's terms list the alternative side first (main rows: the alternative; an
    interaction: the two cells at B's other level), then the baseline side."""
    flags = [never_learned(a, chance) for a in accs]
    half = len(flags) // 2
    return np.any(flags[half:], axis=0), np.any(flags[:half], axis=0)


def chance_of(data: DeviceData | None) -> float | None:
    """Test accuracy at chance, one class in the dataset's classes; None for a user's
    objective (its values are its own: no failure to learn is told apart)."""
    return 1.0 / max(1, len(data.classes)) if data is not None else None


def _run(terms: list[_Terms], labels: Mapping[Config, str], plan: LookPlan,
         store: TrainingStore, data: DeviceData | None, total: int, progress: Progress | None, *,
         alpha: float, margin: float) -> tuple[list[Decision], dict[Training, float]]:
    """The looks: each trains (or reads) the seeds its open rows need, then decides."""
    acc: dict[Training, float] = {}
    chance = chance_of(data)

    def fetch(active: list[int], n: int) -> list[np.ndarray]:
        need = sorted({Training(cfg, s) for i in active for cfg, _ in terms[i]
                       for s in range(n)} - acc.keys(), key=lambda t: (str(t.config), t.seed))
        done = len(acc)

        def stored(t: Training, acc: float) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                what = "test accuracy" if data is not None else "test value"  # a user's
                progress(done, total, f"{labels.get(t.config, 'another plan')} seed {t.seed}: "
                                      f"{what} {acc:.4f}")

        acc.update(store.results(need, data, stored))
        out = []
        for i in active:
            y = [np.array([acc[Training(cfg, s)] for s in range(n)]) for cfg, _ in terms[i]]
            d = sum(c * 100 * v for (_, c), v in zip(terms[i], y, strict=True))
            # Rounded as paired_stats does: twins that agree on every example differ by 0.
            d = np.round(np.asarray(d, dtype=float), 10)
            # no chance level (a user's objective): plain differences, no failure told apart
            out.append(d if chance is None else np.column_stack([d, *_failed(y, chance)]))
        return out

    return run_looks(len(terms), plan, fetch, alpha=alpha, margin=margin), acc


def _row(q: Question, number: int, rank: int, own: Value, base_value: Value,
         alt_value: Value, base_accs: list[float], alt_accs: list[float],
         base_cfg: Config, cfg: Config, d: Decision, chance: float | None) -> VerifyRow:
    """A row whose interval, Holm p and state are the sequential decision's; its statistics
    are over the seeds where both twins learned."""
    learned = ~(never_learned(base_accs, chance) | never_learned(alt_accs, chance))
    stats = _learned_stats(100 * np.asarray(base_accs), 100 * np.asarray(alt_accs), learned, d)
    return VerifyRow(q.id, number, rank, q.param, own, base_value, alt_value, base_accs,
                     alt_accs, base_cfg, cfg, stats, p_holm=d.p_holm,
                     significant=d.settled == schema.DIFFERENCE, settled=d.settled,
                     margin=d.margin, p_sequential=d.p_sequential, looks=d.looks,
                     **_failure_fields(d))


def _learned_stats(base: np.ndarray, alt: np.ndarray, learned: np.ndarray,
                   d: Decision) -> PairedStats:
    if learned.any():
        s = paired_stats(base[learned], alt[learned], level=d.level)
    else:  # no seed on which both learned: nothing to compare accuracies on
        nan = float("nan")
        s = PairedStats(0, nan, nan, nan, nan, 1 - d.level, 1.0, nan, 0, 0, 0, nan)
    return replace(s, ci_low=d.ci_low, ci_high=d.ci_high, p_wilcoxon=d.p_look)


def _failure_fields(d: Decision) -> dict[str, Any]:
    return dict(n_seeds=d.n, failed_base=d.failed_base, failed_alt=d.failed_alt,
                only_base=d.only_base, only_alt=d.only_alt, failures=d.failures,
                p_failures=d.p_failures, failures_low=d.failures_low,
                failures_high=d.failures_high, failures_seeds=d.failures_seeds,
                accuracy_settled=d.accuracy)


def _interaction_row(ir: _IRow, acc: Mapping[Training, float], d: Decision,
                     chance: float | None) -> VerifyRow:
    """An interaction row: B's two levels compared by A's per-seed effect at each."""
    x, number, rank, (a0, a1), (b0, b1), cells = ir
    accs = {k: [acc[Training(cfg, s)] for s in range(d.n)] for k, cfg in cells.items()}
    effect = {j: list(np.asarray(accs[1, j]) - np.asarray(accs[0, j])) for j in (0, 1)}
    learned = ~np.any([never_learned(v, chance) for v in accs.values()], axis=0)
    stats = _learned_stats(100 * np.asarray(effect[0]), 100 * np.asarray(effect[1]), learned,
                           d)
    pa, pb = x.params
    return VerifyRow(x.id, number, rank, pb, getattr(cells[0, 0], pb), b0, b1,
                     [float(v) for v in effect[0]], [float(v) for v in effect[1]],
                     cells[0, 0], cells[1, 1], stats, p_holm=d.p_holm,
                     significant=d.settled == schema.DIFFERENCE, settled=d.settled,
                     margin=d.margin, p_sequential=d.p_sequential, looks=d.looks,
                     kind="interaction", params=(pa, pb), a_levels=(a0, a1),
                     cells={k: (cfg, accs[k]) for k, cfg in cells.items()},
                     **_failure_fields(d))


# ---------------------------------------------------------------------------- workers


def _worker_entry(kwargs: dict[str, Any], parent: int) -> None:
    import optuna

    from hpsearch.optimize import exit_with_parent

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exit_with_parent(parent)  # its trainings are stored as they finish: nothing is lost
    try:
        verify(**kwargs)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _start_workers(n: int, kwargs: dict[str, Any]) -> list[Any]:
    """``n`` more processes running the same verify: they share its trainings."""
    procs = [mp.get_context("spawn").Process(target=_worker_entry, args=(kwargs, os.getpid()))
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
