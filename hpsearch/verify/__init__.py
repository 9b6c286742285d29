"""``hpsearch verify``: the causal answers, from twins of the best config on paired seeds.

- :mod:`.twins`: which twins a question gets (baseline, alternatives, switched-on values);
- :mod:`.result`: one row per comparison, the stored result per question;
- :mod:`.store`: every (twin, seed) training stored as it finishes, shared by workers;
- :mod:`.run`: :func:`verify` itself, in sequential looks (the statistics are
  :mod:`hpsearch.analysis.seeds`).
"""

from hpsearch.verify.result import VerifyResult, VerifyRow
from hpsearch.verify.run import planned_trainings, verify

__all__ = ["VerifyResult", "VerifyRow", "planned_trainings", "verify"]
