"""dlib's 150x150 face chips of single photos or stored face crops (the identity data of PuFace):
MTCNN finds the largest face and its five landmarks, ``face_chip`` cuts the chip. Given to
``IdentityDataModule`` as its ``chipper``; an image without a face gives ``None``."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from dfdetect.preprocess.face_chips import CHIP_SIZE, frame_chips


class MTCNNChipper:
    def __init__(
        self, min_face_size: float = 40, min_prob: float = 0.9, size: int = CHIP_SIZE, device: str = "cpu"
    ):
        self.min_face_size, self.min_prob, self.size, self.device = min_face_size, min_prob, size, device
        self._detector = None

    @property
    def detector(self):
        if self._detector is None:  # MTCNN's weights load on first use, not when the config is built
            from dfdetect.preprocess.mtcnn_detector import MTCNNDetector

            self._detector = MTCNNDetector(
                min_face_size=self.min_face_size, small_face_size=self.min_face_size,
                min_prob=self.min_prob, device=self.device,
            )  # fmt: skip
        return self._detector

    def __call__(self, images_rgb: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        """One RGB chip per image (the largest face), or ``None`` where no face is found."""
        bgr = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2BGR) for im in images_rgb]
        found = frame_chips(self.detector, bgr, largest_only=True, size=self.size) if bgr else []
        return [faces[0][1] if faces else None for faces in found]
