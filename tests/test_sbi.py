"""Self-blended pseudo-fakes (data.synthesis=sbi): made from real faces inside a landmark mask,
clip-consistent, labelled fake; real clips without landmarks counted and left out."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from dfdetect.data import write_manifest
from dfdetect.data.landmarks import clip_landmarks, crop_box, predictor_path
from dfdetect.data.sbi import SelfBlendedClipDataset, hull_mask, sample_params, sbi_rows, self_blend_clip

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw_deepfunneled_10" / "images"


def face_frame(index: int = 0, size: int = 160) -> np.ndarray:
    """A real face crop (LFW, deep-funnelled: the face is centred), RGB."""
    paths = sorted(LFW.glob("*/*.jpg"))
    if not paths:
        pytest.skip(f"no LFW images under {LFW}")
    img = cv2.imread(str(paths[index]))[40:210, 40:210, ::-1]
    return np.ascontiguousarray(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))


def moving_clip(frame: np.ndarray, t: int = 5, step: int = 2) -> np.ndarray:
    """The face translated by ``step`` px per frame (replicated borders)."""
    h, w = frame.shape[:2]
    out = []
    for i in range(t):
        m = np.float32([[1, 0, step * i], [0, 1, step * i / 2]])
        out.append(cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out)


def test_the_68_point_predictor_is_the_installed_one():
    assert (
        predictor_path().name == "shape_predictor_68_face_landmarks.dat"
        and predictor_path().stat().st_size > 10**7
    )


def test_pseudo_fake_differs_from_its_real_only_inside_the_dilated_landmark_mask():
    clip = moving_clip(face_frame())
    points, where = clip_landmarks(clip)
    assert where == "detected" and points.shape == (5, 68, 2)
    h, w = clip.shape[1:3]
    for seed in range(6):
        rng = np.random.default_rng(seed)
        params = sample_params(np.random.default_rng(seed))
        real, fake, mask = self_blend_clip(clip, points, rng)
        assert real.shape == fake.shape == clip.shape and mask.shape == clip.shape[:3]
        changed = (fake != real).any(axis=-1)
        assert changed.any(), "the pseudo-fake must differ from its real"
        assert not changed[mask == 0].any(), "a pixel outside the blend mask changed"
        # the blend mask stays within the landmark hull moved by the affine/elastic jitter and
        # widened by the two blurs (at most (k1 + k2) / 2 px at the 192-256 px blur size)
        reach = int(np.ceil((params.kernel_1 + params.kernel_2) / 2 * w / 192)) + int(0.05 * w) + 8
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
        for i in range(len(clip)):
            allowed = cv2.dilate(hull_mask(points[i], h, w), kernel) > 0
            assert not (mask[i] > 0)[~allowed].any()
            # and much of the face is inside the mask
            assert (mask[i] > 0).sum() > 0.1 * (hull_mask(points[i], h, w) > 0).sum()


def test_a_clip_gets_one_draw_for_all_its_frames():
    frame = face_frame(3)
    clip = np.stack([frame] * 4)
    points, _ = clip_landmarks(clip)
    _, fake, mask = self_blend_clip(clip, points, np.random.default_rng(1))
    for i in range(1, 4):  # same frame, same landmarks: the same pseudo-fake in every frame
        assert np.array_equal(fake[i], fake[0]) and np.array_equal(mask[i], mask[0])
    other = [self_blend_clip(clip, points, np.random.default_rng(s))[1][0] for s in (2, 3)]
    assert not np.array_equal(other[0], other[1])  # while clips draw anew


def write_store(root: Path, faces: int = 2, blanks: int = 1, fakes: int = 1) -> Path:
    rows = []
    clips = [("face", i, moving_clip(face_frame(i, 96), t=3)) for i in range(faces)]
    clips += [("blank", i, np.full((3, 96, 96, 3), 128, np.uint8)) for i in range(blanks)]
    for kind, i, clip in clips:
        video = f"{kind}{i}"
        (root / video).mkdir(parents=True)
        paths = []
        for f, frame in enumerate(clip):
            cv2.imwrite(str(root / video / f"{f}.png"), frame[:, :, ::-1])
            paths.append(f"{video}/{f}.png")
        rows.append(
            dict(
                clip_id=f"{video}/0",
                video_id=video,
                dataset="t",
                method="real",
                label=0,
                identity=video,
                source_identity=video,
                group=video,
                split="train",
                frame_indices=[0, 1, 2],
                face_boxes=[[0.0, 0.0, 96.0, 96.0]] * 3,
                det_prob=[1.0] * 3,
                paths=paths,
            )
        )
    for i in range(fakes):  # a stored fake: never read under synthesis
        rows.append(
            {**rows[0], "clip_id": f"fake{i}/0", "video_id": f"fake{i}", "label": 1, "method": "deepfakes"}
        )
    write_manifest(pd.DataFrame(rows), root)
    return root


def test_dataset_holds_each_real_and_its_pseudo_fake_and_counts_clips_without_landmarks(tmp_path):
    store = write_store(tmp_path / "store")
    manifest = pd.read_parquet(store / "manifest.parquet")
    rows = sbi_rows(manifest)
    assert rows["label"].tolist() == [0, 1] * 3  # stored fakes dropped, one pseudo-fake per real
    assert rows.loc[rows["label"] == 1, "method"].eq("sbi").all()
    ds = SelfBlendedClipDataset(manifest, store, no_face="skip", image_size=None)
    items = ds.__getitems__(list(range(len(ds))))
    got = {(it["clip_id"], int(it["label"])) for it in items}
    assert got == {("face0/0", 0), ("face0/0#sbi", 1), ("face1/0", 0), ("face1/0#sbi", 1), ("blank0/0", 0)}
    assert ds.no_landmarks.count == 1  # the blank clip: no face, no pseudo-fake, counted once
    again = ds.__getitems__(list(range(len(ds))))
    assert len(again) == 5 and ds.no_landmarks.count == 1
    for it in items:
        assert it["clip"].shape == (3, 3, 96, 96) and str(it["clip"].dtype) == "torch.uint8"
    # the crop's face box instead: every real clip gets a pseudo-fake
    boxed = SelfBlendedClipDataset(manifest, store, no_face="crop_box", image_size=None)
    assert len(boxed.__getitems__(list(range(len(boxed))))) == 6 and boxed.no_landmarks.count == 0


def test_crop_box_is_the_central_face_box_of_a_store_crop():
    assert crop_box(130, 130, margin=0.3) == (15, 15, 115, 115)


def test_datamodule_synthesises_train_and_val_and_reads_test_as_stored(tmp_path):
    from dfdetect.data import ClipDataModule

    store = write_store(tmp_path / "store", faces=3, blanks=0, fakes=0)
    manifest = pd.read_parquet(store / "manifest.parquet")
    extra = manifest.assign(
        clip_id=manifest["clip_id"] + "f",
        video_id=manifest["video_id"] + "f",
        label=1,
        group=manifest["group"] + "f",
        method="deepfakes",
        split="test",
    )
    write_manifest(pd.concat([manifest.assign(split=["train", "val", "test"]), extra]), store)
    dm = ClipDataModule(store, image_size=None, synthesis="sbi", batch_size=2, num_workers=0)
    dm.setup()
    assert isinstance(dm.splits["train"], SelfBlendedClipDataset) and isinstance(
        dm.splits["val"], SelfBlendedClipDataset
    )
    assert dm.splits["train"].labels.tolist() == [0, 1] and dm.splits["val"].labels.tolist() == [0, 1]
    assert not isinstance(dm.splits["test"], SelfBlendedClipDataset)
    assert sorted(dm.splits["test"].labels.tolist()) == [0, 1, 1, 1]
    batch = next(iter(dm.train_dataloader()))
    assert batch["clip"].shape[1:] == (3, 3, 96, 96)
    with pytest.raises(ValueError, match="synthesis"):
        ClipDataModule(store, synthesis="blend")


def test_evaluation_splits_draw_the_same_pseudo_fake_every_epoch(tmp_path):
    store = write_store(tmp_path / "store", faces=1, blanks=0, fakes=0)
    manifest = pd.read_parquet(store / "manifest.parquet")
    fixed = SelfBlendedClipDataset(manifest, store, image_size=None, fixed_draws=True)
    assert torch.equal(fixed[1]["clip"], fixed[1]["clip"])  # validation: one pseudo-fake per item
    free = SelfBlendedClipDataset(manifest, store, image_size=None)
    assert not all(torch.equal(free[1]["clip"], free[1]["clip"]) for _ in range(3))  # training draws anew
