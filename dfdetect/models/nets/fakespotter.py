"""FakeSpotter (Wang et al., IJCAI 2020, arXiv 1909.06122): monitor the neurons of a frozen
face-recognition network layer by layer and classify their activation pattern with a shallow
neural network. The authors' code is not public; docs/models.md ("FakeSpotter") records our
reading of the paper and our choices.

- Monitored network (``face_net``): dlib's trained face-recognition ResNet (default, from the
  installed ``.dat``; layers ``stem``, ``blocks.0``-``blocks.13``, ``fc``) or InceptionResnetV1 with
  a user's weights (30 layers, see ``face_backbone.coverage_layer_names``).
- Neurons: every channel of every monitored layer (its output averaged over space, the usual
  convention for convolutional neurons), and the units of the embedding.
- Mean neuron coverage (MNC): layer l's threshold T_l is the mean output of its neurons over the
  training faces; a neuron is activated by a face when its output exceeds T_l, and
  ``MNC(l, x)`` is the share of layer l's neurons that x activates. The thresholds are buffers,
  fitted by ``FakeSpotterModule`` before the classifier trains (``thresholds_fitted``).
- A frozen network without weights is random; its batch-norm statistics are then re-estimated
  on the training faces before the thresholds (``calibrate_batch_norm``), or its activations
  shrink towards zero layer after layer.
- Features per frame (``features="coverage"``, default): the per-layer MNC vector, one value per
  monitored layer (the paper's feature); ``"activated"`` (richer, our option): the outputs of the
  activated neurons (others zeroed), concatenated over layers, plus the MNC values.
- Classifier: the paper's shallow fully connected network (five linear layers with ReLU by
  default), after a batch norm of its input. Frame logits are averaged over the clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from dfdetect.models.layers.dlib_resnet import DLIB_INPUT_SIZE, DLIB_MEAN_01, DLIB_STD_01
from dfdetect.models.layers.face_backbone import (
    DLIB,
    FULL_REPEATS,
    LayerActivations,
    coverage_layer_names,
    face_input_size,
    face_net_facts,
)
from dfdetect.models.layers.frozen import Frozen
from dfdetect.models.nets.base import FrameDetector
from dfdetect.models.nets.dlib_face import INSTALLED, build_face_net
from dfdetect.models.nets.registry import NetInfo, register_net

FEATURE_KINDS = ("coverage", "activated")
# trainable parameters with the defaults: dlib's 16 monitored layers -> batch norm (32) -> 256 -> 128
# -> 64 -> 32 -> 1 (4,352 + 32,896 + 8,256 + 2,080 + 33)
PARAMS = 47_649


def neuron_values(activation: torch.Tensor) -> torch.Tensor:
    """A layer's output -> one value per neuron ``(N, C)``: channels averaged over space."""
    return activation.mean(dim=(2, 3)) if activation.ndim == 4 else activation.flatten(1)


def shallow_classifier(
    in_dim: int, hidden: Sequence[int], dropout: float, input_norm: bool = True
) -> nn.Sequential:
    """[Batch-normalised] features -> fully connected ReLU layers with dropout -> one logit."""
    layers: list[nn.Module] = [nn.BatchNorm1d(in_dim)] if input_norm else []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


@register_net(
    "fakespotter",
    NetInfo(
        paper="Wang et al., FakeSpotter, IJCAI 2020",
        code="none published; monitored net: dlib's face-recognition ResNet (or InceptionResnetV1)",
        input_size=DLIB_INPUT_SIZE,
        mean=DLIB_MEAN_01,
        std=DLIB_STD_01,
        kind="frame",
        params=PARAMS,
        weight_formats=("dlib_dat", "facenet_state_dict"),
    ),
)
class FakeSpotter(FrameDetector):
    def __init__(
        self,
        input_size: int | None = None,
        weights: str | Path | None = INSTALLED,
        face_net: str = DLIB,
        block_repeats: Sequence[int] = FULL_REPEATS,
        layers: Sequence[str] | None = None,
        features: str = "coverage",
        hidden: Sequence[int] = (256, 128, 64, 32),
        dropout: float = 0.2,
        input_norm: bool = True,
        calibrate_batch_norm: bool | None = None,
    ):
        super().__init__()
        if features not in FEATURE_KINDS:
            raise ValueError(f"features must be one of {FEATURE_KINDS}, got {features!r}")
        facts = face_net_facts(face_net)
        self.mean, self.std = facts.mean, facts.std
        self.input_size = face_input_size(input_size, face_net)
        self.features = features
        # a random network's default batch-norm statistics shrink activations towards zero
        self.calibrate_bn = weights is None if calibrate_batch_norm is None else calibrate_batch_norm
        backbone = build_face_net(face_net, weights, block_repeats)
        self.layers = list(layers) if layers else coverage_layer_names(backbone)
        self.backbone = Frozen(backbone)
        side = facts.min_input_size
        self.widths = [o.shape[1] for o in self.neuron_outputs(torch.zeros(1, 3, side, side))]
        self.register_buffer("thresholds", torch.zeros(len(self.layers)))
        self.register_buffer("thresholds_fitted", torch.tensor(False))
        in_dim = len(self.layers) + (sum(self.widths) if features == "activated" else 0)
        self.classifier = shallow_classifier(in_dim, hidden, dropout, input_norm)

    def neuron_outputs(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Normalised frames ``(N, C, H, W)`` -> per monitored layer, ``(N, neurons)``."""
        with LayerActivations(self.backbone.module, self.layers) as outputs:
            self.backbone(frames)
        return [neuron_values(outputs[name]) for name in self.layers]

    @torch.no_grad()
    def calibrate_batch_norm(self, frame_batches: Iterable[torch.Tensor]) -> None:
        """Re-estimate the frozen network's batch-norm statistics as plain averages over the
        given normalised frames (its weights stay as they are)."""
        norms = [m for m in self.backbone.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
            m.train()
        try:
            for frames in frame_batches:
                self.backbone(frames)
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
                m.eval()

    @torch.no_grad()
    def threshold_sums(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per layer, the sum of all neuron outputs over ``frames`` and how many were summed."""
        outs = self.neuron_outputs(frames)
        sums = torch.stack([o.double().sum() for o in outs])
        counts = torch.tensor([o.numel() for o in outs], dtype=torch.float64, device=sums.device)
        return sums, counts

    def set_thresholds(self, thresholds: torch.Tensor) -> None:
        if thresholds.shape != self.thresholds.shape or not torch.isfinite(thresholds).all():
            raise ValueError(f"need {len(self.layers)} finite layer thresholds, got {thresholds}")
        self.thresholds.copy_(thresholds)
        self.thresholds_fitted.fill_(True)

    def coverage_features(self, frames: torch.Tensor) -> torch.Tensor:
        outs = self.neuron_outputs(frames)
        active = [o > t for o, t in zip(outs, self.thresholds, strict=True)]
        coverage = torch.stack([a.float().mean(dim=1) for a in active], dim=1)
        if self.features == "coverage":
            return coverage
        return torch.cat([*(o * a for o, a in zip(outs, active, strict=True)), coverage], dim=1)

    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.coverage_features(frames)).squeeze(1)
