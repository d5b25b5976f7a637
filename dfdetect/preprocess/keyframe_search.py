"""The face tracks of a video's clips, clip after clip: where the detector looks on each clip's
keyframes, and what it carries from one clip to the next (#28).

Keyframes go through the detector's fast search, which after the first face ignores faces below
``FACE_FLOOR`` times the smallest face tracked so far; a clip with no face there is searched again
for small faces, and once that finds one, the rest of the video is searched for small faces too
(distant people). After a clip with a face, the next clip's keyframes are searched only near its
faces (``face.track_region``), except at a scene cut, when the face is lost and every
``face.redetect_every`` clips. Tracks are then refined where the keyframes cannot be trusted
(refine.py).
"""

from __future__ import annotations

import numpy as np

from dfdetect.preprocess.faces import Face, FaceDetector
from dfdetect.preprocess.near import detect_near, scene_change, thumbnail_histogram
from dfdetect.preprocess.refine import (
    fast_motion_spots,
    fast_search_size,
    lost_face_spots,
    merge_faces,
    small_face_spots,
)
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.preprocess.track import Track, build_tracks

# the fast search skips faces smaller than this fraction of the smallest face tracked so far
FACE_FLOOR = 0.5
# keyframes searched again (refine.py): a window this many face sides wide around the box
REFINE_REGION = 3.0


