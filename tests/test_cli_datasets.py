"""--dataset beyond the built-in names, in-process: an .npz, an image folder, cifar10 from
--data-dir; `hpsearch datasets`; every bad input one line and a non-zero exit."""

from __future__ import annotations

from click.testing import CliRunner
from support.datasets import write_cifar, write_folder, write_npz

from hpsearch.cli import main
from hpsearch.storage.open import load_study

FAST = ["--epochs", "1", "--set", "hidden_layers=1", "--set", "hidden_units=64",
        "--set", "cnn_channels=8", "--set", "cnn_fc_units=64", "-q", "--pruner", "none"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_optimize_on_an_npz_then_best_from_another_directory(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    write_npz(tmp_path / "work" / "pets.npz", shape=(8, 8, 3), n_classes=3)
    monkeypatch.chdir(tmp_path / "work")
    code, out = run("optimize", "--trials", "2", "--storage", "s.db", "--dataset",
                    "pets.npz", "--model", "cnn", *FAST)
    assert code == 0, out
    study = load_study(str(tmp_path / "work" / "s.db"))
    assert study.study_name == "full-pets"
    assert study.user_attrs["dataset"] == str(tmp_path / "work" / "pets.npz")
    assert study.user_attrs["n_classes"] == 3
    assert 1 / 3 <= study.user_attrs["chance"] < 0.6
    monkeypatch.chdir(tmp_path)  # the stored path is absolute: best finds the file
    code, out = run("best", "work/s.db", "--retrain", "--seeds", "1")
    assert code == 0, out


def test_optimize_on_an_image_folder_and_cifar10_from_data_dir(tmp_path):
    write_folder(tmp_path / "pets", mode="L", size=(8, 8))
    code, out = run("optimize", "--trials", "1", "--storage", str(tmp_path / "a.db"),
                    "--dataset", str(tmp_path / "pets"), "--model", "mlp", *FAST)
    assert code == 0, out
    assert load_study(str(tmp_path / "a.db")).study_name == "full-pets"
    write_cifar(tmp_path / "data" / "cifar-10-batches-py", per_batch=10, n_test=10)
    code, out = run("optimize", "--trials", "1", "--storage", str(tmp_path / "c.db"),
                    "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
                    "--model", "cnn", "--set", "augmentation=flip", *FAST)
    assert code == 0, out
    study = load_study(str(tmp_path / "c.db"))
    assert study.user_attrs["n_classes"] == 10 and study.user_attrs["dataset"] == "cifar10"


def test_datasets_lists_and_describes(tmp_path):
    write_npz(tmp_path / "d.npz", shape=(6, 10))
    code, out = run("datasets", "--data-dir", str(tmp_path))
    assert code == 0 and "cifar10" in out and "PATH.npz" in out and "DIR" in out
    code, out = run("datasets", str(tmp_path / "d.npz"), "synthetic")
    assert code == 0, out
    assert "d.npz: 1x6x10 images, 3 classes, 120 train / 40 test" in out
    assert "synthetic: 1x8x8 images, 10 classes" in out


def test_bad_datasets_are_one_line_each_and_nothing_is_written(tmp_path):
    write_npz(tmp_path / "bad.npz", y_train=None)
    write_folder(tmp_path / "mixed")
    from PIL import Image

    Image.new("RGB", (9, 9)).save(tmp_path / "mixed" / "train" / "cat" / "big.png")
    (tmp_path / "data.csv").write_text("1,2\n")
    cases = {
        str(tmp_path / "nothing.npz"): "unknown dataset",
        str(tmp_path / "bad.npz"): "missing array(s) y_train",
        str(tmp_path / "mixed"): "images of mixed sizes",
        str(tmp_path / "data.csv"): "a file dataset is an .npz",
    }
    for spec, expected in cases.items():
        db = tmp_path / "s.db"
        code, out = run("optimize", "--trials", "1", "--storage", str(db), "--dataset", spec,
                        *FAST)
        assert code == 1 and expected in out and "Traceback" not in out, (spec, out)
        assert len(out.strip().splitlines()) == 1 and not db.exists()
        code, out = run("datasets", spec)
        assert code == 1 and expected in out


def test_a_dataset_changed_since_the_study_ran_is_refused(tmp_path):
    """Resume and re-runs check the data against the study's record: a file rewritten with
    other images (same sizes) would mix two datasets in one experiment."""
    path, db = tmp_path / "d.npz", tmp_path / "s.db"
    write_npz(path)
    args = ["optimize", "--storage", str(db), "--dataset", str(path), "--model", "mlp", *FAST]
    code, out = run(*args, "--trials", "1")
    assert code == 0, out
    recorded = load_study(str(db)).user_attrs["data"]
    assert recorded["shape"] == [3, 8, 8] and recorded["train"] == 120
    assert recorded["classes"] == 3 and len(recorded["hash"]) == 32
    code, out = run(*args, "--trials", "2")  # the same data: resumes
    assert code == 0, out
    arrays = write_npz(path)
    x = arrays["x_train"].copy()  # type: ignore[union-attr]
    x[0, 0, 0, 0] ^= 1  # one grey level of one pixel
    write_npz(path, x_train=x)
    code, out = run(*args, "--trials", "3")
    assert code == 1 and "the data of study 'full-d' changed since it ran" in out, out
    assert "same sizes but other contents" in out and "Traceback" not in out
    assert len(load_study(str(db)).trials) == 2
    code, out = run("best", str(db), "--retrain", "--seeds", "1")
    assert code == 1 and "to re-run it would mix two datasets" in out, out


def test_a_moved_npz_is_pointed_at_with_dataset_and_checked_against_the_record(tmp_path):
    """verify and best find a moved .npz through --dataset PATH; without it the message
    names the option; a file with other data is refused with what differs, in one line."""
    old, db = tmp_path / "d.npz", tmp_path / "s.db"
    write_npz(old)
    code, out = run("optimize", "--trials", "1", "--storage", str(db), "--dataset", str(old),
                    "--model", "mlp", *FAST)
    assert code == 0, out
    moved = tmp_path / "elsewhere" / "d.npz"
    moved.parent.mkdir()
    old.rename(moved)
    for command in (["best", str(db), "--retrain", "--seeds", "1"],
                    ["verify", str(db), "--question", "dropout", "-q"]):
        code, out = run(*command)
        assert code == 1 and "Traceback" not in out and len(out.strip().splitlines()) == 1
        assert f"is no longer at {old} (moved or deleted): give where it is now with " \
               "--dataset PATH" in out, out
    code, out = run("best", str(db), "--retrain", "--seeds", "1", "--dataset", str(moved))
    assert code == 0, out
    other = tmp_path / "other.npz"
    write_npz(other, n_train=100, shape=(8, 8))
    for command in (["best", str(db), "--retrain", "--seeds", "1"],
                    ["verify", str(db), "--question", "dropout", "-q"]):
        code, out = run(*command, "--dataset", str(other))
        assert code == 1 and len(out.strip().splitlines()) == 1, out
        assert f"--dataset {other} is not the data study 'full-d' ran on: image shape 3x8x8 " \
               "then, 1x8x8 now; 120 train examples then, 100 now" in out, out
    arrays = write_npz(other)
    x = arrays["x_test"].copy()  # type: ignore[union-attr]
    x[0, 0, 0, 0] ^= 1
    write_npz(other, x_test=x)
    code, out = run("best", str(db), "--dataset", str(other))
    assert code == 1 and "the same image shape, classes and split sizes, but other images " \
                         "or labels" in out, out
    code, out = run("best", str(db), "--dataset", str(tmp_path / "nothing.npz"))
    assert code == 1 and out.startswith("Error: --dataset: unknown dataset"), out


def test_a_moved_image_folder_is_verified_through_dataset(tmp_path):
    write_folder(tmp_path / "pets", mode="L", size=(8, 8))
    db = tmp_path / "s.db"
    code, out = run("optimize", "--trials", "1", "--storage", str(db), "--dataset",
                    str(tmp_path / "pets"), "--model", "mlp", *FAST)
    assert code == 0, out
    (tmp_path / "pets").rename(tmp_path / "photos")
    code, out = run("verify", str(db), "--question", "dropout", "--seeds", "6", "-q")
    assert code == 1 and "--dataset PATH" in out, out
    code, out = run("verify", str(db), "--question", "dropout", "--seeds", "6", "-q",
                    "--dataset", str(tmp_path / "photos"))
    assert code == 0, out
    assert load_study(str(db)).user_attrs["dataset"] == str(tmp_path / "pets")  # the name
