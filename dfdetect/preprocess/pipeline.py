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
from dfdetect.preprocess.faces import FaceDetector, box_iou
from dfdetect.preprocess.keyframe_search import KeyframeSearch
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
from dfdetect.preprocess.prefetch import prefetch
from dfdetect.preprocess.refine import below, fast_search_size
from dfdetect.preprocess.sampling import plan_clip_starts, top_up_starts
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.preprocess.track import Track

OK, SKIPPED, FAILED = "ok", "skipped", "failed"


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
    """Clips of one video: frames decoded once, in a thread, clips gathered as their frames arrive,
    their faces tracked (keyframe_search.py) ``batch_clips`` clips at a time, then cropped and
    written. ``max_faces`` > 1 keeps that many faces per clip (largest first), each linked to the
    face of earlier clips it overlaps or lies nearest."""

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
        self.max_faces = max(1, int(max_faces))
        self.search = KeyframeSearch(detector, settings, self.max_faces)
        self.faces = FaceLinker()
        self.settings = settings
        self.max_pixels = max_pixels
        self.writer = writer or CropWriter(settings, workspace, rel_dir)
        self.stats = {"frames_sampled": 0, "frames_with_face": 0, "max_faces": 0}
        self.kept: list[ClipResult] = []
        self.no_face: list[int] = []

    def _clip_faces(self, clips: list[tuple[int, list[np.ndarray]]]) -> None:
        length = self.settings.frames_per_clip
        found = self.search.tracks([clip for _, clip in clips])
        for (start, clip), tracks in zip(clips, found, strict=True):
            self.stats["frames_sampled"] += length
            if not tracks:
                self.no_face.append(start)
                continue
            self.stats["max_faces"] = max(self.stats["max_faces"], tracks[0].max_faces)
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
                    self._clip_faces(ready)
                    ready = []
        if ready:
            self._clip_faces(ready)
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
        stats.update(
            self.stats,
            **self.search.stats,
            clips_attempted=attempted,
            clips=len(self.kept),
            frames_decodable=decodable,
        )
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
    fast_search = fast_search_size(detector)
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
