"""Tests for hpsearch.training.models: every architecture, BN placement, dropout, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hpsearch.space.params import TrialConfig
from hpsearch.training.models import (
    Dropout,
    add_bias_before_bn,
    build_model,
    count_params,
    l1_penalty,
)

torch.set_num_threads(1)

MODELS = ("mlp", "cnn")
BATCH_NORMS = ("none", "before", "after")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "gelu")
INITS = ("default", "normal", "xavier", "kaiming")
WEIGHT_LAYERS = (nn.Linear, nn.Conv2d)
BN_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)
ACT_LAYERS = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.GELU)
SMALL = dict(hidden_units=32, hidden_layers=2, cnn_channels=8, cnn_fc_units=64)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def small(**changes: object) -> TrialConfig:
    return TrialConfig(**{**SMALL, **changes})  # type: ignore[arg-type]


def build(cfg: TrialConfig, input_shape: tuple[int, int, int] = (1, 8, 8)) -> nn.Sequential:
    """build_model with 10 classes, typed as the Sequential it is so tests can index it."""
    model = build_model(cfg, input_shape, 10)
    assert isinstance(model, nn.Sequential)
    return model


def weight_layers(model: nn.Module) -> list[nn.Linear | nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("batch_norm", BATCH_NORMS)
@pytest.mark.parametrize("model_name", MODELS)
def test_every_combination_trains(model_name: str, batch_norm: str, activation: str,
                                  init: str) -> None:
    cfg = small(model=model_name, batch_norm=batch_norm, activation=activation, init=init,
                dropout=0.2, dropout2d=0.1 if model_name == "cnn" else 0.0)
    model = build_model(cfg, (1, 8, 8), 10).train()
    out = model(torch.randn(4, 1, 8, 8))
    assert out.shape == (4, 10)
    assert torch.isfinite(out).all()
    nn.functional.cross_entropy(out, torch.tensor([0, 3, 7, 9])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("batch_norm", BATCH_NORMS)
def test_cnn_on_28x28_counts_features_from_input_shape(batch_norm: str) -> None:
    cfg = TrialConfig(model="cnn", cnn_channels=16, cnn_fc_units=100, batch_norm=batch_norm)
    model = build_model(cfg, (1, 28, 28), 10)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    # 16-32-64 channels; 28 -> 14 -> 7 -> 3, so the classifier sees 64 * 3 * 3 = 576 features
    bias = 0 if batch_norm == "before" else 1
    bn = 0 if batch_norm == "none" else 2
    convs = sum(c_out * (c_in * 9 + bias) + bn * c_out
                for c_in, c_out in ((1, 16), (16, 32), (32, 64)))
    fc = 100 * (576 + bias) + bn * 100
    assert count_params(model) == convs + fc + 100 * 10 + 10


def test_seed_000_mlp_widths_and_param_count() -> None:
    cfg = TrialConfig(model="mlp", hidden_units=512, hidden_layers=2, taper="halve")
    model = build(cfg, (1, 28, 28))
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 512), (512, 256),
                                                                   (256, 10)]
    assert count_params(model) == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10 == 535_818


def test_count_params_skips_frozen_params() -> None:
    model = build(small())
    total = count_params(model)
    model[1].weight.requires_grad_(False)
    assert count_params(model) == total - 64 * 32


@pytest.mark.parametrize("batch_norm", BATCH_NORMS)
@pytest.mark.parametrize("model_name", MODELS)
def test_bn_placement_and_bias(model_name: str, batch_norm: str) -> None:
    model = build(small(model=model_name, batch_norm=batch_norm))
    layers = list(model)
    weights = [i for i, m in enumerate(layers) if isinstance(m, WEIGHT_LAYERS)]
    hidden, output = weights[:-1], layers[weights[-1]]
    assert len(hidden) == (2 if model_name == "mlp" else 4)  # 3 convs + the FC layer
    assert output.bias is not None  # the output layer is never followed by BN
    bns = [m for m in layers if isinstance(m, BN_LAYERS)]
    assert len(bns) == (0 if batch_norm == "none" else len(hidden))
    for i in hidden:
        assert (layers[i].bias is None) == (batch_norm == "before")
        after = [type(m) for m in layers[i + 1:i + 3]]
        is_act = [issubclass(t, ACT_LAYERS) for t in after]
        is_bn = [issubclass(t, BN_LAYERS) for t in after]
        if batch_norm == "before":
            assert is_bn[0] and is_act[1], after
        elif batch_norm == "after":
            assert is_act[0] and is_bn[1], after
        else:
            assert is_act[0] and not any(is_bn), after
    if model_name == "cnn" and batch_norm != "none":
        assert [type(m) for m in bns] == [nn.BatchNorm2d] * 3 + [nn.BatchNorm1d]


@pytest.mark.parametrize("model_name", MODELS)
def test_add_bias_before_bn_leaves_weights_and_the_global_rng_alone(model_name: str) -> None:
    cfg = small(model=model_name, batch_norm="before")
    torch.manual_seed(3)
    plain = build(cfg)
    after_plain = torch.rand(1)
    torch.manual_seed(3)
    twin = build(cfg)
    added = add_bias_before_bn(twin, torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(1), after_plain)  # the batches and masks to come: the same
    hidden = [m for m in twin if isinstance(m, WEIGHT_LAYERS)][:-1]
    assert added == hidden and all(m.bias is not None for m in added)
    for m in hidden:  # PyTorch's default: uniform in +-1/sqrt(fan_in), not all zero
        bound = 1 / math.sqrt(m.weight[0].numel())
        assert 0 < m.bias.abs().max() <= bound
    assert sum(p.numel() for p in twin.parameters()) == \
        sum(p.numel() for p in plain.parameters()) + sum(m.bias.numel() for m in added)
    twin_state, plain_state = twin.state_dict(), plain.state_dict()
    for name, value in plain_state.items():
        assert torch.equal(value, twin_state[name]), name
    assert len(set(twin_state) - set(plain_state)) == len(added)
    # train mode: the batch mean takes the bias away, so the outputs agree up to rounding
    x = torch.randn(16, 1, 8, 8)
    plain.train(), twin.train()
    torch.testing.assert_close(twin(x), plain(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("batch_norm", ["none", "after"])
def test_add_bias_before_bn_refuses_a_model_without_bn_before(batch_norm: str) -> None:
    with pytest.raises(ValueError, match="batch_norm must be 'before'"):
        add_bias_before_bn(build(small(batch_norm=batch_norm)), torch.Generator())


def test_activations_are_fresh_modules_with_leaky_slope() -> None:
    model = build(small(activation="leaky_relu"))
    acts = [m for m in model if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 2 and acts[0] is not acts[1]
    assert all(m.negative_slope == 0.01 for m in acts)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("dropout, dropout2d", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.25),
                                                (0.5, 0.4)])
def test_dropout_only_when_rate_positive(model_name: str, dropout: float,
                                         dropout2d: float) -> None:
    if model_name == "mlp":
        dropout2d = 0.0  # inactive for the MLP: the config resets it to "off"
    model = build(small(model=model_name, dropout=dropout, dropout2d=dropout2d))
    drops = [m.p for m in model.modules() if type(m) is Dropout]
    drops2d = [m.p for m in model.modules() if type(m) is nn.Dropout2d]
    n_fc = 2 if model_name == "mlp" else 1
    assert drops == ([dropout] * n_fc if dropout > 0 else [])
    assert drops2d == ([dropout2d] * 3 if dropout2d > 0 else [])


def test_eval_mode_is_deterministic_with_dropout() -> None:
    for cfg in (small(dropout=0.5, batch_norm="after"),
                small(model="cnn", dropout=0.5, dropout2d=0.5, batch_norm="before")):
        model = build_model(cfg, (1, 8, 8), 10)
        x = torch.randn(8, 1, 8, 8)
        model.train()
        assert not torch.equal(model(x), model(x))  # dropout is live in train mode
        model.eval()
        with torch.no_grad():
            assert torch.equal(model(x), model(x))


# ---------------------------------------------------------------------------- init


def big_mlp(init: str, activation: str = "relu") -> nn.Sequential:
    cfg = TrialConfig(hidden_units=512, hidden_layers=2, taper="constant", init=init,
                      activation=activation)
    return build(cfg, (1, 28, 28))


def test_normal_init_std_and_zero_biases() -> None:
    model = big_mlp("normal")
    first, second, out = weight_layers(model)
    for layer in (first, second):
        assert layer.weight.std().item() == pytest.approx(0.02, rel=0.03)
        assert layer.weight.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert out.weight.std().item() == pytest.approx(0.02, rel=0.15)  # only 5120 weights


@pytest.mark.parametrize("activation, gain", [("relu", math.sqrt(2)), ("gelu", math.sqrt(2)),
                                              ("tanh", 5 / 3), ("sigmoid", 1.0),
                                              ("leaky_relu", math.sqrt(2 / (1 + 0.01**2)))])
def test_kaiming_std_is_gain_over_sqrt_fan_in(activation: str, gain: float) -> None:
    first, second, out = weight_layers(big_mlp("kaiming", activation))
    assert first.weight.std().item() == pytest.approx(gain / math.sqrt(784), rel=0.03)
    assert second.weight.std().item() == pytest.approx(gain / math.sqrt(512), rel=0.03)
    # the output layer has no activation after it: gain 1
    assert out.weight.std().item() == pytest.approx(1 / math.sqrt(512), rel=0.15)


def test_kaiming_on_conv_uses_kernel_fan_in() -> None:
    cfg = TrialConfig(model="cnn", cnn_channels=32, init="kaiming")
    conv3 = weight_layers(build_model(cfg, (1, 8, 8), 10))[2]
    assert conv3.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)


@pytest.mark.parametrize("activation, gain", [("relu", math.sqrt(2)), ("tanh", 5 / 3)])
def test_xavier_uniform_bound(activation: str, gain: float) -> None:
    first, _, out = weight_layers(big_mlp("xavier", activation))
    bound = gain * math.sqrt(6 / (784 + 512))
    assert first.weight.abs().max().item() <= bound
    assert first.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    assert out.weight.abs().max().item() <= math.sqrt(6 / (512 + 10))


@pytest.mark.parametrize("init", ["normal", "xavier", "kaiming"])
@pytest.mark.parametrize("model_name", MODELS)
def test_non_default_inits_zero_biases_and_keep_bn(model_name: str, init: str) -> None:
    model = build(small(model=model_name, init=init, batch_norm="after"))
    for layer in weight_layers(model):
        assert layer.bias is not None and torch.count_nonzero(layer.bias) == 0
    for bn in (m for m in model.modules() if isinstance(m, BN_LAYERS)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_default_init_is_pytorchs() -> None:
    model = build(small())
    first = weight_layers(model)[0]
    bound = 1 / math.sqrt(64)  # nn.Linear's kaiming_uniform(a=sqrt(5)) and bias bound
    assert first.bias is not None and torch.count_nonzero(first.bias) > 0
    assert first.weight.abs().max().item() <= bound


# ---------------------------------------------------------------------------- l1 and errors


def test_l1_penalty_sums_weights_only() -> None:
    # 4 inputs -> 3 hidden (Linear without bias, BN) -> 2 outputs (Linear with bias)
    cfg = TrialConfig(hidden_units=3, hidden_layers=1, taper="constant", batch_norm="before")
    model = build_model(cfg, (1, 2, 2), 2)
    assert isinstance(model, nn.Sequential)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(-0.5)  # biases and BN params too: they must not count
    penalty = l1_penalty(model)
    assert penalty.item() == pytest.approx(0.5 * (4 * 3 + 3 * 2))
    penalty.backward()
    hidden, bn, output = model[1], model[2], model[-1]
    assert isinstance(hidden, nn.Linear) and isinstance(bn, nn.BatchNorm1d)
    assert isinstance(output, nn.Linear) and output.bias is not None
    assert hidden.weight.grad is not None
    assert torch.all(hidden.weight.grad == -1)  # d|w|/dw = sign(w)
    assert bn.weight.grad is None and output.bias.grad is None


def test_l1_penalty_includes_conv_kernels() -> None:
    model = build_model(small(model="cnn"), (1, 8, 8), 10)
    expected = sum(m.weight.abs().sum().item() for m in weight_layers(model))
    assert l1_penalty(model).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("field, value", [("model", "rnn"), ("activation", "swish"),
                                          ("batch_norm", "middle"), ("init", "orthogonal")])
def test_unknown_values_raise_value_error(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=value):
        build_model(small(**{field: value}), (1, 8, 8), 10)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.7])
def test_dropout_keeps_1_minus_p_scaled_like_torchs(p: float) -> None:
    """The faster CPU mask is the same layer as nn.Dropout: kept units are scaled by
    1 / (1 - p), about 1 - p of them are kept (200k draws: 4 sigma is under 0.5%), the
    gradient flows through the kept units only, and eval mode is the identity."""
    torch.manual_seed(0)
    x = torch.ones(400, 500, requires_grad=True)
    layer = Dropout(p).train()
    y = layer(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    y.sum().backward()
    assert x.grad is not None and torch.equal(x.grad != 0, kept)
    assert torch.equal(layer.eval()(x), x)
    torch.manual_seed(1)
    a = layer.train()(x)
    torch.manual_seed(1)
    assert torch.equal(a, layer(x))  # seeded: verify's paired re-runs rely on it


def test_dropout_class_is_a_parameter_and_changes_nothing_else():
    """The bench builds seed 000's network with torch's nn.Dropout (build_model(dropout=))."""
    cfg = TrialConfig(hidden_units=64, hidden_layers=2, dropout=0.5)
    ours = list(build_model(cfg, (1, 8, 8), 10))
    torch.manual_seed(0)
    seeds = list(build_model(cfg, (1, 8, 8), 10, dropout=nn.Dropout))
    assert [type(m) for m in ours if isinstance(m, nn.Dropout)] == [Dropout] * 2
    assert [type(m) for m in seeds if isinstance(m, nn.Dropout)] == [nn.Dropout] * 2
    assert [type(m) for m in ours if not isinstance(m, nn.Dropout)] == [
        type(m) for m in seeds if not isinstance(m, nn.Dropout)]
