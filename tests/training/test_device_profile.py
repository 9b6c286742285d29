"""The GPU code paths, run on a CPU: a ``cuda-like`` DeviceProfile takes every CUDA branch
that torch can run here (bf16 autocast, channels_last, fused optimizers, per-member
generators, the out-of-memory split). Only CUDA's memory query and cache stay CUDA's.
"""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from torch import nn

import hpsearch.training.fused.trainer as fused
from hpsearch.errors import ConfigError
from hpsearch.space.params import TrialConfig
from hpsearch.training import DeviceProfile
from hpsearch.training.datasets import load_dataset
from hpsearch.training.device import PROFILE_ENV
from hpsearch.training.device_data import DeviceData
from hpsearch.training.fused.trainer import max_fuse, train_fused, train_many, train_seeds
from hpsearch.training.loop import make_optimizer, train
from hpsearch.training.models import build_model

CPU = torch.device("cpu")
CUDA_LIKE = DeviceProfile.for_device(CPU, "cuda-like")
AUTO = DeviceProfile.for_device(CPU, "auto")
MLP = TrialConfig(hidden_units=32, hidden_layers=2, batch_size=32, lr=0.02,
                  input_norm="standardize")
CNN = MLP.replace(model="cnn", cnn_channels=4, cnn_fc_units=16, lr=0.05, momentum=0.5)


@pytest.fixture(scope="module")
def data() -> DeviceData:
    return DeviceData.create(load_dataset("digits"), val_size=100, train_size=160, seed=0)


def test_the_profile_follows_the_device_unless_forced(monkeypatch):
    assert not AUTO.bf16 and AUTO.channels_last and AUTO.cpu_fuse_cap  # oneDNN's fast layout
    assert not DeviceProfile.for_device(torch.device("mps")).channels_last
    cuda = DeviceProfile.for_device(torch.device("cuda"))  # a device object needs no GPU
    assert cuda.bf16 and cuda.channels_last and cuda.member_generators and cuda.cuda_memory
    assert not cuda.cpu_fuse_cap
    # forced on a CPU: every CUDA branch but the memory query, which a CPU has not
    assert CUDA_LIKE == cuda.replace(cuda_memory=False)
    monkeypatch.setenv(PROFILE_ENV, "cuda-like")
    assert DeviceProfile.for_device(CPU) == CUDA_LIKE
    monkeypatch.setenv(PROFILE_ENV, "plain")
    assert not DeviceProfile.for_device(torch.device("cuda")).bf16
    monkeypatch.setenv(PROFILE_ENV, "gpu")
    with pytest.raises(ConfigError, match="HPSEARCH_DEVICE_PROFILE='gpu'.*cuda-like"):
        DeviceProfile.for_device(CPU)


def _recording_build(dtypes: list[torch.dtype]):
    """build_model, with a hook that records the dtype every Linear computes in."""
    def build(cfg: TrialConfig, shape: tuple[int, int, int], n: int) -> nn.Module:
        model = build_model(cfg, shape, n)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
        return model
    return build


def test_cuda_like_train_runs_bf16_autocast_and_channels_last(data):
    dtypes: list[torch.dtype] = []
    result = train(CNN, data, epochs=1, profile=CUDA_LIKE, build=_recording_build(dtypes))
    assert dtypes and set(dtypes) == {torch.bfloat16}  # training and evaluation alike
    convs = [m.weight for m in result.model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert all(not w.is_contiguous() for w in convs[1:])  # NHWC (conv 1 has C = 1: both)
    assert 0 < result.val_acc <= 1 and result.history[0].train_loss > 0
    # the CPU's own profile: fp32, channels_last; the plain one: the default layout
    dtypes.clear()
    own = train(CNN, data, epochs=1, build=_recording_build(dtypes))
    assert set(dtypes) == {torch.float32}
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
               and not m.weight.is_contiguous()
               for m in list(own.model.modules()) if isinstance(m, nn.Conv2d)
               and m.in_channels > 1)
    plain = train(CNN, data, epochs=1, profile=DeviceProfile.for_device(CPU, "plain"))
    assert all(m.weight.is_contiguous() for m in plain.model.modules()
               if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "adagrad"])
