"""K same-architecture models trained as one stacked model (seeds, twins, sampled trials).

- :mod:`.trainer`: ``train_many`` (``iter_many``: each result as it is over) /
  ``train_seeds`` / ``train_fused``, with ``train()``'s contract per member;
- :mod:`.modules`: the stacked layers and per-member optimizers.
"""

from hpsearch.training.fused.trainer import (
    PER_MEMBER,
    fusable,
    fuse_groups,
    iter_many,
    max_fuse,
    train_fused,
    train_many,
    train_seeds,
)

__all__ = ["PER_MEMBER", "fusable", "fuse_groups", "iter_many", "max_fuse", "train_fused",
           "train_many", "train_seeds"]
