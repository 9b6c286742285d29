"""Every fixed (not sampled) setting in one commented dataclass.

Precedence, lowest first: these defaults, a preset's ``[settings]`` table, command-line
flags. The resolved settings are stored with every study (provenance).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpsearch.errors import ConfigError, DataError

SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc")
PRUNERS = ("median", "hyperband", "sha", "percentile", "none")
DESIGNS = ("none", "balanced", "paired")  # hpsearch.optimize.designs
DIRECTIONS = ("maximize", "minimize")
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
        from hpsearch.training import resolve_spec  # data imports torch

        changes["dataset"] = resolve_spec(changes["dataset"])
    settings = dataclasses.replace(base, **changes)
    validate(settings, source=source)
    return settings


def validate(s: Settings, *, source: str = "settings") -> None:
    """Raise ConfigError naming the first invalid setting."""
    from hpsearch.training import check_spec  # data imports torch; keep this module light

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{source}: {key} = {getattr(s, key)!r} is invalid; {what}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    need(isinstance(s.dataset, str) and bool(s.dataset), "dataset",
         "must be a dataset's name, an .npz file or an image folder")
    try:
        check_spec(s.dataset)
    except DataError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    need(is_int(s.val_size) and s.val_size >= 1, "val_size", "must be an integer >= 1")
    need(s.train_size is None or (is_int(s.train_size) and s.train_size >= 10), "train_size",
         "must be an integer >= 10 (or unset: the whole training split)")
    need(is_int(s.epochs) and 1 <= s.epochs <= 1000, "epochs", "must be an integer in 1..1000")
    need(is_int(s.patience) and s.patience >= 1, "patience", "must be an integer >= 1")
    need(is_int(s.trials) and s.trials >= 1, "trials", "must be an integer >= 1")
    need(is_int(s.jobs) and 1 <= s.jobs <= MAX_JOBS, "jobs",
         f"must be an integer in 1..{MAX_JOBS}")
    # numpy's and the samplers' seeds are 32-bit
    need(is_int(s.seed) and 0 <= s.seed <= 2**32 - 1, "seed",
         "must be an integer in 0..4294967295")
    need(s.data_dir is None or (isinstance(s.data_dir, str) and bool(s.data_dir)), "data_dir",
         "must be a directory path (a string)")
    need(s.study_name is None or (isinstance(s.study_name, str) and bool(s.study_name)),
         "study_name", "must be a non-empty string")
    need(s.objective is None or (isinstance(s.objective, str) and ":" in s.objective),
         "objective", "must be FILE.py:NAME or package.module:NAME")
    need(s.direction in DIRECTIONS, "direction", f"choose from {', '.join(DIRECTIONS)}")
    need(s.direction == "maximize" or s.objective is not None, "direction",
         "hpsearch's own objective maximizes validation accuracy; minimize is for a user's "
         "--objective")
    need(s.sampler in SAMPLERS, "sampler", f"choose from {', '.join(SAMPLERS)}")
    need(isinstance(s.random_share, int | float) and not isinstance(s.random_share, bool)
         and 0.0 <= s.random_share <= 1.0, "random_share", "must be a number in [0, 1]")
    need(s.pruner in PRUNERS, "pruner", f"choose from {', '.join(PRUNERS)}")
    need(s.design in (None, *DESIGNS), "design", f"choose from {', '.join(DESIGNS)}")
    need(s.timeout is None or (isinstance(s.timeout, int | float) and s.timeout > 0),
         "timeout", "must be a number of seconds > 0")
    need(isinstance(s.device, str) and (s.device in ("auto", "cpu", "mps", "cuda")
                                        or s.device.startswith("cuda:")),
         "device", "choose auto, cpu, cuda, cuda:N or mps")
    need(isinstance(s.storage, str) and bool(s.storage), "storage", "must be a path or URL")


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
