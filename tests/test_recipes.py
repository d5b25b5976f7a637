"""The authors' training recipes: each model config carries them (optimizer, lr, loss, L2, BN
momentum, input size and scaling, class weights), and the switches they use act in training."""

from __future__ import annotations

import types

import hydra
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.models.layers.convlstm.layer import ConvLSTM2d
from dfdetect.models.lightning import DetectorModule
from dfdetect.models.nets import create_net
from dfdetect.models.nets.base import ClipDetector
from tests.conftest import compose_config

# model config -> (lr, loss, scheduler, class_weight, net keys it must hold); input sizes other than
# Xception's are the nets' own defaults (data.net_input_size is null for real data)
RECIPES = {
    # MesoNet's BN momentum: 0.1, a stated departure (docs/models.md); authors_mesoinception4 has 0.01
    "meso4": (1e-3, "mse", None, None, {"bn_momentum": 0.1}),
    "mesoinception4": (1e-3, "mse", None, None, {"bn_momentum": 0.1}),
    "shallownet_v1": (5e-5, "bce", None, None, {"bn_momentum": 0.01, "kernel_l2": 1e-4}),
    "shallownet_v2": (5e-5, "bce", None, None, {"bn_momentum": 0.01, "kernel_l2": 1e-4}),
    "shallownet_v3": (5e-5, "bce", None, None, {"bn_momentum": 0.01, "kernel_l2": 1e-4}),
    "xception": (5e-5, "bce", None, None, {"input_size": 240, "input_scaling": "unit"}),
    "clrnet": (5e-5, "bce", None, "balanced", {"bn_momentum": 0.01, "kernel_l2": 1e-4}),
    "clrnet_lite": (5e-5, "bce", None, "balanced", {"bn_momentum": 0.01, "kernel_l2": 1e-4}),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_model_config_holds_the_authors_recipe(name, tmp_path):
    cfg = compose_config("train.yaml", [f"model={name}", "data=store", "data.store=unused"], tmp_path)
    lr, loss, scheduler, class_weight, net = RECIPES[name]
    assert cfg.model.optimizer.lr == pytest.approx(lr)
    assert cfg.model.loss == loss and cfg.model.class_weight == class_weight
    assert cfg.model.scheduler == scheduler
    for key, value in net.items():
        assert cfg.model.net[key] == value, key


def test_experiments_add_the_data_side(tmp_path):
    cfg = compose_config("train.yaml", ["experiment=authors_shallownet_v3"], tmp_path)
    assert cfg.model.net.name == "shallownet_v3" and cfg.data.batch_size == 32
    assert cfg.trainer.max_epochs == 50 and not any(a.enabled for a in cfg.data.augment.values())
    assert cfg.callbacks.model_checkpoint.monitor == "val/acc" and cfg.callbacks.early_stopping is None
    cfg = compose_config("train.yaml", ["experiment=authors_mesoinception4"], tmp_path)
    assert cfg.model.net.bn_momentum == 0.01 and cfg.model.loss == "mse"
    cfg = compose_config("train.yaml", ["experiment=authors_clrnet"], tmp_path)
    assert cfg.data.balance is False and cfg.model.class_weight == "balanced"
    cfg = compose_config("train.yaml", ["experiment=xception_ffpp"], tmp_path)
    net = hydra.utils.instantiate(cfg.model.net, input_size=64)
    assert (net.mean, net.std) == ((0.5,) * 3, (0.5,) * 3) and cfg.model.optimizer.lr == 2e-4


class Constant(ClipDetector):
    """A net whose logit is a parameter, so a loss's value and gradient are known in closed form."""

    def __init__(self, logit: float):
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(logit))

    def forward(self, clips):
        return self.logit.expand(clips.shape[0])


def batch(labels):
    labels = torch.tensor(labels)
    return {"clip": torch.zeros(len(labels), 1, 3, 4, 4, dtype=torch.uint8), "label": labels}


