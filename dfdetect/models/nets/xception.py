"""Xception (Chollet 2017) as the FaceForensics++ baseline uses it (Rössler et al. 2019).

timm's ``legacy_xception`` is the Cadene port of the Keras Xception that FF++ fine-tunes: 299x299
input, mean = std = 0.5 (``input_scaling="ffpp"``, the net's default). The Tariq lab's notebook
trains Keras' Xception from scratch on 240 px frames divided by 255: ``input_scaling="unit"``
(mean 0, std 1), what ``dfdetect/conf/model/xception.yaml`` uses. Our head is one P(fake) logit. Nothing is ever downloaded: pass
``weights=<file>`` to start from a local state dict, which may be

- timm / Cadene ImageNet weights (1000-way ``fc``): the backbone is loaded, the head stays fresh;
- an FF++ ``TransferModel`` state dict (``model.`` prefix, ``last_linear`` 2-way head, class 1 =
  fake): its head becomes the logit ``z_fake - z_real``, which equals log-odds of its softmax;
- a state dict of this net (one-logit head).
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from dfdetect.models.nets.base import FrameDetector
from dfdetect.models.nets.registry import UNIT_SCALE, NetInfo, register_net
from dfdetect.models.weights.state_keys import strip_prefixes

TIMM_NAME = "legacy_xception"
_PREFIXES = ("module.", "net.", "model.")
# mean and std on the 0-1 scale: FF++ / Cadene (x - 0.5) / 0.5, or Keras' x / 255
INPUT_SCALINGS = {"ffpp": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), "unit": UNIT_SCALE}


def timm_xception_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key names and shapes of FF++ / Cadene / wrapped checkpoints -> timm ``legacy_xception``."""
    out = {}
    for key, value in state.items():
        key = strip_prefixes(key, _PREFIXES)
        key = key.replace("last_linear.1.", "fc.").replace("last_linear.", "fc.")
        if key.endswith("pointwise.weight") and value.ndim == 2:  # Cadene's original 1x1 kernels
            value = value[:, :, None, None]
        out[key] = value
    return out


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"Xception weight file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"cannot read {path} as a state dict ({err}); a pickled FF++ model can be converted "
            "with torch.save(torch.load(p, weights_only=False).state_dict(), out)"
        ) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a Lightning checkpoint
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def load_xception_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local state dict into a timm ``legacy_xception`` with a one-logit ``fc``."""
    path = Path(path)
    state = timm_xception_state(read_state_dict(path))
    head_w, head_b = state.pop("fc.weight", None), state.pop("fc.bias", None)
    if head_w is not None and head_w.shape[0] == 2:
        head_w, head_b = (head_w[1] - head_w[0])[None], (head_b[1] - head_b[0])[None]
    keep_fresh_head = head_w is None or head_w.shape[0] != 1
    if not keep_fresh_head:
        state["fc.weight"], state["fc.bias"] = head_w, head_b
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{path} does not fit {TIMM_NAME}: {err}") from err
    if keep_fresh_head:
        missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit {TIMM_NAME}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )


@register_net(
    "xception",
    NetInfo(
        paper="Chollet, Xception, CVPR 2017; FaceForensics++ binary head (Rössler et al., ICCV 2019)",
        code="timm legacy_xception (Cadene port of Keras Xception)",
        input_size=299,
        mean=INPUT_SCALINGS["ffpp"][0],
        std=INPUT_SCALINGS["ffpp"][1],
        kind="frame",
        params=20_809_001,
        weight_formats=("torch_state_dict",),
    ),
)
class Xception(FrameDetector):
    def __init__(
        self,
        input_size: int | None = None,
        dropout: float = 0.0,
        weights: str | None = None,
        input_scaling: str = "ffpp",
    ):
        super().__init__()
        if input_scaling not in INPUT_SCALINGS:
            raise ValueError(f"input_scaling must be one of {sorted(INPUT_SCALINGS)}, got {input_scaling!r}")
        self.mean, self.std = INPUT_SCALINGS[input_scaling]
        self.input_size = self.native_input_size(input_size)
        self.model = timm.create_model(TIMM_NAME, pretrained=False, num_classes=1, drop_rate=dropout)
        if weights is not None:
            load_xception_weights(self.model, weights)

    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(frames).squeeze(1)
