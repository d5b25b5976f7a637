"""model=timm: any timm backbone with its own pretrained_cfg facts, local weights without code,
offline in one line; model.finetune=full|head|norm for every backbone, counted."""

from __future__ import annotations

import hydra
import pytest
import timm
import torch
from torch import nn

from dfdetect.models.layers.finetune import apply_finetune, is_norm
from dfdetect.models.lightning import DetectorModule
from dfdetect.models.nets import create_net
from dfdetect.models.nets.timm_net import TimmDetector
from dfdetect.utils.errors import UserError
from tests.conftest import compose_config

TINY = ("test_vit", "resnet10t", "efficientnet_b0")


@pytest.mark.parametrize("name", TINY)
def test_a_timm_model_takes_its_input_facts_from_its_pretrained_cfg(name):
    cfg = timm.models.get_pretrained_cfg(name).to_dict()
    net = TimmDetector(name=name, input_size=64 if name != "test_vit" else None).eval()
    assert tuple(net.mean) == pytest.approx(cfg["mean"]) and tuple(net.std) == pytest.approx(cfg["std"])
    assert net.interpolation == cfg["interpolation"]
    if name == "test_vit":
        assert net.input_size == cfg["input_size"][-1]
    out = net(torch.rand(2, 3, 3, 48, 48))
    assert out.shape == (2,) and torch.isfinite(out).all()
    # the module normalises uint8 frames with exactly these numbers
    module = DetectorModule(net, channels_last=False)
    clip = torch.full((1, 1, 3, 2, 2), 255, dtype=torch.uint8)
    expected = (1.0 - torch.tensor(cfg["mean"])) / torch.tensor(cfg["std"])
    assert torch.allclose(module.normalise(clip)[0, 0, :, 0, 0], expected, atol=1e-6)


def test_a_vit_is_built_at_the_requested_size():
    net = TimmDetector(name="test_vit", input_size=64)
    assert net.input_size == 64 and net.backbone.patch_embed.img_size == (64, 64)
    assert net(torch.rand(1, 1, 3, 64, 64)).shape == (1,)


def norm_and_head_parameters(net: nn.Module) -> set[int]:
    ids = {id(p) for m in net.modules() if is_norm(m) for p in m.parameters(recurse=False)}
    return ids | {id(p) for p in net.head.parameters()}


