"""studies/: every preset parses and samples valid configs; the seeds script runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from hpsearch.settings import settings_from
from hpsearch.space.params import PARAM_BY_NAME, config_from_params
from hpsearch.space.presets import load_preset
from hpsearch.space.questions import QUESTION_BY_ID
from hpsearch.space.suggest import sample_config

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted(p.stem for p in (ROOT / "studies").glob("*.toml"))


def test_one_preset_per_seed_experiment_and_full():
    assert set(PRESETS) == {"full", "bn_placement", "batchnorm_vs_none", "dense_bn_activation",
                            "dropout_activation", "cnn_regularization"}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_parses_and_samples_valid_configs(name):
    preset = load_preset(name)
    text = (ROOT / "studies" / f"{name}.toml").read_text()
    assert text.startswith(f"# {name} "), "each preset opens with a comment block"
    settings_from(preset.settings, source=name)  # its [settings] are valid
    if name != "full":
        assert preset.question in QUESTION_BY_ID
        # The question's param is not fixed: the study can answer it.
        assert QUESTION_BY_ID[preset.question].param not in preset.fixed
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(25):
        trial = study.ask()
        cfg = sample_config(trial, preset)
        assert config_from_params(cfg.as_dict()) == cfg
        for key, value in preset.fixed.items():
            assert getattr(cfg, key) == value or not PARAM_BY_NAME[key].active(cfg.as_dict())
        study.tell(trial, 0.5)


def test_reproduce_seeds_runs_end_to_end_on_digits(tmp_path):
    out = tmp_path / "findings.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reproduce_seeds.py"), "--dataset", "digits",
         "--trials", "2", "--epochs", "1", "--seeds", "6", "--val-size", "300",
         "--train-size", "0", "--presets", "bn_placement", "--work-dir", str(tmp_path / "runs"),
         "--out", str(out)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "| 000 | BN before the activation did better than after | `bn_placement` |" in text
    assert "Dataset **digits**" in text
    # the seed's config as trained: its values, and what was drawn where the seed is silent
    assert "The seed's config (`bn_placement-seed`, trial #0): the seed's dropout=0.5, " \
        "lr=0.01, momentum=0.5, batch_size=32; drawn once" in text
    assert (tmp_path / "runs" / "findings-full.json").exists()
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [(r["seed"], r["id"]) for r in rows] == [("000", "bn_placement"),
                                                    ("002", "bn_modes"), ("002", "per_class"),
                                                    ("002", "bias")]
    row = rows[0]
    # the best BN model's modes: each of the 6 retrained seeds' models measured in both
    bn = rows[1]
    assert "6 seeds, each model in both modes" in bn["verdict"], bn
    assert bn["settled"] in ("difference", "equivalent") or bn["needed"]
    assert rows[2]["settled"] == "measured"
    assert "per class (seed 0's model): weakest" in rows[2]["verdict"]
    # the bias before BN: twins with and without it on 6 seeds. One epoch of digits is ~9
    # steps, too few for BN's running mean (eval mode) to catch up with the bias, so the
    # twins may still differ here (test_bias.py has them agree once trained longer).
    bias = rows[3]
    assert "6 seeds" in bias["source"] and "of its layer's weight's" in bias["verdict"], bias
    assert bias["settled"] in ("equivalent", "open") and "[" in bias["verdict"], bias
    assert row["settled"] in ("difference", "equivalent", "open")
    # verify ran at the tuned best and at the seed's own config (its [seed] values)
    assert row["verify_best"] and row["verify_seed"]
    assert row["verify_seed"]["seeds"] >= 1
    study = optuna.load_study(study_name="bn_placement-seed",
                              storage=f"sqlite:///{tmp_path / 'runs' / 'bn_placement-digits.db'}")
    params = study.trials[0].params | study.trials[0].user_attrs.get("config", {})
    assert params.get("lr") == 0.01 and params.get("batch_size") == 32
    if row["settled"] == "open":
        assert row["needed"], "an open row says what would settle it"
    # The page again from the stored evidence alone: the same rows, no training.
    rows2 = _as_they_are(tmp_path, "again", 2)
    assert [r["settled"] for r in rows2] == [r["settled"] for r in rows]
    assert rows2[1]["verdict"] == bn["verdict"] and rows2[3]["verdict"] == bias["verdict"]
    # Measured on a trial that is no longer the best (the study went on): not shown as the
    # best's; the rows say what would measure it again.
    tuned = optuna.load_study(study_name="bn_placement",
                              storage=f"sqlite:///{tmp_path / 'runs' / 'bn_placement-digits.db'}")
    for key in ("best", "bias_twins"):
        tuned.set_user_attr(key, {**tuned.user_attrs[key], "trial_number": 999})
    rows3 = _as_they_are(tmp_path, "stale", 2)
    for r in rows3[1:]:
        assert r["settled"] == "open" and r["verdict"] is None, r
    assert "--retrain --seeds 6" in rows3[1]["needed"]
    assert "with and without a bias" in rows3[3]["needed"]
    # Read against a larger budget, the study is unfinished: the hours left come from its
    # own pace (its running time per finished config).
    needed = _as_they_are(tmp_path, "short", 5)[3]["needed"]  # the bias row
    assert "the study stands at 2 of 5 configs" in needed, needed
    assert "and the study finished one every" in needed and "h of training remain" in needed
    assert rows2[0]["verify_best"]["estimate"] == row["verify_best"]["estimate"]


def _as_they_are(tmp_path, name: str, trials: int) -> list[dict]:
    """The digits page of bn_placement again from the stored evidence alone (no training),
    against a budget of ``trials`` configs: its rows."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reproduce_seeds.py"), "--dataset", "digits",
         "--trials", str(trials), "--epochs", "1", "--presets", "bn_placement",
         "--as-they-are", "--work-dir", str(tmp_path / "runs"),
         "--out", str(tmp_path / f"{name}.md")],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / f"{name}.json").read_text())


