"""Preprocessing building blocks: clip sampling, face tracks, aligned crops, media decoding."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from dfdetect.preprocess.align import crop_side, eye_angle, map_points, warp_face
from dfdetect.preprocess.faces import Face
from dfdetect.preprocess.media import MediaError, iter_frames, probe_video, read_still
from dfdetect.preprocess.mtcnn_cascade import AreaSampler, levels_to_skip, pyramid_scales
from dfdetect.preprocess.sampling import plan_clip_starts, top_up_starts
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.preprocess.track import build_track
from tests.preprocess_fakes import write_video


def test_clip_starts_spread_evenly_without_overlap():
    starts = plan_clip_starts(400, 16, 5)
    assert len(starts) == 16
    gaps = np.diff(starts)
    assert gaps.min() >= 5 and gaps.max() - gaps.min() <= 1
    assert starts[0] >= 0 and starts[-1] + 5 <= 400
    assert starts[0] > 0 and 400 - (starts[-1] + 5) > 0  # centred in their segments, not at the ends


def test_clip_starts_for_short_videos_and_spread():
    assert plan_clip_starts(4, 16, 5) == []
    assert plan_clip_starts(5, 16, 5) == [0]
    assert plan_clip_starts(12, 16, 5) == list(range(8))  # every possible start, once
    middle = plan_clip_starts(1000, 4, 5, spread=0.5)
    assert min(middle) >= 250 and max(middle) + 5 <= 750


def test_top_up_avoids_faceless_regions_and_tried_starts():
    kept, failed = [200, 300, 400], [0, 100]
    extra = top_up_starts(500, 3, 5, kept, failed)
    assert len(extra) == 3
    assert not set(extra) & set(kept + failed)
    for s in extra:  # nearer to a clip with a face than to a faceless one
        assert min(abs(s - k) for k in kept) < min(abs(s - f) for f in failed)
    assert top_up_starts(4, 3, 5, [], []) == []


def test_keyframe_positions():
    assert ClipSettings(keyframes=2).keyframe_positions(5) == [0, 4]
    assert ClipSettings(keyframes=1).keyframe_positions(5) == [2]
    assert ClipSettings(keyframes=9).keyframe_positions(5) == [0, 1, 2, 3, 4]
    assert ClipSettings(keyframes=3).keyframe_positions(5) == [0, 2, 4]
    with pytest.raises(ValueError, match="unknown clip settings"):
        ClipSettings.from_mapping({"clips": 3})


def face(x, y, w, prob=0.99):
    box = np.array([x, y, x + w, y + w], dtype=np.float32)
    eyes = np.array([[x + 0.3 * w, y + 0.4 * w], [x + 0.7 * w, y + 0.4 * w]], dtype=np.float32)
    marks = np.concatenate([eyes, np.full((3, 2), x + w / 2, dtype=np.float32)])
    return Face(box=box, prob=prob, landmarks=marks)


def test_track_follows_the_largest_face_and_interpolates():
    small, big0, big4 = face(0, 0, 20), face(100, 50, 80, 0.95), face(120, 50, 80, 0.97)
    track = build_track({0: [big0, small], 4: [face(300, 0, 90), big4]}, 5)
    # the anchor is the largest face (90 px at frame 4 does not overlap 80 px at frame 0 -> anchor = it)
    assert track.boxes.shape == (5, 4) and track.max_faces == 2
    track = build_track({0: [big0, small], 4: [big4, small]}, 5)
    np.testing.assert_allclose(track.boxes[2], [110, 50, 190, 130])
    np.testing.assert_allclose(track.probs, [0.95, 0.95, 0.95, 0.95, 0.97], atol=1e-6)
    assert track.detected.tolist() == [True, False, False, False, True]


def test_track_holds_a_single_detection_and_ignores_unmatched_faces():
    track = build_track({0: [], 4: [face(10, 10, 50)]}, 5)
    assert np.allclose(track.boxes, [10, 10, 60, 60])
    jumped = build_track({0: [face(0, 0, 50)], 4: [face(400, 400, 40)]}, 5)  # no overlap: not the same face
    assert np.allclose(jumped.boxes, [0, 0, 50, 50])
    assert jumped.detected.tolist() == [True, False, False, False, False]
    assert build_track({0: [], 4: []}, 5) is None


def test_warp_levels_the_eyes_and_centres_the_face():
    frame = np.zeros((400, 600, 3), np.uint8)
    angle = math.radians(20)
    centre = np.array([300.0, 200.0])
    d = 40 * np.array([math.cos(angle), math.sin(angle)])
    marks = np.array([centre - d, centre + d])
    assert eye_angle(marks) == pytest.approx(angle)
    for p in marks:
        cv2.circle(frame, tuple(int(v) for v in p), 6, (255, 255, 255), -1)
    crop = warp_face(frame, tuple(centre), 200.0, angle, 240)
    assert crop.shape == (240, 240, 3)
    mapped = map_points(marks, tuple(centre), 200.0, angle, 240)
    assert mapped[0, 1] == pytest.approx(mapped[1, 1], abs=1e-6)  # level
    assert mapped.mean(axis=0) == pytest.approx([120, 120], abs=1e-6)  # centred
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert abs(ys.mean() - 119.5) < 1.5 and abs(xs.mean() - 119.5) < 1.5
    left, right = xs < 120, xs >= 120
    assert abs(ys[left].mean() - ys[right].mean()) < 1.5  # the drawn eyes come out level


def test_large_downscale_is_area_averaged_and_outside_is_black():
    frame = np.zeros((1000, 1000, 3), np.uint8)
    frame[::2] = 255  # one-pixel stripes: aliasing would show them, averaging gives grey
    crop = warp_face(frame, (500, 500), 800.0, 0.0, 100)
    assert abs(float(crop[20:80, 20:80].mean()) - 127.5) < 8
    edge = warp_face(frame, (10, 10), 200.0, 0.0, 100)
    assert edge[:30, :30].max() == 0
    assert crop_side(np.array([0, 0, 100, 50]), 0.3) == pytest.approx(130)


def test_area_sampler_matches_torch_area_interpolation():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    sampler = AreaSampler(image)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=(11, 17), mode="area"
    )
    ours = sampler.whole((11, 17)) / 0.0078125 + 127.5
    assert torch.allclose(ours, ref, atol=1e-3)
    crop = sampler.regions([3], [30], [5], [40], (24, 24)) / 0.0078125 + 127.5
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(image[3:30, 5:40]).permute(2, 0, 1)[None].float(), size=(24, 24), mode="area"
    )
    assert torch.allclose(crop, ref, atol=1e-3)


def test_pyramid_ladder_and_skipped_levels():
    full = pyramid_scales(720, 1280, 20, 0.709)
    assert full[0] == pytest.approx(0.6) and min(720 * s for s in full) >= 12
    skip = levels_to_skip(80, 20, 0.709)
    assert skip == 4 and 20 / 0.709**skip <= 80 < 20 / 0.709 ** (skip + 1)
    assert levels_to_skip(10, 20, 0.709) == 0


def test_still_decoding_converts_every_format(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), rgb[..., 0])
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.dstack([rgb, np.full((40, 50), 128, np.uint8)]))
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), rgb.astype(np.uint16) * 257)
    for path in (gray, rgba, deep):
        still = read_still(path)
        assert still.bgr.shape == (40, 50, 3) and still.bgr.dtype == np.uint8 and still.scale == 1
    assert np.array_equal(read_still(deep).bgr, rgb)
    big = tmp_path / "big.jpg"
    cv2.imwrite(str(big), np.zeros((400, 600, 3), np.uint8))
    reduced = read_still(big, reduce_above=50_000)
    assert reduced.scale == 4 and reduced.bgr.shape == (100, 150, 3) and "1/4" in reduced.note


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"not an image at all", "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, ""),
    ],
)
def test_unreadable_stills_raise_media_errors(tmp_path, content, message):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=message):
        read_still(path)


def test_video_probing_and_sparse_decoding(tmp_path):
    path = write_video(tmp_path / "v.avi", n_frames=20)
    info = probe_video(path)
    assert (info.n_frames, info.width, info.height) == (20, 96, 64)
    frames = dict(iter_frames(path, [3, 4, 17, 40]))
    assert sorted(frames) == [3, 4, 17]  # 40 lies beyond the end: not an error
    assert frames[3].shape == (64, 96, 3)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        probe_video(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("hello " * 100)
    with pytest.raises(MediaError, match="cannot open"):
        probe_video(tmp_path / "text.mp4")
