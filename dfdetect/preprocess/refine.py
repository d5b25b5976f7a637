"""Where a clip's keyframe boxes cannot be trusted, and what to search again (#28).

Two cases, both measured against per-frame MTCNN on whole videos (docs/preprocessing.md):
- a face smaller than the detector's fast search is made for (``min_face_size``) is still found by
  the pyramid levels made for larger faces, a few pixels off the full pyramid's box: that keyframe
  is searched again near the face with the small-face pyramid;
- a face that moves fast between two detected frames is not where the straight line between them
  puts it on the frames in between: the middle frame is searched near the interpolated box, and
  so on while the gaps move fast.
Both searches are windows of the whole-frame pyramid (``near.detect_near``), a fraction of a
keyframe's cost, and only where the track asks for them.
"""

from __future__ import annotations

import numpy as np

from dfdetect.preprocess.faces import Face, box_iou, largest_first
from dfdetect.preprocess.track import Track

# a refined face replaces the faces it overlaps this much
SAME_FACE_IOU = 0.5


def fast_search_size(detector) -> float | None:
    """The smallest face the detector's fast search is made for (``min_face_size``), or None for a
    detector with one search only."""
    return getattr(detector, "min_face_size", None)


def below(box: np.ndarray, min_face_size: float) -> bool:
    """The box's longer side is under ``min_face_size``."""
    return bool(max(box[2] - box[0], box[3] - box[1]) < min_face_size)


def small_face_spots(tracks: list[Track], min_face_size: float) -> dict[int, list[np.ndarray]]:
    """Detected frames (clip positions) where a track's box is smaller than ``min_face_size``,
    with those boxes."""
    spots: dict[int, list[np.ndarray]] = {}
    for track in tracks:
        for pos in np.flatnonzero(track.detected):
            if below(track.boxes[pos], min_face_size):
                spots.setdefault(int(pos), []).append(track.boxes[pos])
    return spots


def fast_motion_spots(tracks: list[Track], min_iou: float, searched: set[int]) -> dict[int, list[np.ndarray]]:
    """Middle frames of the gaps (two or more frames apart) between a track's detected frames
    whose boxes overlap less than ``min_iou``, with the box interpolated there; positions in
    ``searched`` are left out."""
    spots: dict[int, list[np.ndarray]] = {}
    for track in tracks:
        detected = np.flatnonzero(track.detected)
        for p, q in zip(detected[:-1], detected[1:], strict=True):
            middle = int((p + q) // 2)
            if q - p < 2 or middle in searched:
                continue
            if box_iou(track.boxes[p], track.boxes[q]) < min_iou:
                spots.setdefault(middle, []).append(track.boxes[middle])
    return spots


def lost_face_spots(tracks: list[Track], searched: set[int]) -> dict[int, list[np.ndarray]]:
    """Middle frames between a track's detected frame and the next searched frame on either side
    where the track was not found (a face that came in or left during the clip, or moved too far
    to be matched), with the track's box there; positions in ``searched`` are left out."""
    spots: dict[int, list[np.ndarray]] = {}
    order = sorted(searched)
    for track in tracks:
        for i, pos in enumerate(order):
            if not track.detected[pos]:
                continue
            for j in (i - 1, i + 1):
                if 0 <= j < len(order) and not track.detected[order[j]] and abs(order[j] - pos) >= 2:
                    middle = (pos + order[j]) // 2  # not searched: order[j] is the next one searched
                    spots.setdefault(middle, []).append(track.boxes[middle])
    return spots


def merge_faces(found: list[Face], refined: list[Face]) -> list[Face]:
    """``refined`` faces in place of the ``found`` ones they overlap; largest first."""
    kept = [f for f in found if all(box_iou(f.box, r.box) < SAME_FACE_IOU for r in refined)]
    return largest_first(kept + refined)