def test_mse_is_the_squared_error_of_p_fake_and_bce_stays_the_default():
    b = batch([1, 0, 0])
    p = torch.sigmoid(torch.tensor(0.4))
    mse, _ = DetectorModule(Constant(0.4), loss="mse")._loss(b)
    assert mse.item() == pytest.approx(((p - 1) ** 2 + 2 * p**2).item() / 3, abs=1e-6)
    bce, _ = DetectorModule(Constant(0.4))._loss(b)
    expected = F.binary_cross_entropy_with_logits(torch.full((3,), 0.4), b["label"].float())
    assert bce.item() == pytest.approx(expected.item(), abs=1e-6) and abs(bce - mse) > 0.1
    with pytest.raises(ValueError, match="model.loss"):
        DetectorModule(Constant(0.0), loss="hinge")


def test_mesonet_config_trains_on_mse(tmp_path):
    cfg = compose_config("train.yaml", ["model=meso4", "data=store", "data.store=unused"], tmp_path)
    module = hydra.utils.instantiate(cfg.model, net=Constant(-1.0))
    b = batch([1, 1])
    loss, _ = module._loss(b)
    assert loss.item() == pytest.approx((1 - torch.sigmoid(torch.tensor(-1.0))).square().item(), abs=1e-6)


def fit_start(module, balance, labels):
    train = types.SimpleNamespace(labels=torch.tensor(labels).numpy())
    dm = types.SimpleNamespace(balance=balance, splits={"train": train})
    module._trainer = types.SimpleNamespace(datamodule=dm)  # what on_fit_start reads
    module.on_fit_start()


def test_balanced_class_weights_follow_keras_and_yield_to_balanced_sampling():
    module = DetectorModule(Constant(0.0), class_weight="balanced")
    fit_start(module, balance=False, labels=[0, 1, 1, 1])
    assert module.class_weights.tolist() == pytest.approx([2.0, 2 / 3])  # n / (2 n_class)
    loss, _ = module._loss(batch([0, 1]))
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item() * (2 + 2 / 3) / 2, abs=1e-6)
    fit_start(module, balance=True, labels=[0, 1, 1, 1])
    assert module.class_weights.tolist() == [1.0, 1.0]
    fixed = DetectorModule(Constant(0.0), class_weight=[1.0, 3.0])
    assert fixed.class_weights.tolist() == [1.0, 3.0]


def test_convlstm_input_kernel_l2_adds_keras_penalty_gradient():
    torch.manual_seed(0)
    plain = ConvLSTM2d(3, 4, 3).double()
    penalised = ConvLSTM2d(3, 4, 3, kernel_l2=1e-2).double()
    penalised.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 3, 6, 6, dtype=torch.double)
    plain(x).sum().backward()
    penalised(x).sum().backward()
    torch.testing.assert_close(penalised.weight_ih.grad, plain.weight_ih.grad + 2e-2 * plain.weight_ih)
    torch.testing.assert_close(penalised.weight_hh.grad, plain.weight_hh.grad)  # recurrent: none


def test_clrnet_sets_l2_on_every_input_kernel():
    net = create_net("clrnet_lite", input_size=32, kernel_l2=1e-4)
    cells = [m for m in net.modules() if isinstance(m, ConvLSTM2d)]
    assert cells and all(m.kernel_l2 == 1e-4 for m in cells)


def test_xception_input_scaling_reaches_the_module():
    unit = DetectorModule(create_net("xception", input_size=71, input_scaling="unit"))
    ffpp = DetectorModule(create_net("xception", input_size=71))
    white = torch.full((1, 1, 3, 4, 4), 255, dtype=torch.uint8)
    assert unit.normalise(white).max().item() == pytest.approx(1.0)
    assert ffpp.normalise(white).max().item() == pytest.approx(1.0)
    assert ffpp.normalise(torch.zeros_like(white)).min().item() == pytest.approx(-1.0)
    assert unit.normalise(torch.zeros_like(white)).min().item() == 0.0
    with pytest.raises(ValueError, match="input_scaling"):
        create_net("xception", input_scaling="imagenet")