def test_cuda_like_optimizer_is_the_fused_kernel(optimizer):
    params = [nn.Parameter(torch.zeros(3))]
    try:
        getattr(torch.optim, {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW",
                              "adagrad": "Adagrad"}[optimizer])(params, lr=0.1, fused=True)
    except (RuntimeError, TypeError) as exc:
        pytest.skip(f"this torch has no fused {optimizer} on CPU: {exc}")
    cfg = MLP.replace(optimizer=optimizer)
    assert make_optimizer(cfg, params, CUDA_LIKE).defaults["fused"] is True
    assert make_optimizer(cfg, params, CUDA_LIKE.replace(fused_optimizer=False)
                          ).defaults["fused"] is None  # torch's own choice (foreach/loop)


def test_cuda_like_fused_training_autocasts_and_keeps_channels_last(data):
    seen: list[bool] = []
    real = DeviceProfile.autocast

    def spy(self: DeviceProfile, device: torch.device) -> torch.autocast:
        with real(self, device):  # what the trainer's block will run under
            seen.append(torch.is_autocast_enabled(device.type))
        return real(self, device)

    with mock.patch.object(DeviceProfile, "autocast", spy):
        results = train_fused([CNN, CNN], data, epochs=1, seeds=[0, 1], profile=CUDA_LIKE)
    assert seen and all(seen)
    for r in results:
        assert r.history and all(
            m.weight.is_contiguous(memory_format=torch.channels_last)
            for m in r.model.modules() if isinstance(m, nn.Conv2d))


def test_cuda_like_members_draw_dropout_from_their_own_generators(data):
    """On a CPU a member continues the global stream as train() does (the same masks);
    with member generators (CUDA's branch) its masks are its own: the same shapes and
    epochs, other numbers."""
    cfg = MLP.replace(dropout=0.4)
    alone = train(cfg, data, epochs=1, seed=3)
    same = train_fused([cfg, cfg], data, epochs=1, seeds=[3, 4], profile=AUTO)[0]
    own = train_fused([cfg, cfg], data, epochs=1, seeds=[3, 4],
                      profile=CUDA_LIKE.replace(bf16=False))[0]
    assert same.history[0].train_loss == pytest.approx(alone.history[0].train_loss, rel=1e-4)
    assert own.history[0].train_loss != pytest.approx(alone.history[0].train_loss, rel=1e-4)
    assert len(own.history) == len(alone.history)


def test_cuda_like_max_fuse_has_no_cpu_cap(data):
    wide = TrialConfig(hidden_units=512, hidden_layers=2)  # 165k params: a CPU fuses 1
    assert max_fuse(wide, data, AUTO) == 1
    assert max_fuse(wide, data, CUDA_LIKE) > 1


def test_out_of_memory_mid_run_halves_the_chunk_and_trains_every_member(data):
    """An out-of-memory error raised inside a fused run (from the public ``on_epoch``
    hook, where a CUDA allocation would fail) splits the chunk, releases the memory
    through the profile and trains every member."""
    sizes: list[int] = []
    real = fused.train_fused

    def sized(cfgs, *args, **kwargs):
        sizes.append(len(cfgs))
        return real(cfgs, *args, **kwargs)

    raised: list[int] = []
    seen: set[tuple[int, int]] = set()

    def on_epoch(job: int, epoch: int, m) -> bool:
        if not raised:
            raised.append(job)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        seen.add((job, epoch))
        return False

    with mock.patch.object(fused, "train_fused", sized), \
            mock.patch.object(DeviceProfile, "release_memory") as release:
        results = train_seeds(MLP, data, range(4), epochs=2, patience=2, fuse=4,
                              on_epoch=on_epoch, profile=CUDA_LIKE)
    assert sizes == [4, 2, 2]
    release.assert_called_once()
    assert seen == {(j, e) for j in range(4) for e in (1, 2)}
    assert [len(r.history) for r in results] == [2, 2, 2, 2]
    assert len({r.history[-1].train_loss for r in results}) == 4  # four seeds, four runs
    # the split members train as they would have in one chunk (own generators, own seeds)
    whole = train_many([(MLP, s) for s in range(4)], data, epochs=2, patience=2, fuse=4,
                       profile=CUDA_LIKE)
    for r, w in zip(results, whole, strict=True):
        assert r.val_acc == pytest.approx(w.val_acc, abs=2 / len(data.val_y))