class KeyframeSearch:
    """Tracks clip by clip for one video; ``stats`` counts the searches."""

    def __init__(self, detector: FaceDetector, settings: ClipSettings, max_faces: int = 1):
        self.detector = detector
        self.settings = settings
        self.max_faces = max(1, int(max_faces))
        self.stats = {
            "detector_frames": 0,  # keyframes searched whole
            "near_frames": 0,  # keyframes searched near the faces of the clip before
            "refined_frames": 0,  # frames searched again near a small or fast face (refine.py)
            "edge_frames": 0,  # faces searched again around their own box (face.refine_edge)
            "full_searches": 0,
            "scene_cuts": 0,
        }
        self.near_boxes: list[np.ndarray] = []  # last boxes of the faces of the last clip
        self.last_hist: np.ndarray | None = None
        self.since_full = 0  # clips searched near since the last whole-frame search
        self.small_faces = False
        self.face_side: float | None = None  # smallest tracked face so far (pixels)

    def tracks(self, clips: list[list[np.ndarray]]) -> list[list[Track]]:
        """Each clip's tracks, largest face first (empty where no face was found); the clips
        follow the ones given before, in order."""
        keys = self.settings.keyframe_positions(self.settings.frames_per_clip)
        detections: list[dict[int, list[Face]] | None] = [self._detect_near(clip, keys) for clip in clips]
        full = [i for i, d in enumerate(detections) if d is None]
        if full:
            self.stats["full_searches"] += len(full)
            self.since_full = 0
            whole = self._detect_whole([clips[i] for i in full], self.small_faces)
            for i, dets in zip(full, whole, strict=True):
                detections[i] = dets
        # which clips' keyframes were searched for small faces (the retry below may switch it on)
        searched_small = [self.small_faces] * len(clips)
        retry = [] if self.small_faces else [i for i in full if not any(detections[i].values())]
        if retry:
            more = self._detect_whole([clips[i] for i in retry], small_faces=True)
            self.small_faces = any(any(dets.values()) for dets in more)
            self.stats["small_faces"] = self.small_faces
            for i, dets in zip(retry, more, strict=True):
                detections[i] = dets
                searched_small[i] = True
        found = []
        for clip, dets, small in zip(clips, detections, searched_small, strict=True):
            tracks = self._refined_tracks(clip, dets, small)
            self._carry(tracks)
            found.append(tracks)
        return found

    def _floor(self) -> float | None:
        return None if self.face_side is None else FACE_FLOOR * self.face_side

    def _detect_whole(self, clips: list[list[np.ndarray]], small_faces: bool) -> list[dict[int, list[Face]]]:
        """The clips' keyframes searched whole, in one detector batch: faces per keyframe, per clip."""
        keys = self.settings.keyframe_positions(self.settings.frames_per_clip)
        frames = [clip[p] for clip in clips for p in keys]
        self.stats["detector_frames"] += len(frames)
        found = self.detector.detect(frames, small_faces=small_faces, min_face_size=self._floor())
        n = len(keys)
        return [dict(zip(keys, found[k * n : (k + 1) * n], strict=True)) for k in range(len(clips))]

    def _detect_near(self, clip: list[np.ndarray], keys: list[int]) -> dict[int, list[Face]] | None:
        """The clip's keyframes searched near the faces of the clip before, or None where the whole
        frames must be searched (first clip, no face before, a scene cut, ``redetect_every``
        reached, no face near on one of the keyframes)."""
        s = self.settings
        hist = thumbnail_histogram(clip[keys[0]])
        previous, self.last_hist = self.last_hist, thumbnail_histogram(clip[keys[-1]])
        if previous is not None and scene_change(previous, hist) > s.scene_cut:
            self.stats["scene_cuts"] += 1
            return None
        if not s.track_region or not self.near_boxes or self.since_full + 1 >= s.redetect_every:
            return None
        self.stats["near_frames"] += len(keys)
        frames = [clip[p] for p in keys]
        found = detect_near(
            self.detector,
            frames,
            self.near_boxes,
            s.track_region,
            self._floor(),
            self.small_faces,
            s.refine_edge,
            self.stats,
        )
        if not all(found):  # lost on a keyframe (moved out of the region, or gone): search whole
            return None
        self.since_full += 1
        return dict(zip(keys, found, strict=True))

    def _search_again(self, clip: list[np.ndarray], spots: dict[int, list[np.ndarray]], small: bool) -> dict:
        s = self.settings
        self.stats["refined_frames"] += len(spots)
        floor = None if small else self._floor()
        return {
            pos: detect_near(
                self.detector, [clip[pos]], boxes, REFINE_REGION, floor, small, s.refine_edge, self.stats
            )[0]
            for pos, boxes in spots.items()
        }

    def _refined_tracks(
        self, clip: list[np.ndarray], dets: dict[int, list[Face]], small: bool
    ) -> list[Track]:
        """The clip's tracks, after searching again near faces the fast search found below its
        size (``face.refine_small``), on the middle frames of fast moves (``face.refine_motion_iou``)
        and towards frames where a track was lost (``face.refine_lost``); ``small``: the keyframes
        were searched for small faces."""
        s = self.settings
        tracks = self._tracks(dets)
        fast_search = fast_search_size(self.detector)
        if tracks and s.refine_small and fast_search and not small:
            spots = small_face_spots(tracks, fast_search)
            if spots:
                small = True
                for pos, faces in self._search_again(clip, spots, small=True).items():
                    dets[pos] = merge_faces(dets[pos], faces)
                tracks = self._tracks(dets)
        while tracks:
            searched = set(dets)
            spots = fast_motion_spots(tracks, s.refine_motion_iou, searched)
            if s.refine_lost:
                for pos, boxes in lost_face_spots(tracks, searched).items():
                    spots.setdefault(pos, []).extend(boxes)
            if not spots:
                break
            dets.update(self._search_again(clip, spots, small))
            tracks = self._tracks(dets)
        return tracks

    def _tracks(self, dets: dict[int, list[Face]]) -> list[Track]:
        s = self.settings
        return build_tracks(dets, s.frames_per_clip, s.min_track_iou, self.max_faces, chain=s.refine_lost)

    def _carry(self, tracks: list[Track]) -> None:
        """What the next clip's search starts from: these faces' last boxes and the smallest face
        tracked so far (a clip without a face leaves no boxes to search near)."""
        if not tracks:
            self.near_boxes = []
            return
        self.near_boxes = [t.boxes[t.detected][-1] for t in tracks]
        track = tracks[0]
        sides = track.boxes[track.detected, 2:] - track.boxes[track.detected, :2]
        self.face_side = min(self.face_side or np.inf, float(sides.max(axis=1).min()))
