"""Every fixed (not sampled) setting in one commented dataclass, and what each may be.

Precedence, lowest first: these defaults, a preset's ``[settings]`` table, command-line
flags. The resolved settings are stored with every study (provenance). :data:`RULES` says
what each setting may be (type, bounds or choices, what it means): :func:`validate` checks
values against it and ``hpsearch.cli`` builds each flag's type and help from it, so a bound,
a choice or a default is written once. A leaf: it imports nothing of hpsearch but its errors.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.errors import ConfigError, DataError

SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc")
PRUNERS = ("median", "hyperband", "sha", "percentile", "none")
DESIGNS = ("none", "balanced", "paired")  # hpsearch.optimize.designs
DIRECTIONS = ("maximize", "minimize")
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")  # cuda:N: any CUDA device by index
# The datasets hpsearch knows by name (hpsearch.training.datasets loads each); --dataset
# also takes an .npz file or an image folder.
DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "kmnist", "digits", "synthetic",
                             "cifar10")
MAX_JOBS = 64  # worker processes one command starts (optimize and verify --jobs)
# The default equivalence margin, in accuracy points (`report --margin`, `verify --margin`).
# Half a point is the smallest gap the seeds argue about ("before did better" on MNIST was a
# few tenths; BN vs none 3.7 pts), the effect verify's "what it would take" plans for
# (MIN_EFFECT), about one test example in 200, and about the run-to-run spread of one
# config: retraining a 10-epoch MNIST MLP on another seed moves its validation accuracy by
# 0.1-0.3 pts (the planted studies use 0.4 pts of trial noise). A difference smaller than
# that is one no single comparison of the kind the seeds ran could see, so "no difference
# larger than 0.5 pts" answers them. For objectives that are not accuracies (other units)
# there is no default: pass a margin.
MARGIN = 0.5


@dataclass(frozen=True)
class Settings:
    # --- data
    # A name (the seeds' mnist; `digits` needs no download), an .npz file or an image folder
    # (stored as an absolute path, so verify and best find it from anywhere).
    dataset: str = "mnist"
    data_dir: str | None = None   # searched first, before $HPSEARCH_DATA_DIR and the cache
    val_size: int = 10_000        # seeded hold-out of the training set; the objective's data
    train_size: int | None = None  # train on a seeded subset of this many (quick CPU looks)
    # --- training (seed 001: early stopping and best-epoch weights are trainer behaviour)
    epochs: int = 10              # per trial; pruning stops hopeless trials sooner
    patience: int = 3             # epochs without a better validation accuracy before stopping
    device: str = "auto"          # auto = cuda when present, else cpu
    # --- the objective: hpsearch's own (train its models on `dataset`), or a user's
    # `def objective(trial) -> float` named FILE.py:NAME or package.module:NAME
    # (hpsearch.objectives), which brings its own model and data.
    objective: str | None = None
    direction: str = "maximize"   # a user's objective may minimize (a loss)
    # --- search
    trials: int = 100             # total finished (complete + pruned) trials the study targets
    sampler: str = "tpe"
    # Share of TPE's trials (after its first 10, random anyway) drawn completely at random
    # and marked so: the study is then also an experiment whose randomized part can call a
    # difference an effect. Costs little of the search (README, "How answers are reached").
    random_share: float = 0.2
    pruner: str = "median"
    # How a study named for a question (preset or --question) treats that question's param:
    # "balanced" assigns it by permuted blocks, "paired" trains every choice per config on
    # one seed, "none" leaves it to the sampler. None: the default (hpsearch.optimize.designs).
    design: str | None = None
    seed: int = 0                 # sampler seed and the base of every trial's training seed
    jobs: int = 1                 # worker processes sharing the storage
    timeout: float | None = None  # seconds for this run; the study keeps what finished
    # --- storage
    storage: str = "study.db"     # SQLite path, SQLAlchemy URL or journal `.log` file
    study_name: str | None = None  # default: derived from preset and dataset

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Rule:
    """What one setting may be, and what its flag says (scikit-learn's
    ``_parameter_constraints``, with the help text beside it)."""

    help: str                        # the flag's help; hpsearch.cli adds "[default: ...]"
    kind: str = "str"                # "int", "float", "choice", "str" or "path"
    low: float | None = None         # bounds, inclusive unless low_open
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False           # None (unset) is allowed
    what: str = ""                   # the error's "must be ..." when the bounds do not say it
    shown: str | None = None         # the default as --help shows it (None: the value; "": none)
    metavar: str | None = None

    def allows(self, v: Any) -> bool:
        if v is None:
            return self.optional
        if self.kind == "choice":
            return v in self.choices
        if self.kind in ("int", "float"):
            kinds = int if self.kind == "int" else int | float
            return (isinstance(v, kinds) and not isinstance(v, bool)
                    and (self.low is None or (v > self.low if self.low_open else v >= self.low))
                    and (self.high is None or v <= self.high))
        return isinstance(v, str) and bool(v)

    def must(self) -> str:
        if self.what:
            return self.what
        if self.kind == "choice":
            return f"choose from {', '.join(self.choices)}"
        low, high = _number(self.low), _number(self.high)
        if self.kind == "int":
            return (f"must be an integer in {low}..{high}" if self.high is not None
                    else f"must be an integer >= {low}")
        return f"must be a number in [{low}, {high}]"


def _number(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if x == int(x) else f"{x:g}"


_NAMES = ", ".join(DATASETS[:-1]) + " or " + DATASETS[-1]

# Checked in this order (the first invalid one is named).
RULES: dict[str, Rule] = {
    "dataset": Rule(
        f"What to train on: {_NAMES} (digits and synthetic need no download), an .npz of "
        "x_train, y_train, x_test, y_test, or an image folder DIR/{train,test}/<class>/* "
        "(`hpsearch datasets` lists what is here).", metavar="NAME|PATH.npz|DIR",
        what="must be a dataset's name, an .npz file or an image folder"),
    "val_size": Rule("Validation examples held out of the training set.", "int", low=1),
    "train_size": Rule("Train on a seeded subset of N examples (a quick look on a CPU); "
                       "validation and test sets stay whole.", "int", low=10, optional=True,
                       what="must be an integer >= 10 (or unset: the whole training split)",
                       shown="all"),
    "epochs": Rule("Epochs per trial.", "int", low=1, high=1000),
    "patience": Rule("Epochs without a better validation accuracy before a trial stops.",
                     "int", low=1),
    "trials": Rule("Total finished trials the study should reach (a re-run resumes).", "int",
                   low=1),
    "jobs": Rule("Worker processes.", "int", low=1, high=MAX_JOBS),
    "seed": Rule("Seeds the sampler, the validation split and each trial's training seed "
                 "(derived from it and the trial number).", "int", low=0, high=2**32 - 1),
    "data_dir": Rule("Where dataset files are looked for first.", "path", optional=True,
                     what="must be a directory path (a string)", shown=""),
    "study_name": Rule("The study in STORAGE to create or resume; give it explicitly when "
                       "several machines share one.", optional=True,
                       what="must be a non-empty string", shown="PRESET-DATASET"),
    "objective": Rule("Your own Optuna objective, def NAME(trial) -> float (or "
                      "package.module:NAME), instead of hpsearch's models: it gets storage, "
                      "workers, designs, report, verify and best (docs/own-model.md).",
                      optional=True, what="must be FILE.py:NAME or package.module:NAME",
                      shown="", metavar="FILE.py:NAME"),
    "direction": Rule("Whether --objective's value is maximized or minimized (a loss).",
                      "choice", choices=DIRECTIONS),
    "sampler": Rule("How params are chosen: tpe adapts to good regions (with a randomized "
                    "share, see --random-share); random makes the whole study an experiment "
                    "whose verdicts can say 'matters'.", "choice", choices=SAMPLERS),
    "random_share": Rule("Share of an adaptive sampler's trials drawn at random, so the study "
                         "is also an experiment (0 = pure search).", "float", low=0, high=1),
    "pruner": Rule("When a trial stops early (never on its first epoch); none trains every "
                   "trial to the end.", "choice", choices=PRUNERS),
    "design": Rule("How a question's param is assigned: paired trains every choice of it per "
                   "config on one seed, pruned together; balanced gives each trial one choice "
                   "by permuted blocks; none leaves it to the sampler.", "choice",
                   choices=DESIGNS, optional=True,
                   shown="paired when the study names a question"),
    "timeout": Rule("Stop starting trials after SEC seconds.", "float", low=0, low_open=True,
                    optional=True, what="must be a number of seconds > 0", shown=""),
    "device": Rule(f"{', '.join(DEVICES[:-1])} or {DEVICES[-1]}.",
                   what=f"choose {', '.join(DEVICES[:-1])} or {DEVICES[-1]}"),
    "storage": Rule("SQLite file, SQLAlchemy URL or journal .log file.",
                    what="must be a path or URL"),
}


def default_text(name: str) -> str:
    """The default of setting ``name`` as ``--help`` shows it ("" for none)."""
    shown = RULES[name].shown
    return str(getattr(Settings(), name)) if shown is None else shown


def settings_from(overrides: Mapping[str, Any], *, source: str,
                  base: Settings | None = None) -> Settings:
    """Apply ``overrides`` (a preset's table or CLI flags) to ``base``, checking every value."""
    base = base or Settings()
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown setting {key!r}; allowed: {', '.join(fields)}")
        changes[key] = value
    if isinstance(changes.get("dataset"), str):
        changes["dataset"] = resolve_spec(changes["dataset"])
    settings = dataclasses.replace(base, **changes)
    validate(settings, source=source)
    return settings


def validate(s: Settings, *, source: str = "settings") -> None:
    """Raise ConfigError naming the first invalid setting."""

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{source}: {key} = {getattr(s, key)!r} is invalid; {what}")

    for key, rule in RULES.items():
        value = getattr(s, key)
        need(rule.allows(value), key, rule.must())
        if key == "dataset":
            try:
                check_spec(s.dataset)
            except DataError as exc:
                raise ConfigError(f"{source}: {exc}") from None
        elif key == "objective":
            need(value is None or ":" in value, key, rule.must())
        elif key == "direction":
            need(value == "maximize" or s.objective is not None, key,
                 "hpsearch's own objective maximizes validation accuracy; minimize is for a "
                 "user's --objective")
        elif key == "device":
            need(value in DEVICES or value.startswith("cuda:"), key, rule.must())


# ---------------------------------------------------------------------------- the dataset


def is_named(spec: str) -> bool:
    """Whether ``spec`` names a dataset hpsearch knows (else it is a file or folder path)."""
    return spec in DATASETS


def resolve_spec(spec: str) -> str:
    """A dataset spec as stored with a study: names as they are, paths made absolute (so
    ``verify`` and ``best`` find the file from any working directory)."""
    path = Path(spec).expanduser()
    if is_named(spec) or not spec or not path.exists():
        return spec  # a missing path is reported as the user wrote it
    return str(path.resolve())


def check_spec(spec: str) -> None:
    """DataError unless ``spec`` is a known name, an ``.npz`` file or an image folder."""
    if is_named(spec):
        return
    path = Path(spec).expanduser()
    names = ", ".join(DATASETS)
    if not path.exists():
        close = difflib.get_close_matches(spec, DATASETS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise DataError(f"unknown dataset {spec!r}: not a name ({names}) nor an existing "
                        f".npz file or image folder (no such file or directory){hint}")
    if path.is_file() and path.suffix.lower() != ".npz":
        raise DataError(f"dataset {spec!r}: a file dataset is an .npz of x_train, y_train, "
                        f"x_test, y_test; or name a dataset ({names}) or an image folder")
    if not path.is_file() and not path.is_dir():
        raise DataError(f"dataset {spec!r} is not a regular file or a folder")


# ---------------------------------------------------------------------------- verify's seed cap

VERIFY_SEEDS = 16   # the fewest seeds a verify comparison may use by default


def verify_seed_cap(family: int, alpha: float = 0.05) -> int:
    """The most seeds a comparison of a verify family of ``family`` comparisons may use by
    default: ``VERIFY_SEEDS``, or twice the seeds its first look (half the seeds, a quarter
    of the alpha at Holm's first step) needs to stop when every seed agrees (the exact
    signed-rank p of n agreeing seeds is 2 / 2**n)."""
    level = alpha / max(1, family) / 4
    first = 1
    while 2.0 / 2.0 ** first >= level:
        first += 1
    return max(VERIFY_SEEDS, 2 * first)


def verify_seed_caps(alpha: float = 0.05, largest: int = 64) -> str:
    """``16 for 1 comparison, 18 for 2, 20 for 3-5, ...``: the caps --help prints."""
    spans: list[tuple[int, int, int]] = []
    for family in range(1, largest + 1):
        cap = verify_seed_cap(family, alpha)
        if spans and spans[-1][2] == cap:
            spans[-1] = (spans[-1][0], family, cap)
        else:
            spans.append((family, family, cap))
    parts = [f"{cap} for {lo}" if lo == hi else f"{cap} for {lo}-{hi}"
             for lo, hi, cap in spans]
    parts[0] += " comparison" if spans[0][1] == 1 else " comparisons"
    return ", ".join(parts) + " comparisons, and so on"
