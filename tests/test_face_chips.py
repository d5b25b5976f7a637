"""Face chips for dlib's face-recognition net from MTCNN landmarks (dfdetect/preprocess/face_chips.py)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dfdetect.preprocess import face_chips as fc

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "samples"


def test_template_points_follow_dlibs_padding_rule():
    pts = fc.template_points(fc.DLIB_5_TEMPLATE, 150, 0.25)
    assert np.allclose(pts[0], (np.array([0.8595674595992, 0.2134981538014]) + 0.25) / 1.5 * 150)
    # MTCNN's points sit where dlib's mean face has them: eyes level, mouth below the nose
    t = fc.MTCNN_TEMPLATE
    assert np.isclose(t[0, 1], t[1, 1]) and np.isclose(t[3, 1], t[4, 1]) and t[0, 1] < t[2, 1] < t[3, 1]
    assert abs((t[0, 0] + t[1, 0]) / 2 - 0.490127) < 0.01


def test_similarity_fit_recovers_a_similarity_exactly():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    a, s, t = 0.3, 1.7, np.array([12.0, -4.0])
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    m = fc.similarity_fit(src, src @ (s * rot).T + t)
    assert np.allclose(m[:, :2], s * rot) and np.allclose(m[:, 2], t)


def test_chip_maps_the_landmarks_onto_the_template():
    # landmarks that are exactly a rotated, scaled template: they land on the template points,
    # up to dlib's size/(size-1) stretch about the chip centre
    a, s = -0.2, 2.5
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    chip_pts = fc.template_points(fc.MTCNN_TEMPLATE)
    landmarks = chip_pts @ (s * rot).T + (300, 200)
    m = fc.chip_to_image(landmarks)
    back = (landmarks - m[:, 2]) @ np.linalg.inv(m[:, :2]).T
    assert np.abs(back - chip_pts).max() < 1.0  # dlib: chip pixel (size-1)/2 sits on the fit's size/2
    image = np.zeros((600, 800, 3), np.uint8)
    for x, y in landmarks.round().astype(int):
        cv2.circle(image, (int(x), int(y)), 6, (255, 255, 255), -1)
    chip = fc.face_chip(image, landmarks)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    for x, y in chip_pts.round().astype(int):
        assert chip[y, x].min() > 200  # each dot is under its template point


def test_bad_landmarks_are_refused():
    with pytest.raises(ValueError, match="landmarks"):
        fc.face_chip(np.zeros((10, 10, 3), np.uint8), np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="landmarks"):
        fc.face_chip(np.zeros((10, 10, 3), np.uint8), np.zeros((4, 2)))


def test_a_face_far_outside_the_frame_gives_a_black_chip():
    chip = fc.face_chip(np.full((50, 50, 3), 255, np.uint8), fc.template_points(fc.MTCNN_TEMPLATE) * 4 + 5000)
    assert chip.shape == (150, 150, 3) and chip.max() == 0


def _dlib_setup():
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError as err:
        pytest.skip(f"dlib / face_recognition_models cannot be imported ({err}); pip install -e '.[dev]'")
    images = [cv2.imread(str(p)) for p in sorted((SAMPLES / "celebfom").glob("*_real.png"))]
    if not images:
        pytest.skip(f"no sample faces under {SAMPLES} (../shared is absent)")
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    return (
        dlib,
        dlib.get_frontal_face_detector(),
        predictor,
        [cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in images],
    )


def _embed(chips: list[np.ndarray]) -> np.ndarray:
    from dfdetect.models.nets.dlib_face import dlib_resnet

    with torch.no_grad():
        return dlib_resnet().eval()(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()).numpy()


def test_our_warp_matches_dlibs_chip_from_the_same_five_points():
    dlib, detector, predictor, images = _dlib_setup()
    ours, theirs = [], []
    for rgb in images:
        shape = predictor(rgb, max(detector(rgb, 1), key=lambda r: r.area()))
        points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], float)
        ours.append(fc.face_chip(rgb, points, template=fc.DLIB_5_TEMPLATE))
        theirs.append(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))
        assert np.abs(ours[-1].astype(int) - theirs[-1]).mean() < 3.0  # grey levels
    e = _embed(ours + theirs)
    dist = np.linalg.norm(e[: len(ours)] - e[len(ours) :], axis=1)
    print(f"our warp vs dlib.get_face_chip, same 5 points: descriptor distance max {dist.max():.3f}")
    assert dist.max() < 0.1


def test_mtcnn_chips_stay_close_to_dlibs_own_chips():
    from dfdetect.preprocess.mtcnn_detector import MTCNNDetector

    dlib, detector, predictor, images = _dlib_setup()
    found = fc.frame_chips(
        MTCNNDetector(min_face_size=40), [cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in images]
    )
    ours, theirs = [], []
    for rgb, faces in zip(images, found, strict=True):
        assert len(faces) == 1
        shape = predictor(rgb, max(detector(rgb, 1), key=lambda r: r.area()))
        ours.append(faces[0][1])
        theirs.append(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))
    e = _embed(ours + theirs)
    dist = np.linalg.norm(e[: len(ours)] - e[len(ours) :], axis=1)
    print(
        f"MTCNN chips vs dlib 5-point chips: descriptor distance mean {dist.mean():.3f} max {dist.max():.3f}"
    )
    assert dist.max() < 0.35  # same face: far below dlib's 0.6 same-person threshold
