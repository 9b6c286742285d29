"""Trainability: trials that never learned are failures to train, answered apart."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from hpsearch.analysis import analyze, answer_questions
from hpsearch.analysis.table import finished_table
from hpsearch.analysis.trainability import (
    KNOWN_CLASSES,
    never_learned,
    newcombe,
    study_chance,
)
from hpsearch.errors import ConfigError
from hpsearch.space import sample_config

optuna.logging.set_verbosity(optuna.logging.ERROR)


def failing_study(seed: int, n: int = 150, fails: dict | None = None, epochs: int = 4,
                  storage: str | None = None) -> tuple[optuna.Study, set[int]]:
    """Planted trials over hpsearch's space: accuracy 97 minus an lr hump plus t(3) noise;
    a trial fails (chance, 10% +- 0.5 at every epoch) with the probability ``fails`` gives
    its choice (default: 30% of trials with lr > 0.02, 2% of the others), else learns along
    a curve of random shape. Median pruning. Returns the study and the failed trials."""
    rng = np.random.default_rng([seed, 5])
    study = optuna.create_study(direction="maximize", storage=storage, study_name="s",
                                sampler=optuna.samplers.RandomSampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner())
    failed: set[int] = set()

    def objective(trial: optuna.Trial) -> float:
        v = sample_config(trial).as_dict()
        lr = float(v["lr"])  # type: ignore[arg-type]
        if fails is None:
            p = 0.3 if lr > 0.02 else 0.02
        else:
            p = max((rate for (param, choice), rate in fails.items() if v[param] == choice),
                    default=0.0)
        never = bool(rng.random() < p)
        if never:
            failed.add(trial.number)
        final = 97 - 3 * (math.log10(lr) - math.log10(3e-3)) ** 2 + 0.5 * rng.standard_t(3)
        power = rng.uniform(0.3, 2)
        acc = 0.0
        for e in range(1, epochs + 1):
            acc = (10 + rng.normal(0, 0.5) if never
                   else final - 15 * (1 - (e / epochs) ** power))
            acc = min(max(acc, 0.0), 100.0)  # an accuracy
            trial.report(acc / 100, e)
            if e < epochs and trial.should_prune():
                raise optuna.TrialPruned()
        return acc / 100

    study.optimize(objective, n_trials=n)
    return study, failed


def test_never_learned_finds_the_trials_at_chance() -> None:
    study, failed = failing_study(1, n=80)
    table = finished_table(study.trials, study.direction)
    flagged = {t.number for t, f in zip(table.trials, never_learned(table, 0.1), strict=True)
               if f}
    assert failed and flagged == failed & {t.number for t in table.trials}


def test_a_choice_that_fails_to_train_is_its_own_answer() -> None:
    """sigmoid fails in 40% of trials, every other activation never: trainability finds
    it, and the accuracy answer (among trials that learned) holds no failed trial."""
    study, failed = failing_study(2, fails={("activation", "sigmoid"): 0.4})
    answers = {a.question: a for a in answer_questions(study.trials, chance=0.1)}
    act = answers["activation"]
    assert act.trainability is not None
    assert act.trainability["settled"] == "difference"
    assert "with sigmoid" in act.trainability["verdict"]
    per = act.trainability["choices"]
    assert per["sigmoid"]["never_learned"] > 0 and per["relu"]["never_learned"] == 0
    assert sum(c["never_learned"] for c in per.values()) == len(failed)
    assert sum(c.n for c in act.choices) == len(study.trials) - len(failed)
    # a param whose choice does not change the failure rate: no difference
    assert answers["init"].trainability["settled"] != "difference"


def test_without_a_chance_level_nothing_is_detected_and_a_note_says_so() -> None:
    study, _ = failing_study(3, n=40)
    assert study_chance(study.user_attrs) == (None, study_chance({})[1])
    result = analyze(study, n_bootstrap_importance=2, n_noise=2)
    assert all(a.trainability is None for a in result.answers)
    assert any("chance level unknown" in n and "--chance" in n for n in result.notes)
    study.set_user_attr("dataset", "fashion-mnist")  # a dataset hpsearch knows: 10 classes
    assert study_chance(study.user_attrs)[0] == pytest.approx(0.1)
    result = analyze(study, n_bootstrap_importance=2, n_noise=2, chance=0.1)
    assert any("never learned" in n for n in result.notes)
    assert any(a.trainability is not None for a in result.answers)
    with pytest.raises(ConfigError, match="chance"):
        study_chance({}, 1.5)
    # optimize records what a model that never learned scores (the largest class's share)
    assert study_chance({"chance": 0.1135, "dataset": "mnist"})[0] == pytest.approx(0.1135)
    assert study_chance({"n_classes": 4})[0] == pytest.approx(0.25)


def test_known_classes_agree_with_the_datasets() -> None:
    from hpsearch.training.datasets import CLASSES

    assert {k: v for k, v in KNOWN_CLASSES.items() if k in CLASSES} == {
        k: len(v) for k, v in CLASSES.items()}


def test_newcombe_covers_at_small_counts() -> None:
    """Newcombe's interval for a difference of two rates covers the truth >= 93% of the
    time at the counts a study's choices have (20 and 30 trials, rates 0.05 and 0.2)."""
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        k1, k2 = rng.binomial(20, 0.05), rng.binomial(30, 0.2)
        lo, hi = newcombe(int(k1), 20, int(k2), 30, 0.05)
        hits += lo <= 0.05 - 0.2 <= hi
    assert hits / 2000 >= 0.93


