"""Distributed studies on a real PostgreSQL: workers share one budget, and survive crashes.

Every test here starts worker processes against the session's throw-away server
(``tests/support/postgres.py``); they are ``e2e`` tests, skipped with a reason when PostgreSQL is
not installed. Trials are tiny (1-layer MLP, synthetic data, 1-2 epochs); where a worker
must be killed mid-trial, the CLI runs with its trainer slowed by a sleep per epoch.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from support.postgres import PASSWORD, USER

from hpsearch.cli import main
from hpsearch.optimize.study import FINISHED
from hpsearch.optimize.workers import OVER_BUDGET, run_worker
from hpsearch.settings import Settings
from hpsearch.space.params import PARAM_BY_NAME, config_from_params
from hpsearch.space.presets import Preset
from hpsearch.storage.open import load_study

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FAST = Preset(name="fast", fixed={"model": "mlp", "hidden_layers": 1, "hidden_units": 64,
                                  "batch_size": 128})
CLI_FAST = ["--dataset", "synthetic", "--model", "mlp", "--set", "hidden_layers=1",
            "--set", "hidden_units=64", "--set", "batch_size=128", "-q"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs and spawned workers: one torch thread each (2 shared cores)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _check_trials(url: str, study_name: str, n: int, preset: Preset = FAST) -> list[FrozenTrial]:
    """The study has exactly ``n`` finished trials, unique numbers, valid params, none stuck."""
    study = load_study(url, study_name)
    trials = study.trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and sorted(numbers) == list(range(len(trials)))
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == n
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for t in finished:
        cfg = config_from_params(t.user_attrs["config"])  # the stored config is valid
        for name, value in t.params.items():
            p = preset.param(name)
            if p.kind == "categorical":
                assert value in p.choices, (t.number, name, value)
            else:
                assert p.low <= value <= p.high, (t.number, name, value)
            assert getattr(cfg, name) == value
        for name, value in preset.fixed.items():
            assert getattr(cfg, name) == value and name not in t.params
    assert set(PARAM_BY_NAME) >= {k for t in finished for k in t.params}
    # every worker draws its own configs (each process's sampler used to replay one sequence)
    drawn = [tuple(sorted(t.params.items())) for t in finished if t.params]
    assert len(set(drawn)) == len(drawn), "two trials drew the same config"
    return trials


# ---------------------------------------------------------------- starting together


def _open_together(urls: list[str], barrier, errors) -> None:  # type: ignore[no-untyped-def]
    from hpsearch.storage.open import open_storage

    for url in urls:
        barrier.wait(timeout=60)
        try:
            study = optuna.create_study(storage=open_storage(url, create=True, heartbeat=True),
                                        study_name="together", load_if_exists=True)
            study.set_user_attr("opened", True)
        except Exception as exc:
            errors.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_workers_started_together_on_an_empty_database(request, tmp_path, backend):
    """They all create Optuna's tables at once; none may fail for losing that race."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if backend == "postgresql":
        urls = [request.getfixturevalue("postgres_server").create_database("together")
                for _ in range(4)]
    else:  # a new SQLite file each round, as `hpsearch optimize --jobs 4` starts on one
        urls = [str(tmp_path / f"together-{i}.db") for i in range(8)]
    ctx = mp.get_context("spawn")
    barrier, errors = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open_together, args=(urls, barrier, errors))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 4
    assert errors.empty(), errors.get()


# ---------------------------------------------------------------- 3 workers, one budget


