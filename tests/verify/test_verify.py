"""verify: paired statistics on planted numbers, twin construction, and one real run."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from support.studies import trained_study

from hpsearch import schema
from hpsearch.analysis.seeds.paired import paired_stats, seeds_needed
from hpsearch.analysis.seeds.sequential import plan_looks
from hpsearch.analysis.stats import holm
from hpsearch.cli import main
from hpsearch.errors import ConfigError, StudyError
from hpsearch.space.params import TrialConfig
from hpsearch.space.questions import QUESTION_BY_ID
from hpsearch.storage.open import load_study
from hpsearch.training.datasets import load_dataset
from hpsearch.training.device_data import DeviceData
from hpsearch.training.loop import evaluate, train
from hpsearch.verify import planned_trainings, verify
from hpsearch.verify.run import default_seeds
from hpsearch.verify.store import COMPANION, stored_trainings
from hpsearch.verify.twins import make_twin, twin_values


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return trained_study(str(tmp_path_factory.mktemp("verify") / "s.db"), epochs=2, trials=3)


@pytest.fixture(scope="module")
def bn_result(study_db: str):
    return verify(study_db, "bn_placement", seeds=6)


# ---------------------------------------------------------------------------- statistics


def test_planted_effect_is_found():
    rng = np.random.default_rng(1)
    base = 90 + rng.normal(0, 2, 10)          # seeds differ a lot ...
    alt = base + 1 + rng.normal(0, 0.1, 10)   # ... but the pairs differ by 1 pt
    s = paired_stats(base, alt)
    assert s.n == 10 and abs(s.shift - 1) < 0.1 and abs(s.mean_diff - 1) < 0.1
    assert 0 < s.ci_low < 1 < s.ci_high and s.ci_level == 0.95
    assert s.p_wilcoxon == pytest.approx(2 / 2 ** 10)  # exact: all ten pairs agree
    assert s.p_improvement == 1.0 and s.wins == 10


def test_null_effect_interval_covers_zero():
    rng = np.random.default_rng(2)
    e = rng.normal(0, 0.5, 5)
    base = 90 + rng.normal(0, 2, 10)
    alt = base + np.concatenate([e, -e])      # symmetric: no effect at all
    s = paired_stats(base, alt)
    assert abs(s.shift) < 1e-9 and s.ci_low < 0 < s.ci_high
    assert s.p_wilcoxon == pytest.approx(1.0) and s.p_improvement == 0.5


def test_identical_twins_give_no_difference():
    s = paired_stats([95.0, 96.0, 97.0], [95.0, 96.0, 97.0])
    assert (s.shift, s.ci_low, s.ci_high, s.p_wilcoxon) == (0.0, -np.inf, np.inf, 1.0)
    assert s.p_improvement == 0.0 and s.ties == 3


def test_paired_stats_rejects_unpaired_input():
    with pytest.raises(ValueError, match="equal-length"):
        paired_stats([1.0, 2.0], [1.0])


def test_seeds_needed_grows_with_the_spread():
    assert seeds_needed(0.0, 0.05) == 6  # the test's own minimum
    assert seeds_needed(1.0, 0.05) > seeds_needed(0.5, 0.05) >= 6


# ---------------------------------------------------------------------------- twins


@pytest.mark.parametrize("question, best, expected", [
    ("bn_placement", TrialConfig(batch_norm="after"), ("after", ["before"])),
    ("bn_placement", TrialConfig(batch_norm="none"), ("before", ["after"])),
    ("batch_norm", TrialConfig(batch_norm="after"), ("after", ["none"])),
    ("batch_norm", TrialConfig(batch_norm="none"), ("none", ["before"])),
    ("dropout", TrialConfig(dropout=0.3), (0.3, [0.0])),
    ("dropout", TrialConfig(dropout=0.0), (0.0, [0.5])),
    ("init", TrialConfig(init="xavier"), ("xavier", ["default", "normal", "kaiming"])),
])
def test_twin_values(question, best, expected):
    assert twin_values(QUESTION_BY_ID[question], best, {}) == expected


def test_twin_values_follow_the_study_space():
    q = QUESTION_BY_ID["activation"]
    narrowed = {"narrowed": {"activation": ["relu", "tanh"]}}
    assert twin_values(q, TrialConfig(activation="tanh"), narrowed) == ("tanh", ["relu"])
    # A fixed param: twins differ from the fixed value, over the whole table.
    fixed = {"fixed": {"activation": "relu"}}
    assert twin_values(q, TrialConfig(), fixed)[1] == ["sigmoid", "tanh", "leaky_relu", "gelu"]


def test_twin_switched_on_params_get_real_values():
    best = TrialConfig()
    l2 = make_twin(best, "weight_penalty", "l2", {})
    assert l2.l2 == pytest.approx(np.sqrt(1e-6 * 1e-1)) and l2.l1 == 0.0
    both = make_twin(best, "weight_penalty", "l1_l2", {"narrowed": {"l1": [1e-6, 1e-4]}})
    assert both.l1 == pytest.approx(1e-5) and both.l2 > 0
    shift = make_twin(best, "augmentation", "shift", {})
    assert shift.aug_strength == 0.5
    # Switching off resets: back to none drops the strength again.
    assert make_twin(shift, "augmentation", "none", {}).aug_strength == 0.0
    kept = make_twin(TrialConfig(weight_penalty="l2", l2=0.01), "weight_penalty", "l1_l2", {})
    assert kept.l2 == 0.01  # the best config's own value wins


# ---------------------------------------------------------------------------- end to end


def test_verify_bn_placement_end_to_end(study_db, bn_result):
    assert bn_result.questions == ["bn_placement"] and bn_result.seeds == list(range(6))
    [row] = bn_result.rows
    assert (row.baseline, row.alternative) == ("before", "after")
    assert row.label(row.baseline) == f"best trial #{row.trial_number} as found " \
        "(batch_norm=before)"
    assert row.label(row.alternative).endswith("with batch_norm switched to after")
    base, alt = row.baseline_config.as_dict(), row.alternative_config.as_dict()
    assert [k for k in base if base[k] != alt[k]] == ["batch_norm"]
    assert len(row.baseline_accs) == len(row.alternative_accs) == 6
    assert all(0 <= a <= 1 for a in row.baseline_accs + row.alternative_accs)
    assert row.stats.mean_diff == pytest.approx(
        100 * (np.mean(row.alternative_accs) - np.mean(row.baseline_accs)))
    assert row.significant == (row.stats.ci_low > 0 or row.stats.ci_high < 0)

    stored = load_study(study_db).user_attrs["verify:bn_placement"]
    assert stored == json.loads(json.dumps(bn_result.question_dict("bn_placement")))
    [srow] = stored["rows"]
    for key in ("baseline", "alternative", "baseline_label", "alternative_label", "n",
                "shift", "mean_diff", "ci_low", "ci_high", "ci_level", "p_wilcoxon",
                "p_holm", "significant", "p_improvement", "verdict", "trial_number"):
        assert key in srow
    assert srow["n"] == 6 and stored["seeds"] == 6 and stored["family"] == 1
    assert srow["settled"] in ("difference", "equivalent", "open") and srow["margin"] == 0.5
    assert srow["settled"] == stored["settled"]
    assert stored["trainings"] == stored["trainings_fixed"] == 12  # one look: the fixed plan
    assert stored["dataset"] == "digits" and stored["epochs"] == 2


def test_planned_trainings_are_what_verify_trains(study_db, bn_result):
    """The trainings a verify needs, known before it trains (what the findings page says
    an open row would cost): its twins, the seeds of its first look and its cap."""
    twins, first, most = planned_trainings(load_study(study_db), "bn_placement")
    assert twins * len(bn_result.seeds) == bn_result.trainings_fixed
    assert most == default_seeds(1)
    assert first == plan_looks(most, 0.05).looks[0] < most


def test_pairing_is_real(study_db, bn_result):
    """The same config and seed train to the same test accuracy: twins share their seeds."""
    row = bn_result.rows[0]
    data = DeviceData.create(load_dataset("digits"), val_size=300, seed=0)

    def test_acc(cfg: TrialConfig) -> float:
        return evaluate(train(cfg, data, epochs=2, seed=1).model, data, cfg, "test")[1]

    assert test_acc(row.baseline_config) == test_acc(row.baseline_config)
    # verify trained both twins with seed 1 in position 1: the pairs share their seeds.
    # (It trains a twin's seeds fused, which matches train() alone to within 1e-6 in the
    # weights: the accuracy may differ by one test example at most.)
    one = 1 / len(data.test_y) + 1e-6  # one test example (float32 accuracies)
    assert test_acc(row.baseline_config) == pytest.approx(row.baseline_accs[1], abs=one)
    assert test_acc(row.alternative_config) == pytest.approx(row.alternative_accs[1], abs=one)


def test_every_sampled_question_is_one_family(study_db):
    """No --question: the questions whose param the study sampled, one Holm family."""
    result = verify(study_db, epochs=1, seeds=9)
    # SMALL_MLP fixes everything but activation, init and input_norm among the questions.
    assert result.questions == ["activation", "init", "input_norm"]
    assert len(result.rows) == 4 + 3 + 2 and len(result.seeds) == 9  # 9 rows need 9
    assert default_seeds(9) == 22 and default_seeds(1) == 16  # the first look can stop
    p = [r.stats.p_wilcoxon for r in result.rows]
    assert [r.p_holm for r in result.rows] == pytest.approx(list(holm(p)))
    stored = load_study(study_db).user_attrs
    assert {r["question"] for r in stored["verify:init"]["rows"]} == {"init"}
    assert stored["verify:init"]["family"] == 9


def test_too_few_seeds_for_the_family_are_refused(study_db):
    with pytest.raises(ConfigError, match=r"--seeds 8 cannot reach.*9 comparison.*--seeds 9"):
        verify(study_db, seeds=8)
    with pytest.raises(ConfigError, match=r"--seeds 5 cannot reach.*--seeds 6"):
        verify(study_db, "dropout", seeds=5)


def test_verify_errors(study_db, tmp_path):
    with pytest.raises(ConfigError, match="unknown question 'nope'; known: bn_placement"):
        verify(study_db, "nope")
    with pytest.raises(ConfigError, match="--seeds must be"):
        verify(study_db, "dropout", seeds=0)
    empty = tmp_path / "empty.db"
    optuna.create_study(storage=f"sqlite:///{empty}", study_name="e")
    with pytest.raises(StudyError, match="no complete trial"):
        verify(str(empty), "dropout")


def test_cli_verify_prints_table_and_verdicts(study_db):
    result = CliRunner().invoke(main, ["verify", study_db, "--question", "dropout",
                                       "--seeds", "6", "--epochs", "1", "-q"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "settled" in out and "Holm p" in out and "P(improvement)" in out
    assert "dropout: " in out and "/6 seeds" in out and "switched to 0.5" in out
    assert "stored as study user attrs 'verify:dropout'" in out
    assert "trainings: " in out and "the fixed plan's 12" in out
    assert "trainings 1/12 (" not in out  # -q: no progress lines
    # The plan comes first, once: printed before the first training, so a log reads plan,
    # progress, answers (it used to land after every progress line).
    assert out.startswith("verify in study ") and out.count("verify in study ") == 1
    assert "1 question, 1 comparison in one Holm family" in out and "1 epoch," in out


def test_trainings_are_stored_and_a_rerun_trains_nothing(study_db, bn_result):
    again = verify(study_db, "bn_placement", seeds=6)
    assert again.trained_here == 0 and again.trainings == bn_result.trainings == 12
    [a], [b] = again.rows, bn_result.rows
    assert (a.baseline_accs, a.alternative_accs) == (b.baseline_accs, b.alternative_accs)
    assert a.verdict() == b.verdict()
    companion = optuna.load_study(study_name=bn_result.study_name + COMPANION,
                                  storage=f"sqlite:///{study_db}")
    keys = [t.user_attrs["hpsearch:training"]["key"] for t in stored_trainings(companion)]
    assert len(keys) == len(set(keys))  # every training once
    # The companion study is not a choice a reader must make.
    assert load_study(study_db).study_name == bn_result.study_name


def test_a_narrower_rerun_never_replaces_the_familys_stored_answer(study_db, bn_result):
    """A family's answer (here planted: bn_placement with dropout, up to 26 seeds) stays
    when ``verify --question bn_placement`` reads the same trainings; the narrower run's
    answer is stored beside it, named by its family, and the output says so."""
    study = load_study(study_db)
    key = schema.verify_key("bn_placement")
    mine = study.user_attrs[key]
    family = {**mine, "family_questions": ["bn_placement", "dropout"], "seeds": 26,
              "settled": "difference"}
    study.set_user_attr(key, family)
    try:
        again = verify(study_db, "bn_placement", seeds=6)
        assert again.trained_here == 0
        stored = load_study(study_db).user_attrs[key]
        assert stored["settled"] == "difference" and stored["seeds"] == 26
        assert list(stored["beside"]) == ["bn_placement alone on up to 6 seeds"]
        assert stored["beside"]["bn_placement alone on up to 6 seeds"]["rows"] == mine["rows"]
        assert any("the stored answer stays 'difference'" in line for line in again.lines())
    finally:
        study.set_user_attr(key, mine)


def test_a_baseline_compares_the_other_choices_with_it(study_db, bn_result):
    """``baseline``: the same twins and stored trainings, compared with the named value in
    place of the config's own (the shift's sign turns); its answer is a different one, so
    it goes beside the stored answer and is named by its baseline."""
    study = load_study(study_db)
    key = schema.verify_key("bn_placement")
    mine = study.user_attrs[key]
    [row] = bn_result.rows
    try:
        against = verify(study_db, "bn_placement", seeds=6, baseline=row.alternative)
        assert against.trained_here == 0  # the same twins: every training stored
        [turned] = against.rows
        assert (turned.baseline, turned.alternative) == (row.alternative, row.baseline)
        assert (turned.baseline_accs, turned.alternative_accs) == (row.alternative_accs,
                                                                   row.baseline_accs)
        assert turned.stats.shift == pytest.approx(-row.stats.shift)
        stored = load_study(study_db).user_attrs[key]
        assert stored["rows"] == mine["rows"] and "baseline" not in stored
        beside = stored["beside"][f"bn_placement alone against {row.alternative} on up to "
                                  "6 seeds"]
        assert beside["baseline"] == row.alternative
    finally:
        study.set_user_attr(key, mine)
    with pytest.raises(ConfigError, match=r"--baseline 'none' is not a value verify "
                                          r"compares for bn_placement; choose from before, "
                                          r"after"):
        verify(study_db, "bn_placement", seeds=6, baseline="none")
    with pytest.raises(ConfigError, match="--baseline needs one built-in --question"):
        verify(study_db, seeds=9, baseline="none")
    result = CliRunner().invoke(main, ["verify", study_db, "--baseline", "before", "-q"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--baseline needs one built-in --question" in result.output


def test_cli_verify_prints_progress_lines_off_a_terminal(study_db):
    result = CliRunner().invoke(main, ["verify", study_db, "--question", "dropout",
                                       "--seeds", "6", "--epochs", "1", "--margin", "2"])
    assert result.exit_code == 0, result.output
    # Stored by the test above: nothing to train, so no progress line, and the margin shows.
    assert "±2 pts" in result.output and "0 trained now, 12 found stored" in result.output


def test_cli_too_few_seeds_is_one_line(study_db):
    result = CliRunner().invoke(main, ["verify", study_db, "--seeds", "3"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    [line] = result.output.strip().splitlines()
    assert "--seeds 3 cannot reach significance" in line and "use --seeds 9" in line


def test_cli_unknown_question_is_one_line(study_db):
    result = CliRunner().invoke(main, ["verify", study_db, "--question", "nope"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    [line] = result.output.strip().splitlines()
    assert "unknown question 'nope'" in line and "bn_placement" in line and "input_norm" in line
