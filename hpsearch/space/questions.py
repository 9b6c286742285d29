"""The built-in questions: which param each asks about, and the seeds' claim."""

from __future__ import annotations

from dataclasses import dataclass

from hpsearch.space.params import Value


@dataclass(frozen=True)
class Question:
    """A question the report answers about one param (the design's "Questions" table)."""

    id: str
    param: str
    title: str
    seed_claim: str
    # For binary questions: the param's "off" value; every other value is grouped as "on".
    off_value: Value | None = None
    # "choice" (compare the param's choices) or "numeric" (does it matter, where is it best:
    # a study's own numeric params; the built-in ones are all "choice")
    kind: str = "choice"
    # The values the question compares, when not all of the param's (bn_placement: a study
    # designed for it assigns only these).
    compared: tuple[Value, ...] = ()


QUESTIONS: tuple[Question, ...] = (
    Question("bn_placement", "batch_norm", "Batch norm before or after the activation?",
             "000: before the activation did better on MNIST", compared=("before", "after")),
    Question("batch_norm", "batch_norm", "Batch norm or none?",
             "002: BN 97.8% vs none 94.1% after 10 epochs of SGD", off_value="none"),
    Question("activation", "activation", "Which activation?",
             "003: ReLU + dropout beats sigmoid + dropout"),
    Question("dropout", "dropout", "Does dropout help?",
             "003/004: may hurt on MNIST unless trained longer", off_value=0.0),
    Question("weight_penalty", "weight_penalty", "L1, L2, both or none?",
             "004: weight_decay=0.1 destroyed accuracy"),
    Question("init", "init", "Which weight init?", "004: He init for ReLU"),
    Question("scheduler", "scheduler", "Which LR schedule?", "004: schedulers compared"),
    Question("optimizer", "optimizer", "Which optimizer?", "004: optimizers compared"),
    Question("augmentation", "augmentation", "Which augmentation?",
             "004: flip is wrong for digits: does the study find that?"),
    Question("input_norm", "input_norm", "Which input normalization?",
             "004: normalization compared"),
)


QUESTION_BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONS}


@dataclass(frozen=True)
class Interaction:
    """Does the effect of ``params[0]`` depend on ``params[1]``? (an interaction question)"""

    id: str
    params: tuple[str, str]
    title: str
    seed_claim: str


INTERACTIONS: tuple[Interaction, ...] = (
    Interaction("dropout_x_activation", ("dropout", "activation"),
                "Does dropout's effect depend on the activation?",
                "003: dropout goes well with ReLU (and not with sigmoid)"),
    Interaction("init_x_activation", ("init", "activation"),
                "Does the best init depend on the activation?", "004: He init for ReLU"),
    Interaction("batch_norm_x_lr", ("batch_norm", "lr"),
                "Does batch norm's effect depend on the learning rate?",
                "folklore: batch norm allows (and needs) larger learning rates"),
    Interaction("weight_penalty_x_batch_norm", ("weight_penalty", "batch_norm"),
                "Does the weight penalty's effect depend on batch norm?",
                "folklore: with batch norm, L2 only rescales weights (an effective lr)"),
)


INTERACTION_BY_ID: dict[str, Interaction] = {q.id: q for q in INTERACTIONS}


def interaction(spec: str) -> Interaction:
    """A built-in interaction by id, or ``A:B`` for any two params (``--interaction``)."""
    if spec in INTERACTION_BY_ID:
        return INTERACTION_BY_ID[spec]
    a, sep, b = spec.partition(":")
    if not sep or not a or not b or a == b or ":" in b:
        from hpsearch.errors import ConfigError

        raise ConfigError(f"interaction {spec!r}: give two different params as A:B (e.g. "
                          f"dropout:activation) or one of {', '.join(INTERACTION_BY_ID)}")
    return Interaction(f"{a}_x_{b}", (a, b), f"Does {a}'s effect depend on {b}?", "")
