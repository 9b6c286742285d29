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


QUESTIONS: tuple[Question, ...] = (
    Question("bn_placement", "batch_norm", "Batch norm before or after the activation?",
             "000: before the activation did better on MNIST"),
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
