"""The ``hpsearch`` command: parse flags, call one library function, print.

Library errors (``HPSearchError``) become one-line ``click.ClickException`` messages here
and nowhere else.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any

import click

from hpsearch import __version__
from hpsearch.errors import HPSearchError
from hpsearch.settings import (
    DESIGNS,
    DIRECTIONS,
    MARGIN,
    MAX_JOBS,
    PRUNERS,
    SAMPLERS,
    Settings,
    verify_seed_caps,
)
from hpsearch.space import INTERACTION_BY_ID, QUESTION_BY_ID, QUESTIONS


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """HPSearchError -> one line on stderr and exit 1; Ctrl-C -> exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hpsearch.storage import mask
        from hpsearch.text import plain

        try:
            return fn(*args, **kwargs)
        except HPSearchError as exc:  # a study name in it may hold escape codes
            raise click.ClickException(plain(mask(str(exc)))) from None

    return wrapper


class _WarningLines(logging.Handler):
    """The library's warnings (``logging.getLogger("hpsearch")``: a repaired journal, ...)
    as ``warning: ...`` lines on stderr, like the CLI's own."""

    def emit(self, record: logging.LogRecord) -> None:
        from hpsearch.storage import mask
        from hpsearch.text import plain

        click.echo(f"warning: {plain(mask(record.getMessage()))}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpsearch")
def main() -> None:
    """Which regularization techniques actually help your model, and by how much."""
    log = logging.getLogger("hpsearch")
    if not any(isinstance(h, _WarningLines) for h in log.handlers):
        log.addHandler(_WarningLines(logging.WARNING))
        log.propagate = False


def _settings_from_flags(preset_settings: dict[str, Any], flags: dict[str, Any],
                         preset: str | None = None) -> Settings:
    from hpsearch.settings import settings_from

    # Name the preset file, as errors in its [params] do.
    settings = settings_from(preset_settings, source=f"preset {preset or ''} [settings]")
    given = {k: v for k, v in flags.items() if v is not None}
    return settings_from(given, source="command line", base=settings)


@main.command()
@click.option("--trials", type=click.IntRange(min=1), help="Total finished trials the study "
              "should reach (a re-run resumes).  [default: 100]")
@click.option("--dataset", metavar="NAME|PATH.npz|DIR",
              help="What to train on: mnist, fashion-mnist, kmnist, digits, synthetic or "
                   "cifar10 (digits and synthetic need no download), an .npz of x_train, "
                   "y_train, x_test, y_test, or an image folder DIR/{train,test}/<class>/* "
                   "(`hpsearch datasets` lists what is here).  [default: mnist]")
@click.option("--model", type=click.Choice(["mlp", "cnn", "any"]),
              help="Fix the model family; any = sample both.  [default: any]")
@click.option("--objective", metavar="FILE.py:NAME",
              help="Your own Optuna objective, def NAME(trial) -> float (or "
                   "package.module:NAME), instead of hpsearch's models: it gets storage, "
                   "workers, designs, report, verify and best (docs/own-model.md).")
@click.option("--direction", type=click.Choice(DIRECTIONS),
              help="Whether --objective's value is maximized or minimized (a loss).  "
                   "[default: maximize]")
@click.option("--epochs", type=click.IntRange(1, 1000), help="Epochs per trial.  [default: 10]")
@click.option("--storage", help="SQLite file, SQLAlchemy URL or journal .log file.  "
              "[default: study.db]")
@click.option("--study-name", help="The study in STORAGE to create or resume; give it "
              "explicitly when several machines share one.  [default: PRESET-DATASET]")
@click.option("--preset", help="A studies/*.toml file, or the bare name of a bundled one.")
@click.option("--question", metavar="ID",
              help="The question the study is for: its param is assigned by design (see "
                   "--design), not left to the sampler. A question id "
                   f"({', '.join(q.id for q in QUESTIONS)}), or with --objective any "
                   "categorical param it suggests.  [default: the preset's]")
@click.option("--design", type=click.Choice(DESIGNS),
              help="How a question's param is assigned: paired trains every choice of it per "
                   "config on one seed, pruned together; balanced gives each trial one choice "
                   "by permuted blocks; none leaves it to the sampler.  [default: paired when "
                   "the study names a question]")
@click.option("--set", "assignments", multiple=True, metavar="PARAM=VALUE",
              help="Fix a param (batch_norm=before), narrow choices (a,b) or a range (lo..hi).")
