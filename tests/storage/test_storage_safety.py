"""Storage specs: every SQLite URL spelling gets the checks of a path, passwords never shown
nor used in file names, driver hints, a full disk, a planted artifact id.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from support.cli import TINY, error_line, run

from hpsearch.errors import StorageError
from hpsearch.storage import artifact_dir, mask, upload
from hpsearch.storage.open import load_study
from hpsearch.storage.specs import error_reason


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


# ---------------------------------------------------------------- 5. every SQLite URL


_SPELLINGS = ["sqlite:///{rel}", "sqlite+pysqlite:///{rel}", "sqlite:///{abs}",
              "sqlite:///{rel}?timeout=5", "sqlite+pysqlite:///{abs}?timeout=5"]


def _spell(template: str, path: Path) -> str:
    return template.format(rel=path.name, abs=path)  # {abs} makes sqlite:////tmp/...


@pytest.mark.parametrize("template", _SPELLINGS)
def test_every_sqlite_url_gets_the_checks_of_a_path(tmp_path, monkeypatch, template):
    from hpsearch.dashboard import app

    monkeypatch.chdir(tmp_path)
    missing = _spell(template, tmp_path / "missing.db")
    with pytest.raises(StorageError, match="does not exist"):
        load_study(missing)
    with pytest.raises(StorageError, match="does not exist"):
        app(missing)
    error_line(*run("report", missing, "--format", "md"))
    assert not (tmp_path / "missing.db").exists()

    shop = tmp_path / "shop.db"
    con = sqlite3.connect(shop)
    con.execute("create table customers (name text)")
    con.commit()
    con.close()
    before = shop.read_bytes()
    line = error_line(*run("optimize", "--storage", _spell(template, shop), "--trials", "1",
                           *TINY))
    assert "not an Optuna study file" in line
    assert shop.read_bytes() == before


# ---------------------------------------------------------------- 6. passwords


@pytest.mark.parametrize("text, parts", [
    ("postgresql://hp5:pa ss@127.0.0.1/db", ["pa ss", "ss@"]),
    ("postgresql://hp@127.0.0.1/db?password=S3c;R3t", ["S3c", "R3t"]),
    ("postgresql://hp@127.0.0.1/db?password=S3c'R3t&x=1", ["S3c", "R3t"]),
    ('postgresql://hp@127.0.0.1/db?password="S3c R3t"', ["S3c", "R3t"]),
    ("postgresql://hp@127.0.0.1/db?password=S3c R3t", ["S3c", "R3t"]),
    ("postgresql://hp@127.0.0.1/db?pass%77ord=S3cR3t", ["S3cR3t"]),
    ("postgresql://hp@127.0.0.1/db?PassWord=S3cR3t&sslmode=require", ["S3cR3t"]),
    ("postgresql://hp:S3c@R3t@127.0.0.1/db", ["S3c", "R3t"]),
    ("postgresql://hp:S3c%40R3t@127.0.0.1:5432/db", ["S3c", "R3t"]),
    ("host=h password='S3c R3t' dbname=x", ["S3c", "R3t"]),
    ("failed: postgresql://hp:S3c R3t@127.0.0.1/db", ["S3c", "R3t"]),
])
def test_mask_hides_every_spelling_of_a_password(text, parts):
    masked = mask(text)
    assert not any(part in masked for part in parts), masked
    assert "***" in masked and "127.0.0.1" in masked or "host=h" in masked
    assert mask(masked) == masked  # masking twice changes nothing


def test_no_file_name_comes_from_credentials():
    for url in ("postgresql://hp:S3cret@127.0.0.1", "postgresql://hp:S3cret@127.0.0.1:5433",
                "postgresql://hp:S3cret@127.0.0.1/", "postgresql://hp5:pa ss@db.example"):
        folder = str(artifact_dir(url))
        assert "S3cret" not in folder and "hp" not in folder.split("/", 1)[1], folder
        assert "pa ss" not in folder and "pa_ss" not in folder
    assert artifact_dir("postgresql://hp:S3cret@127.0.0.1/studies").name == "studies"
    assert artifact_dir("postgresql://hp:x@h/..").name not in ("..", ".", "")


def test_driver_hints_name_the_right_database():
    mysql = error_reason(ModuleNotFoundError("No module named 'MySQLdb'", name="MySQLdb"))
    assert "MySQL" in mysql and "postgres" not in mysql
    pg = error_reason(ModuleNotFoundError("No module named 'psycopg2'", name="psycopg2"))
    assert "hpsearch[postgres]" in pg


def test_a_full_disk_is_called_full(tmp_path):
    from support.mounts import tiny_disk

    with tiny_disk(256) as disk:
        spec = str(disk / "s.db")
        Path(spec).write_bytes(b"")
        filler = disk / "filler"
        try:
            with filler.open("wb", buffering=0) as f:
                while True:
                    f.write(b"\0" * 4096)
        except OSError:
            pass
        text = error_reason(sqlite3.OperationalError("disk I/O error"), spec)
        assert text.startswith("the disk is full") and "disk I/O error" in text
    assert error_reason(sqlite3.OperationalError("disk I/O error"), str(tmp_path / "x.db")) \
        == "disk I/O error"  # a disk with room: the driver's words only


def test_a_planted_artifact_id_does_not_block_later_uploads(tmp_path, base_study):
    study = load_study(base_study)
    planted = {"artifact_id": "../../escape", "filename": "report.html",
               "mimetype": "text/html", "encoding": None}
    study._storage.set_study_system_attr(study._study_id, "artifacts:../../escape",
                                         json.dumps(planted))
    page = tmp_path / "report.html"
    page.write_text("<p>one</p>")
    first = upload(study, base_study, page, mimetype="text/html")
    page.write_text("<p>two</p>")
    second = upload(study, base_study, page, mimetype="text/html")
    assert first == second and ".." not in first  # replaced in place, under a safe id
    assert (artifact_dir(base_study) / first).read_text() == "<p>two</p>"
    assert not (tmp_path.parent / "escape").exists()
