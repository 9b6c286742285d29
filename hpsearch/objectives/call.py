"""One call of a user's objective, and the trial it sees when hpsearch fixes params.

Before every call :func:`call_objective` seeds Python's ``random``, NumPy's global
generator and torch (CPU and every CUDA device) from the run's seed, and passes ``seed=``
and ``split=`` to an objective whose signature takes them (or ``**kwargs``): ``split`` is
``"validation"`` in the search and ``"test"`` in ``verify`` and ``best``. Two calls with one
seed are then paired as far as the objective draws its randomness from those generators
(or from ``seed``) and does not read the clock, the thread schedule or a GPU's
non-deterministic kernels.

:class:`TrialView` is an Optuna trial for objectives that hpsearch calls with some params
fixed: a paired design's arm (the question's param answered with the arm's value, every
other suggest passed to the real trial, reports collected so the arms are pruned together)
and a ``verify`` twin (every param fixed; a conditional param the twin needs and its trial
lacked taken from the best trial that has it, and remembered so the row can say so).
"""

from __future__ import annotations

import datetime
import inspect
import math
import numbers
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import BaseTrial

from hpsearch.errors import ObjectiveError

KEYWORDS = ("seed", "split")


class NotANumber(ObjectiveError):
    """The objective returned something that is not one number: a bug, not a bad config."""


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy's global generator and torch (CPU and CUDA) with ``seed``."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # every CUDA device too


def rng_state() -> tuple[Callable[[], object], Callable[[object], None]]:
    """Save and restore every global generator an objective may draw from."""
    import torch

    def save() -> object:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda

    def load(state: object) -> None:
        assert isinstance(state, tuple)
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])
        if state[3] is not None:
            torch.cuda.set_rng_state_all(state[3])

    return save, load


def accepts(fn: Callable[..., Any]) -> tuple[str, ...]:
    """Which of ``seed`` and ``split`` the objective's signature takes."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return ()
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return KEYWORDS
    return tuple(k for k in KEYWORDS if k in params
                 and params[k].kind != inspect.Parameter.POSITIONAL_ONLY)


def call_objective(fn: Callable[..., Any], trial: BaseTrial, *, seed: int, split: str,
                   takes: Sequence[str] | None = None) -> float:
    """Seed every generator, call ``fn(trial[, seed=, split=])``, check its value."""
    takes = accepts(fn) if takes is None else takes
    kwargs = {k: v for k, v in (("seed", seed), ("split", split)) if k in takes}
    seed_everything(seed)
    return check_value(fn(trial, **kwargs))


def check_value(value: Any) -> float:
    """One finite number, as a float. NaN or infinity fails the trial (a diverged config
    may do that); anything else that is not one number is :class:`NotANumber`."""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if isinstance(value, bool) or isinstance(value, str | bytes):
        raise NotANumber(f"the objective returned {shown} ({type(value).__name__}), not a "
                         "number; it must return the one value the study optimizes")
    if isinstance(value, Sequence | np.ndarray) and not (
            isinstance(value, np.ndarray) and value.ndim == 0):
        raise NotANumber(f"the objective returned {shown} ({type(value).__name__}), not one "
                         "number; hpsearch studies have one objective")
    if isinstance(value, numbers.Real):
        out = float(value)
    else:
        try:  # a 0-d tensor or array
            out = float(value)
        except (TypeError, ValueError):
            raise NotANumber(f"the objective returned {shown} ({type(value).__name__}), not "
                             "a number; it must return the one value the study optimizes"
                             ) from None
    if not math.isfinite(out):
        raise ObjectiveError(f"the objective returned {out}")
    return out


def middle(dist: BaseDistribution) -> Any:
    """A value for a param no trial has: the middle of its range (geometric for log
    scales, on its step), or a categorical param's first choice."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[0]
    assert isinstance(dist, FloatDistribution | IntDistribution)
    low, high = float(dist.low), float(dist.high)
    mid = math.sqrt(low * high) if dist.log else (low + high) / 2
    if dist.step:
        mid = low + round((mid - low) / dist.step) * dist.step
    return int(round(mid)) if isinstance(dist, IntDistribution) else float(mid)


@dataclass(frozen=True)
class Params:
    """A user objective's params as a hashable value (verify's twins, the stored key)."""

    items: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> Params:
        return cls(tuple(sorted(params.items())))

    def as_dict(self) -> dict[str, Any]:
        return dict(self.items)

    def replace(self, **changes: Any) -> Params:
        return Params.of({**self.as_dict(), **changes})

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.items)


class _Probe(BaseException):
    """Raised at the suggest of the param a probe looks for (not an ``Exception``: an
    objective's ``except Exception`` must not swallow it)."""

    def __init__(self, distribution: BaseDistribution) -> None:
        super().__init__(distribution)
        self.distribution = distribution


Probe = _Probe


