"""Keyframes searched again where the boxes cannot be trusted (#28, dfdetect/preprocess/refine.py):
small faces found by the fast search, fast moves between detected frames."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from dfdetect.preprocess.faces import Face, box_iou
from dfdetect.preprocess.refine import fast_motion_spots, merge_faces, small_face_spots
from dfdetect.preprocess.settings import ClipSettings, fingerprint, settings_differences
from dfdetect.preprocess.track import Track
from tests.test_face_tracking import N, _face, _scene, _write, requires_shared


def _track(boxes: dict[int, list[float]], length: int = 5) -> Track:
    positions = sorted(boxes)
    out = np.zeros((length, 4), np.float32)
    for t in range(length):
        for k in range(4):
            out[t, k] = np.interp(t, positions, [boxes[p][k] for p in positions])
    detected = np.zeros(length, bool)
    detected[positions] = True
    return Track(out, np.ones(length, np.float32), None, detected, 1)


def test_fast_motion_spots_are_the_middles_of_fast_gaps_only():
    still = _track({0: [0, 0, 100, 100], 4: [2, 0, 102, 100]})
    fast = _track({0: [0, 0, 100, 100], 4: [40, 0, 140, 100]})
    assert fast_motion_spots([still], 0.9, searched={0, 4}) == {}
    spots = fast_motion_spots([fast], 0.9, searched={0, 4})
    assert list(spots) == [2]
    np.testing.assert_allclose(spots[2][0], [20, 0, 120, 100])
    assert fast_motion_spots([fast], 0.9, searched={0, 2, 4}) == {}  # searched already
    assert fast_motion_spots([fast], 0.0, searched={0, 4}) == {}  # off
    # after the middle was detected: only the half that still moves fast
    halves = _track({0: [0, 0, 100, 100], 2: [36, 0, 136, 100], 4: [40, 0, 140, 100]})
    assert list(fast_motion_spots([halves], 0.9, searched={0, 2, 4})) == [1]
    adjacent = _track({0: [0, 0, 100, 100], 1: [90, 0, 190, 100]}, length=2)
    assert fast_motion_spots([adjacent], 0.9, searched={0, 1}) == {}  # nothing in between


def test_small_face_spots_are_detected_frames_below_the_fast_search():
    track = _track({0: [0, 0, 60, 70], 4: [0, 0, 90, 90]})
    spots = small_face_spots([track], 80)
    assert list(spots) == [0]
    np.testing.assert_allclose(spots[0][0], [0, 0, 60, 70])
    assert small_face_spots([track], 50) == {}


def test_merge_faces_replaces_the_overlapped_face_and_keeps_the_others():
    def face(box):
        return Face(np.array(box, np.float32), 0.99, None)

    old_small, other = face([10, 10, 50, 50]), face([200, 10, 300, 110])
    refined = face([11, 10, 51, 51])
    merged = merge_faces([old_small, other], [refined])
    assert merged == [other, refined]  # largest first; the off box is gone


def test_refine_settings_change_the_store_fingerprint():
    base = ClipSettings()
    assert base.refine_small and base.refine_motion_iou == pytest.approx(0.9)
    assert fingerprint(base, {}) != fingerprint(dataclasses.replace(base, refine_motion_iou=0.0), {})
    assert fingerprint(base, {}) != fingerprint(dataclasses.replace(base, refine_small=False), {})
    before = {k: v for k, v in dataclasses.asdict(base).items() if not k.startswith("refine_")}
    diffs = settings_differences({"clips": before}, {"clips": dataclasses.asdict(base)})
    assert "face.refine_small: store (not set), now true" in diffs
    assert "face.refine_motion_iou: store (not set), now 0.9" in diffs


def _run(path: Path, detector, **changes):
    from dfdetect.preprocess.crops import MemoryCropWriter
    from dfdetect.preprocess.pipeline import process_item

    settings = dataclasses.replace(ClipSettings(), **changes)
    result = process_item(path, "video", detector, settings, Path("."), "", writer=MemoryCropWriter(settings))
    assert result.status == "ok", result.reason
    boxes = {
        i: np.asarray(b) for c in result.clips for i, b in zip(c.frame_indices, c.face_boxes, strict=True)
    }
    return result, boxes


@requires_shared("data", "samples", "celebfom")
def test_a_fast_swinging_face_gets_its_middle_frames_searched(tmp_path):
    from dfdetect.preprocess.media import iter_frames
    from dfdetect.preprocess.mtcnn_detector import MTCNNDetector

    face = _face("Amir Khan_real.png", 200)
    # up to 12 px a frame, not on a straight line; keyframes 4 frames apart still overlap
    xs = [int(140 + 40 * math.sin(0.3 * t)) for t in range(N)]
    path = _write(tmp_path / "swing.avi", [_scene([(face, x, 35)], 90) for x in xs])
    detector = MTCNNDetector(min_face_size=40)
    plain, plain_boxes = _run(path, detector, refine_motion_iou=0.0)
    every = {i: detector.detect([f])[0][0].box for i, f in iter_frames(path, set(plain_boxes))}
    refined, refined_boxes = _run(path, detector)
    assert plain_boxes.keys() == refined_boxes.keys() == every.keys() and len(every) == 80
    plain_iou = [box_iou(plain_boxes[i], every[i]) for i in every]
    refined_iou = [box_iou(refined_boxes[i], every[i]) for i in every]
    assert min(plain_iou) < 0.9  # straight lines between the keyframes lag the swing
    assert min(refined_iou) >= 0.9, min(refined_iou)
    assert plain.stats["refined_frames"] == 0 < refined.stats["refined_frames"] < 3 * 16


@requires_shared("data", "samples", "celebfom")
def test_a_face_below_the_fast_search_gets_the_small_face_pyramids_box(tmp_path):
    import cv2

    from dfdetect.preprocess.mtcnn_detector import MTCNNDetector

    path = _write(tmp_path / "small.avi", [_scene([(_face("Amir Khan_real.png", 70), 171, 57)], 120)] * N)
    ok, frame = cv2.VideoCapture(str(path)).read()  # every frame decodes to this one
    assert ok
    detector = MTCNNDetector(min_face_size=80)  # the face is about 30 px
    fast, small = detector.detect([frame])[0][0].box, detector.detect([frame], small_faces=True)[0][0].box
    assert np.abs(fast - small).max() > 0.5  # the fast search finds it, a little off
    plain, plain_boxes = _run(path, detector, refine_small=False)
    refined, refined_boxes = _run(path, detector)
    assert plain.stats["refined_frames"] == 0 and refined.stats["refined_frames"] > 0
    assert len(plain_boxes) == len(refined_boxes) == 80
    assert max(np.abs(b - fast).max() for b in plain_boxes.values()) < 0.01
    assert max(np.abs(b - small).max() for b in refined_boxes.values()) < 0.01


def test_refine_motion_iou_out_of_range_is_refused():
    from dfdetect.preprocess.settings import SettingsError

    with pytest.raises(SettingsError, match="refine_motion_iou"):
        ClipSettings(refine_motion_iou=1.5)


@requires_shared("data", "samples", "celebfom")
def test_a_small_face_in_a_still_gets_the_small_face_pyramids_box(tmp_path):
    import cv2

    from dfdetect.preprocess.crops import MemoryCropWriter
    from dfdetect.preprocess.mtcnn_detector import MTCNNDetector
    from dfdetect.preprocess.pipeline import clip_still

    frame = _scene([(_face("Amir Khan_real.png", 70), 171, 57)], 120)
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), frame)
    detector = MTCNNDetector(min_face_size=80)
    fast, small = detector.detect([frame])[0][0].box, detector.detect([frame], small_faces=True)[0][0].box

    def box(**changes):
        settings = dataclasses.replace(ClipSettings(), **changes)
        result = clip_still(path, detector, settings, Path("."), "", writer=MemoryCropWriter(settings))
        assert result.status == "ok", result.reason
        return np.asarray(result.clips[0].face_boxes[0])

    np.testing.assert_allclose(box(refine_small=False), fast, atol=0.01)
    np.testing.assert_allclose(box(), small, atol=0.01)
