"""best: retrain the best config, test metrics, artifacts that load back, the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta
from support.mounts import readonly_view, tiny_disk
from support.studies import trained_study

from hpsearch.best import best, bn_modes
from hpsearch.cli import main
from hpsearch.replay import study_data, study_settings
from hpsearch.storage.open import load_study
from hpsearch.storage.specs import artifact_dir
from hpsearch.training.loop import evaluate
from hpsearch.training.measure import (
    bn_batch_stats_accuracy,
    confusion_matrix,
    load_model,
    per_class_accuracy,
)


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return trained_study(str(tmp_path_factory.mktemp("best") / "s.db"), epochs=2, trials=3)


@pytest.fixture(scope="module")
def result(study_db: str):
    return best(study_db)


def test_confusion_matrix_and_per_class():
    y, pred = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2])
    cm = confusion_matrix(y, pred, 4)
    assert cm.tolist() == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert per_class_accuracy(cm) == [1.0, 0.5, 1.0, None]


def test_best_reports_test_metrics(study_db, result):
    study = load_study(study_db)
    assert result.trial_number == study.best_trial.number
    assert result.val_acc == study.best_value
    # The trial's own seed on the same split and threads: the trial is reproduced.
    assert result.retrain_val_acc == pytest.approx(study.best_value)
    assert 0 <= result.test_acc <= 1 and result.seeds == [study.best_trial.user_attrs[
        "train_seed"]]
    assert len(result.per_class) == 10 and list(result.per_class) == list("0123456789")
    data = study_data(study_settings(study), "cpu")
    assert sum(map(sum, result.confusion)) == len(data.test_y)
    assert result.config.batch_norm == "before"
    bn = result.bn_train_vs_eval
    assert bn is not None and bn["eval_mode"] == result.test_accs[0]
    assert 0 <= bn["train_mode"] <= 1 and bn["n"] == 1 and bn["ci_low"] is None

    stored = study.user_attrs["best"]
    assert stored == json.loads(json.dumps(result.to_dict()))
    assert stored["test_acc_n"] == 1 and stored["config"]["hidden_units"] == 64


def _trial_artifacts(study, trial_number: int) -> dict[str, dict]:
    """What optuna-dashboard lists on the trial's page (study system attrs, see dashboard)."""
    trial_id = study.trials[trial_number]._trial_id
    prefix = f"dashboard:artifacts:{trial_id}:"
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {k[len(prefix):]: json.loads(v) for k, v in attrs.items()
            if k.startswith(prefix)}


def test_artifacts_exist_and_weights_load_back(study_db, result):
    study = load_study(study_db)
    assert not result.warnings
    metas = _trial_artifacts(study, result.trial_number)
    assert set(result.artifacts.values()) == set(metas)  # the trial's, not the study's
    assert not set(result.artifacts.values()) & {m.artifact_id for m in
                                                 get_all_artifact_meta(study)}
    for artifact_id in result.artifacts.values():
        assert (artifact_dir(study_db) / artifact_id).is_file()
        assert metas[artifact_id]["filename"].startswith(f"best-trial-{result.trial_number}-")

    store = FileSystemArtifactStore(str(artifact_dir(study_db)))
    weights = Path(artifact_dir(study_db)).parent / "weights.pt"
    download_artifact(artifact_store=store, artifact_id=result.artifacts["weights"],
                      file_path=str(weights))
    data = study_data(study_settings(study), "cpu")
    model = load_model(weights, result.config, data.input_shape, data.n_classes)
    assert evaluate(model, data, result.config, "test")[1] == result.test_accs[0]
    table = json.loads((artifact_dir(study_db) / result.artifacts["confusion_json"]).read_text())
    assert table["confusion"] == result.confusion


def test_bn_train_mode_does_not_touch_running_stats(study_db, result):
    data = study_data(study_settings(load_study(study_db)), "cpu")
    before = {k: v.clone() for k, v in result.model.state_dict().items()}
    bn_batch_stats_accuracy(result.model, data, result.config)
    after = result.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not result.model.training