def test_report_chance_separates_failures_for_any_study(tmp_path) -> None:
    """A study with no dataset recorded: ``report --chance 0.1`` detects the trials at
    chance; a chance outside [0, 1) is one clear message and a non-zero exit."""
    import json

    from click.testing import CliRunner

    from hpsearch.cli import main

    db = tmp_path / "s.db"
    _, failed = failing_study(4, n=60, fails={("activation", "sigmoid"): 0.5},
                              storage=f"sqlite:///{db}")
    runner = CliRunner()
    plain = runner.invoke(main, ["report", str(db), "--format", "json"])
    assert plain.exit_code == 0, plain.output
    doc = json.loads(plain.stdout[plain.stdout.index("{"):])
    assert all(a.get("trainability") is None for a in doc["analysis"]["answers"])
    assert any("chance level unknown" in n for n in doc["analysis"]["notes"])
    out = runner.invoke(main, ["report", str(db), "--format", "json", "--chance", "0.1"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout[out.stdout.index("{"):])
    act = next(a for a in doc["analysis"]["answers"] if a["question"] == "activation")
    per = act["trainability"]["choices"]
    assert sum(c["never_learned"] for c in per.values()) == len(failed)
    bad = runner.invoke(main, ["report", str(db), "--chance", "1.5"])
    assert bad.exit_code != 0 and "chance" in bad.output and "Traceback" not in bad.output


def test_a_study_where_no_trial_learned_says_so() -> None:
    study, failed = failing_study(5, n=30, fails={("activation", a): 1.0 for a in (
        "relu", "sigmoid", "tanh", "leaky_relu", "gelu")})
    assert len(failed) == 30
    model = {a.question: a for a in answer_questions(study.trials, chance=0.1)}["batch_norm"]
    assert model.unit == "pts" and model.settled == "open" and model.trainability
    assert model.status != "answered"  # no accuracy to compare
    assert sum(c["never_learned"] for c in model.trainability["choices"].values()) == 30


class _A:
    """The answer fields answer_trainability reads and writes."""

    def __init__(self, param: str) -> None:
        self.param, self.question, self.trainability = param, param, None


def _planted(rng: np.random.Generator, n: int, extra: float) -> tuple[list[dict], np.ndarray]:
    """Random-sampled trials: 30% of those with lr in the top sixth fail, 3% of all, and
    ``extra`` more of sigmoid's; init and the other activations change nothing."""
    acts = np.array(["relu", "sigmoid", "tanh", "leaky_relu", "gelu"])
    params = [{"activation": str(rng.choice(acts)), "init": str(rng.choice(["a", "b", "c"])),
               "lr": float(10 ** rng.uniform(-4, -1))} for _ in range(n)]
    ok = np.ones(n)
    for i, p in enumerate(params):
        ok[i] *= 0.97 * (0.7 if p["lr"] > 0.03 else 1.0)
        ok[i] *= 1 - extra if p["activation"] == "sigmoid" else 1.0
    return params, rng.random(n) > ok


def _answers(params: list[dict], failed: np.ndarray, *, stratify: bool = True) -> dict:
    from hpsearch.analysis.trainability import answer_trainability

    qs = []
    for param in ("activation", "init"):
        values = np.array([p[param] for p in params])
        qs.append((_A(param), {v: values == v for v in sorted(set(values))}))
    lr = np.array([p["lr"] for p in params])
    mid = np.median(lr)
    qs.append((_A("lr"), {"low": lr <= mid, "high": lr > mid}))
    answer_trainability(qs, failed, params=params if stratify else None)
    return {a.param: a.trainability for a, _ in qs}


def test_the_stratified_test_keeps_its_level_on_a_param_that_changes_nothing() -> None:
    """init changes no failure rate while lr drives most failures: over 200 planted
    studies the permutation test within lr's strata rejects at 5% in about 5% of them (its
    p is exact under random sampling), and the answer calls a difference rarely."""
    rng = np.random.default_rng(7)
    ps, calls = [], 0
    for _ in range(200):
        t = _answers(*_planted(rng, 200, 0.35))["init"]
        ps.append(t["p_value"])
        calls += t["settled"] == "difference"
    assert np.mean(np.asarray(ps) <= 0.05) <= 0.08
    assert calls / 200 <= 0.05


def test_a_choice_that_fails_more_often_is_found_with_strata_and_contrasts() -> None:
    """sigmoid fails 35% more often on top of lr's failures (200 random trials, five
    activations): the choice-against-the-rest contrasts tested within lr's strata call it
    in >= 80% of studies, more often than every pair by Fisher with Bonferroni (the test
    before), and the verdict names sigmoid against the other choices."""
    from hpsearch.analysis.trainability import _fisher

    rng = np.random.default_rng(8)
    found, fisher = 0, 0
    for _ in range(60):
        params, failed = _planted(rng, 200, 0.35)
        t = _answers(params, failed)["activation"]
        found += t["settled"] == "difference"
        if t["settled"] == "difference":
            assert "more often with sigmoid than with the other choices" in t["verdict"]
            assert "activation" not in t["strata"]
        acts = np.array([p["activation"] for p in params])
        names = sorted(set(acts))
        pairs = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]]
        p = min(_fisher(acts == x, acts == y, failed) for x, y in pairs) * len(pairs)
        fisher += p * 3 <= 0.05      # three questions: Holm's first step at most
    assert found / 60 >= 0.8 and found > fisher
    # the contrasts and pairs are printed with their intervals and counts
    assert {c["b"] for c in t["contrasts"]} == {"the other choices"}
    assert len(t["pairs"]) == 10 and len(t["contrasts"]) == 5
