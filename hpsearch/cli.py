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
from hpsearch.settings import MARGIN, RULES, Rule, Settings, default_text, verify_seed_caps
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


# ---------------------------------------------------------------------------- shared flags


def _click_type(rule: Rule) -> Any:
    """A setting's click type from its rule: bounds and choices are written once."""
    if rule.kind == "int":
        return click.IntRange(None if rule.low is None else int(rule.low),
                              None if rule.high is None else int(rule.high))
    if rule.kind == "float":
        return click.FloatRange(rule.low, rule.high, min_open=rule.low_open)
    if rule.kind == "choice":
        return click.Choice(rule.choices)
    if rule.kind == "path":
        return click.Path(file_okay=False)
    return None


def setting_option(name: str, *, help: str | None = None, shown: str | None = None,
                   metavar: str | None = None, **kwargs: Any,
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--NAME`` for the setting ``name``: type, bounds, choices and help from
    ``settings.RULES``, the default shown from ``Settings`` (or ``shown``). It has no click
    default: an unset flag leaves the preset's value or the default."""
    rule = RULES[name]
    text = rule.help if help is None else help
    default = default_text(name) if shown is None else shown
    if default:
        text += f"  [default: {default}]"
    return click.option("--" + name.replace("_", "-"), type=_click_type(rule),
                        metavar=metavar or rule.metavar, help=text, **kwargs)


def study_name_option(help: str = "Which study, when STORAGE holds several.",
                      ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--study-name", help=help)


def device_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--device`` of a command that trains on its own (verify, best): ``auto`` unless given."""
    return click.option("--device", default=Settings().device, show_default=True,
                        help=RULES["device"].help)


def data_dir_option(*, help: str | None = None, shown: str = "the study's",
                    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return setting_option("data_dir", help=help, shown=shown)


def moved_dataset_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--dataset`` of a command that retrains a study's configs (verify, best)."""
    return setting_option(
        "dataset", metavar="PATH.npz|DIR", shown="where the study ran it",
        help="Where the study's .npz or image folder is now, when it moved; refused unless "
             "it is the same data (the study records a hash of every image and label).")


def fuse_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--fuse", type=click.IntRange(min=1),
                        help=f"Train at most K {what} as one fused model (1: one by one).  "
                             "[default: as many as fit and pay on this device]")


def objective_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--objective`` of a command that retrains a study's configs (verify, best)."""
    return click.option("--objective", metavar=RULES["objective"].metavar,
                        help="The objective that made the study, when its file moved or "
                             "changed, or for a study hpsearch did not make.  [default: the "
                             "one the study records]")


def _settings_from_flags(preset_settings: dict[str, Any], flags: dict[str, Any],
                         preset: str | None = None) -> Settings:
    from hpsearch.settings import settings_from

    # Name the preset file, as errors in its [params] do.
    settings = settings_from(preset_settings, source=f"preset {preset or ''} [settings]")
    given = {k: v for k, v in flags.items() if v is not None}
    return settings_from(given, source="command line", base=settings)


@main.command()
@setting_option("trials")
@setting_option("dataset")
@click.option("--model", type=click.Choice(["mlp", "cnn", "any"]),
              help="Fix the model family; any = sample both.  [default: any]")
@setting_option("objective")
@setting_option("direction")
@setting_option("epochs")
@setting_option("storage")
@setting_option("study_name")
@click.option("--preset", help="A studies/*.toml file, or the bare name of a bundled one.")
@click.option("--question", metavar="ID",
              help="The question the study is for: its param is assigned by design (see "
                   "--design), not left to the sampler. A question id "
                   f"({', '.join(q.id for q in QUESTIONS)}), or with --objective any "
                   "categorical param it suggests.  [default: the preset's]")
@setting_option("design")
@click.option("--set", "assignments", multiple=True, metavar="PARAM=VALUE",
              help="Fix a param (batch_norm=before), narrow choices (a,b) or a range (lo..hi).")
@setting_option("sampler")
@setting_option("random_share")
@setting_option("pruner")
@setting_option("jobs")
@setting_option("device")
@setting_option("seed")
@setting_option("timeout")
@data_dir_option(shown="")
@setting_option("train_size")
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
        what = (f"{plural(settings.epochs, 'epoch')} each, dataset {settings.dataset}"
                if settings.objective is None
                else f"objective {settings.objective} ({settings.direction})")
        _echo(f"study {default_study_name(loaded, settings)} in "
              f"{_masked(settings.storage)}: target {settings.trials} finished trials, "
              f"{what}", err=True)

    from hpsearch.optimize import Terminated
    from hpsearch.text import plural

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
        _echo(f"warning: {plural(summary.failed, 'failed trial')} in the study; the last one: "
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
    prog = invoked_as()
    return [*lines, "next: the verdicts and figures (report.html), the causal check of the "
            "questions (paired re-runs), the best config on the test set:",
            f"  {prog} report {where}",
            f"  {prog} verify {where}" + (f" --question {question}" if question else ""),
            f"  {prog} best {where} --retrain"]


def invoked_as(argv0: str | None = None) -> str:
    """The command a user can paste to run hpsearch again, as this run was invoked.

    ``hpsearch`` when that name on PATH is this very script; the path as typed when it is
    not (``.venv/bin/hpsearch`` of the README's quick start, before the venv is activated);
    ``python -m hpsearch`` (with this interpreter's path unless it is ``python`` on PATH)
    for ``python -m hpsearch``.
    """
    import os
    import shlex
    import shutil
    import sys
    from pathlib import Path

    argv0 = sys.argv[0] if argv0 is None else argv0
    if Path(argv0).name == "__main__.py":
        on_path = shutil.which("python")
        same = on_path and Path(on_path).resolve() == Path(sys.executable).resolve()
        return f"{'python' if same else shlex.quote(sys.executable)} -m hpsearch"
    on_path = shutil.which("hpsearch")
    if on_path and os.path.exists(argv0) and Path(on_path).resolve() == Path(argv0).resolve():
        return "hpsearch"
    if os.sep in argv0 and Path(argv0).name == "hpsearch":
        return shlex.quote(argv0)
    return "hpsearch"


def _masked(spec: str) -> str:
    from hpsearch.storage import mask

    return mask(spec)


def _echo(line: str, *, err: bool = False) -> None:
    """One line for a terminal: study-controlled text may hold escape codes (ESC, OSC)."""
    from hpsearch.text import plain

    click.echo(plain(line), err=err)


@main.command()
@click.argument("names", nargs=-1, metavar="[NAME|PATH.npz|DIR]...")
@data_dir_option(help="Also look here first (as optimize --data-dir does).", shown="")
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
@study_name_option()
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
@click.option("--metric", metavar="NAME|N",
              help="Which objective of a multi-objective study to analyse: its name (set "
                   "with study.set_metric_names) or its index, 0 first.  [default: the "
                   "study's one objective; required when it has several]")
@friendly_errors
def report(storage: str, study_name: str | None, out: str | None, fmt: str,
           evaluators: tuple[str, ...], questions: tuple[str, ...],
           interactions: tuple[str, ...], margin: float | None,
           chance: float | None, metric: str | None) -> None:
    """Analyse a study: verdicts on the questions, importances, figures."""
    import optuna

    from hpsearch.report import report as run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = run(storage, study_name=study_name, fmt=fmt, out=out,
                 evaluators=evaluators or ("ped_anova",), margin=margin,
                 questions=questions, interactions=interactions, chance=chance,
                 metric=metric)
    from hpsearch.text import plain_lines

    to_stdout = result.path is None  # then the summary goes to stderr, out of the way
    if to_stdout:  # a document with study text in it: no escape codes to the terminal
        click.echo(plain_lines(result.text), nl=False)
    click.echo(plain_lines(result.summary), err=to_stdout)
    if result.path is not None:
        where = f" (also artifact {result.artifact_id} of the study)" if result.artifact_id \
            else ""
        _echo(f"wrote {result.path}{where}")
    for line in result.notes:
        _echo(line)
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
                   "effect the seeds' claims are about), when its failures to learn are "
                   "equivalent too (their rates within ±5 pts by their own interval).")
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Verify on the K best complete trials' configs.")
@click.option("--baseline", metavar="VALUE",
              help="With one built-in --question: the value of its param the others are "
                   "compared with, in place of the best config's own (e.g. none, for a "
                   "claim that a penalty hurts).")
@setting_option("jobs", default=Settings().jobs, show_default=True, shown="",
                help="Processes sharing the trainings (more machines: run the same command "
                     "against one PostgreSQL storage).")
@study_name_option()
@setting_option("epochs", help="Epochs per run.", shown="the study's")
@device_option()
@moved_dataset_option()
@data_dir_option()
@fuse_option("seeds of a twin")
@objective_option()
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or lines.")
@friendly_errors
def verify(storage: str, question: str | None, seeds: int | None, margin: float, top_k: int,
           baseline: str | None, jobs: int, study_name: str | None, epochs: int | None,
           device: str, dataset: str | None, data_dir: str | None, fuse: int | None,
           objective: str | None, quiet: bool) -> None:
    """Paired re-runs: twins of the best config that differ only in one question's param."""
    import optuna

    from hpsearch.progress import RunProgress
    from hpsearch.verify import verify as run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bar = RunProgress(quiet=quiet)
    try:
        result = run(storage, question, seeds=seeds, top_k=top_k, study_name=study_name,
                     epochs=epochs, device=device, data_dir=data_dir, progress=bar,
                     fuse=fuse, margin=margin, jobs=jobs, objective=objective,
                     on_start=_echo, dataset=dataset, baseline=baseline)
    finally:
        bar.close()
    # The plan was printed before the first training (click.echo flushes): a log reads plan,
    # then one line per training, then the answers.
    for line in result.lines(plan=False):
        click.echo(line)
    if result.unsaved():
        raise click.ClickException(_masked("; ".join(x.message() for x in result.unsaved())))


@main.command()
@click.argument("storage")
@study_name_option()
@click.option("--retrain", is_flag=True,
              help="Train on seeds 0..N-1 for a mean ± std (default: the trial's own seed).")
@click.option("--seeds", type=click.IntRange(min=1),
              help="Seeds for --retrain.  [default: 5]")
@device_option()
@moved_dataset_option()
@data_dir_option()
@fuse_option("of the --retrain seeds")
@objective_option()
@friendly_errors
def best(storage: str, study_name: str | None, retrain: bool, seeds: int | None, device: str,
         dataset: str | None, data_dir: str | None, fuse: int | None,
         objective: str | None) -> None:
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
                 dataset=dataset,
                 progress=lambda line: _echo(f"best: {line}", err=True))
    for line in result.lines():
        _echo(line)
    for warning in result.warnings:
        _echo(f"warning: {warning}", err=True)
    if result.saved is not None and not result.saved.stored:
        raise click.ClickException(_masked(result.saved.message()))


if __name__ == "__main__":
    main()
