"""Face crops of a clip along its track: aligned, cut and written as JPEGs into a workspace, or kept
in memory after the same JPEG round trip (predict.py, serving), so that both give the same pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dfdetect.preprocess.align import crop_side, eye_angle, warp_face
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.preprocess.track import Track


@dataclass
class ClipResult:
    start: int
    frame_indices: list[int]
    face_boxes: list[list[float]]
    det_prob: list[float]
    paths: list[str]
    face: int = 0  # which face of the file (0: the largest; more only with max_faces > 1)


def _frame_name(start: int, index: int, face: int = 0) -> str:
    return f"{start:06d}_{index:06d}.jpg" if face == 0 else f"{start:06d}_{index:06d}_f{face}.jpg"


class CropWriter:
    """Crops faces along a track and writes them into the workspace as JPEGs."""

    def __init__(self, settings: ClipSettings, workspace: Path, rel_dir: str):
        self.settings = settings
        self.workspace = workspace
        self.rel_dir = rel_dir

    def save(self, name: str, crop: np.ndarray) -> str:
        """Keeps one BGR crop; returns the path recorded for it."""
        ok = cv2.imwrite(
            str(self.workspace / name), crop, [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality]
        )
        if not ok:
            raise OSError(f"cannot write {self.workspace / name}")
        return f"{self.rel_dir}/{name}"

    def clip_geometry(self, track: Track) -> tuple[float, float]:
        s = self.settings
        sides = [crop_side(b, s.margin) for b in track.boxes[track.detected]]
        angle = 0.0
        if s.align and track.landmarks is not None:
            angles = [eye_angle(lm) for lm in track.landmarks[track.detected]]
            limit = math.radians(s.max_angle)
            angle = float(np.clip(np.median(angles), -limit, limit))
        return float(np.mean(sides)), angle

    def write(
        self,
        start: int,
        indices: list[int],
        frames: list[np.ndarray],
        track: Track,
        scale: float = 1.0,
        face: int = 0,
    ) -> ClipResult:
        side, angle = self.clip_geometry(track)
        paths = []
        for index, frame, box in zip(indices, frames, track.boxes, strict=True):
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            crop = warp_face(frame, centre, side, angle, self.settings.size)
            paths.append(self.save(_frame_name(start, index, face), crop))
        return ClipResult(
            start=start,
            frame_indices=[int(i) for i in indices],
            face_boxes=[[round(float(v) * scale, 2) for v in b] for b in track.boxes],
            det_prob=[round(float(p), 5) for p in track.probs],
            paths=paths,
            face=face,
        )


class MemoryCropWriter(CropWriter):
    """Keeps the crops in memory as RGB arrays, each passed through the JPEG encoding a clip store
    applies (same quality, same decoder), so that a detector sees exactly what it was trained and
    evaluated on."""

    def __init__(self, settings: ClipSettings):
        super().__init__(settings, Path("."), "")
        self.crops: dict[str, np.ndarray] = {}

    def save(self, name: str, crop: np.ndarray) -> str:
        ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality])
        if not ok:
            raise OSError(f"cannot encode crop {name}")
        rgb = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        self.crops[name] = rgb
        return name
