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
from hpsearch.training.loop import EpochCallback, TrainResult, evaluate, train
from hpsearch.training.raw import images_nchw, labels_int64


def arrays_data(x_train: Any, y_train: Any, x_val: Any, y_val: Any, x_test: Any = None,
                y_test: Any = None, *, device: str | torch.device = "auto",
                classes: tuple[str, ...] | None = None, name: str = "arrays") -> DeviceData:
    """The user's splits on the training device, checked (one :class:`DataError` each)."""
    if (x_test is None) != (y_test is None):
        raise DataError("give x_test and y_test together, or neither")
    given = [("train", x_train, y_train), ("val", x_val, y_val)]
    if x_test is not None:
        given.append(("test", x_test, y_test))
    splits: list[tuple[torch.Tensor, torch.Tensor]] = []
    for split, x, y in given:
        xt = images_nchw(x, f"x_{split}", channels_last=not isinstance(x, torch.Tensor))
        if len(xt) == 0:
            raise DataError(f"x_{split} holds no images")
        if splits and xt.shape[1:] != splits[0][0].shape[1:]:
            raise DataError(f"x_train images are {tuple(splits[0][0].shape[1:])} (C, H, W) "
                            f"but x_{split} images are {tuple(xt.shape[1:])}")
        splits.append((xt, labels_int64(y, len(xt), f"y_{split}")))
    top = max(int(y.max()) for _, y in splits)
    if classes is None:
        classes = tuple(str(i) for i in range(top + 1))
    elif top >= len(classes):
        raise DataError(f"label {top} is out of range for {len(classes)} classes")
    if len(classes) < 2:
        raise DataError("every label is the same; a classifier needs at least 2 classes")
    dev = device if isinstance(device, torch.device) else training_device(device)
    return DeviceData.from_splits(name, tuple(classes), dev, *splits)


def train_arrays(cfg: TrialConfig | Mapping[str, Any], x_train: Any, y_train: Any,
                 x_val: Any, y_val: Any, *, x_test: Any = None, y_test: Any = None,
                 epochs: int = 10, patience: int = 3,
                 seed: int = 0, on_epoch: EpochCallback | None = None,
                 device: str | torch.device = "auto",
                 classes: tuple[str, ...] | None = None) -> TrainResult:
    """Build hpsearch's model for ``cfg`` and train it on the given splits.

    ``cfg``: a :class:`TrialConfig` (from :func:`hpsearch.suggest_config`) or a dict of
    params (missing ones take their defaults). ``on_epoch(epoch, metrics) -> stop?`` is
    called after every epoch with the validation accuracy in ``metrics.val_acc``: an
    objective reports it to Optuna there and returns ``trial.should_prune()``. ``x_test``,
    ``y_test``: a test split, touched once, by the best epoch's weights (``test_acc``); the
    validation split alone chooses that epoch. ``classes`` names the classes (default:
    ``0``..``K-1`` from the labels). Returns the :class:`TrainResult`: ``val_acc`` (the best
    epoch's, whose weights ``model`` keeps), ``curve`` (validation accuracy per epoch),
    ``stopped`` (``on_epoch`` asked to stop), ``test_acc`` (None without a test split).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs = {epochs!r}; must be an integer >= 1")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ConfigError(f"patience = {patience!r}; must be an integer >= 1")
    config = cfg if isinstance(cfg, TrialConfig) else _checked(cfg)
    data = arrays_data(x_train, y_train, x_val, y_val, x_test, y_test, device=device,
                       classes=classes)
    result = train(config, data, epochs=epochs, patience=patience, seed=seed, on_epoch=on_epoch)
    if x_test is not None and result.model is not None and result.history:
        result.test_acc = evaluate(result.model, data, config, "test")[1]
    return result


def _checked(params: Mapping[str, Any]) -> TrialConfig:
    """A params dict checked as a preset's [params] are (names, types, ranges)."""
    preset = parse_preset({"params": dict(params)}, name="cfg", source="cfg")
    if preset.narrowed:
        raise ConfigError(f"cfg: give one value per param, not choices or a range "
                          f"({', '.join(preset.narrowed)})")
    return config_from_params(preset.fixed)