class TrialView(BaseTrial):
    """The trial an objective sees when hpsearch fixes some of its params.

    ``fixed`` answers those params' suggests; every other suggest goes to ``base`` (a real
    trial) or, without one, to ``fallback`` (``{param: (value, trial number)}``: the value
    of the best trial that has it), else the middle of its range (:func:`middle`, trial
    number -1); each one used is kept in :attr:`filled`. ``on_report``,
    when given, receives every ``report(value, step)`` and returns whether to stop, which
    ``should_prune()`` then answers. ``probe`` names a param whose suggest raises
    :class:`Probe` with its distribution (to learn a paired design's choices).
    """

    def __init__(self, base: BaseTrial | None, fixed: Mapping[str, Any], *,
                 fallback: Mapping[str, tuple[Any, int]] | None = None,
                 on_report: Callable[[int, float], bool] | None = None,
                 probe: str | None = None, number: int = 0) -> None:
        self._base, self._fixed, self._fallback = base, dict(fixed), dict(fallback or {})
        self._on_report, self._probe, self._number = on_report, probe, number
        self._stop = False
        self._params: dict[str, Any] = {}
        self._dists: dict[str, BaseDistribution] = {}
        self._user_attrs: dict[str, Any] = {}
        self._start = datetime.datetime.now()
        self.filled: dict[str, tuple[Any, int]] = {}
        self.reported: list[tuple[int, float]] = []

    # ------------------------------------------------------------------ suggest

    def _suggest(self, name: str, dist: BaseDistribution, ask: Callable[[], Any]) -> Any:
        if name == self._probe:
            raise _Probe(dist)
        if name in self._fixed:
            value = self._fixed[name]
            if isinstance(dist, CategoricalDistribution) and value not in dist.choices:
                raise ObjectiveError(f"the objective offers {name} the choices "
                                     f"{list(dist.choices)}, without {value!r}, which the "
                                     "study's trial had: is it the objective the study ran?")
        elif self._base is not None:
            value = ask()
        elif name in self._fallback:
            value, number = self._fallback[name]
            self.filled[name] = (value, number)
        else:  # no trial has it (every one that did failed): the middle of its range
            value = middle(dist)
            self.filled[name] = (value, -1)
        self._params[name], self._dists[name] = value, dist
        return value

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        base = self._base
        return float(self._suggest(
            name, FloatDistribution(low, high, step=step, log=log),
            lambda: base.suggest_float(name, low, high, step=step, log=log)))  # type: ignore[union-attr]

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int:
        base = self._base
        return int(self._suggest(
            name, IntDistribution(low, high, step=step, log=log),
            lambda: base.suggest_int(name, low, high, step=step, log=log)))  # type: ignore[union-attr]

    def suggest_categorical(self, name: str, choices: Sequence[CategoricalChoiceType],
                            ) -> Any:
        base = self._base
        return self._suggest(name, CategoricalDistribution(choices),
                             lambda: base.suggest_categorical(name, choices))  # type: ignore[union-attr]

    def suggest_uniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high)

    def suggest_loguniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high, log=True)

    def suggest_discrete_uniform(self, name: str, low: float, high: float, q: float) -> float:
        return self.suggest_float(name, low, high, step=q)

    # ------------------------------------------------------------------ pruning

    def report(self, value: float, step: int) -> None:
        self.reported.append((int(step), float(value)))
        if self._on_report is not None:
            self._stop = bool(self._on_report(int(step), float(value)))
        elif self._base is not None:
            self._base.report(value, step)

    def should_prune(self) -> bool:
        if self._on_report is not None:
            return self._stop
        return self._base.should_prune() if self._base is not None else False

    # ------------------------------------------------------------------ the rest

    def set_user_attr(self, key: str, value: Any) -> None:
        if self._base is not None:
            self._base.set_user_attr(key, value)
        self._user_attrs[key] = value

    def set_system_attr(self, key: str, value: Any) -> None:
        self._user_attrs.setdefault("system", {})[key] = value

    def set_constraint(self, key: str, value: float) -> None:  # Optuna's abstract method
        if self._base is not None:
            self._base.set_constraint(key, value)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return dict(self._dists)

    @property
    def user_attrs(self) -> dict[str, Any]:
        return dict(self._base.user_attrs if self._base is not None else self._user_attrs)

    @property
    def system_attrs(self) -> dict[str, Any]:
        return {}

    @property
    def datetime_start(self) -> datetime.datetime | None:
        return self._base.datetime_start if self._base is not None else self._start

    @property
    def number(self) -> int:
        return self._base.number if self._base is not None else self._number

    def __getattr__(self, name: str) -> Any:  # trial.study and the like: the real trial's
        base = self.__dict__.get("_base")
        if base is None:
            raise AttributeError(f"{name}: not available to an objective that hpsearch "
                                 "re-runs with fixed params")
        return getattr(base, name)
