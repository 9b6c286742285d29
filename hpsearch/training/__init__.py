"""Training a config, with no Optuna in sight: data in, a trained model's metrics out.

- :mod:`.datasets`: finding, downloading and parsing the datasets (:func:`load_dataset`),
  with :mod:`.cifar` (CIFAR-10's python batches), :mod:`.files` (an ``.npz``, an image
  folder) and :mod:`.raw` (:class:`RawDataset`, the lookup dirs, the checks on arrays);
- :mod:`.device_data`: the splits on the training device, batched augmentation;
- :mod:`.models`: ``build_model(cfg)``;
- :mod:`.loop`: ``train(cfg, data, on_epoch)``, the one pruning contract;
- :mod:`.arrays`: :func:`train_arrays`, ``train()`` on a user's own arrays (the public API);
- :mod:`.fused`: K seeds (or configs) of one architecture trained as one model;
- :mod:`.device`: the device, its fast paths (:class:`DeviceProfile`) and threads;
- :mod:`.measure`: a trained model's measurements.
"""

from hpsearch.training.arrays import train_arrays
from hpsearch.training.datasets import (
    available_datasets,
    dataset_label,
    load_dataset,
)
from hpsearch.training.device import (
    DeviceProfile,
    resolve_device,
    threads_for,
    training_device,
    training_threads,
)
from hpsearch.training.device_data import DeviceData
from hpsearch.training.fused import iter_many, train_seeds
from hpsearch.training.loop import EpochMetrics, TrainResult, evaluate, train
from hpsearch.training.measure import (
    bn_batch_stats_accuracy,
    confusion_matrix,
    load_model,
    per_class_accuracy,
)
from hpsearch.training.models import add_bias_before_bn, build_model
from hpsearch.training.raw import RawDataset, search_dirs

__all__ = [
    "RawDataset", "available_datasets", "dataset_label", "load_dataset", "search_dirs",
    "DeviceProfile", "threads_for", "training_device", "training_threads", "DeviceData",
    "iter_many",
    "train_seeds",
    "bn_batch_stats_accuracy", "confusion_matrix", "load_model", "per_class_accuracy",
    "add_bias_before_bn", "build_model", "train_arrays", "EpochMetrics", "TrainResult",
    "evaluate", "resolve_device", "train",
]