@pytest.mark.parametrize("name", ["test_vit", "resnet10t"])
def test_finetune_norm_trains_only_norms_and_the_head_and_counts_them(name):
    torch.manual_seed(0)
    net = TimmDetector(name=name, input_size=32 if name != "test_vit" else None)
    expected = norm_and_head_parameters(net)
    # LayerNorms (ViT) or BatchNorms (ResNet) exist and are not the whole net
    assert len(expected) > 2 and len(expected) < len(list(net.parameters()))
    module = DetectorModule(
        net, optimizer=lambda params: torch.optim.SGD(params, lr=0.1), finetune="norm", channels_last=False
    )
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert trainable == expected
    counts = module.finetune_counts
    assert counts.trainable == counts.norm == sum(p.numel() for p in net.parameters() if id(p) in expected)
    assert counts.head == net.head.weight.numel() + 1 and counts.full == counts.total
    assert net.l2_normalize  # the LNCLIP-DF recipe: L2-normalised features before the head
    assert "norm+head" in counts.line() and f"{counts.trainable:,}" in counts.line()
    # one optimiser step moves exactly those parameters
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    optimizer = module.configure_optimizers()["optimizer"]
    size = net.input_size
    clips = torch.randint(0, 255, (4, 2, 3, size, size), dtype=torch.uint8)
    loss = nn.functional.binary_cross_entropy_with_logits(module(clips), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    loss.backward()
    optimizer.step()
    names = {n for n, p in net.named_parameters() if id(p) in expected}
    assert {n for n, p in net.named_parameters() if p.grad is not None} == names
    moved = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    assert moved and moved <= names and "head.weight" in moved


def test_finetune_head_is_a_linear_probe_and_full_keeps_what_a_net_froze():
    net = TimmDetector(name="resnet10t", input_size=32)
    counts = apply_finetune(net, "head")
    assert {n for n, p in net.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    assert counts.trainable == counts.head == net.head.weight.numel() + 1
    other = TimmDetector(name="resnet10t", input_size=32)
    other.backbone.bn1.requires_grad_(False)  # frozen by the net itself: stays frozen
    frozen = {n for n, p in other.named_parameters() if not p.requires_grad}
    assert apply_finetune(other, "full").trainable == sum(
        p.numel() for n, p in other.named_parameters() if n not in frozen
    )
    assert {n for n, p in other.named_parameters() if not p.requires_grad} == frozen
    apply_finetune(other, "norm")
    assert not any(p.requires_grad for p in other.backbone.bn1.parameters())
    with pytest.raises(ValueError, match="finetune"):
        apply_finetune(net, "lora")
    headless = nn.Conv2d(3, 1, 1)  # no head to name: full works, the others say why not
    assert apply_finetune(headless, "full").trainable == 4
    with pytest.raises(ValueError, match="head"):
        apply_finetune(headless, "norm")


def test_every_registered_net_takes_every_finetune_policy():
    for name in ("meso4", "xception", "timm"):
        net = create_net(name, input_size=64)
        counts = apply_finetune(net, "norm")
        assert 0 < counts.head <= counts.norm < counts.full


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_local_weights_load_from_safetensors_or_a_state_dict_and_a_foreign_head_is_dropped(tmp_path, fmt):
    torch.manual_seed(1)
    source = timm.create_model("resnet10t", pretrained=False, num_classes=1000)  # an ImageNet checkpoint
    state = {f"model.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / f"w.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    net = TimmDetector(name="resnet10t", weights=str(path), input_size=32)
    assert torch.equal(net.backbone.conv1[0].weight, source.conv1[0].weight)
    assert net.weights_report["dropped"] == ["fc.weight"] or "fc.weight" not in net.backbone.state_dict()
    assert net.has_weights


def test_a_weights_file_that_would_run_code_or_does_not_fit_is_refused(tmp_path):
    pickled = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), pickled)  # a pickled object, not a state dict
    with pytest.raises(UserError, match="weights_only"):
        TimmDetector(name="resnet10t", weights=str(pickled))
    other = tmp_path / "other.pt"
    torch.save(timm.create_model("test_vit").state_dict(), other)
    with pytest.raises(UserError, match="does not fit"):
        TimmDetector(name="resnet10t", weights=str(other))
    with pytest.raises(UserError, match="no such file"):
        TimmDetector(name="resnet10t", weights=str(tmp_path / "missing.safetensors"))


def test_pretrained_offline_says_so_in_one_line(monkeypatch):
    real_create = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co' to load this file.\nmore")
        return real_create(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(UserError) as err:
        TimmDetector(name="resnet10t", pretrained=True)
    message = str(err.value)
    assert "\n" not in message and "model.net.weights=" in message and "resnet10t" in message
    with pytest.raises(UserError, match="not a timm model"):
        TimmDetector(name="resnet_does_not_exist")


@pytest.mark.parametrize(
    "overrides, timm_name, finetune",
    [
        (["model=timm", "model.net.name=efficientnet_b0"], "efficientnet_b0", "full"),
        (["experiment=sbi_cpu"], "efficientnet_b0", "full"),
        (["experiment=clip_ln", "model.net.name=test_vit"], "test_vit", "norm"),
        (["experiment=sbi"], "tf_efficientnet_b4.ap_in1k", "full"),
    ],
)
def test_configs_compose_and_build(overrides, timm_name, finetune, tmp_path):
    cfg = compose_config("train.yaml", overrides, tmp_path)
    assert cfg.model.net.name == timm_name and cfg.model.finetune == finetune
    assert cfg.model.net.pretrained is False  # nothing downloads by default
    if "experiment=sbi" in overrides[0]:
        assert cfg.data.synthesis == "sbi"
    if timm_name.startswith("tf_efficientnet_b4"):
        assert timm.models.get_pretrained_cfg(timm_name).input_size[-1] == 380
        return  # 19 M parameters: composing is enough here
    module = hydra.utils.instantiate(cfg.model)
    assert module.finetune_counts.policy == finetune


def test_a_checkpoint_config_of_a_timm_net_never_downloads_or_reads_start_weights_again(tmp_path):
    from safetensors.torch import save_file

    from dfdetect.models.lightning.checkpoint import build_detector

    path = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet10t").state_dict().items()}, str(path))
    cfg = compose_config(
        "train.yaml", ["model=timm", "model.net.name=resnet10t", f"model.net.weights={path}"], tmp_path
    )
    module = build_detector(cfg.model)
    assert module.net.has_weights
    stored = module.model_config["net"]
    assert stored["pretrained"] is False and stored["weights"] is None and stored["name"] == "resnet10t"