@click.option("--sampler", type=click.Choice(SAMPLERS),
              help="How params are chosen: tpe adapts to good regions (with a randomized "
                   "share, see --random-share); random makes the whole study an experiment "
                   "whose verdicts can say 'matters'.  [default: tpe]")
@click.option("--random-share", type=click.FloatRange(0, 1),
              help="Share of an adaptive sampler's trials drawn at random, so the study is "
                   "also an experiment (0 = pure search).  [default: 0.2]")
@click.option("--pruner", type=click.Choice(PRUNERS),
              help="When a trial stops early (never on its first epoch); none trains every "
                   "trial to the end.  [default: median]")
@click.option("--jobs", type=click.IntRange(1, MAX_JOBS),
              help="Worker processes.  [default: 1]")
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps.  [default: auto]")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1),
              help="Seeds the sampler, the validation split and each trial's training seed "
                   "(derived from it and the trial number).  [default: 0]")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Stop starting trials after SEC seconds.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where dataset files are looked for first.")
@click.option("--train-size", type=click.IntRange(min=10),
              help="Train on a seeded subset of N examples (a quick look on a CPU); "
                   "validation and test sets stay whole.  [default: all]")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@friendly_errors
def optimize(model: str | None, preset: str | None, question: str | None,
             assignments: tuple[str, ...], quiet: bool, **flags: Any) -> None:
    """Run (or resume) a study over the whole search space."""
    import optuna

    from hpsearch.optimize import default_study_name
    from hpsearch.optimize import optimize as run
    from hpsearch.space import Preset, load_preset

    loaded = load_preset(preset) if preset else Preset()
    if model and model != "any":
        assignments = (f"model={model}", *assignments)
    loaded = loaded.with_overrides(assignments)
    if question is not None:
        loaded = dataclasses.replace(loaded, question=question)
    settings = _settings_from_flags(dict(loaded.settings), flags, preset)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def banner(study: optuna.Study) -> None:  # once the study is open: errors come first
        what = (f"{settings.epochs} epochs each, dataset {settings.dataset}"
                if settings.objective is None
                else f"objective {settings.objective} ({settings.direction})")
        _echo(f"study {default_study_name(loaded, settings)} in "
              f"{_masked(settings.storage)}: target {settings.trials} finished trials, "
              f"{what}", err=True)

    from hpsearch.optimize import Terminated

    try:
        summary = run(loaded, settings, progress=not quiet, on_start=banner)
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        click.echo(f"\n{what}: the running trial is marked failed; finished trials are "
                   "kept. Run the same command again to finish the budget.", err=True)
        raise SystemExit(143 if isinstance(exc, Terminated) else 130) from None
    for line in _summary_lines(summary, loaded.question):
        _echo(line)
    if summary.last_failure is not None:
        _echo(f"warning: {summary.failed} failed trial(s) in the study; the last one: "
              f"{summary.last_failure}", err=True)


def _summary_lines(summary: Any, question: str | None) -> list[str]:
    """What optimize prints at the end: the study, its best trial, the commands to run next."""
    import shlex

    from hpsearch.text import param_value

    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary.states.items()))
    lines = [f"study {summary.study_name} ({summary.storage}): {summary.n_finished} finished "
             f"trials ({states}); {summary.ran_here} ran now"]
    if summary.best_value is None:
        return [*lines, "no trial completed yet"]
    what = "validation accuracy" if summary.objective is None else "value"
    lines.append(f"best trial #{summary.best_number}: {what} {summary.best_value:.4f}")
    lines += [f"  {key:16} {param_value(key, value)}"
              for key, value in summary.best_params.items()]
    where = f"{shlex.quote(summary.storage)} --study-name {shlex.quote(summary.study_name)}"
    return [*lines, "next: the verdicts and figures (report.html), the causal check of the "
            "questions (paired re-runs), the best config on the test set:",
            f"  hpsearch report {where}",
            f"  hpsearch verify {where}" + (f" --question {question}" if question else ""),
            f"  hpsearch best {where} --retrain"]


def _masked(spec: str) -> str:
    from hpsearch.storage import mask

    return mask(spec)


def _echo(line: str, *, err: bool = False) -> None:
    """One line for a terminal: study-controlled text may hold escape codes (ESC, OSC)."""
    from hpsearch.text import plain

    click.echo(plain(line), err=err)


