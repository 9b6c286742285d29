"""Seed 000's reference loop: a torchvision-style Dataset, a DataLoader, its model and SGD.

The baseline the epoch and accuracy rows compare hpsearch's trainer with.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import SEED_CFG
from hpsearch.space import TrialConfig
from hpsearch.training import DeviceData, build_model

SEED_NORM = ((0.1307,), (0.3081,))   # the seed's transforms.Normalize constants (MNIST's)
SEED_EVAL_BATCH = 1000               # the PyTorch MNIST example's test_batch_size


def seed_model(cfg: TrialConfig, input_shape: tuple[int, int, int], n_classes: int,
               ) -> nn.Module:
    """``build_model`` with torch's own ``nn.Dropout``, as the seed wrote it (hpsearch's
    ``Dropout`` has a faster CPU mask, part of hpsearch's trainer). A ``train(build=...)``."""
    return build_model(cfg, input_shape, n_classes, dropout=nn.Dropout)


class SeedDataset(Dataset):
    """What ``torchvision.datasets.FashionMNIST`` does per sample, over the same uint8 images:
    a PIL image per index, then the transform (no download: the images are given)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        # Imported here: the memory row's child process must not load torchvision (~160 MiB).
        from PIL import Image
        from torchvision import transforms

        self.fromarray = Image.fromarray
        self.data, self.targets = images[:, 0].cpu(), labels.cpu()  # (N, H, W) uint8
        self.transform = transforms.Compose([transforms.ToTensor(),
                                             transforms.Normalize(*SEED_NORM)])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, target = self.data[index], int(self.targets[index])
        return self.transform(self.fromarray(img.numpy())), target


class SeedRun:
    """Seed 000's model, optimizer and loops. The model is hpsearch's ``build_model`` of the
    same config with torch's own ``nn.Dropout``, as the seed wrote it, in place of
    ``hpsearch.training.models.Dropout`` (whose faster CPU mask is part of hpsearch's trainer): the
    same network and weights, so the two sides differ in how data reaches the model, the
    loop, and that mask."""

    def __init__(self, data: DeviceData, device: torch.device, seed: int) -> None:
        torch.manual_seed(seed)
        self.device = device
        self.model = seed_model(SEED_CFG, data.input_shape, data.n_classes).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=SEED_CFG.lr,
                                         momentum=SEED_CFG.momentum)
        self.criterion = nn.CrossEntropyLoss()
        self.train_loader = DataLoader(SeedDataset(data.train_x, data.train_y),
                                       batch_size=SEED_CFG.batch_size, shuffle=True)

    def train_epoch(self) -> None:
        self.model.train()
        for x, y in self.train_loader:
            x, y = x.to(self.device), y.to(self.device)
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(x), y)
            loss.backward()
            self.optimizer.step()

    def epoch_and_evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One training epoch, then the accuracy on ``images``: what the seed's loop runs."""
        self.train_epoch()
        return self.evaluate(images, labels)

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        loader = DataLoader(SeedDataset(images, labels), batch_size=SEED_EVAL_BATCH)
        self.model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in loader:
                pred = self.model(x.to(self.device)).argmax(1)
                correct += int((pred == y.to(self.device)).sum())
        return correct / max(1, len(labels))