def test_seed_table_fixes_the_seeds_values_and_is_checked(tmp_path):
    from hpsearch.errors import ConfigError
    from hpsearch.space.presets import parse_preset

    seeded = load_preset("bn_placement").at_seed()
    assert seeded.name == "bn_placement-seed"
    assert seeded.fixed["lr"] == 0.01 and "lr" not in seeded.narrowed
    assert "batch_norm" not in seeded.fixed  # the question stays open: trained under each
    doc = {"question": "bn_placement", "params": {"lr": {"low": 0.003, "high": 0.03},
                                                   "batch_norm": ["before", "after"]}}
    for seed, words in (({"lr": 0.05}, "outside the preset's range"),
                        ({"batch_norm": "before"}, "the question's param"),
                        ({"dropout": 0.5}, "not searched by this preset"),
                        ({"lr": "fast"}, "must be a number")):
        with pytest.raises(ConfigError, match=words):
            parse_preset({**doc, "seed": seed}, name="x", source="x.toml")
    with pytest.raises(ConfigError, match="no \\[seed\\] table"):
        load_preset("full").at_seed()
    with pytest.raises(ConfigError, match="seed_rest = 'best'; allowed: drawn, tuned"):
        parse_preset({**doc, "seed_rest": "best"}, name="x", source="x.toml")


def test_a_seed_that_states_little_takes_the_rest_from_the_tuned_best():
    """004 states its weight decay and little else: its config is the tuned best's with the
    seed's values (drawn, the rest was RMSprop at lr 0.05, where nothing learned)."""
    from hpsearch.errors import ConfigError

    preset = load_preset("cnn_regularization")
    assert preset.seed_rest == "tuned" and load_preset("bn_placement").seed_rest == "drawn"
    with pytest.raises(ConfigError, match="run that study first"):
        preset.at_seed()
    best = {"weight_penalty": "l1", "l2": 3e-4, "l1": 2e-6, "optimizer": "adam", "lr": 1e-3,
            "activation": "relu", "model": "mlp"}
    seeded = preset.at_seed(best)
    assert seeded.fixed["l2"] == 0.1 and seeded.fixed["l1"] == 2e-6  # the seed's value wins
    assert seeded.fixed["optimizer"] == "adam" and seeded.fixed["activation"] == "relu"
    assert seeded.fixed["model"] == "cnn"  # the preset's own fixed values stay
    assert "weight_penalty" not in seeded.fixed  # the question: trained under each choice
    assert "l2" not in seeded.narrowed


