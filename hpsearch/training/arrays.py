"""hpsearch's models and trainer on a user's own arrays: the API an objective may use.

``train_arrays(cfg, x_train, y_train, x_val, y_val, on_epoch=...)`` is :func:`train` on
splits the caller made, with the same checks the ``.npz`` reader applies. Images are
uint8 (or float in [0, 1]): NumPy arrays channels-last (``N x H x W [x C]``, as PIL and
``.npz`` files hold them), torch tensors channels-first (``N x C x H x W``, as torchvision
gives them); labels are class indices. Normalization and augmentation are the config's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from hpsearch.errors import ConfigError, DataError
from hpsearch.space import TrialConfig, config_from_params, parse_preset
from hpsearch.training.device import training_device
from hpsearch.training.device_data import DeviceData
from hpsearch.training.loop import EpochCallback, TrainResult, train
from hpsearch.training.raw import images_nchw, labels_int64


def arrays_data(x_train: Any, y_train: Any, x_val: Any, y_val: Any, *,
                device: str | torch.device = "auto", classes: tuple[str, ...] | None = None,
                name: str = "arrays") -> DeviceData:
    """The user's splits on the training device, checked (one :class:`DataError` each)."""
    splits = []
    for split, x, y in (("train", x_train, y_train), ("val", x_val, y_val)):
        xt = images_nchw(x, f"x_{split}", channels_last=not isinstance(x, torch.Tensor))
        splits.append((xt, labels_int64(y, len(xt), f"y_{split}")))
    (train_x, train_y), (val_x, val_y) = splits
    if train_x.shape[1:] != val_x.shape[1:]:
        raise DataError(f"x_train images are {tuple(train_x.shape[1:])} (C, H, W) but x_val "
                        f"images are {tuple(val_x.shape[1:])}")
    if len(train_y) == 0 or len(val_y) == 0:
        raise DataError("x_train and x_val each need at least one image")
    top = int(max(train_y.max(), val_y.max()))
    if classes is None:
        classes = tuple(str(i) for i in range(top + 1))
    elif top >= len(classes):
        raise DataError(f"label {top} is out of range for {len(classes)} classes")
    if len(classes) < 2:
        raise DataError("every label is the same; a classifier needs at least 2 classes")
    dev = device if isinstance(device, torch.device) else training_device(device)
    return DeviceData.from_splits(name, tuple(classes), dev, (train_x, train_y), (val_x, val_y))


def train_arrays(cfg: TrialConfig | Mapping[str, Any], x_train: Any, y_train: Any,
                 x_val: Any, y_val: Any, *, epochs: int = 10, patience: int = 3,
                 seed: int = 0, on_epoch: EpochCallback | None = None,
                 device: str | torch.device = "auto",
                 classes: tuple[str, ...] | None = None) -> TrainResult:
    """Build hpsearch's model for ``cfg`` and train it on the given splits.

    ``cfg``: a :class:`TrialConfig` (from :func:`hpsearch.suggest_config`) or a dict of
    params (missing ones take their defaults). ``on_epoch(epoch, metrics) -> stop?`` is
    called after every epoch with the validation accuracy in ``metrics.val_acc``: an
    objective reports it to Optuna there and returns ``trial.should_prune()``. ``classes``
    names the classes (default: ``0``..``K-1`` from the labels). Returns the
    :class:`TrainResult`: ``val_acc`` (the best epoch's, whose weights ``model`` keeps),
    ``curve`` (validation accuracy per epoch), ``stopped`` (``on_epoch`` asked to stop).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs = {epochs!r}; must be an integer >= 1")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ConfigError(f"patience = {patience!r}; must be an integer >= 1")
    config = cfg if isinstance(cfg, TrialConfig) else _checked(cfg)
    data = arrays_data(x_train, y_train, x_val, y_val, device=device, classes=classes)
    return train(config, data, epochs=epochs, patience=patience, seed=seed, on_epoch=on_epoch)


def _checked(params: Mapping[str, Any]) -> TrialConfig:
    """A params dict checked as a preset's [params] are (names, types, ranges)."""
    preset = parse_preset({"params": dict(params)}, name="cfg", source="cfg")
    if preset.narrowed:
        raise ConfigError(f"cfg: give one value per param, not choices or a range "
                          f"({', '.join(preset.narrowed)})")
    return config_from_params(preset.fixed)