class _Log:
    """on_trial callback of one worker: the trials it saw finish, one line each."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with self.path.open("a") as f:
            f.write(f"{trial.number} {trial.state.name}\n")


def _worker(settings: Settings, log: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    run_worker(FAST, settings, on_trial=_Log(log))


def test_three_workers_share_one_budget_exactly(postgres_db, tmp_path):
    n = 12
    settings = Settings(dataset="synthetic", epochs=1, trials=n, val_size=400, jobs=3,
                        storage=postgres_db, study_name="shared")
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(settings, log)) for log in logs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=150)
    assert [p.exitcode for p in procs] == [0, 0, 0]

    trials = _check_trials(postgres_db, "shared", n)
    seen = [(int(num), state) for log in logs if log.exists()
            for num, state in (line.split() for line in log.read_text().splitlines())]
    seen_finished = [num for num, state in seen if state in ("COMPLETE", "PRUNED")]
    db_finished = {t.number for t in trials if t.state in FINISHED}
    lost = db_finished ^ set(seen_finished)
    duplicated = len(seen_finished) - len(set(seen_finished))
    print(f"3 workers: {len(db_finished)}/{n} completed, {len(lost)} lost, {duplicated} "
          f"duplicated, per worker {[sum(1 for _ in open(g)) if g.exists() else 0 for g in logs]}")
    assert not lost and not duplicated
    assert sum(1 for log in logs if log.exists()) >= 2  # the work really was shared
    # Trials a worker created in a race for the last place failed without training.
    assert all(t.user_attrs.get("failure_reason") == OVER_BUDGET
               for t in trials if t.state == TrialState.FAIL)


# ---------------------------------------------------------------- the CLI, killed


SLOW_CLI = textwrap.dedent("""
    # `hpsearch` with every epoch slowed by a sleep, so that a test can kill it mid-trial.
    import os, sys, time
    import hpsearch.optimize.objective as objective
    from hpsearch.cli import main

    real_train, delay = objective.train, float(os.environ["EPOCH_SLEEP"])

    def slow_train(cfg, data, *, on_epoch=None, **kw):
        if os.environ.get("TRIAL_FILE"):  # which trial this process trains (seed 0: = number)
            with open(os.environ["TRIAL_FILE"], "a") as f:
                f.write(f"{kw['seed']}\\n")
        def hook(epoch, metrics):
            time.sleep(delay)
            return on_epoch(epoch, metrics) if on_epoch else False
        return real_train(cfg, data, on_epoch=hook, **kw)

    objective.train = slow_train  # also in --jobs workers, which import this as __mp_main__
    if __name__ == "__main__":
        main(prog_name="hpsearch")
