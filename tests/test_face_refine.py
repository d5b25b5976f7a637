"""Keyframes searched again where the boxes cannot be trusted (#28, dfdetect/preprocess/refine.py):
small faces found by the fast search, fast moves between detected frames, faces lost between them."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from dfdetect.preprocess.faces import Face, box_iou
from dfdetect.preprocess.refine import fast_motion_spots, lost_face_spots, merge_faces, small_face_spots
from dfdetect.preprocess.settings import ClipSettings, fingerprint, settings_differences
from dfdetect.preprocess.track import Track, build_tracks
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


def test_lost_face_spots_are_the_middles_towards_searched_frames_without_the_track():
    # found on keyframe 4 only (keyframe 0 searched, nothing matched there): search frame 2 near its box
    entered = _track({4: [200, 0, 300, 100]})
    spots = lost_face_spots([entered], searched={0, 4})
    assert list(spots) == [2]
    np.testing.assert_allclose(spots[2][0], [200, 0, 300, 100])
    # then frame 2 found it, frame 0 still not: the gap 0-2 has its middle, 1
    assert list(lost_face_spots([_track({2: [180, 0, 280, 100], 4: [200, 0, 300, 100]})], {0, 2, 4})) == [1]
    # found on both sides, or the lost frame next to a found one: nothing
    assert lost_face_spots([_track({0: [0, 0, 100, 100], 4: [0, 0, 100, 100]})], {0, 4}) == {}
    assert lost_face_spots([_track({1: [0, 0, 100, 100], 4: [0, 0, 100, 100]})], {0, 1, 4}) == {}
    # several lost frames: each gap next to a found frame, on both sides
    middle = _track({4: [0, 0, 100, 100]}, length=9)
    assert sorted(lost_face_spots([middle], {0, 4, 8})) == [2, 6]


def test_chained_tracks_keep_a_face_that_moves_far_over_several_frames():
    def face(x):
        return Face(np.array([x, 0, x + 100, 100], np.float32), 0.99, None)

    # 25 px a frame: each detected frame overlaps the next (IoU 0.33), frame 4 overlaps frame 0 not at all
    dets = {p: [face(25 * p)] for p in (0, 2, 4)}
    anchored = build_tracks(dets, 5, min_iou=0.3, max_tracks=1)[0]
    chained = build_tracks(dets, 5, min_iou=0.3, max_tracks=1, chain=True)[0]
    assert anchored.detected.tolist() == [True, False, True, False, False]
    assert chained.detected.tolist() == [True, False, True, False, True]
    np.testing.assert_allclose(chained.boxes[:, 0], [0, 25, 50, 75, 100])
    # another face that overlaps no matched frame is still left out
    other = {0: [face(0)], 2: [face(50)], 4: [face(400)]}
    assert build_tracks(other, 5, 0.3, 1, chain=True)[0].detected.tolist() == [
        True,
        False,
        True,
        False,
        False,
    ]


def test_near_edge_means_close_to_a_window_edge_that_is_not_the_frames():
    from dfdetect.preprocess.near import near_edge

    box = np.array([100, 100, 200, 200], np.float32)  # margin: a quarter of 100 px
    assert not near_edge(box, (50, 50, 300, 300), (400, 400))
    assert near_edge(box, (80, 50, 300, 300), (400, 400))  # 20 px from the left edge
    assert near_edge(box, (50, 50, 220, 300), (400, 400))  # 20 px from the right edge
    assert near_edge(box, (110, 50, 300, 300), (400, 400))  # past it
    assert not near_edge(box, (0, 0, 220, 220), (220, 220))  # the frame's own edges


@requires_shared("data", "samples", "celebfom")
def test_a_face_at_the_edge_of_its_window_gets_the_whole_frames_box():
    from dfdetect.preprocess.mtcnn_detector import MTCNNDetector
    from dfdetect.preprocess.near import detect_near

    frame = _scene([(_face("Amir Khan_real.png", 120), 0, 75)], 90)  # at the frame's left side
    detector = MTCNNDetector(min_face_size=40)
    whole = detector.detect([frame])[0][0].box
    last_seen = np.array([99.3, 104.5, 148.4, 172.6], np.float32)  # where it was in the clip before
    plain = detect_near(detector, [frame], [last_seen], 3.0, recentre=False)[0][0].box
    stats = {}
    again = detect_near(detector, [frame], [last_seen], 3.0, recentre=True, stats=stats)[0][0].box
    assert np.abs(plain - whole).max() > 2  # found from the window's cells only: off
    np.testing.assert_allclose(again, whole, atol=0.01)
    assert stats == {"edge_frames": 1}


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
    assert base.refine_lost
    assert fingerprint(base, {}) != fingerprint(dataclasses.replace(base, refine_lost=False), {})
    assert base.refine_edge
    assert fingerprint(base, {}) != fingerprint(dataclasses.replace(base, refine_edge=False), {})
    before = {k: v for k, v in dataclasses.asdict(base).items() if not k.startswith("refine_")}
    diffs = settings_differences({"clips": before}, {"clips": dataclasses.asdict(base)})
    assert "face.refine_small: store (not set), now true" in diffs
    assert "face.refine_motion_iou: store (not set), now 0.9" in diffs
    assert "face.refine_lost: store (not set), now true" in diffs
    assert "face.refine_edge: store (not set), now true" in diffs


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
    plain, plain_boxes = _run(path, detector, refine_motion_iou=0.0, refine_lost=False, refine_edge=False)
    every = {i: detector.detect([f])[0][0].box for i, f in iter_frames(path, set(plain_boxes))}
    refined, refined_boxes = _run(path, detector)
    assert plain_boxes.keys() == refined_boxes.keys() == every.keys() and len(every) == 80
    plain_iou = [box_iou(plain_boxes[i], every[i]) for i in every]
    refined_iou = [box_iou(refined_boxes[i], every[i]) for i in every]
    assert min(plain_iou) < 0.9  # straight lines between the keyframes lag the swing
    assert min(refined_iou) >= 0.9, min(refined_iou)
    assert plain.stats["refined_frames"] == 0 < refined.stats["refined_frames"] < 3 * 16


@requires_shared("data", "samples", "celebfom")
def test_a_face_too_fast_to_match_between_keyframes_is_found_in_between(tmp_path):
    from dfdetect.preprocess.media import iter_frames
    from dfdetect.preprocess.mtcnn_detector import MTCNNDetector

    face = _face("Amir Khan_real.png", 120)
    # 10 px a frame (a 52-px box), bouncing between the sides: keyframes 4 frames apart overlap too
    # little to be matched (IoU 0.13), frames 2 apart enough (0.44)
    xs = [int(360 - abs(360 - (10 * t) % 720)) for t in range(N)]
    path = _write(tmp_path / "fast.avi", [_scene([(face, x, 75)], 90) for x in xs])
    detector = MTCNNDetector(min_face_size=40)
    plain, plain_boxes = _run(path, detector, refine_lost=False, refine_edge=False)
    every = {i: detector.detect([f])[0][0].box for i, f in iter_frames(path, set(plain_boxes))}
    refined, refined_boxes = _run(path, detector)
    assert plain_boxes.keys() == refined_boxes.keys() == every.keys() and len(every) == 80
    # a clip in which the face turns back is the other case (keyframe boxes that agree): left out
    one_way = [
        i
        for c in refined.clips
        if np.all(np.diff([xs[i] for i in c.frame_indices]) > 0)
        or np.all(np.diff([xs[i] for i in c.frame_indices]) < 0)
        for i in c.frame_indices
    ]
    assert len(one_way) >= 12 * 5
    plain_iou = [box_iou(plain_boxes[i], every[i]) for i in one_way]
    refined_iou = [box_iou(refined_boxes[i], every[i]) for i in one_way]
    assert min(plain_iou) < 0.5  # the far keyframe's face is not matched: the box is held
    assert min(refined_iou) >= 0.9, min(refined_iou)
    assert refined.stats["refined_frames"] > plain.stats["refined_frames"]
    assert plain.stats["edge_frames"] == 0 < refined.stats["edge_frames"]


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
    plain, plain_boxes = _run(path, detector, refine_small=False, refine_lost=False, refine_edge=False)
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