def test_reproduce_seeds_answers_dropout_over_training_from_verify(tmp_path):
    """003's "dropout may hurt at few epochs and pay with more": verify's twins after 2
    epochs, after the page's 3 and after the seed's own length (4 here), on the same seeds,
    and the paired change from the shortest to the longest; kept in the study, so the page
    comes back the same from the stored evidence."""
    runs, out = tmp_path / "runs", tmp_path / "findings.md"
    common = [sys.executable, str(ROOT / "scripts" / "reproduce_seeds.py"), "--dataset",
              "digits", "--trials", "2", "--epochs", "3", "--val-size", "300",
              "--long-epochs", "4", "--presets", "dropout_activation", "--work-dir", str(runs)]
    proc = subprocess.run([*common, "--seeds", "6", "--train-size", "0", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["id"]: r for r in json.loads(out.with_suffix(".json").read_text())}
    row = rows["dropout"]
    assert row["source"] == "verify at the tuned best after 2, 3 and 4 epochs (the same seeds)"
    change = row["over_epochs_verify"]
    assert [x["epochs"] for x in change["lengths"]] == [2, 3, 4]
    assert "after 4 epochs" in row["verdict"] and "seed's length" not in row["verdict"]
    assert change["n"] + change["left_out"] == 6 and "change" in row["verdict"]
    assert row["settled"] in ("difference", "equivalent") or row["needed"].startswith("more")
    assert "0.30000000000000004" not in out.read_text()  # values as the space writes them
    again = subprocess.run([*common, "--as-they-are", "--out", str(tmp_path / "again.md")],
                           capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    rows2 = {r["id"]: r for r in json.loads((tmp_path / "again.json").read_text())}
    assert rows2["dropout"]["verdict"] == row["verdict"]


def _verified(settled: str, shift: float, lo: float, hi: float) -> dict:
    row = {"settled": settled, "shift": shift, "ci_low": lo, "ci_high": hi, "n": 10,
           "ci_level": 0.95, "baseline": "none", "alternative": "l2"}
    return {"settled": settled, "seeds": 10, "margin": 0.5, "rows": [row]}


def _cnn_rows(tmp_path, ev: dict, preset: str = "cnn_regularization") -> dict[str, dict]:
    """A preset's rows of the page written from ``ev`` (its evidence, as an earlier run
    stored it in findings-full.json), by id; the page's text under "page"."""
    evidence, out = tmp_path / "evidence.json", tmp_path / "page.md"
    evidence.write_text(json.dumps({preset: ev}))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce_seeds.py"),
                           "--from-evidence", str(evidence), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["id"]: r for r in json.loads(out.with_suffix(".json").read_text())}
    return {**rows, "page": {"text": out.read_text()}}


def test_a_claim_about_the_seeds_own_value_is_answered_at_the_seeds_config(tmp_path):
    """004's "weight decay 0.1 destroyed accuracy": the study samples the strength and the
    tuned best has its own, so only verify at the seed's config (l2=0.1) answers it; the
    study's and the tuned best's differences are shown beside it, not taken for it."""
    ev = {"preset": "cnn_regularization", "storage": "s.db", "seed_study": True,
          "finished": 24, "study_seconds": 60.0, "config_minutes": [16.0],
          "minutes_per_training": 4.0,
          "analysis": {"answers": [{"question": "weight_penalty", "settled": "difference",
                                    "verdict": "matters: l2 > none", "status": "answered"},
                                   {"question": "augmentation", "settled": "equivalent",
                                    "verdict": "no difference", "status": "answered"}],
                       "interactions": []},
          "verify": {"weight_penalty": _verified("difference", 1.0, 0.5, 1.5)},
          "verify_seed": {}, "over_epochs": {},
          "verify_plans": {"weight_penalty": {"seed": (4, 9, 18, 5), "best": (4, 9, 18, 0)}}}
    row = _cnn_rows(tmp_path, ev)["weight_penalty"]
    assert row["settled"] == "open" and row["verify_best"]["settled"] == "difference"
    assert "the seed's own value (l2=0.1)" in row["needed"]
    assert "at the seed's config 4 twins x 9 to 18 seeds = 36 to 72 trainings, about 2 to 5 " \
        "h of one core at 4 min a training; 5 of them stored" in row["needed"]
    assert "verify has not finished on it" in row["needed"]
    assert row["needed"].index("the seed's config 4 twins") < row["needed"].index("tuned best")
    ev["verify_seed"] = {"weight_penalty": _verified("difference", -60.0, -70.0, -50.0)}
    rows = _cnn_rows(tmp_path, ev)
    row = rows["weight_penalty"]
    assert (row["settled"], row["source"]) == ("difference", "verify at the seed's config")
    # l2 lost to none by 60 pts: the claim's way ("destroyed"), and the page says so
    assert row["on_claim"] == "as the claim says (none > l2)"
    assert "verify at the seed's config): as the claim says (none > l2) |" in rows["page"]["text"]
    ev_up = json.loads(json.dumps(ev))
    ev_up["verify_seed"]["weight_penalty"]["rows"][0].update(shift=2.0, ci_low=1.0, ci_high=3.0)
    assert _cnn_rows(tmp_path, ev_up)["weight_penalty"]["on_claim"] == \
        "the opposite of the claim (l2 > none)"
    assert "| not asked: the claim is about the seed's own value |" in rows["page"]["text"]
    # A claim about the tuned config still falls back on the study's settled answer.
    assert rows["augmentation"]["settled"] == "equivalent"
    assert rows["augmentation"]["on_claim"] == ""  # "flip is wrong for digits" names no winner
    # Its comparison (none vs l2) is the row, whatever the question's other comparisons say.
    v = ev["verify_seed"]["weight_penalty"]
    v["rows"] = [{**v["rows"][0], "alternative": "l1_l2", "shift": -70.0},
                 {**v["rows"][0], "alternative": "l1", "settled": "open", "shift": 0.1},
                 {**v["rows"][0], "settled": "open", "shift": -0.3}]
    row = _cnn_rows(tmp_path, ev)["weight_penalty"]
    assert row["settled"] == "open" and row["verify_seed"]["comparison"] == "l2 vs none"


def test_an_open_verify_names_the_command_that_would_bound_its_failure_rates(tmp_path):
    """Equivalent in accuracy at 24 seeds, failure rates not yet bounded: the row gives the
    verify that would bound them, on the committed database, resuming its trainings."""
    v = _verified("open", 0.04, -0.07, 0.23)
    v["rows"][0].update(accuracy_settled="equivalent", failures_seeds_needed=102,
                        baseline="relu", alternative="sigmoid")
    v.update(seeds=24, margin=0.5, kind="question")
    ev = {"preset": "cnn_regularization", "storage": "docs/seeds/my study.db",
          "seed_study": False, "finished": 24, "study_seconds": 60.0,
          "config_minutes": [16.0], "minutes_per_training": 4.0,
          "analysis": {"answers": [{"question": "scheduler", "settled": "open",
                                    "verdict": "open", "status": "answered"}],
                       "interactions": []},
          "verify": {"scheduler": v}, "verify_seed": {}, "over_epochs": {},
          "verify_plans": {"scheduler": {"best": (6, 10, 20, 48)}}}
    row = _cnn_rows(tmp_path, ev)["scheduler"]
    assert row["settled"] == "open"
    assert ("`hpsearch verify 'docs/seeds/my study.db' --study-name cnn_regularization "
            "--question scheduler --seeds 102`") in row["needed"]
    assert "at most 156 more" in row["needed"]


def test_an_interaction_claim_is_read_as_where_its_first_param_does_better(tmp_path):
    """003's "dropout goes well with ReLU (and not with sigmoid)": verify's factorial twins
    find dropout's effect 0.36 pts better with sigmoid, which is the opposite of the claim."""
    v = _verified("difference", 0.36, 0.18, 0.52)
    v["rows"][0].update(baseline="relu", alternative="sigmoid")
    v["kind"] = "interaction"
    ev = {"preset": "dropout_activation", "storage": "s.db", "seed_study": True,
          "finished": 24, "study_seconds": 60.0, "config_minutes": [1.0],
          "minutes_per_training": 1.0, "analysis": {"answers": [], "interactions": []},
          "verify": {"dropout_x_activation": v}, "verify_seed": {}, "over_epochs": {},
          "verify_plans": {}}
    rows = _cnn_rows(tmp_path, ev, "dropout_activation")
    row = rows["dropout_x_activation"]
    assert (row["settled"], row["source"]) == ("difference", "verify at the tuned best")
    assert row["on_claim"] == \
        "the opposite of the claim (dropout does better with sigmoid than with relu)"
    v["rows"][0].update(shift=-0.36, ci_low=-0.52, ci_high=-0.18)
    assert _cnn_rows(tmp_path, ev, "dropout_activation")["dropout_x_activation"][
        "on_claim"] == "as the claim says (dropout does better with relu than with sigmoid)"


def test_a_claim_for_any_bn_is_read_against_none_from_the_study_too(tmp_path):
    """002's "BN beats none" names BN's side "on": a study whose winner is none is the
    opposite of the claim, one whose winner is BN before is the claim's way."""
    ev = {"preset": "batchnorm_vs_none", "storage": "s.db", "seed_study": False,
          "finished": 24, "study_seconds": 60.0, "config_minutes": [1.0],
          "minutes_per_training": 1.0,
          "analysis": {"answers": [{"question": "batch_norm", "settled": "difference",
                                    "verdict": "matters: none > before", "status": "answered",
                                    "headline_winner": "none"}], "interactions": []},
          "verify": {}, "verify_seed": {}, "over_epochs": {}, "verify_plans": {}}
    row = _cnn_rows(tmp_path, ev, "batchnorm_vs_none")["batch_norm"]
    assert row["source"] == "study" and row["on_claim"] == "the opposite of the claim (none won)"
    ev["analysis"]["answers"][0]["headline_winner"] = "before"
    row = _cnn_rows(tmp_path, ev, "batchnorm_vs_none")["batch_norm"]
    assert row["on_claim"] == "as the claim says"


def test_reproduce_seeds_makes_a_tuned_rest_seed_config_from_the_best_and_keeps_it(tmp_path):
    """A preset with seed_rest = "tuned" (a user's, in ./studies/): its seed study trains the
    tuned best's params with the seed's values, records which trial, and a resume keeps
    that config even after another trial became the best."""
    (tmp_path / "studies").mkdir()
    text = (ROOT / "studies" / "bn_placement.toml").read_text()
    text = text.replace('question = "bn_placement"', 'question = "bn_placement"\n'
                        'seed_rest = "tuned"').replace("dropout = 0.5\n", "")
    text = text.replace("hidden_units = 512", "hidden_units = 64")
    (tmp_path / "studies" / "tuned_rest.toml").write_text(text)
    cmd = [sys.executable, str(ROOT / "scripts" / "reproduce_seeds.py"), "--dataset", "digits",
           "--trials", "2", "--epochs", "1", "--val-size", "300", "--studies-only",
           "--presets", "tuned_rest", "--work-dir", str(tmp_path / "runs")]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = f"sqlite:///{tmp_path / 'runs' / 'tuned_rest-digits.db'}"
    tuned = optuna.load_study(study_name="tuned_rest", storage=storage)
    seed = optuna.load_study(study_name="tuned_rest-seed", storage=storage)
    made_from = seed.user_attrs["seeds:tuned_from"]
    assert made_from == tuned.best_trial.number
    config = seed.trials[0].user_attrs["config"]
    assert config["dropout"] == tuned.best_trial.params["dropout"]  # the tuned best's
    assert config["lr"] == 0.01 and config["batch_size"] == 32      # the seed's
    assert list(seed.trials[0].params) == ["batch_norm"]             # nothing drawn
    # Another trial becomes the best: the seed study resumes with the config it has.
    best = tuned.best_trial
    tuned.add_trial(optuna.trial.create_trial(
        params={**best.params, "dropout": 0.6 if best.params["dropout"] != 0.6 else 0.3},
        distributions=best.distributions, value=1.0))
    assert tuned.best_trial.number != made_from
    again = subprocess.run([*cmd[:5], "3", *cmd[6:]], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    seed = optuna.load_study(study_name="tuned_rest-seed", storage=storage)
    assert len(seed.trials) == 1 and seed.user_attrs["seeds:tuned_from"] == made_from