@main.command()
@click.argument("names", nargs=-1, metavar="[NAME|PATH.npz|DIR]...")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Also look here first (as optimize --data-dir does).")
@friendly_errors
def datasets(names: tuple[str, ...], data_dir: str | None) -> None:
    """Which datasets are available here, and where; with NAMES, load each one and say
    what it holds (a check of an .npz or an image folder before a study)."""
    from hpsearch.training import available_datasets, load_dataset, search_dirs

    if names:
        for name in names:
            _echo(load_dataset(name, data_dir, download=False).describe())
        return
    rows = available_datasets(data_dir)
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:{width}}  {r['available']:8}  {r['where']}")
    click.echo("searched: " + ", ".join(str(d) for d in search_dirs(data_dir)))


@main.command()
@click.argument("storage")
@click.option("--study-name", help="Which study, when STORAGE holds several.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Where to write.  [default: report.html; md and json go to stdout]")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]), default="html",
              show_default=True, help="html: one offline page with figures, also stored with "
              "the study for the dashboard; md: text; json: every number, stable keys.")
@click.option("--evaluator", "evaluators", multiple=True,
              type=click.Choice(["ped_anova", "fanova", "mdi"]),
              help="Importance evaluator; repeat for several.  [default: ped_anova]")
@click.option("--question", "questions", multiple=True, metavar="NAME",
              help="Report only this question (a question id, a param of the study or an "
                   "interaction id); repeat for several.")
@click.option("--interaction", "interactions", multiple=True, metavar="A:B",
              help="Also ask whether the effect of param A depends on param B; repeat for "
                   "several (the built-in interactions are always asked).")
@click.option("--margin", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="PTS", help="Differences smaller than this are \"equivalent\", in "
              "accuracy points (objective units for other objectives).  [default: "
              f"{MARGIN:g} for accuracies]")
@click.option("--chance", type=click.FloatRange(0, 1, max_open=True), default=None,
              metavar="VALUE", help="The accuracy of guessing (1 / classes), for a study "
              "whose dataset hpsearch does not know: trials that stay at chance never "
              "learned, and each question answers whether its choice changes how often "
              "training fails apart from accuracy among trials that learned.  [default: from "
              "the study's dataset; none: nothing detected]")
@friendly_errors
def report(storage: str, study_name: str | None, out: str | None, fmt: str,
           evaluators: tuple[str, ...], questions: tuple[str, ...],
           interactions: tuple[str, ...], margin: float | None,
           chance: float | None) -> None:
    """Analyse a study: verdicts on the questions, importances, figures."""
    import optuna

    from hpsearch.report import report as run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = run(storage, study_name=study_name, fmt=fmt, out=out,
                 evaluators=evaluators or ("ped_anova",), margin=margin,
                 questions=questions, interactions=interactions, chance=chance)
    from hpsearch.text import plain_lines

    to_stdout = result.path is None  # then the summary goes to stderr, out of the way
    if to_stdout:  # a document with study text in it: no escape codes to the terminal
        click.echo(plain_lines(result.text), nl=False)
    click.echo(plain_lines(result.summary), err=to_stdout)
    if result.path is not None:
        where = f" (also artifact {result.artifact_id} of the study)" if result.artifact_id \
            else ""
        _echo(f"wrote {result.path}{where}")
    for warning in result.warnings:
        _echo(f"warning: {warning}", err=True)


@main.command()
@click.argument("storage")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; 0.0.0.0 opens the dashboard (no login) to the "
                   "network.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Port to listen on.")
@friendly_errors
def dashboard(storage: str, host: str, port: int) -> None:
    """optuna-dashboard for STORAGE, with the reports and artifacts of its studies."""
    from hpsearch.dashboard import dashboard as serve
    from hpsearch.dashboard import is_loopback

    def started(url: str) -> None:
        _echo(f"optuna-dashboard for {_masked(storage)} at {url}  (Ctrl-C to stop)")
        if not is_loopback(host):
            click.echo(f"warning: listening on {host}: anyone who can reach this machine can "
                       "read, change and delete these studies", err=True)

    serve(storage, host=host, port=port, on_start=started)


@main.command()
@click.argument("storage")
@click.option("--question",
              help=f"Verify one question ({', '.join(QUESTION_BY_ID)}), or one interaction "
                   f"({', '.join(INTERACTION_BY_ID)}: factorial twins, the interaction "
                   "contrast per seed), or a categorical param of a study's own objective.  "
                   "[default: every question the study sampled, as "
                   "one Holm family]")
