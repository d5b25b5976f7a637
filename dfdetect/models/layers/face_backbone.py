"""The face-recognition networks ABNet, FakeSpotter and FTDetect share (``face_net``):

- ``dlib_resnet``: dlib's trained face-recognition ResNet (``dlib_resnet.py``; 128-d descriptor,
  150x150 input, at least ``DLIB_MIN_INPUT_SIZE``), the default of ABNet and FakeSpotter; its
  weights come from dlib's ``.dat`` (``dfdetect.models.nets.dlib_face``);
- ``inception_resnet_v1``: facenet-pytorch's ``InceptionResnetV1`` (FaceNet, Schroff et al. 2015,
  on Szegedy et al.'s Inception-ResNet-v1), with a user's weights or random; described below.

Nothing is ever downloaded: the net is built with ``pretrained=None`` and ``weights=<file>``
loads a local state dict, e.g. facenet-pytorch's ``20180402-114759-vggface2.pt`` (its 8631-way
``logits`` classifier is dropped). Without weights the net starts from PyTorch's default random
initialisation.

Input: RGB faces standardised as facenet-pytorch does, ``(x * 255 - 127.5) / 128``, at least
``MIN_INPUT_SIZE`` pixels square (below 75 the 3x3 stride-2 convolutions of ``mixed_7a`` see less
than 3x3); the published weights were trained at 160x160. Output: a 512-d L2-normalised embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from facenet_pytorch import InceptionResnetV1
from torch import nn

from dfdetect.models.layers.dlib_resnet import (
    DLIB_EMBEDDING_DIM,
    DLIB_INPUT_SIZE,
    DLIB_MEAN_01,
    DLIB_MIN_INPUT_SIZE,
    DLIB_STD_01,
    DlibResNet,
)

FACENET_MEAN = (127.5 / 255,) * 3
FACENET_STD = (128.0 / 255,) * 3
MIN_INPUT_SIZE = 75
NATIVE_INPUT_SIZE = 160
EMBEDDING_DIM = 512
FULL_REPEATS = (5, 10, 5)  # Block35, Block17 and Block8 units of repeat_1, repeat_2, repeat_3
_REPEAT_NAMES = ("repeat_1", "repeat_2", "repeat_3")
_STEM = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "conv2d_3b", "conv2d_4a", "conv2d_4b")


DLIB = "dlib_resnet"
INCEPTION = "inception_resnet_v1"


@dataclass(frozen=True)
class FaceNetFacts:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    native_input_size: int
    min_input_size: int
    embedding_dim: int
    weight_format: str


FACE_NETS = {
    DLIB: FaceNetFacts(
        DLIB_MEAN_01, DLIB_STD_01, DLIB_INPUT_SIZE, DLIB_MIN_INPUT_SIZE, DLIB_EMBEDDING_DIM, "dlib_dat"
    ),
    INCEPTION: FaceNetFacts(
        FACENET_MEAN, FACENET_STD, NATIVE_INPUT_SIZE, MIN_INPUT_SIZE, EMBEDDING_DIM, "facenet_state_dict"
    ),
}


def face_net_facts(face_net: str) -> FaceNetFacts:
    if face_net not in FACE_NETS:
        raise ValueError(f"face_net must be one of {list(FACE_NETS)}, got {face_net!r}")
    return FACE_NETS[face_net]


def face_input_size(requested: int | None, face_net: str = INCEPTION) -> int:
    """The working resolution for a face net asked to run at ``requested`` pixels (``None``: its
    native size)."""
    facts = face_net_facts(face_net)
    return max(int(requested or facts.native_input_size), facts.min_input_size)


def build_face_backbone(
    weights: str | Path | None = None,
    block_repeats: Sequence[int] = FULL_REPEATS,
    dropout: float = 0.6,
) -> InceptionResnetV1:
    """InceptionResnetV1 (embedding output), with local weights when ``weights`` is given.

    ``block_repeats`` below (5, 10, 5) keeps only the first units of each repeated stage: a
    cheaper net for CPU budgets and tests, which cannot take the published weights.
    """
    repeats = tuple(int(r) for r in block_repeats)
    if len(repeats) != 3 or any(not 1 <= r <= full for r, full in zip(repeats, FULL_REPEATS, strict=True)):
        raise ValueError(f"block_repeats must be 3 counts within {FULL_REPEATS}, got {list(block_repeats)}")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"face-recognition weight file not found: {weights}")
    net = InceptionResnetV1(pretrained=None, classify=False, dropout_prob=dropout)
    for name, keep in zip(_REPEAT_NAMES, repeats, strict=True):
        stage = getattr(net, name)
        if keep < len(stage):
            setattr(net, name, nn.Sequential(*list(stage)[:keep]))
    if weights is not None:
        if repeats != FULL_REPEATS:
            raise ValueError(f"{weights}: face-recognition weights need block_repeats={list(FULL_REPEATS)}")
        load_face_weights(net, weights)
    return net


def load_face_weights(net: nn.Module, path: str | Path) -> None:
    """Load a facenet-pytorch InceptionResnetV1 state dict (or a checkpoint holding one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face-recognition weight file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read {path} as a state dict: {err}") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit InceptionResnetV1: {err}") from err


def face_embeddings(backbone: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Normalised clips ``(B, T, C, H, W)`` -> one L2-normalised embedding per clip, ``(B, D)``:
    the mean of the frame embeddings, normalised again."""
    b, t = clips.shape[:2]
    frames = backbone(clips.flatten(0, 1))
    return F.normalize(frames.view(b, t, -1).mean(dim=1), dim=1)


def coverage_layer_names(backbone: nn.Module) -> list[str]:
    """Every layer whose neurons FakeSpotter monitors, in forward order: the six stem
    convolutions, every Inception-ResNet unit, both reduction blocks, the last unit and the
    embedding's batch norm."""
    if isinstance(backbone, DlibResNet):  # the stem, every residual block, the descriptor
        return backbone.layer_names()
    units = [f"{stage}.{i}" for stage in _REPEAT_NAMES for i in range(len(getattr(backbone, stage)))]
    n1, n2 = len(backbone.repeat_1), len(backbone.repeat_2)
    return [
        *_STEM,
        *units[:n1],
        "mixed_6a",
        *units[n1 : n1 + n2],
        "mixed_7a",
        *units[n1 + n2 :],
        "block8",
        "last_bn",
    ]


class LayerActivations:
    """Forward hooks that keep the outputs of named sub-modules for one ``with`` block:

    ``with LayerActivations(net, names) as outputs: net(x)`` leaves ``outputs[name]`` set.
    """

    def __init__(self, model: nn.Module, names: Sequence[str]):
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise KeyError(f"no layers named {missing} in {type(model).__name__}")
        self.modules = {n: modules[n] for n in names}
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def _keep(self, name: str):
        def hook(module, inputs, output):
            self.outputs[name] = output

        return hook

    def __enter__(self) -> dict[str, torch.Tensor]:
        self.outputs = {}
        self._handles = [m.register_forward_hook(self._keep(n)) for n, m in self.modules.items()]
        return self.outputs

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
