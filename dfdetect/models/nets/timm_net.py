"""Any timm backbone as a single-frame detector (``model=timm model.net.name=<timm model>``).

The model's own ``pretrained_cfg`` is the one source of its input facts: input size, mean and std
(0-1 scale) and resize interpolation. The backbone is built without its classifier
(``num_classes=0``); features are pooled by timm (``pre_logits``), optionally L2-normalised (the
LNCLIP-DF / GenD recipe, ``l2_normalize``), and one linear head gives the P(fake) logit.

Weights, never downloaded unless asked:

- ``pretrained=True``: timm downloads its weights (a user's machine with network access); offline
  this stops with one line saying so, and what to pass instead;
- ``weights=<file>``: a local ``.safetensors`` file or a torch state dict (read with
  ``weights_only=True``); timm / HF hub checkpoints, a Lightning checkpoint of this net, or a
  ``net.``/``model.``/``module.`` prefixed state dict; a classifier of another shape is dropped and
  the head stays fresh.

Which parameters train is ``model.finetune`` (``full``, ``head`` or ``norm``,
:mod:`dfdetect.models.layers.finetune`); the head is :meth:`head_modules`.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.models.nets.base import FrameDetector
from dfdetect.models.nets.registry import NetInfo, register_net
from dfdetect.models.weights.state_keys import strip_prefixes
from dfdetect.utils.errors import UserError

# a small timm model that builds offline in a blink, every parameter trained from the first step
# (timm's ResNets zero-initialise each block's last BatchNorm): the registry entry's defaults
DEFAULT_NAME = "mobilenetv3_small_100"
_PREFIXES = ("module.", "net.", "model.", "backbone.")
_INTERPOLATIONS = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}


def pretrained_facts(name: str) -> dict:
    """Input size, mean, std and interpolation of a timm model, from its ``pretrained_cfg``."""
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:8]
        raise UserError(
            f"model.net.name={name!r} is not a timm model" + (f"; e.g. {', '.join(close)}" if close else "")
        )
    cfg = timm.models.get_pretrained_cfg(name) or {}
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    size = cfg.get("input_size", (3, 224, 224))
    return {
        "input_size": int(size[-1]),
        "mean": tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))),
        "std": tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))),
        "interpolation": cfg.get("interpolation", "bilinear"),
    }


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file, without running code: safetensors, or torch.load with
    ``weights_only=True`` (a Lightning checkpoint's ``state_dict`` is taken)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model.net.weights: no such file {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(
            f"model.net.weights: cannot read {path} as a state dict (weights_only): {err}"
        ) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"model.net.weights: {path} does not hold a state dict of tensors")
    return state


@register_net(
    "timm",
    NetInfo(
        paper="any timm backbone (Wightman, pytorch-image-models); defaults: mobilenetv3_small_100",
        code="timm.create_model(name, num_classes=0) + optional L2-normalised features + linear head",
        input_size=224,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        kind="frame",
        params=1_518_881,
        weight_formats=("torch_state_dict", "safetensors"),
    ),
)
class TimmDetector(FrameDetector):
    def __init__(
        self,
        name: str = DEFAULT_NAME,
        pretrained: bool = False,
        weights: str | None = None,
        input_size: int | None = None,
        l2_normalize: bool = False,
        dropout: float = 0.0,
        model_kwargs: dict | None = None,
    ):
        super().__init__()
        facts = pretrained_facts(name)
        self.timm_name = name
        self.mean, self.std = facts["mean"], facts["std"]
        self.interpolation = _INTERPOLATIONS.get(facts["interpolation"], "bilinear")
        self.input_size = int(input_size or facts["input_size"])
        kwargs = dict(model_kwargs or {})
        if self.input_size != facts["input_size"]:
            kwargs.setdefault("img_size", self.input_size)  # ViTs: position embeddings at this size
        try:
            self.backbone = _create(name, pretrained and weights is None, kwargs)
        except TypeError:  # a CNN: any input size, no img_size argument
            kwargs.pop("img_size", None)
            self.backbone = _create(name, pretrained and weights is None, kwargs)
        self.has_weights = bool(pretrained or weights)  # False: random initialisation
        self.l2_normalize = l2_normalize
        self.dropout = nn.Dropout(dropout)
        # pre-logits width: after a pooled head's own layers (MobileNetV3 conv_head, ...) if it has one
        width = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.head = nn.Linear(width, 1)
        if weights is not None:
            self.load_backbone(weights)

    def head_modules(self) -> list[nn.Module]:
        return [self.head]

    def load_backbone(self, path: str | Path) -> None:
        state = {strip_prefixes(k, _PREFIXES): v for k, v in read_weights(path).items()}
        if "head.weight" in state and state["head.weight"].shape == self.head.weight.shape:
            self.head.load_state_dict({"weight": state.pop("head.weight"), "bias": state.pop("head.bias")})
        own = self.backbone.state_dict()
        dropped = [k for k, v in state.items() if k in own and v.shape != own[k].shape]  # another classifier
        state = {k: v for k, v in state.items() if k in own and k not in dropped}
        missing = [k for k in own if k not in state]
        if not state or len(missing) > len(own) // 2:
            raise UserError(
                f"model.net.weights: {path} does not fit timm {self.timm_name} "
                f"({len(state)} of {len(own)} tensors match; missing e.g. {missing[:3]})"
            )
        self.backbone.load_state_dict(state, strict=False)
        self.weights_report = {"loaded": len(state), "missing": missing, "dropped": dropped}

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        if self.input_size is None or frames.shape[-2:] == (self.input_size, self.input_size):
            return frames
        size = (self.input_size, self.input_size)
        if self.interpolation == "nearest":
            return F.interpolate(frames, size=size, mode="nearest")
        return F.interpolate(frames, size=size, mode=self.interpolation, align_corners=False, antialias=True)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.forward_head(self.backbone.forward_features(frames), pre_logits=True)
        return F.normalize(feats, dim=1) if self.l2_normalize else feats

    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(frames))).squeeze(1)


def _create(name: str, pretrained: bool, kwargs: dict) -> nn.Module:
    if not pretrained:
        return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, **kwargs)
    except TypeError:  # an argument the model does not take (img_size of a CNN): the caller retries
        raise
    except Exception as err:  # no network, no hub access, gated weights
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise UserError(
            f"model.net.pretrained=true: cannot download timm {name} weights here ({first}); "
            f"offline, pass model.net.weights=<local .safetensors or state dict> or model.net.pretrained=false"
        ) from None
