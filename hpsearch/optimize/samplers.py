"""Samplers and pruners by name (``--sampler``, ``--pruner``), and the randomized share."""

from __future__ import annotations

from collections.abc import Callable

import optuna


def make_sampler(name: str, seed: int, random_share: float = 0.0,
                 ) -> optuna.samplers.BaseSampler:
    """TPE by default. ``group=True`` lets multivariate TPE model the conditional space.

    ``random_share`` > 0 draws that share of the adaptive samplers' trials at random
    (:class:`.randomized.RandomizedShare`), so the study is an experiment too; at 0 the
    adaptive sampler draws every trial (the wrapper still seeds it per trial).
    """
    import warnings

    from hpsearch.optimize.randomized import RandomizedShare, TrialSeededRandom

    def share(base: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
        # Share 0 keeps the wrapper (no trial drawn at random, not even the first ten) for
        # its per-trial seeding of the base's generators: a resumed study draws anew.
        return RandomizedShare(base, share=random_share, seed=seed,
                               n_startup=10 if random_share else 0)

    samplers: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
        "tpe": lambda: share(optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                        group=True)),
        "random": lambda: TrialSeededRandom(seed),  # resumes and workers draw anew
        "gp": lambda: share(optuna.samplers.GPSampler(seed=seed)),
        "cmaes": lambda: share(optuna.samplers.CmaEsSampler(seed=seed,
                                                            warn_independent_sampling=False)),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return samplers[name]()


def make_pruner(name: str, epochs: int | None) -> optuna.pruners.BasePruner:
    """Median by default: after 5 finished trials, prune below the median at the same epoch.

    No trial is pruned on its first epoch (``n_warmup_steps``; epochs are 1-based steps):
    regularized configs (dropout, augmentation, weight decay) start slower and pay back
    later, so epoch-1 pruning would bias the study against the very techniques it measures.
    A user's objective (``epochs`` None) reports steps of its own: its first one (step 0 in
    Optuna's examples) is not pruned, and hyperband learns the most steps from the trials.
    """
    warmup = 1 if epochs is None else 2 if epochs > 2 else 1
    pruners: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup),
        "percentile": lambda: optuna.pruners.PercentilePruner(
            25.0, n_startup_trials=5, n_warmup_steps=warmup),
        "sha": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs if epochs is not None else "auto"),
        "none": lambda: optuna.pruners.NopPruner(),
    }
    return pruners[name]()
