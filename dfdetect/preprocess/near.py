"""Searching a clip's keyframes near the faces of the clip before (face tracking across clips).

Once a clip has a face, the next clip's keyframes need not go through the detector whole: a
square region ``track_region`` face sides wide around each face tracked so far holds it unless
the person moved far or the scene changed. The detector runs on those regions (a fraction of the
frame's pixels; with the MTCNN cascade, the very pyramid cells of the whole-frame search that
lie in the region, so a face well inside it gets the same box), and the
caller searches the whole frame where this finds nothing, at a scene cut (the frame's grey-level
histogram changed), and every few clips (a new, larger face that came in elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from dfdetect.preprocess.faces import Face, FaceDetector, box_iou, largest_first

THUMB_SIZE = (64, 36)
# a search region is at least this fraction of the frame's shorter side
MIN_REGION = 0.25
HIST_BINS = 32
# a face this close to a region's edge (in its longer sides) may have been found from cells that
# lie partly outside the region, with another box than the whole-frame search's: searched again
EDGE_MARGIN = 0.25


def search_region(box: np.ndarray, factor: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``x0, y0, x1, y1``: the square ``factor`` times the box's longer side (at least
    ``MIN_REGION`` of the frame's shorter side) around its centre, clipped to the frame of
    ``shape`` (H, W, ...)."""
    h, w = shape[:2]
    side = max(float(box[2] - box[0]), float(box[3] - box[1])) * factor
    side = max(side, MIN_REGION * min(h, w))  # small faces move far in face sides between clips
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = max(int(cx - side / 2), 0), max(int(cy - side / 2), 0)
    x1, y1 = min(int(np.ceil(cx + side / 2)), w), min(int(np.ceil(cy + side / 2)), h)
    return x0, y0, x1, y1


def _moved(face: Face, x0: int, y0: int) -> Face:
    shift = np.array([x0, y0], dtype=np.float32)
    landmarks = None if face.landmarks is None else face.landmarks + shift
    return Face(box=face.box + np.tile(shift, 2), prob=face.prob, landmarks=landmarks)


def near_edge(box: np.ndarray, region: tuple[int, int, int, int], shape: tuple[int, ...]) -> bool:
    """The box comes within ``EDGE_MARGIN`` of its longer side of an edge of the region that is
    not an edge of the frame (or reaches past it)."""
    h, w = shape[:2]
    x0, y0, x1, y1 = region
    m = EDGE_MARGIN * max(float(box[2] - box[0]), float(box[3] - box[1]))
    return bool(
        (box[0] < x0 + m and x0 > 0)
        or (box[1] < y0 + m and y0 > 0)
        or (box[2] > x1 - m and x1 < w)
        or (box[3] > y1 - m and y1 < h)
    )


def detect_near(
    detector: FaceDetector,
    frames: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    factor: float,
    min_face_size: float | None = None,
    small_faces: bool = False,
    recentre: bool = False,
    stats: dict | None = None,
) -> list[list[Face]]:
    """Faces of each frame found in the regions around ``boxes`` (frame pixels, largest first);
    a face found in two overlapping regions counts once. ``recentre``: a face found at its
    region's edge (it moved towards the region's side; the cells beyond were not searched, so its
    box may be off) is searched again in a region around its own box, and takes the box of the face
    found there that overlaps it most (IoU >= 0.5; none: it keeps its own), counted in
    ``stats["edge_frames"]`` when ``stats`` is given."""
    regions = [search_region(b, factor, frames[0].shape) for b in boxes]
    windows = getattr(detector, "detect_windows", None)
    found = None if windows is None else windows(frames, regions, small_faces, min_face_size)
    moved = found is None
    if found is None:  # a detector without windows: crops, boxes moved back into the frame
        crops = [frame[y0:y1, x0:x1] for frame in frames for x0, y0, x1, y1 in regions]
        found = detector.detect(crops, small_faces=small_faces, min_face_size=min_face_size)
    out = []
    for f, frame in enumerate(frames):
        faces: list[Face] = []
        for r, region in enumerate(regions):
            for face in found[f * len(regions) + r]:
                face = _moved(face, *region[:2]) if moved else face
                if recentre and near_edge(face.box, region, frame.shape):
                    if stats is not None:
                        stats["edge_frames"] = stats.get("edge_frames", 0) + 1
                    again = detect_near(
                        detector, [frame], [face.box], factor, min_face_size, small_faces, False
                    )[0]
                    same = [g for g in again if box_iou(g.box, face.box) >= 0.5]
                    face = max(same, key=lambda g: box_iou(g.box, face.box), default=face)
                if all(box_iou(face.box, kept.box) < 0.5 for kept in faces):
                    faces.append(face)
        out.append(largest_first(faces))
    return out


def thumbnail_histogram(frame: np.ndarray) -> np.ndarray:
    """Normalised grey-level histogram of a small copy of a BGR frame (what a scene cut changes)."""
    small = cv2.resize(frame, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    hist = cv2.calcHist([grey], [0], None, [HIST_BINS], [0, 256]).ravel()
    return (hist / max(hist.sum(), 1.0)).astype(np.float32)


def scene_change(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two thumbnail histograms: 0 same, 1 disjoint."""
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))
