"""Models, augmentation and the fused trainer on any channel count and image size."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from support.datasets import images, write_cifar
from torch import nn

from hpsearch.space.params import TrialConfig
from hpsearch.training.datasets import load_dataset
from hpsearch.training.device_data import DeviceData, _theta, augment
from hpsearch.training.fused.trainer import train_fused
from hpsearch.training.loop import train
from hpsearch.training.models import build_model

SMALL = TrialConfig(hidden_units=32, hidden_layers=2, cnn_channels=8, cnn_fc_units=32,
                    batch_size=32, lr=0.05, momentum=0.5, input_norm="standardize")


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8), (1, 28, 28), (4, 12, 20),
                                   (2, 3, 3), (1, 1, 6), (3, 96, 64)])
def test_models_take_any_channels_and_size(model, shape):
    net = build_model(SMALL.replace(model=model, batch_norm="before"), shape, 7)
    net.train()
    out = net(torch.randn(5, *shape))
    assert out.shape == (5, 7)
    out.sum().backward()


def test_cnn_layout_on_the_seed_datasets_is_unchanged():
    """28x28 ends at 3x3 and 32x32 at 4x4 as before; large images are averaged down to 4x4
    so the FC layer does not grow with the image."""
    cfg = SMALL.replace(model="cnn")
    for shape, grid in (((1, 28, 28), 3), ((3, 32, 32), 4), ((3, 256, 128), 4)):
        net = build_model(cfg, shape, 10)
        fc = [m for m in net if isinstance(m, nn.Linear)][0]
        assert fc.in_features == 4 * cfg.cnn_channels * grid * grid
        assert any(isinstance(m, nn.AdaptiveAvgPool2d) for m in net) == (shape[1] > 64)
        assert sum(isinstance(m, nn.MaxPool2d) for m in net) == 3


# ---------------------------------------------------------------------------- augmentation


def colour_batch(n: int = 64, h: int = 12, w: int = 12) -> torch.Tensor:
    x, _ = images(n, (h, w, 3), 3)
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255)


@pytest.mark.parametrize("kind", ["shift", "affine", "resized_crop", "flip"])
def test_colour_channels_move_together(kind):
    """A grey picture stored as RGB stays grey: every channel got the same transform."""
    x = colour_batch()[:, :1].expand(-1, 3, -1, -1).contiguous()
    out = augment(x, kind, 1.0, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 0], out[:, 2])


def test_colour_flip_mirrors_whole_images_about_half_the_time():
    x = colour_batch(400, 8, 10)
    out = augment(x, "flip", 1.0, torch.Generator().manual_seed(1))
    flipped = (out - x.flip(-1)).abs().amax((1, 2, 3)) < 1e-5
    same = (out - x).abs().amax((1, 2, 3)) < 1e-5
    assert bool((flipped | same).all()) and 150 < int(flipped.sum()) < 250


def test_colour_shift_mirrors_the_edge_and_grey_pads_black():
    x = torch.full((32, 3, 8, 8), 0.5)
    out = augment(x, "shift", 1.0, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x)  # mirrored edges of a flat image are the image
    grey = augment(x[:, :1], "shift", 1.0, torch.Generator().manual_seed(0))
    assert float(grey.min()) < 0.1  # black came in from outside


def test_rotation_is_made_in_pixels_on_non_square_images():
    """Rotation only (shear 0, scale 1, no shift): mapped back to pixel units, the sampling
    matrix is a rotation (orthogonal), not one stretched by the image's aspect."""
    u = torch.tensor([[1.0, 0.5, 0.5, 0.5, 0.5]])  # angle = +20 degrees at strength 1
    h, w = 6, 18
    theta = _theta("affine", 1.0, u, aspect=h / w)[0, :, :2]
    s = torch.diag(torch.tensor([w / 2, h / 2]))
    pixel = s @ theta @ torch.linalg.inv(s)
    assert torch.allclose(pixel @ pixel.T, torch.eye(2), atol=1e-5)
    assert math.isclose(float(torch.atan2(pixel[1, 0], pixel[0, 0]).abs()), math.radians(20),
                        rel_tol=1e-4)
    square = _theta("affine", 1.0, u)[0, :, :2]
    assert torch.allclose(square @ square.T, torch.eye(2), atol=1e-5)