""")


def _start(tmp_path: Path, url: str, name: str, trials: int, *extra: str,
           sleep: float = 0.6, trial_file: Path | None = None) -> subprocess.Popen[str]:
    script = tmp_path / "slow_hpsearch.py"
    script.write_text(SLOW_CLI)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EPOCH_SLEEP": str(sleep),
           "TRIAL_FILE": str(trial_file or ""),
           "HPSEARCH_HEARTBEAT_INTERVAL": "1", "HPSEARCH_HEARTBEAT_GRACE": "3",
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), "optimize", "--storage", url, "--study-name", name,
         "--trials", str(trials), "--epochs", "2", *CLI_FAST, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        preexec_fn=_default_signals)


def _default_signals() -> None:
    """In the child, before Python starts: SIGINT and SIGTERM as a terminal gives them.

    A suite started from a background job (`pytest &`, some CI runners) inherits an ignored
    SIGINT, and a child that inherits it never sees the tests' Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _wait_for_running_trial(url: str, name: str, proc: subprocess.Popen[str],
                            timeout: float = 90, others: int = 0) -> int:
    """Poll the study until ``others + 1`` trials are RUNNING; the number of the first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            running = load_study(url, name).get_trials(states=(TrialState.RUNNING,))
        except Exception:  # the study does not exist yet
            running = []
        if len(running) > others:
            time.sleep(0.3)  # mid-epoch
            return running[0].number
        time.sleep(0.2)
    raise AssertionError("no trial started in time")


def _assert_masked(output: str) -> None:
    assert PASSWORD not in output
    assert "hp:***@127.0.0.1" in output


@pytest.mark.parametrize("backend", ["postgresql", "sqlite", "journal"])
def test_a_worker_killed_mid_trial_is_retried_and_the_study_completes(request, tmp_path,
                                                                       backend):
    # SQLite: a WAL file whose writer is killed mid-trial (SIGKILL can land mid-commit).
    # Journal: no server heartbeats; the survivors see the victim's pid is gone.
    url = (request.getfixturevalue("postgres_db") if backend == "postgresql"
           else str(tmp_path / ("crash.db" if backend == "sqlite" else "crash.log")))
    n = 6
    victim_trial = tmp_path / "victim-trial"
    # The victim's trials are slow, so that it is surely killed in the middle of one.
    victim = _start(tmp_path, url, "crash", n, sleep=30, trial_file=victim_trial)
    deadline = time.monotonic() + 120
    while not (victim_trial.exists() and victim_trial.read_text().strip()):
        assert time.monotonic() < deadline and victim.poll() is None, victim.communicate()
        time.sleep(0.2)
    # The survivors start once the victim is inside its trial: started together, on a loaded
    # machine they once finished the whole budget before the victim claimed a trial.
    survivors = [_start(tmp_path, url, "crash", n) for _ in range(2)]
    killed = int(victim_trial.read_text().split()[0])
    _wait_for_running_trial(url, "crash", survivors[0], others=1)  # all are working
    victim.send_signal(signal.SIGKILL)  # mid-trial: its heartbeat stops, the trial stays RUNNING
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    outputs = [p.communicate(timeout=150) for p in survivors]
    for p, (out, err) in zip(survivors, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
        if backend == "postgresql":
            _assert_masked(out + err)
            assert "study crash (postgresql://hp:***@127.0.0.1" in out

    trials = _check_trials(url, "crash", n)
    assert trials[killed].state == TrialState.FAIL
    retries = [t for t in trials
               if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed]
    assert len(retries) == 1 and retries[0].state in FINISHED
    assert retries[0].params == trials[killed].params
    failed = [t.number for t in trials if t.state == TrialState.FAIL]
    print(f"SIGKILL ({backend}): {sum(t.state in FINISHED for t in trials)}/{n} completed, trial "
          f"{killed} failed and retried as {retries[0].number}, failed {failed}")


def test_ctrl_c_fails_the_running_trial_and_says_how_to_resume(postgres_db, tmp_path):
    n = 4
    worker = _start(tmp_path, postgres_db, "sigint", n)
    interrupted = _wait_for_running_trial(postgres_db, "sigint", worker)
    worker.send_signal(signal.SIGINT)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 130, err[-3000:]
    assert "interrupted" in err and "Run the same command again" in err
    _assert_masked(out + err)
    assert load_study(postgres_db, "sigint").trials[interrupted].state == TrialState.FAIL

    # The same command again (in-process: no slow trainer needed) finishes the budget.
    result = CliRunner().invoke(main, ["optimize", "--storage", postgres_db, "--study-name",
                                       "sigint", "--trials", str(n), "--epochs", "2",
                                       *CLI_FAST])
    assert result.exit_code == 0, result.output
    _assert_masked(result.output)
    _check_trials(postgres_db, "sigint", n)


def test_ctrl_c_to_the_main_process_stops_every_job(postgres_db, tmp_path):
    worker = _start(tmp_path, postgres_db, "jobs", 20, "--jobs", "2")
    _wait_for_running_trial(postgres_db, "jobs", worker, others=1)  # both jobs in a trial
    worker.send_signal(signal.SIGINT)  # `kill -INT`: this process only, not the group
    out, err = worker.communicate(timeout=90)
    assert worker.returncode == 130, err[-3000:]
    trials = load_study(postgres_db, "jobs").trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert sum(t.state == TrialState.FAIL for t in trials) >= 1


@pytest.mark.parametrize("sig, code, reason", [
    (signal.SIGINT, 130, "interrupted by SIGINT (Ctrl-C)"),
    (signal.SIGTERM, 143, "terminated by SIGTERM"),  # Slurm, Kubernetes, systemd
])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_stop_signal_fails_the_running_trials_with_their_reason(tmp_path, sig, code, reason,
                                                                   jobs):
    db = str(tmp_path / "sig.db")
    worker = _start(tmp_path, db, "sig", 20, "--jobs", str(jobs))
    _wait_for_running_trial(db, "sig", worker, others=jobs - 1)
    worker.send_signal(sig)  # this process only: it stops its jobs too
    out, err = worker.communicate(timeout=90)
    assert worker.returncode == code, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert "Run the same command again" in err
    trials = load_study(db, "sig").trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert 1 <= len(failed) <= jobs
    assert {t.user_attrs["failure_reason"] for t in failed} == {reason}


# ---------------------------------------------------------------- passwords


def _without_password(url: str) -> str:
    return url.replace(f"{USER}:{PASSWORD}@", f"{USER}@")


def test_a_password_in_the_query_string_is_never_shown_or_stored(postgres_db, tmp_path,
                                                                  monkeypatch):
    url = _without_password(postgres_db) + f"?password={PASSWORD}"
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["optimize", "--storage", url, "--trials", "2",
                                       "--epochs", "1", *CLI_FAST])
    assert result.exit_code == 0, result.output
    assert "password=***" in result.output and PASSWORD not in result.output
    study = load_study(url)
    assert PASSWORD not in json.dumps(study.user_attrs)
    assert study.user_attrs["provenance"]["settings"]["storage"].endswith("?password=***")
    report = CliRunner().invoke(main, ["report", url, "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    assert PASSWORD not in report.output + (tmp_path / "r.html").read_text()
    served = _dashboard_json(url, f"/api/studies/{study._study_id}?after=0")
    assert "password=***" in served and PASSWORD not in served


def _dashboard_json(storage: str, route: str) -> str:
    import io
    from wsgiref.util import setup_testing_defaults

    from hpsearch.dashboard import app

    path, _, query = route.partition("?")
    environ: dict[str, object] = {"PATH_INFO": path, "QUERY_STRING": query}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(storage)(environ, lambda s, h, *a: status.append(s) or io.BytesIO()))
    assert status[0].startswith("200"), (status, body[:300])
    return body.decode()


@pytest.mark.parametrize("how", ["PGPASSWORD", "PGPASSFILE"])
def test_the_password_can_come_from_the_environment(postgres_db, tmp_path, monkeypatch, how):
    url = _without_password(postgres_db)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    refused = CliRunner().invoke(main, ["report", url, "--format", "json"])
    assert refused.exit_code == 1 and "password" in refused.output  # it really is needed
    if how == "PGPASSWORD":
        monkeypatch.setenv("PGPASSWORD", PASSWORD)
    else:
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"127.0.0.1:*:*:{USER}:{PASSWORD}\n")
        passfile.chmod(0o600)  # libpq ignores a file others can read
        monkeypatch.setenv("PGPASSFILE", str(passfile))
    result = CliRunner().invoke(main, ["optimize", "--storage", url, "--study-name", "env",
                                       "--trials", "1", "--epochs", "1", *CLI_FAST])
    assert result.exit_code == 0, result.output
    assert len(load_study(url, "env").get_trials(states=FINISHED)) == 1


# ---------------------------------------------------------------- a lost server


def test_losing_the_server_mid_run_is_one_line(postgres_server, tmp_path):
    from support.postgres import PostgresServer

    server = PostgresServer(postgres_server.bindir)  # its own: this test stops it
    try:
        url = server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        pytest.skip(f"could not start a second PostgreSQL: {str(exc)[:200]}")
    try:
        worker = _start(tmp_path, url, "lost", 50, sleep=1.0)
        _wait_for_running_trial(url, "lost", worker)
        server.stop()  # immediate shutdown: every connection is cut
        out, err = worker.communicate(timeout=120)
    finally:
        server.stop()
    assert worker.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-5000:]
    errors = [line for line in err.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "run the same command again" in errors[0], err[-3000:]
    _assert_masked(errors[0])
    assert len(err.splitlines()) <= 3, err


# ---------------------------------------------------------------- soak


@pytest.mark.parametrize("backend", ["postgresql", "journal", "sqlite"])
def test_soak_many_short_trials(postgres_db, tmp_path, monkeypatch, backend):
    spec = {"postgresql": postgres_db, "journal": str(tmp_path / "soak.log"),
            "sqlite": str(tmp_path / "soak.db")}[backend]  # SQLite: WAL, one host
    flag = "--url" if backend == "postgresql" else "--storage"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak.py"), flag, spec,
                           "--trials", "60", "--workers", "3", "--json"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(r)
    assert (r["completed"], r["lost"], r["duplicated"], r["left_running"]) == (60, 0, 0, 0)
    assert r["exit_codes"] == [0, 0, 0]
    assert r["failed"] == r["skipped"]  # the only failures are race losers that never ran