@click.option("--seeds", type=click.IntRange(min=1),
              help="The most seeds (0..N-1, the same for every twin) a comparison may use; "
                   "seeds are added in looks and a comparison stops once it is settled. "
                   "Fewer than the family can reach significance with are refused.  "
                   f"[default, by the family's size: {verify_seed_caps()}]")
@click.option("--margin", type=click.FloatRange(0, 100, min_open=True, max_open=True),
              default=MARGIN, show_default=True, metavar="PTS",
              help="Equivalence margin in test-accuracy points: a comparison whose interval "
                   f"lies inside ±margin is settled as equivalent ({MARGIN:g}: the smallest "
                   "effect the seeds' claims are about).")
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Verify on the K best complete trials' configs.")
@click.option("--jobs", type=click.IntRange(1, MAX_JOBS), default=1, show_default=True,
              help="Processes sharing the trainings (more machines: run the same command "
                   "against one PostgreSQL storage).")
@click.option("--study-name", help="Which study, when STORAGE holds several.")
@click.option("--epochs", type=click.IntRange(1, 1000),
              help="Epochs per run.  [default: the study's]")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where dataset files are looked for first.  [default: the study's]")
@click.option("--fuse", type=click.IntRange(min=1),
              help="Train at most K seeds of a twin as one fused model (1: one by one).  "
                   "[default: as many as fit and pay on this device]")
@click.option("--objective", metavar="FILE.py:NAME",
              help="The objective that made the study, when its file moved or changed, or "
                   "for a study hpsearch did not make.  [default: the one the study records]")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or lines.")
@friendly_errors
def verify(storage: str, question: str | None, seeds: int | None, margin: float, top_k: int,
           jobs: int, study_name: str | None, epochs: int | None, device: str,
           data_dir: str | None, fuse: int | None, objective: str | None,
           quiet: bool) -> None:
    """Paired re-runs: twins of the best config that differ only in one question's param."""
    import optuna

    from hpsearch.progress import RunProgress
    from hpsearch.verify import verify as run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bar = RunProgress(quiet=quiet)
    try:
        result = run(storage, question, seeds=seeds, top_k=top_k, study_name=study_name,
                     epochs=epochs, device=device, data_dir=data_dir, progress=bar,
                     fuse=fuse, margin=margin, jobs=jobs, objective=objective)
    finally:
        bar.close()
    for line in result.lines():
        click.echo(line)
    if result.unsaved():
        raise click.ClickException(_masked("; ".join(x.message() for x in result.unsaved())))


@main.command()
@click.argument("storage")
@click.option("--study-name", help="Which study, when STORAGE holds several.")
@click.option("--retrain", is_flag=True,
              help="Train on seeds 0..N-1 for a mean ± std (default: the trial's own seed).")
@click.option("--seeds", type=click.IntRange(min=1),
              help="Seeds for --retrain.  [default: 5]")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where dataset files are looked for first.  [default: the study's]")
@click.option("--fuse", type=click.IntRange(min=1),
              help="Train at most K of the --retrain seeds as one fused model (1: one by "
                   "one).  [default: as many as fit and pay on this device]")
@click.option("--objective", metavar="FILE.py:NAME",
              help="The objective that made the study, when its file moved or changed, or "
                   "for a study hpsearch did not make.  [default: the one the study records]")
@friendly_errors
def best(storage: str, study_name: str | None, retrain: bool, seeds: int | None, device: str,
         data_dir: str | None, fuse: int | None, objective: str | None) -> None:
    """The best config retrained: test accuracy, per-class accuracy, weights as artifacts."""
    import optuna

    from hpsearch.best import best as run

    if seeds is not None and not retrain:
        raise click.UsageError("--seeds needs --retrain (without it the trial's own seed "
                               "is used)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # One line per finished training on stderr, a terminal or not (a log, a batch job).
    result = run(storage, study_name=study_name, retrain=retrain, seeds=seeds or 5,
                 device=device, data_dir=data_dir, fuse=fuse, objective=objective,
                 progress=lambda line: _echo(f"best: {line}", err=True))
    for line in result.lines():
        _echo(line)
    for warning in result.warnings:
        _echo(f"warning: {warning}", err=True)
    if result.saved is not None and not result.saved.stored:
        raise click.ClickException(_masked(result.saved.message()))


if __name__ == "__main__":
    main()