# ---------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory) -> DeviceData:
    folder = tmp_path_factory.mktemp("c") / "cifar-10-batches-py"
    write_cifar(folder, per_batch=48, n_test=40)
    return DeviceData.create(load_dataset("cifar10", folder.parent, download=False),
                             val_size=40, seed=0)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_learns_colour_32x32_and_grey_8x8(cifar_like, tmp_path, model):
    x, y = images(300, (8, 8), 4)
    np.savez(tmp_path / "g.npz", x_train=x, y_train=y, x_test=x[:40], y_test=y[:40])
    grey = DeviceData.create(load_dataset(str(tmp_path / "g.npz")), val_size=60, seed=0)
    cfg = SMALL.replace(model=model, augmentation="flip", aug_strength=0.5)
    for data in (cifar_like, grey):
        result = train(cfg, data, epochs=4, patience=4, seed=0)
        assert result.val_acc > 2 * data.chance, (data.input_shape, result.curve)


def test_fused_trains_colour_cnns_as_each_alone(cifar_like):
    cfg = SMALL.replace(model="cnn", cnn_channels=4, cnn_fc_units=16, batch_norm="before")
    cfgs, seeds = [cfg, cfg.replace(lr=0.02)], [0, 1]
    together = train_fused(cfgs, cifar_like, epochs=2, patience=2, seeds=seeds)
    for c, seed, member in zip(cfgs, seeds, together, strict=True):
        alone = train(c, cifar_like, epochs=2, patience=2, seed=seed)
        for m, a in zip(member.history, alone.history, strict=True):
            assert m.train_loss == pytest.approx(a.train_loss, rel=1e-4)
        assert abs(member.val_acc - alone.val_acc) <= 1 / len(cifar_like.val_y) + 1e-6


def test_fused_handles_the_large_image_pooling():
    x, y = images(64, (72, 72, 3), 2)
    raw_x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    data = DeviceData.from_splits("big", ("a", "b"), "cpu", (raw_x[:48], torch.from_numpy(y[:48])),
                                  (raw_x[48:], torch.from_numpy(y[48:])))
    cfg = SMALL.replace(model="cnn", cnn_channels=4, cnn_fc_units=16)
    together = train_fused([cfg, cfg], data, epochs=1, patience=1, seeds=[0, 1])
    alone = train(cfg, data, epochs=1, patience=1, seed=1)
    assert together[1].history[0].train_loss == pytest.approx(alone.history[0].train_loss,
                                                              rel=1e-4)


def test_the_mlp_averages_large_images_down_to_its_side():
    """A folder of 256x256 photos gave an MLP of 200M weights at 1024 units: images whose
    longer side exceeds MLP_SIDE are averaged down to it, aspect kept; up to CIFAR-10's
    size they are flattened as they are."""
    from hpsearch.training.models import MLP_SIDE, count_params

    cfg = SMALL.replace(model="mlp", hidden_units=1024, hidden_layers=1)
    for shape, seen in (((3, 256, 256), (3, 32, 32)), ((3, 256, 128), (3, 32, 16)),
                        ((1, 1000, 10), (1, 32, 1)), ((3, 32, 32), (3, 32, 32)),
                        ((1, 28, 28), (1, 28, 28)), ((3, 33, 8), (3, 32, 8))):
        net = build_model(cfg, shape, 10)
        first = [m for m in net if isinstance(m, nn.Linear)][0]
        assert first.in_features == math.prod(seen), shape
        assert any(isinstance(m, nn.AdaptiveAvgPool2d) for m in net) == (max(shape) > MLP_SIDE)
        assert count_params(net) <= 3 * MLP_SIDE**2 * 1024 + 1024 + 1024 * 10 + 10
        assert net(torch.rand(2, *shape)).shape == (2, 10)


def test_fused_mlps_on_large_images_train_as_each_alone():
    x, y = images(64, (72, 40, 3), 2)
    raw_x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    data = DeviceData.from_splits("big", ("a", "b"), "cpu", (raw_x[:48], torch.from_numpy(y[:48])),
                                  (raw_x[48:], torch.from_numpy(y[48:])))
    cfg = SMALL.replace(model="mlp", batch_norm="before")
    together = train_fused([cfg, cfg], data, epochs=1, patience=1, seeds=[0, 1])
    alone = train(cfg, data, epochs=1, patience=1, seed=1)
    assert together[1].history[0].train_loss == pytest.approx(alone.history[0].train_loss,
                                                              rel=1e-4)
