"""What a study and its trials store: every key hpsearch writes into Optuna's storage.

The link from the writer (``optimize``, ``verify``, ``best``) to the readers (``analysis``,
``report``, ``replay``) runs through the storage, so no import would show it: this module
names every key once, with the shape of its value, and offers small readers (a value of the
wrong shape, as another tool or a hand edit may leave, reads as None) and writers. A leaf:
it imports nothing from hpsearch, so every layer may use it.
``tests/test_architecture.py`` refuses a key written as a string literal anywhere else.

Keys that belong to other programs (Optuna's ``artifacts:`` study system attrs,
optuna-dashboard's ``dashboard:artifacts:``) stay with the code that speaks their format,
:mod:`hpsearch.storage.artifacts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

# ---------------------------------------------------------------------------- the keys

# Study user attrs.
PROVENANCE = "provenance"  # optimize: {"preset", "fixed", "narrowed", "settings": {...}, ...}
DATASET = "dataset"        # optimize: the dataset's name (also in provenance's settings)
N_CLASSES = "n_classes"    # optimize: the dataset's number of classes
CHANCE = "chance"          # optimize: the validation accuracy of a model that never learned
#                            (the largest class's share of the validation split)
DATA = "data"              # optimize: what the data was (RawDataset.fingerprint(): "hash",
#                            "shape", "train", "test", "classes"); resume and re-runs check it
QUESTION = "question"      # optimize: the preset's question id, when it has one
BEST = "best"              # best: the best config retrained on the test split
BIAS_TWINS = "bias_twins"  # hpsearch.bias: the best config with and without a bias before BN
OBJECTIVE = "objective"    # optimize --objective: {"spec", "path", "module", "name", "sha256"}
VERIFY = "verify:"         # verify: + question id -> {"rows": [...], ...} per question

# Trial user attrs (optimize's objective and designs).
CONFIG = "config"                  # the whole TrialConfig.as_dict(), fixed params too
TRAIN_SEED = "train_seed"          # the seed the trial trained with
LEARNING_CURVE = "learning_curve"  # {"train_loss", "val_loss", "val_acc", "lr", "seconds"}
RUN = "run"                        # {"n_params", "device", "best_epoch", "stop_reason",
#                                     "worker", "splits": {"train", "validation", "test"},
#                                     "threads": torch threads it trained on}
FAILURE_REASON = "failure_reason"  # why the trial failed, was pruned as diverged, or skipped
RANDOMIZED = "randomized"          # True: the sampler's randomized share drew this trial
DESIGN = "design"                  # {"design", "question", "param", "value" or "arms"}
ARMS = "arms"                      # paired: {arm value: {"val_acc": [...], "final", ...}}

# Verify's trainings (trials of its companion study, hpsearch.verify.store).
TRAINING = "hpsearch:training"     # the training's description: twin, seed, question
WORKER = "worker"                  # "host:pid" of the process that ran it
NOTE = "hpsearch:note"             # a user's objective: {"filled": {param: {...}}}

# Trial system attrs.
HEARTBEAT = "hpsearch:heartbeat"   # journal files: {"time", "owner"} of a running trial
FIXED_PARAMS = "fixed_params"      # Optuna's own system attr: the params enqueue_trial fixed


# ---------------------------------------------------------------------------- the values

# The state of every answer, interaction, trainability row and verify row (``settled``),
# as stored in ``verify:<question>`` and written in the report's JSON; decided by
# :func:`hpsearch.analysis.stats.settle`.
DIFFERENCE, EQUIVALENT, OPEN = "difference", "equivalent", "open"


class Stored(Protocol):
    """A study or trial (``optuna.Study``, ``Trial``, ``FrozenTrial``): its user attrs."""

    @property
    def user_attrs(self) -> dict[str, Any]: ...


class Writable(Protocol):
    """A study or a running trial (``optuna.Study``, ``Trial``)."""

    def set_user_attr(self, key: str, value: Any) -> None: ...


def _dict(holder: Stored, key: str) -> dict[str, Any] | None:
    value = holder.user_attrs.get(key)
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------------------- the study


def provenance(study: Stored) -> dict[str, Any] | None:
    """The study's ``provenance`` (what ``optimize`` ran), or None (not hpsearch's)."""
    return _dict(study, PROVENANCE)


def stored_settings(study: Stored) -> dict[str, Any] | None:
    """The settings in the study's provenance, or None."""
    prov = provenance(study)
    settings = prov.get("settings") if prov is not None else None
    return settings if isinstance(settings, dict) else None


