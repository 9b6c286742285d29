"""verify's stored answers don't flip silently; the seed cap --help names is the one used;
a row's words count the seeds a twin never learned on."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from hpsearch.analysis import paired_stats
from hpsearch.analysis.seeds.sequential import decide, plan_looks
from hpsearch.cli import main
from hpsearch.report.format import verify_words
from hpsearch.settings import verify_seed_cap
from hpsearch.space import TrialConfig
from hpsearch.verify import VerifyRow
from hpsearch.verify.result import family_name, merge_stored
from hpsearch.verify.run import default_seeds


def answer(family: list[str], seeds: int, settled: str) -> dict:
    return {"question": "bn_placement", "family_questions": family, "seeds": seeds,
            "settled": settled, "rows": [{"settled": settled}]}


FULL = ["bn_placement", "activation", "dropout", "init", "optimizer"]


def test_a_smaller_family_keeps_the_familys_answer_and_stores_its_own_beside() -> None:
    full = answer(FULL, 26, "difference")
    alone = answer(["bn_placement"], 16, "open")
    stored, replaced = merge_stored(full, alone)
    assert not replaced and stored["settled"] == "difference" and stored["seeds"] == 26
    assert stored["beside"] == {"bn_placement alone on up to 16 seeds": alone}
    # the full family again replaces it, and what was beside stays beside
    again, replaced = merge_stored(stored, answer(FULL, 26, "difference"))
    assert replaced and again["beside"] == stored["beside"]
    # fewer seeds for the same family: kept too
    fewer, replaced = merge_stored(full, answer(FULL, 20, "open"))
    assert not replaced and fewer["settled"] == "difference"
    # nothing stored, or something that is no answer: replaced
    assert merge_stored(None, alone) == (alone, True)
    assert merge_stored({"rows": "?"}, alone) == (alone, True)
    assert family_name(full) == ("the family of 5 questions (bn_placement, activation, "
                                 "dropout, init, optimizer) on up to 26 seeds")


def test_an_answer_against_another_baseline_never_replaces_the_stored_one() -> None:
    """``verify --baseline`` makes other comparisons: its answer goes beside, named by its
    baseline, and replaces only an answer against the same baseline."""
    own = answer(["weight_penalty"], 18, "open")
    against = {**answer(["weight_penalty"], 18, "difference"), "baseline": "none"}
    stored, replaced = merge_stored(own, against)
    assert not replaced and stored["settled"] == "open"
    assert stored["beside"] == {"weight_penalty alone against none on up to 18 seeds": against}
    assert merge_stored(against, own)[1] is False
    more = {**against, "seeds": 24}
    assert merge_stored(against, more) == (more, True)


def test_the_seed_cap_in_help_is_the_one_used() -> None:
    text = CliRunner().invoke(main, ["verify", "--help"], terminal_width=300).output
    text = " ".join(text.split())
    for family in (1, 2, 5, 10, 28):
        assert default_seeds(family) == verify_seed_cap(family)
    assert "16 for 1 comparison, 18 for 2-3, 20 for 4-6, 22 for 7-12" in text
    assert "26 for 26-51" in text
    assert verify_seed_cap(28) == 26 and verify_seed_cap(1) == 16


def _row(base: list[float], alt: list[float], **kw) -> VerifyRow:
    cfg = TrialConfig()
    learned = [i for i, (b, a) in enumerate(zip(base, alt, strict=True))
               if min(b, a) > 0.2]
    stats = paired_stats(100 * np.asarray(base)[learned], 100 * np.asarray(alt)[learned])
    return VerifyRow("activation", 3, 0, "activation", "relu", "relu", "sigmoid", base, alt,
                     cfg, cfg.replace(activation="sigmoid"), stats, n_seeds=len(base), **kw)


def test_a_row_says_on_how_many_seeds_a_twin_never_learned() -> None:
    base = [0.97] * 16
    alt = [0.97] * 15 + [0.10]
    row = _row(base, alt, failed_alt=1, only_alt=1, failures="open", settled="open",
               p_failures=1.0)
    text = row.verdict()
    assert ("best trial #3 with activation switched to sigmoid never learned on 1 of 16 "
            "seeds, best trial #3 as found (activation=relu) on 0") in text
    assert "not equivalent while one fails where the other learns" in text
    assert "compared on the 15 seeds where both learned" in text
    d = row.to_dict()
    assert d["n"] == 16 and d["n_learned"] == 15
    assert d["never_learned"] == {"baseline": 0, "alternative": 1}



def test_equal_accuracies_with_failures_not_settled_are_open_and_say_what_would_settle_them(
        ) -> None:
    """No twin failed on 16 seeds, the accuracies agree within the margin: still open (16
    seeds leave failure rates 25-odd pts apart possible). The words say so, how far apart,
    and how many seeds would bound them; the JSON, the report's words and the table agree."""
    base = [0.97] * 16
    plan = plan_looks(16, 0.05)
    [d] = decide([np.column_stack([np.zeros(16), np.zeros(16), np.zeros(16)])], [3], plan,
                 alpha=0.05, margin=0.5)
    assert (d.accuracy, d.failures, d.settled) == ("equivalent", "open", "open")
    row = _row(base, base, settled=d.settled, accuracy_settled=d.accuracy,
               failures=d.failures, failures_low=d.failures_low,
               failures_high=d.failures_high, failures_seeds=d.failures_seeds)
    text = row.verdict()
    apart = round(100 * d.failures_high)
    assert text.startswith("open: within ±0.5 pts on the 16 seeds where both learned")
    assert (f"failures to learn are not settled (none in 16 seeds each; failure rates up to "
            f"{apart} pts apart are not ruled out; about {d.failures_seeds} seeds would bound "
            "them within 5 pts") in text
    assert 20 < apart < 40 and d.failures_seeds > 16
    j = row.to_dict()
    assert j["settled"] == "open" and j["accuracy_settled"] == "equivalent"
    assert j["failures"] == "open" and j["failures_seeds_needed"] == d.failures_seeds
    assert j["failures_interval"] == [100 * d.failures_low, 100 * d.failures_high]
    assert verify_words({"margin": 0.5}, j) == ("open: accuracies equivalent ±0.5 pts, "
                                                "failures to learn not settled")
    # a user's objective (no chance level, plain differences): the accuracy alone decides
    [u] = decide([np.zeros(16)], [3], plan, alpha=0.05, margin=0.5)
    assert (u.settled, u.failures) == ("equivalent", "none")
    plain = _row(base, base, settled=u.settled, accuracy_settled=u.accuracy)
    assert plain.verdict().startswith("equivalent: no difference larger than 0.5 pts")
    assert "failures_interval" not in plain.to_dict()


def test_open_advice_never_asks_for_fewer_seeds_than_were_used() -> None:
    rng = np.random.default_rng(0)
    base = list(0.97 + rng.normal(0, 0.001, 26))
    alt = list(np.asarray(base) + rng.normal(0, 0.002, 26))
    text = _row(base, alt, settled="open").verdict()
    asked = int(text.split("about ")[1].split(" seeds")[0])
    assert asked > 26