def test_bn_train_mode_uses_the_configs_batch_size(study_db, result):
    """Train mode normalizes each batch by its own statistics: batches as large as the model
    was trained with (128 here), not evaluation's 2,048, whose statistics are close to the
    running ones and would hide the difference."""
    data = study_data(study_settings(load_study(study_db)), "cpu")
    seen: list[int] = []
    bn = next(m for m in result.model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    handle = bn.register_forward_pre_hook(lambda _m, args: seen.append(len(args[0])))
    try:
        bn_batch_stats_accuracy(result.model, data, result.config)
    finally:
        handle.remove()
    assert result.config.batch_size == 128 and sum(seen) == len(data.test_y)
    assert max(seen) <= 128 and min(seen) >= 64


def test_retrain_with_seeds(study_db, result, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    r = best(study_db, retrain=True, seeds=2)
    d = r.to_dict()
    assert d["test_acc_n"] == 2 and d["seeds"] == [0, 1] and len(d["test_accs"]) == 2
    assert d["test_acc_std"] >= 0 and d["retrain"] is True
    bn = d["bn_train_vs_eval"]  # every seed's model measured in both modes
    assert bn["n"] == 2 and bn["eval_mode"] == pytest.approx(sum(d["test_accs"]) / 2)
    assert any("paired over 2 seeds" in line for line in r.lines())
    assert len(d["train_seconds"]) == 2 and d["threads"] == 1  # one thread on a CPU
    assert torch.get_num_threads() == before  # restored for the caller
    # A re-run replaces the trial's artifacts in place: same ids, no second copy.
    assert r.artifacts == result.artifacts
    assert len(_trial_artifacts(load_study(study_db), r.trial_number)) == 3


def test_bn_modes_are_paired_over_the_seeds():
    """Each seed's model in both modes: a paired shift in points, its interval from the
    signed-rank test (6 seeds is the least that reaches 0.05), none from one seed."""
    evals = [0.90, 0.91, 0.89, 0.92, 0.90, 0.91]
    trains = [e - d for e, d in zip(evals, [0.010, 0.012, 0.008, 0.011, 0.009, 0.013],
                                    strict=True)]
    bn = bn_modes(evals, trains)
    assert bn["n"] == 6 and bn["eval_mode"] == pytest.approx(0.905)
    assert bn["ci_high"] < 0 < -bn["ci_low"] and bn["p"] < 0.05
    assert -1.3 < bn["shift"] < -0.8
    few = bn_modes(evals[:3], trains[:3])
    assert few["p"] > 0.05 and not (few["ci_high"] is not None and few["ci_high"] < 0)
    one = bn_modes(evals[:1], trains[:1])
    assert one["shift"] is None and one["train_mode"] == pytest.approx(trains[0])


def test_training_threads_respects_omp_num_threads(monkeypatch):
    from hpsearch.training.device import training_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with training_threads(torch.device("cpu")) as n:
        assert n == 2 == torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS")
    with training_threads(torch.device("cpu")) as n:
        assert n == 1 == torch.get_num_threads()


def test_cli_best(study_db):
    res = CliRunner().invoke(main, ["best", study_db])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "validation accuracy" in out and "test accuracy" in out
    assert "per-class test accuracy" in out and "batch norm: eval mode" in out
    assert "trained 1 time in" in out and ", as the study's)" in out
    assert f"in {artifact_dir(study_db)}" in out


def test_best_says_each_finished_training_when_not_a_terminal(study_db):
    """CliRunner's output is no terminal: a log or a batch job still sees progress."""
    res = CliRunner().invoke(main, ["best", study_db, "--retrain", "--seeds", "2",
                                    "--fuse", "1"])
    assert res.exit_code == 0, res.output
    progress = [line for line in res.stderr.splitlines() if line.startswith("best: ")]
    assert progress[0].startswith("best: training trial #")
    assert [line.split(" in ")[0] for line in progress[1:]] == [
        "best: trained 1/2 (seed 0)", "best: trained 2/2 (seed 1)"]


def test_cli_best_errors(tmp_path):
    missing = tmp_path / "missing.db"
    res = CliRunner().invoke(main, ["best", str(missing)])
    assert res.exit_code != 0 and "does not exist" in res.output
    assert "Traceback" not in res.output and not missing.exists()
    res = CliRunner().invoke(main, ["best", str(missing), "--seeds", "3"])
    assert res.exit_code != 0 and "--seeds needs --retrain" in res.output


# ---------------------------------------------------------------- a study that refuses writes


def _copy_study(study_db: str, to: Path) -> Path:
    to.mkdir()
    for suffix in ("", "-wal", "-shm"):
        if Path(study_db + suffix).exists():
            shutil.copy(study_db + suffix, to / ("s.db" + suffix))
    return to / "s.db"


def test_best_on_read_only_media_prints_and_keeps_its_result(study_db, tmp_path,
                                                             monkeypatch):
    media = _copy_study(study_db, tmp_path / "media")
    monkeypatch.chdir(tmp_path)
    before = {p.name: p.read_bytes() for p in media.parent.iterdir()}
    with readonly_view(media.parent) as view:
        res = CliRunner().invoke(main, ["best", str(view / "s.db")])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "test accuracy" in res.output
    assert "stored as study user attr" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith(("Error", "warn"))]
    assert len(errors) == 1 and "could not store the result in study" in errors[0], res.output
    side = Path(errors[0].split("it is saved in ")[1].split(" instead")[0])
    assert side.parent == tmp_path  # beside the study is read-only: the working directory
    kept = json.loads(side.read_text())["value"]
    assert 0 <= kept["test_acc"] <= 1 and kept["artifacts"] == {}
    assert {p.name: p.read_bytes() for p in media.parent.iterdir()} == before


def test_best_on_a_full_disk_records_no_empty_artifact(study_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with tiny_disk(2048) as disk:
        db = _copy_study(study_db, disk / "study")
        filler = disk / "filler"
        with filler.open("wb") as f:  # room for the study's next commits, not for weights
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            f.write(b"x" * max(0, free - 16 * 1024))  # the weights alone are ~20 kB
        old = {m.artifact_id for m in get_all_artifact_meta(load_study(str(db)))}
        result = best(str(db))
        metas = [m for m in get_all_artifact_meta(load_study(str(db))) if m.artifact_id not in old]
        store = artifact_dir(str(db))
        for meta in metas:
            assert (store / meta.artifact_id).stat().st_size > 0, meta
        assert len(metas) == len(result.artifacts)
        assert [p for p in store.iterdir() if p.name.endswith(".tmp")] == [] \
            if store.exists() else True
        # the disk filled up on the way: what could not be written whole was not recorded
        assert len(metas) < 3 and result.saved is not None
        if result.saved.stored:
            assert result.warnings and "could not upload" in result.warnings[0]
        else:
            assert "full" in str(result.saved.error) and result.saved.side_file is not None
            kept = json.loads(result.saved.side_file.read_text())["value"]
            assert kept["test_acc"] == result.test_acc


def test_seeds_that_agree_are_said_to_agree():
    """'0.9822 ± 0.0000' reads as a bug; three seeds with the same test accuracy say so."""
    from hpsearch.best import BestResult
    from hpsearch.space import TrialConfig

    def result(accs: list[float]) -> BestResult:
        return BestResult("s", 3, TrialConfig(), 0.97, 0.97, [0, 1, 2], accs, ("0", "1"),
                          [[1, 0], [0, 1]], {"0": 1.0, "1": 1.0}, "digits", 1, True,
                          train_seconds=[1.0] * 3, threads=1)

    lines = result([0.9822] * 3).lines()
    assert "test accuracy 0.9822 on every seed (0-2, n=3: all 3 seeds agreed, std 0)" in lines
    assert not any("± 0.0000" in line for line in lines)
    assert any("4 epochs" not in line and "(digits, 1 epoch)" in line for line in lines)
    assert "trained 3 times in 3.0 s (1 torch thread)" in lines
    spread = result([0.98, 0.97, 0.99]).lines()
    assert any(line.startswith("test accuracy 0.9800 ± 0.0100 (mean ± std") for line in spread)


def test_the_trial_is_retrained_on_its_own_thread_count(study_db, tmp_path, monkeypatch):
    """A CNN's float sums depend on the thread count (a digits CNN trained on 2 threads
    gave 0.9554, on 1 thread 0.9442): the trial's own seed is retrained on the threads the
    trial recorded, whatever this process uses."""
    import optuna

    import hpsearch.best as best_module

    trial = load_study(study_db).best_trial
    copy = optuna.create_study(storage=f"sqlite:///{tmp_path / 'c.db'}", study_name="c",
                               direction="maximize")
    for key, value in load_study(study_db).user_attrs.items():
        copy.set_user_attr(key, value)
    attrs = {**trial.user_attrs, "run": {**trial.user_attrs["run"], "threads": 3}}
    copy.add_trial(optuna.trial.create_trial(params=trial.params,
                                             distributions=trial.distributions,
                                             value=trial.value, user_attrs=attrs,
                                             intermediate_values=trial.intermediate_values))
    seen = []
    real = best_module.train
    monkeypatch.setattr(best_module, "train", lambda *a, **k: (
        seen.append(torch.get_num_threads()), real(*a, **k))[1])
    before = torch.get_num_threads()
    result = best(f"sqlite:///{tmp_path / 'c.db'}")
    assert seen == [3] and result.threads == 3 and torch.get_num_threads() == before