def setting(study: Stored, key: str) -> Any:
    """One setting from the study's provenance; None for studies of other tools."""
    settings = stored_settings(study)
    return settings.get(key) if settings is not None else None


def data_record(study: Stored) -> dict[str, Any] | None:
    """What the study's data was (its ``data`` attr), or None (not recorded)."""
    return _dict(study, DATA)


def objective(study: Stored) -> dict[str, Any] | None:
    """The user's objective the study runs (``optimize --objective``), or None."""
    rec = _dict(study, OBJECTIVE)
    return rec if rec is not None and isinstance(rec.get("name"), str) else None


def set_objective(study: Writable, record: dict[str, Any]) -> None:
    study.set_user_attr(OBJECTIVE, record)


def set_provenance(study: Writable, prov: dict[str, Any], dataset: str | None,
                   question: str | None) -> None:
    """What ``optimize`` stores with a new study (no dataset for a user's objective)."""
    study.set_user_attr(PROVENANCE, prov)
    if dataset is not None:
        study.set_user_attr(DATASET, dataset)
    if question:
        study.set_user_attr(QUESTION, question)


def verify_key(question: str) -> str:
    """The study user attr that holds verify's result for ``question``."""
    return VERIFY + question


def verify_question(key: str) -> str | None:
    """The question of a ``verify:<question>`` key; None for any other key."""
    return key[len(VERIFY):] if key.startswith(VERIFY) else None


def verify_results(study: Stored) -> dict[str, Mapping[str, Any]]:
    """{question: stored value} of every ``verify:<question>`` user attr that is a mapping,
    in key order."""
    out = {}
    for key in sorted(study.user_attrs):
        question, value = verify_question(key), study.user_attrs[key]
        if question is not None and isinstance(value, Mapping):
            out[question] = value
    return out


# ---------------------------------------------------------------------------- a trial


def config(trial: Stored) -> dict[str, Any] | None:
    """The trial's whole config as stored, or None (a trial another tool wrote)."""
    return _dict(trial, CONFIG)


def learning_curve(trial: Stored) -> dict[str, Any] | None:
    return _dict(trial, LEARNING_CURVE)


def run_info(trial: Stored) -> dict[str, Any] | None:
    """The trial's ``run`` user attr: model size, device, splits, worker."""
    return _dict(trial, RUN)


def design(trial: Stored) -> dict[str, Any] | None:
    return _dict(trial, DESIGN)


def arms(trial: Stored) -> dict[str, Any] | None:
    return _dict(trial, ARMS)


def randomized(trial: Stored) -> bool:
    """Whether the sampler's randomized share drew this trial."""
    return trial.user_attrs.get(RANDOMIZED) is True


def failure_reason(trial: Stored, default: str | None = None) -> str | None:
    """Why the trial failed (as text), or ``default`` when none is stored."""
    reason = trial.user_attrs.get(FAILURE_REASON)
    return default if reason is None else str(reason)


def set_failure_reason(trial: Writable, reason: str) -> None:
    trial.set_user_attr(FAILURE_REASON, reason)


def set_started(trial: Writable, config: dict[str, Any], seed: int) -> None:
    """What a trial stores before it trains: its whole config and its seed."""
    trial.set_user_attr(CONFIG, config)
    trial.set_user_attr(TRAIN_SEED, seed)


def set_config(trial: Writable, config: dict[str, Any]) -> None:
    trial.set_user_attr(CONFIG, config)


def set_learning_curve(trial: Writable, curve: dict[str, list[float]]) -> None:
    trial.set_user_attr(LEARNING_CURVE, curve)


def set_run_info(trial: Writable, info: dict[str, Any]) -> None:
    trial.set_user_attr(RUN, info)


def set_arms(trial: Writable, arms: dict[str, dict[str, Any]]) -> None:
    trial.set_user_attr(ARMS, arms)
