"""One source file -> face clips written as JPEGs into a workspace folder, plus what happened.

Videos are decoded once, sequentially; clips are gathered as their frames arrive and their
keyframes go through the detector ``batch_clips`` clips at a time; then the clips are cropped and
written, so that at most a few clips of full frames are held in memory.
Nothing here raises for bad input: every outcome is an ``ItemResult`` with a status and a reason.
A file whose header announces more than ``max_pixels`` pixels per image is ``skipped`` unread
(reason ``too large: ...``).
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dfdetect.preprocess.crops import ClipResult, CropWriter
from dfdetect.preprocess.faces import Face, FaceDetector, box_iou
from dfdetect.preprocess.media import (
    MAX_IMAGE_PIXELS,
    MediaError,
    MediaTooLarge,
    check_pixels,
    count_frames,
    iter_frames,
    probe_video,
    read_still,
)
from dfdetect.preprocess.near import detect_near, scene_change, thumbnail_histogram
from dfdetect.preprocess.prefetch import prefetch
from dfdetect.preprocess.refine import below, fast_motion_spots, merge_faces, small_face_spots
from dfdetect.preprocess.sampling import plan_clip_starts, top_up_starts
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.preprocess.track import Track, build_tracks

OK, SKIPPED, FAILED = "ok", "skipped", "failed"
# the fast search skips faces smaller than this fraction of the smallest face tracked so far
FACE_FLOOR = 0.5
# keyframes searched again (refine.py): a window this many face sides wide around the box
REFINE_REGION = 3.0


@dataclass
class ItemResult:
    status: str
    reason: str = ""
    clips: list[ClipResult] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


class FaceLinker:
    """Face ids across the clips of a video: a clip's face continues the earlier face its mean box
    overlaps most (IoU >= 0.1), else the one whose centre lies nearest within one face side; any
    other face gets a new id."""

    def __init__(self):
        self.last: list[np.ndarray] = []

    def link(self, boxes: list[np.ndarray]) -> list[int]:
        ids: list[int] = []
        for box in boxes:
            side = max(float(box[2] - box[0]), float(box[3] - box[1]), 1e-6)
            centre = (box[:2] + box[2:]) / 2
            best, best_key = None, None
            for i, prev in enumerate(self.last):
                if i in ids:
                    continue
                iou = box_iou(box, prev)
                dist = float(np.linalg.norm(centre - (prev[:2] + prev[2:]) / 2)) / side
                if (iou >= 0.1 or dist <= 1.0) and (best_key is None or (iou, -dist) > best_key):
                    best, best_key = i, (iou, -dist)
            if best is None:
                best = len(self.last)
                self.last.append(box)
            self.last[best] = box
            ids.append(best)
        return ids


class VideoClipper:
    """Clips of one video. Keyframes go through the detector's fast search, which after the first
    face ignores faces below ``FACE_FLOOR`` times the smallest face tracked so far; a clip with no
    face there is searched again for small faces, and once that finds one, the rest of the video
    is searched for small faces too (distant people). ``max_faces`` > 1 keeps that many faces per
    clip (largest first), each linked to the face of earlier clips it overlaps or lies nearest."""

    def __init__(
        self,
        detector: FaceDetector,
        settings: ClipSettings,
        workspace: Path,
        rel_dir: str,
        max_pixels: int | None = MAX_IMAGE_PIXELS,
        writer: CropWriter | None = None,
        max_faces: int = 1,
    ):
        self.detector = detector
        self.max_faces = max(1, int(max_faces))
        self.faces = FaceLinker()
        self.settings = settings
        self.max_pixels = max_pixels
        self.writer = writer or CropWriter(settings, workspace, rel_dir)
        self.stats = {
            "frames_sampled": 0,
            "frames_with_face": 0,
            "detector_frames": 0,  # keyframes searched whole
            "near_frames": 0,  # keyframes searched near the faces of the clip before
            "refined_frames": 0,  # frames searched again near a small or fast face (refine.py)
            "full_searches": 0,
            "scene_cuts": 0,
            "max_faces": 0,
        }
        self.near_boxes: list[np.ndarray] = []  # last boxes of the faces of the last clip
        self.last_hist: np.ndarray | None = None
        self.since_full = 0  # clips searched near since the last whole-frame search
        self.small_faces = False
        self.face_side: float | None = None  # smallest tracked face so far (pixels)
        self.kept: list[ClipResult] = []
        self.no_face: list[int] = []

    def _detect(self, frames: list[np.ndarray], small_faces: bool) -> list[list[Face]]:
        self.stats["detector_frames"] += len(frames)
        floor = None if self.face_side is None else FACE_FLOOR * self.face_side
        return self.detector.detect(frames, small_faces=small_faces, min_face_size=floor)

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
        floor = None if self.face_side is None else FACE_FLOOR * self.face_side
        self.stats["near_frames"] += len(keys)
        frames = [clip[p] for p in keys]
        found = detect_near(self.detector, frames, self.near_boxes, s.track_region, floor, self.small_faces)
        if not all(found):  # lost on a keyframe (moved out of the region, or gone): search whole
            return None
        self.since_full += 1
        return dict(zip(keys, found, strict=True))

    def _search_again(self, clip: list[np.ndarray], spots: dict[int, list[np.ndarray]], small: bool) -> dict:
        self.stats["refined_frames"] += len(spots)
        floor = None if small or self.face_side is None else FACE_FLOOR * self.face_side
        return {
            pos: detect_near(self.detector, [clip[pos]], boxes, REFINE_REGION, floor, small)[0]
            for pos, boxes in spots.items()
        }

    def _refined_tracks(
        self, clip: list[np.ndarray], dets: dict[int, list[Face]], small: bool
    ) -> list[Track]:
        """The clip's tracks, after searching again near faces the fast search found below its
        size (``face.refine_small``) and on the middle frames of fast moves
        (``face.refine_motion_iou``); ``small``: the keyframes were searched for small faces."""
        s = self.settings
        length = s.frames_per_clip
        tracks = build_tracks(dets, length, s.min_track_iou, self.max_faces)
        fast_search = getattr(self.detector, "min_face_size", None)
        if tracks and s.refine_small and fast_search and not small:
            spots = small_face_spots(tracks, fast_search)
            if spots:
                small = True
                for pos, faces in self._search_again(clip, spots, small=True).items():
                    dets[pos] = merge_faces(dets[pos], faces)
                tracks = build_tracks(dets, length, s.min_track_iou, self.max_faces)
        while tracks and s.refine_motion_iou > 0:
            spots = fast_motion_spots(tracks, s.refine_motion_iou, searched=set(dets))
            if not spots:
                break
            dets.update(self._search_again(clip, spots, small))
            tracks = build_tracks(dets, length, s.min_track_iou, self.max_faces)
        return tracks

    def _detect_clips(self, clips: list[tuple[int, list[np.ndarray]]]) -> None:
        s = self.settings
        length = s.frames_per_clip
        keys = s.keyframe_positions(length)
        detections: list[dict[int, list[Face]] | None] = [self._detect_near(clip, keys) for _, clip in clips]
        full = [i for i, d in enumerate(detections) if d is None]
        if full:
            self.stats["full_searches"] += len(full)
            self.since_full = 0
            found = self._detect([clips[i][1][p] for i in full for p in keys], self.small_faces)
            for k, i in enumerate(full):
                detections[i] = {p: found[k * len(keys) + j] for j, p in enumerate(keys)}
        # which clips' keyframes were searched for small faces (the retry below may switch it on)
        searched_small = [self.small_faces] * len(clips)
        retry = [] if self.small_faces else [i for i in full if not any(detections[i].values())]
        if retry:
            more = self._detect([clips[i][1][p] for i in retry for p in keys], small_faces=True)
            for k, i in enumerate(retry):
                detections[i] = {p: more[k * len(keys) + j] for j, p in enumerate(keys)}
            self.small_faces = any(more)
            self.stats["small_faces"] = self.small_faces
        for i in retry:
            searched_small[i] = True
        for (start, clip), dets, small in zip(clips, detections, searched_small, strict=True):
            self.stats["frames_sampled"] += length
            tracks = self._refined_tracks(clip, dets, small)
            if not tracks:
                self.no_face.append(start)
                self.near_boxes = []
                continue
            self.near_boxes = [t.boxes[t.detected][-1] for t in tracks]
            track = tracks[0]
            sides = track.boxes[track.detected, 2:] - track.boxes[track.detected, :2]
            self.face_side = min(self.face_side or np.inf, float(sides.max(axis=1).min()))
            self.stats["max_faces"] = max(self.stats["max_faces"], track.max_faces)
            self.stats["frames_with_face"] += length
            faces = self.faces.link([t.boxes.mean(axis=0) for t in tracks]) if self.max_faces > 1 else [0]
            for face, t in zip(faces, tracks, strict=True):
                self.kept.append(
                    self.writer.write(start, list(range(start, start + length)), clip, t, face=face)
                )

    def _run_pass(self, path: Path, starts: list[int]) -> int:
        """Process clips starting at ``starts``; returns the last frame index decoded (-1 if none)."""
        length, batch = self.settings.frames_per_clip, max(1, self.settings.batch_clips)
        pending = {s: [None] * length for s in starts}
        wanted: dict[int, list[int]] = {}
        for s in starts:
            for i in range(s, s + length):
                wanted.setdefault(i, []).append(s)
        ready: list[tuple[int, list[np.ndarray]]] = []
        last = -1
        # the next frames decode in a thread while the detector works on these (closed on error)
        with closing(prefetch(iter_frames(path, wanted), depth=2 * length)) as frames:
            for index, frame in frames:
                last = index
                for s in wanted[index]:
                    pending[s][index - s] = frame
                    if index == s + length - 1:
                        ready.append((s, pending.pop(s)))
                if len(ready) >= batch:
                    self._detect_clips(ready)
                    ready = []
        if ready:
            self._detect_clips(ready)
        return last

    def run(self, path: Path) -> ItemResult:
        s = self.settings
        info = probe_video(path)
        try:  # before any frame is decoded
            check_pixels(info.width, info.height, self.max_pixels, " per frame")
        except MediaTooLarge as exc:
            return too_large(exc, info.n_frames)
        n_frames = info.n_frames
        if n_frames < s.frames_per_clip:
            n_frames = count_frames(path)  # the container's count can be missing or wrong
        stats = {"n_frames": n_frames, "width": info.width, "height": info.height, "fps": round(info.fps, 3)}
        if n_frames < s.frames_per_clip:
            return ItemResult(
                SKIPPED, f"{n_frames} frame(s), shorter than one clip ({s.frames_per_clip})", stats=stats
            )
        usable = min(n_frames, s.max_frames or n_frames)
        starts = plan_clip_starts(usable, s.clips_per_video, s.frames_per_clip, s.spread)
        last = self._run_pass(path, starts)
        if last < 0:
            raise MediaError(f"{path}: no frame could be decoded")
        truncated = last + 1 < starts[-1] + s.frames_per_clip
        decodable = min(count_frames(path), usable) if truncated else usable
        attempted = len(starts)
        missing = s.clips_per_video - len({c.start for c in self.kept})
        if missing > 0 and s.top_up and (self.kept or truncated):
            kept = sorted({c.start for c in self.kept})
            extra = top_up_starts(decodable, missing, s.frames_per_clip, kept, self.no_face, s.spread)
            attempted += len(extra)
            if extra:
                self._run_pass(path, extra)
        self.kept.sort(key=lambda c: (c.start, c.face))
        stats.update(self.stats, clips_attempted=attempted, clips=len(self.kept), frames_decodable=decodable)
        notes = []
        if truncated:
            notes.append(f"stream ends at frame {decodable} of {n_frames} announced")
        if self.stats["max_faces"] > 1:
            kept = "kept the largest" if self.max_faces == 1 else f"kept up to {self.max_faces}"
            notes.append(f"several faces (up to {self.stats['max_faces']} in a frame), {kept}")
        if self.no_face:
            notes.append(f"no face in {len(self.no_face)} of {attempted} sampled clips")
        n_clips = len({c.start for c in self.kept})
        if n_clips < s.min_clips:
            return ItemResult(SKIPPED, "; ".join(notes) or "no clip with a face", stats=stats)
        if n_clips < s.clips_per_video:
            notes.append(f"{n_clips} of {s.clips_per_video} clips")
        return ItemResult(OK, "; ".join(notes), clips=self.kept, stats=stats)


def too_large(exc: MediaTooLarge, n_frames: int = 1) -> ItemResult:
    stats = {"n_frames": n_frames, "width": exc.width, "height": exc.height, "clips": 0}
    # kept so that a rerun with a higher cap redoes the file (ClipStoreWriter.is_done)
    stats.update(too_large=True, pixels=exc.width * exc.height)
    return ItemResult(SKIPPED, str(exc), stats=stats)


def clip_still(
    path: Path,
    detector: FaceDetector,
    settings: ClipSettings,
    workspace: Path,
    rel_dir: str,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    writer: CropWriter | None = None,
    max_faces: int = 1,
) -> ItemResult:
    """A still is a clip of one frame: the largest face (the ``max_faces`` largest), aligned and
    cropped. A still over ``max_pixels`` is skipped before it is decoded."""
    try:
        still = read_still(path, max_pixels=max_pixels)
    except MediaTooLarge as exc:
        return too_large(exc)
    h, w = still.bgr.shape[:2]
    stats = {
        "n_frames": 1,
        "width": w * still.scale,
        "height": h * still.scale,
        "frames_sampled": 1,
        "detector_frames": 1,
    }
    faces = detector.detect([still.bgr])[0]
    fast_search = getattr(detector, "min_face_size", None)
    # no face, or one below the fast search's size (its box a few pixels off): the small-face search
    if not faces or (settings.refine_small and fast_search and below(faces[0].box, fast_search)):
        faces = detector.detect([still.bgr], small_faces=True)[0] or faces
    stats["max_faces"] = len(faces)
    if not faces:
        return ItemResult(SKIPPED, "no face found", stats={**stats, "frames_with_face": 0, "clips": 0})
    writer = writer or CropWriter(settings, workspace, rel_dir)
    clips = []
    for k, face in enumerate(faces[: max(1, max_faces)]):
        track = Track(
            boxes=face.box[None].astype(np.float32),
            probs=np.array([face.prob], dtype=np.float32),
            landmarks=None if face.landmarks is None else face.landmarks[None],
            detected=np.ones(1, dtype=bool),
            max_faces=len(faces),
        )
        clips.append(writer.write(0, [0], [still.bgr], track, scale=still.scale, face=k))
    notes = [still.note] if still.note else []
    if len(faces) > 1:
        notes.append(
            f"several faces ({len(faces)}), kept the {'' if len(clips) == 1 else f'{len(clips)} '}largest"
        )
    return ItemResult(
        OK, "; ".join(notes), clips=clips, stats={**stats, "frames_with_face": 1, "clips": len(clips)}
    )


def process_item(
    path: Path,
    kind: str,
    detector: FaceDetector,
    settings: ClipSettings,
    workspace: Path,
    rel_dir: str,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    writer: CropWriter | None = None,
    max_faces: int = 1,
) -> ItemResult:
    """``max_faces``: faces kept per clip, largest first. ``writer``: where the crops go (default: JPEG files in ``workspace``). Never raises for bad input: unreadable media and unexpected errors become ``failed``."""
    t0 = time.perf_counter()
    try:
        if kind == "video":
            clipper = VideoClipper(detector, settings, workspace, rel_dir, max_pixels, writer, max_faces)
            result = clipper.run(path)
        elif kind == "image":
            result = clip_still(path, detector, settings, workspace, rel_dir, max_pixels, writer, max_faces)
        else:
            result = ItemResult(SKIPPED, f"not a video or image ({path.suffix or 'no extension'})")
    except MediaError as exc:
        result = ItemResult(FAILED, str(exc))
    except Exception as exc:  # one broken file must not stop the run; the reason names it
        result = ItemResult(FAILED, f"{path}: {type(exc).__name__}: {exc}")
    result.stats["seconds"] = round(time.perf_counter() - t0, 3)
    return result
