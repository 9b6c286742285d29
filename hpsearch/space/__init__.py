"""The search space as data: the params, the built-in questions, presets and sampling.

- :mod:`.params`: one table of params (:data:`PARAMS`) and the frozen :class:`TrialConfig`;
- :mod:`.questions`: the questions the report answers, with the seeds' claims;
- :mod:`.presets`: ``studies/*.toml`` and ``--set`` overrides (:class:`Preset`);
- :mod:`.suggest`: a trial in, a :class:`TrialConfig` out (the only ``suggest_*`` calls);
  :func:`suggest_config` is its public face for a user's own objective.
"""

from hpsearch.space.params import (
    PARAM_BY_NAME,
    PARAMS,
    Param,
    TrialConfig,
    Value,
    active_params,
    config_from_params,
)
from hpsearch.space.presets import Preset, load_preset, parse_preset
from hpsearch.space.questions import (
    INTERACTION_BY_ID,
    INTERACTIONS,
    QUESTION_BY_ID,
    QUESTIONS,
    Interaction,
    Question,
    interaction,
)
from hpsearch.space.suggest import sample_config, suggest_config

__all__ = [
    "PARAMS", "PARAM_BY_NAME", "Param", "TrialConfig", "Value", "active_params",
    "config_from_params", "Preset", "load_preset", "parse_preset", "QUESTIONS",
    "QUESTION_BY_ID", "Question", "sample_config", "suggest_config", "INTERACTIONS",
    "INTERACTION_BY_ID", "Interaction", "interaction",
]
