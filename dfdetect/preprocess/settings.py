"""What a clip store is made with: sampling and cropping settings (the detector is configured
separately). Their fingerprint is stored with the store, so that a rerun never mixes settings."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from dfdetect.utils.errors import UserError

# ClipSettings fields set as data.sampling.* (dfdetect/conf/preprocess/default.yaml); the others are face.*
SAMPLING_FIELDS = frozenset({"clips_per_video", "frames_per_clip", "spread", "max_frames"})


class SettingsError(UserError, ValueError):
    """A clip setting out of range or unknown."""


@dataclass(frozen=True)
class ClipSettings:
    clips_per_video: int = 16
    frames_per_clip: int = 5
    # fraction of the video (centred) the clips are spread over
    spread: float = 1.0
    # only the first max_frames frames of a video are used (null: all)
    max_frames: int | None = None
    # detector runs per clip: 1 = middle frame, 2 = first and last, >= frames_per_clip = every frame
    keyframes: int = 2
    # clips whose keyframes go to the detector in one call (1: the fast search can use the face
    # size found in the previous clip; more only helps detectors that batch frames)
    batch_clips: int = 1
    # a face on another keyframe continues the track if it overlaps the anchor face this much
    min_track_iou: float = 0.3
    # after a clip with a face, the next clip's keyframes are searched only in a square this many
    # face sides wide around it (0: every keyframe searched whole); the whole frame is searched
    # where that finds nothing, at a scene cut and every redetect_every clips
    track_region: float = 3.0
    redetect_every: int = 4
    # a scene cut: the grey-level histograms of consecutive clips differ this much (Bhattacharyya)
    scene_cut: float = 0.3
    # a face the fast search finds below the detector's min_face_size (its box a few pixels off):
    # that keyframe is searched again near it with the small-face pyramid
    refine_small: bool = True
    # a face whose boxes on two detected frames overlap less than this (a fast move): the middle
    # frame between them is searched near the interpolated box too (0: off)
    refine_motion_iou: float = 0.9
    # a track found on some searched frames of a clip and not on the next one searched (a face that
    # came in, left, or moved too far to be matched): the middle frame between them is searched
    # near its box too, and a track's faces are matched frame to frame instead of to its anchor
    refine_lost: bool = True
    # a face found near the edge of the window it was searched in (cells beyond it not searched):
    # searched again in a window around its own box
    refine_edge: bool = True
    # crop side = longer box side * (1 + margin)
    margin: float = 0.3
    size: int = 240
    # rotate so that the eye line is level (MTCNN landmarks), at most max_angle degrees
    align: bool = True
    max_angle: float = 45.0
    jpeg_quality: int = 95
    # when clips are lost (no face, stream shorter than announced), sample replacements once
    top_up: bool = True
    # videos yielding fewer clips than this are 'skipped'
    min_clips: int = 1

    def __post_init__(self):
        counts = ("clips_per_video", "frames_per_clip", "keyframes", "redetect_every")
        if any(getattr(self, name) < 1 for name in counts):
            got = ", ".join(f"{config_key('clips', n)}={getattr(self, n)}" for n in counts)
            raise SettingsError(f"clip counts must be positive, got {got}")
        if not 0.0 < self.spread <= 1.0:
            raise SettingsError(f"data.sampling.spread must be in (0, 1], got {self.spread}")
        if self.track_region != 0 and self.track_region < 1.5:
            raise SettingsError(f"face.track_region must be 0 (off) or >= 1.5, got {self.track_region}")
        if not 0.0 <= self.refine_motion_iou <= 1.0:
            raise SettingsError(
                f"face.refine_motion_iou must be in [0, 1] (0: off), got {self.refine_motion_iou}"
            )
        if self.size < 16 or self.margin < 0:
            raise SettingsError(
                f"face.size must be >= 16 and face.margin >= 0, got {self.size} and {self.margin}"
            )

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ClipSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(f"unknown clip settings {unknown}; known: {sorted(known)}")
        return cls(**values)

    def keyframe_positions(self, length: int | None = None) -> list[int]:
        length = length or self.frames_per_clip
        if self.keyframes >= length:
            return list(range(length))
        if self.keyframes == 1:
            return [length // 2]
        step = (length - 1) / (self.keyframes - 1)
        return sorted({round(i * step) for i in range(self.keyframes)})


def fingerprint(settings: ClipSettings, detector: dict[str, Any]) -> str:
    """Hash of everything that changes the crops."""
    blob = json.dumps({"clips": asdict(settings), "detector": detector}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_key(section: str, name: str) -> str:
    """The command-line key of a stored setting: ``clips``/``margin`` -> ``face.margin``."""
    if section == "clips":
        return f"data.sampling.{name}" if name in SAMPLING_FIELDS else f"face.{name}"
    return f"{section}.{name}"


def _shown(value: Any) -> str:
    return json.dumps(value, default=str)  # as on the command line: 0.3, true, null, [0.6, 0.7]


def settings_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"face.margin: store 0.3, now 0.4"`` for every setting that differs between a store's
    recorded settings (``{"clips": ..., "detector": ...}``) and this run's."""
    out = []
    for section in sorted(set(stored) | set(current)):
        old, new = stored.get(section), current.get(section)
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            if _shown(old) != _shown(new):
                out.append(f"{section}: store {_shown(old)}, now {_shown(new)}")
            continue
        for name in sorted(set(old) | set(new)):
            before = _shown(old[name]) if name in old else "(not set)"
            after = _shown(new[name]) if name in new else "(not set)"
            if before != after:
                out.append(f"{config_key(section, name)}: store {before}, now {after}")
    return out
