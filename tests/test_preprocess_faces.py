"""The face pipeline on real faces (../shared data; skipped where it is absent): dfdetect's MTCNN
cascade reproduces facenet-pytorch's boxes, and the crops come out centred, level and 240x240."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdetect.preprocess.align import eye_angle
from dfdetect.preprocess.faces import box_iou
from dfdetect.preprocess.media import iter_frames
from dfdetect.preprocess.pipeline import process_item
from dfdetect.preprocess.settings import ClipSettings
from tests.conftest import SHARED, requires_shared

MINI = SHARED / "data" / "ffpp_c40_mini"
pytestmark = requires_shared("data", "ffpp_c40_mini")


@pytest.fixture(scope="module")
def detector():
    from dfdetect.preprocess.mtcnn_detector import MTCNNDetector

    return MTCNNDetector()


@pytest.mark.parametrize(
    ("video", "index"), [("original/youtube/183.mp4", 40), ("manipulated/Deepfakes/469_481.mp4", 200)]
)
def test_cascade_reproduces_facenet_boxes(detector, video, index):
    frame = dict(iter_frames(MINI / video, [index]))[index]
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    ref_boxes, ref_probs, ref_points = detector.mtcnn.detect(rgb, landmarks=True)
    boxes, points = detector.cascade.detect(rgb, 20.0)
    assert len(boxes) == len(ref_boxes) >= 1
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]))
    ref_order = np.argsort(-(ref_boxes[:, 2] - ref_boxes[:, 0]).astype(float))
    np.testing.assert_allclose(boxes[order, :4], ref_boxes[ref_order].astype(float), atol=0.05)
    np.testing.assert_allclose(boxes[order, 4], ref_probs[ref_order].astype(float), atol=1e-4)
    np.testing.assert_allclose(points[order], np.stack(ref_points[ref_order]).astype(float), atol=0.05)
    for floor in (None, 0.5 * (boxes[order[0], 2] - boxes[order[0], 0])):  # fast searches: same box
        fast = detector.detect([frame], min_face_size=floor)[0][0]
        assert box_iou(fast.box, boxes[order[0], :4]) > 0.999


def test_video_clips_are_centred_level_faces(detector, tmp_path):
    settings = ClipSettings(clips_per_video=2)
    result = process_item(
        MINI / "original/youtube/183.mp4", "video", detector, settings, tmp_path, "frames/x"
    )
    assert result.status == "ok" and len(result.clips) == 2
    assert result.stats["frames_with_face"] == result.stats["frames_sampled"] == 10
    for clip in result.clips:
        assert np.diff(clip.frame_indices).tolist() == [1, 1, 1, 1]
        assert min(clip.det_prob) > 0.9
    crops = [cv2.imread(str(tmp_path / Path(p).name)) for c in result.clips for p in c.paths]
    assert all(c.shape == (240, 240, 3) for c in crops)
    for crop in crops[::3]:
        faces = detector.detect([crop], small_faces=True)[0]
        assert faces, "no face in the crop"
        cx = (faces[0].box[0] + faces[0].box[2]) / 2
        cy = (faces[0].box[1] + faces[0].box[3]) / 2
        assert abs(cx - 120) < 15 and abs(cy - 120) < 20
        assert abs(np.degrees(eye_angle(faces[0].landmarks))) < 4


@requires_shared("data", "samples", "celebfom")
def test_still_gives_one_aligned_crop(detector, tmp_path):
    still = SHARED / "data/samples/celebfom/Emma Stone_real.png"
    result = process_item(still, "image", detector, ClipSettings(), tmp_path, "frames/x")
    assert result.status == "ok" and len(result.clips) == 1
    clip = result.clips[0]
    assert clip.frame_indices == [0] and len(clip.paths) == 1
    x1, y1, x2, y2 = clip.face_boxes[0]
    assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 256
    assert cv2.imread(str(tmp_path / Path(clip.paths[0]).name)).shape == (240, 240, 3)
