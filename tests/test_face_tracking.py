"""Face tracking across clips (#28): keyframes searched near the face of the clip before, a whole
frame search at scene cuts and when the face is lost, decoding in a thread, box agreement."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdetect.bench.face_boxes import agreement
from dfdetect.preprocess.faces import Face, box_iou
from dfdetect.preprocess.near import detect_near, scene_change, search_region, thumbnail_histogram
from dfdetect.preprocess.prefetch import prefetch
from dfdetect.preprocess.settings import ClipSettings, SettingsError, fingerprint, settings_differences
from tests.conftest import SHARED, requires_shared

FACES = SHARED / "data" / "samples" / "celebfom"
W, H, N = 480, 270, 120


# --- prefetch -------------------------------------------------------------------------------


def test_prefetch_yields_every_item_in_order():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))


def test_prefetch_raises_the_producers_error():
    def items():
        yield 1
        raise OSError("broken stream")

    got = []
    with pytest.raises(OSError, match="broken stream"):
        for x in prefetch(items(), depth=2):
            got.append(x)
    assert got == [1]


def test_prefetch_closed_early_stops_its_thread():
    before = threading.active_count()
    stream = prefetch(iter(range(10**6)), depth=2)
    assert next(stream) == 0
    stream.close()
    assert threading.active_count() == before


# --- regions, scene cuts ------------------------------------------------------------------


def test_search_region_is_square_around_the_face_and_clipped():
    assert search_region(np.array([100, 100, 140, 160]), 3.0, (270, 480, 3)) == (30, 40, 210, 220)
    assert search_region(np.array([0, 0, 40, 40]), 3.0, (270, 480, 3)) == (0, 0, 80, 80)


class _OneFaceDetector:
    """Finds one 20-px face at (10, 10) of every crop it is given, and records the crop shapes."""

    def __init__(self):
        self.shapes = []

    def detect(self, frames, small_faces=False, min_face_size=None):
        self.shapes += [f.shape for f in frames]
        lm = np.full((5, 2), 15.0, np.float32)
        return [[Face(np.array([10, 10, 30, 30], np.float32), 0.99, lm)] for _ in frames]


def test_detect_near_returns_frame_coordinates_and_merges_duplicates():
    frames = [np.zeros((270, 480, 3), np.uint8)] * 2
    det = _OneFaceDetector()
    boxes = [np.array([100, 100, 140, 160], np.float32), np.array([101, 100, 141, 160], np.float32)]
    found = detect_near(det, frames, boxes, 3.0)
    assert det.shapes == [(180, 180, 3)] * 4
    assert len(found) == 2 and all(len(f) == 1 for f in found)  # the two regions found one face
    np.testing.assert_allclose(found[0][0].box, [40, 50, 60, 70])
    np.testing.assert_allclose(found[0][0].landmarks[0], [45, 55])


def test_scene_change_is_zero_for_the_same_frame_and_large_at_a_cut():
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 90, (270, 480, 3), dtype=np.uint8)
    light = rng.integers(150, 255, (270, 480, 3), dtype=np.uint8)
    assert scene_change(thumbnail_histogram(dark), thumbnail_histogram(dark)) < 1e-6
    assert scene_change(thumbnail_histogram(dark), thumbnail_histogram(light)) > ClipSettings.scene_cut


def test_agreement_counts_frames_with_a_face_on_either_side():
    box = np.array([0, 0, 10, 10], np.float32)
    shifted = np.array([1, 0, 11, 10], np.float32)  # IoU 9/11 = 0.82
    share, count, median = agreement({1: box, 2: shifted, 3: box}, {1: box, 2: box, 4: box})
    assert count == 4 and share == pytest.approx(0.25)
    assert median == pytest.approx((9 / 11 + 0) / 2)


def test_tracking_settings_change_the_store_fingerprint_and_are_checked():
    old = {
        k: v
        for k, v in dataclasses.asdict(ClipSettings()).items()
        if k not in ("track_region", "redetect_every", "scene_cut")
    }
    new = dataclasses.asdict(ClipSettings())
    diffs = settings_differences({"clips": old}, {"clips": new})
    assert "face.track_region: store (not set), now 3.0" in diffs
    assert fingerprint(ClipSettings(), {}) != fingerprint(ClipSettings(track_region=0.0), {})
    with pytest.raises(SettingsError, match="track_region"):
        ClipSettings(track_region=1.0)
    with pytest.raises(SettingsError):
        ClipSettings(redetect_every=0)


# --- synthetic videos through the real pipeline (MTCNN) -----------------------------------


def _face(name: str, side: int) -> np.ndarray:
    img = cv2.imread(str(FACES / name))
    return cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)


def _write(path: Path, frames) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (W, H))
    for frame in frames:
        out.write(frame)
    out.release()
    return path


def _scene(faces: list[tuple[np.ndarray, int, int]], shade: int) -> np.ndarray:
    frame = np.full((H, W, 3), shade, np.uint8)
    for img, x, y in faces:
        frame[y : y + img.shape[0], x : x + img.shape[1]] = img
    return frame


def _run_faces(path: Path, max_faces: int, **changes):
    from dfdetect.preprocess.crops import MemoryCropWriter
    from dfdetect.preprocess.mtcnn_detector import MTCNNDetector
    from dfdetect.preprocess.pipeline import process_item

    settings = dataclasses.replace(ClipSettings(), **changes)
    return process_item(
        path,
        "video",
        MTCNNDetector(min_face_size=40),
        settings,
        Path("."),
        "",
        writer=MemoryCropWriter(settings),
        max_faces=max_faces,
    )


def _boxes(result, face: int = 0) -> dict[int, np.ndarray]:
    return {
        i: np.asarray(b)
        for c in result.clips
        if c.face == face
        for i, b in zip(c.frame_indices, c.face_boxes, strict=True)
    }


@requires_shared("data", "samples", "celebfom")
def test_moving_face_is_tracked_through_the_clips(tmp_path):
    face = _face("Amir Khan_real.png", 120)
    frames = [_scene([(face, 20 + 2 * t, 60 + t // 3)], 90) for t in range(N)]
    path = _write(tmp_path / "moving.avi", frames)
    tracked, whole = _run_faces(path, 1), _run_faces(path, 1, track_region=0.0)
    assert tracked.status == whole.status == "ok"
    assert tracked.stats["clips"] == whole.stats["clips"] == 16
    assert tracked.stats["near_frames"] == 2 * 12  # 12 of 16 clips searched near, 4 whole
    assert tracked.stats["detector_frames"] == 2 * 4 and whole.stats["detector_frames"] == 32
    a, b = _boxes(tracked), _boxes(whole)
    assert a.keys() == b.keys() and len(a) == 80
    ious = [box_iou(a[i], b[i]) for i in a]
    assert min(ious) >= 0.9, min(ious)
    # the face moves 2 px a frame: the boxes follow it
    assert a[max(a)][0] - a[min(a)][0] > 150


@requires_shared("data", "samples", "celebfom")
def test_scene_cut_is_searched_whole(tmp_path):
    first, second = _face("Amir Khan_real.png", 120), _face("Emma Stone_fake.png", 100)
    frames = [
        _scene([(first, 40, 60)], 40) if t < N // 2 else _scene([(second, 330, 140)], 210) for t in range(N)
    ]
    path = _write(tmp_path / "cut.avi", frames)
    result = _run_faces(path, 1)
    assert result.status == "ok" and result.stats["clips"] == 16
    assert result.stats["scene_cuts"] >= 1
    boxes = _boxes(result)
    assert all(boxes[i][0] < 200 for i in boxes if i < N // 2 - 5)
    assert all(boxes[i][0] > 300 for i in boxes if i >= N // 2)
    whole = _boxes(_run_faces(path, 1, track_region=0.0))
    assert min(box_iou(boxes[i], whole[i]) for i in boxes) >= 0.9


@requires_shared("data", "samples", "celebfom")
def test_two_people_keep_their_face_ids(tmp_path):
    left, right = _face("Amir Khan_real.png", 110), _face("Denzel Washington_fake.png", 90)
    frames = [_scene([(left, 30 + t // 4, 70), (right, 330 - t // 4, 100)], 100) for t in range(N)]
    path = _write(tmp_path / "two.avi", frames)
    tracked, whole = _run_faces(path, 2), _run_faces(path, 2, track_region=0.0)
    assert tracked.stats["near_frames"] > 0
    assert {c.face for c in tracked.clips} == {0, 1}
    assert len(tracked.clips) == len(whole.clips) == 32
    for face in (0, 1):
        a, b = _boxes(tracked, face), _boxes(whole, face)
        assert a.keys() == b.keys() and len(a) == 80
        assert min(box_iou(a[i], b[i]) for i in a) >= 0.9
    assert all(v[0] < 200 for v in _boxes(tracked, 0).values())  # face 0 stays the left one
    assert all(v[0] > 250 for v in _boxes(tracked, 1).values())


@requires_shared("data", "samples", "celebfom")
def test_window_search_gives_the_whole_searchs_boxes():
    from dfdetect.preprocess.mtcnn_detector import MTCNNDetector

    detector = MTCNNDetector(min_face_size=40)
    frame = _scene([(_face("Emma Stone_fake.png", 150), 171, 57)], 120)
    whole = detector.detect([frame])[0]
    assert len(whole) == 1
    near = detect_near(detector, [frame], [whole[0].box + 7], 3.0)[0]  # a box off by 7 px
    assert len(near) == 1
    np.testing.assert_allclose(near[0].box, whole[0].box, atol=0.01)
    np.testing.assert_allclose(near[0].landmarks, whole[0].landmarks, atol=0.01)
    assert near[0].prob == pytest.approx(whole[0].prob, abs=1e-5)
