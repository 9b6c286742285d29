"""Analyse a study: the design's questions, param importances, pruning, learning curves.

Works on any Optuna study, not only hpsearch's: every param a study sampled with two or
more values gets a question (the built-in ones with the seeds' claims first, then the
study's own), interactions are asked for the built-in pairs and any pair named, and a
multi-objective study on the objective chosen (:func:`one_objective`). Every verdict
is the effect at the end of training and one of three states: a difference, equivalence
within a margin, or open with what would settle it. Never imports torch, so ``hpsearch
report`` starts fast. The modules, in the order the data flows:

- :mod:`~hpsearch.analysis.table`: every finished trial and the values it reached;
- :mod:`~hpsearch.analysis.trainability`: trials that never learned (at chance) are
  failures to train: each question answers how often training fails per choice, apart
  from accuracy among the trials that learned;
- :mod:`~hpsearch.analysis.matrix`: the questions' choices and the other params as columns;
- :mod:`~hpsearch.analysis.regress` and :mod:`~hpsearch.analysis.effects`: adjusted effects
  from all trials, pruned ones included, followed to the end of training;
- :mod:`~hpsearch.analysis.terms`: the same chain for any columns (numeric params, products);
- :mod:`~hpsearch.analysis.contrasts`: a question's contrasts and its three-state decision;
- :mod:`~hpsearch.analysis.questions` (and :mod:`~hpsearch.analysis.numeric` for numeric
  params): contrasts and Holm; :mod:`~hpsearch.analysis.verdicts`: the words, what it
  would take, the effect over training;
- :mod:`~hpsearch.analysis.interactions`: does the effect of A depend on B?
- :mod:`~hpsearch.analysis.importance`: importances with a bootstrap band and a noise floor;
- :mod:`~hpsearch.analysis.curves`: pruning's savings and learning curves;
- :mod:`~hpsearch.analysis.answers` (the JSON keys) and :mod:`~hpsearch.analysis.stats`;
- :mod:`~hpsearch.analysis.seeds`: paired re-runs on the same seeds and their sequential
  looks (``hpsearch verify``);
- :mod:`~hpsearch.analysis.study`: :func:`analyze`, all of the above for one study;
  :mod:`~hpsearch.analysis.metric`: which objective of a multi-objective study.
"""

from hpsearch.analysis.answers import Answer, ChoiceSummary, Effect, Importance, StudyAnalysis
from hpsearch.analysis.arms import paired_effects
from hpsearch.analysis.curves import learning_curves, pruning_stats
from hpsearch.analysis.discordant import FAILURE_MARGIN, gate, never_learned
from hpsearch.analysis.importance import EVALUATORS
from hpsearch.analysis.metric import objective_index, one_objective
from hpsearch.analysis.questions import answer_questions
from hpsearch.analysis.seeds import (
    ALPHA,
    MIN_EFFECT,
    POWER,
    Decision,
    LookPlan,
    PairedStats,
    paired_stats,
    plan_looks,
    run_looks,
    seeds_needed,
)
from hpsearch.analysis.stats import min_pairs_for, settle
from hpsearch.analysis.study import analyze, param_importances, repeated_draws

__all__ = [
    "EVALUATORS", "Answer", "ChoiceSummary", "Effect", "Importance", "StudyAnalysis",
    "learning_curves", "pruning_stats", "ALPHA", "MIN_EFFECT", "POWER", "PairedStats",
    "paired_stats", "seeds_needed", "answer_questions", "analyze", "param_importances",
    "repeated_draws",
    "settle", "objective_index", "one_objective", "never_learned", "Decision", "LookPlan",
    "plan_looks", "run_looks", "min_pairs_for", "paired_effects", "FAILURE_MARGIN", "gate",
]
