"""Names with escape codes never reach the terminal raw, through the figures either."""

from __future__ import annotations

import random
import re
import warnings

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from hpsearch.report import report
from hpsearch.storage import open_storage

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_a_param_name_with_escape_codes_warns_nothing_raw(tmp_path):
    """matplotlib warned "Glyph 27 (\\x1b) missing from font(s)" with the byte itself."""
    spec = str(tmp_path / "e.db")
    study = optuna.create_study(storage=open_storage(spec, create=True), study_name="e",
                                direction="maximize")
    dists = {"\x1b[31mred\x1b[0m": CategoricalDistribution(["a\x07b", "c\x1b]0;x\x07"]),
             "lr": FloatDistribution(0.001, 0.1, log=True)}
    rng = random.Random(0)
    for _ in range(30):
        study.add_trial(optuna.trial.create_trial(
            params={"\x1b[31mred\x1b[0m": rng.choice(["a\x07b", "c\x1b]0;x\x07"]),
                    "lr": 0.01 * (1 + rng.random())},
            distributions=dists, value=0.5 + 0.1 * rng.random()))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        html = report(spec, out=tmp_path / "r.html", publish=False).text
    raw = [str(w.message) for w in seen if CONTROL.search(str(w.message))]
    assert raw == []
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert svgs and not any(CONTROL.search(s) for s in svgs)
