"""Face tracks within a clip: the largest face found on the clip's detected frames, matched across
them by overlap, and carried to the other frames (linear between detections, held beyond); then,
for ``build_tracks``, the largest face left over, and so on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dfdetect.preprocess.faces import Face, box_iou


@dataclass(frozen=True)
class Track:
    boxes: np.ndarray  # (T, 4) source pixels
    probs: np.ndarray  # (T,) detector confidence; carried frames get the lower bracketing one
    landmarks: np.ndarray | None  # (T, 5, 2), None when the detector gives none
    detected: np.ndarray  # (T,) bool: the box comes from the detector on that very frame
    max_faces: int  # most faces seen on one detected frame


def _carry(positions: list[int], values: np.ndarray, length: int) -> np.ndarray:
    """Values at every frame from values at ``positions`` (sorted): linear between, held outside."""
    flat = values.reshape(len(positions), -1)
    out = np.stack(
        [np.interp(np.arange(length), positions, flat[:, j]) for j in range(flat.shape[1])], axis=1
    )
    return out.reshape((length, *values.shape[1:])).astype(np.float32)


def build_track(detections: Mapping[int, list[Face]], length: int, min_iou: float = 0.3) -> Track | None:
    """``detections`` maps clip positions that went through the detector to the faces found there.
    Returns None when no face was found on any of them."""
    tracks = build_tracks(detections, length, min_iou, max_tracks=1)
    return tracks[0] if tracks else None


def build_tracks(
    detections: Mapping[int, list[Face]],
    length: int,
    min_iou: float = 0.3,
    max_tracks: int | None = None,
    chain: bool = False,
) -> list[Track]:
    """Tracks largest first: each anchored on the largest face not yet in a track, taking on every
    other detected frame the unused face that overlaps the anchor most (at least ``min_iou``);
    ``chain``: overlaps most the track's face on the nearest frame already matched towards the
    anchor (frames taken outwards from it), so that a face that moves far over several detected
    frames stays one track."""
    left = {pos: list(faces) for pos, faces in detections.items()}
    most = max((len(f) for f in detections.values()), default=0)
    tracks: list[Track] = []
    while max_tracks is None or len(tracks) < max_tracks:
        found = [(pos, face) for pos in sorted(left) for face in left[pos]]
        if not found:
            break
        anchor_pos, anchor = max(found, key=lambda pf: (pf[1].area, -pf[0]))
        matched: dict[int, Face] = {anchor_pos: anchor}
        after = [p for p in sorted(left) if p > anchor_pos]
        before = [p for p in sorted(left, reverse=True) if p < anchor_pos]
        for side in (after, before):
            last = anchor
            for pos in side:
                if not left[pos]:
                    continue
                best = max(left[pos], key=lambda f: box_iou(f.box, last.box))
                if box_iou(best.box, last.box) >= min_iou:
                    matched[pos] = best
                    last = best if chain else anchor
        for pos, face in matched.items():
            left[pos] = [f for f in left[pos] if f is not face]
        tracks.append(_track_of(matched, length, most))
    return tracks


def _track_of(matched: dict[int, Face], length: int, max_faces: int) -> Track:
    positions = sorted(matched)
    faces = [matched[p] for p in positions]
    boxes = _carry(positions, np.stack([f.box for f in faces]), length)
    probs_at = np.array([f.prob for f in faces], dtype=np.float32)
    probs = np.empty(length, dtype=np.float32)
    for t in range(length):
        right = np.searchsorted(positions, t)
        if right < len(positions) and positions[right] == t:
            probs[t] = probs_at[right]
        else:
            neighbours = probs_at[max(right - 1, 0) : right + 1]
            probs[t] = neighbours.min()
    landmarks = None
    if all(f.landmarks is not None for f in faces):
        landmarks = _carry(positions, np.stack([f.landmarks for f in faces]), length)
    detected = np.zeros(length, dtype=bool)
    detected[positions] = True
    return Track(boxes=boxes, probs=probs, landmarks=landmarks, detected=detected, max_faces=max_faces)
