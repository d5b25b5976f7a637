"""Grouped k-fold cross-validation: every video tested exactly once, no group in two folds, each
fold's train/val/test disjoint by group, both classes in every fold where the groups allow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfdetect.data import ClipDataModule
from dfdetect.data.folds import assign_grouped_folds, fold_splits
from dfdetect.data.split_check import SplitError
from tests.clip_store_fakes import write_jpeg_store


def ffpp_like_manifest(seed: int, pairs: int = 5, actors: int = 8) -> pd.DataFrame:
    """Like ffpp_mini: pair groups (2 real + 8 fake videos), actor groups (1-2 real videos),
    16 clips per video."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(pairs):
        for v in range(10):
            rows += [dict(group=f"yt{p}", video_id=f"yt{p}_{v}", label=int(v >= 2))] * 16
    for a in range(actors):
        for v in range(int(rng.integers(1, 3))):
            rows += [dict(group=f"actor{a}", video_id=f"actor{a}_{v}", label=0)] * 16
    return pd.DataFrame(rows).assign(split="")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [3, 5])
def test_every_video_is_tested_once_and_no_group_spans_folds(seed, k):
    df = ffpp_like_manifest(seed)
    fold = assign_grouped_folds(df, k, seed=seed)
    assert df.assign(fold=fold).groupby("group")["fold"].nunique().max() == 1
    tested = pd.Series(0, index=df.index)
    for i in range(k):
        split = fold_splits(df, k, i, fold_seed=seed)
        assert split.groupby(df["group"]).nunique().max() == 1  # train/val/test disjoint by group
        assert set(split) == {"train", "val", "test"}
        assert (split == "test").equals(fold == i)
        assert (split == "val").equals(fold == (i + 1) % k)  # carved from the training folds
        tested += split == "test"
        for name in ("train", "val", "test"):  # both classes everywhere: 5 pair groups, k <= 5
            assert df.loc[split == name, "label"].nunique() == 2, (i, name)
    assert (tested == 1).all()
    videos_tested = df.assign(t=tested).groupby("video_id")["t"].first()
    assert (videos_tested == 1).all()


def test_folds_are_balanced_and_seeded():
    df = ffpp_like_manifest(0)
    a, b = assign_grouped_folds(df, 5, seed=1), assign_grouped_folds(df, 5, seed=1)
    assert a.equals(b)
    per_fold = df.assign(fold=a).groupby("fold")["label"].agg(["size", "sum"])
    assert per_fold["sum"].tolist() == [128] * 5  # one pair group's 8 fakes x 16 clips each
    assert any(not assign_grouped_folds(df, 5, seed=s).equals(a) for s in range(2, 8))


def test_bad_fold_arguments_are_refused():
    df = ffpp_like_manifest(0, pairs=2, actors=1)
    with pytest.raises(ValueError, match="exceeds the 3 groups"):
        assign_grouped_folds(df, 4)
    with pytest.raises(ValueError, match="at least 3"):
        fold_splits(df, 2, 0)
    with pytest.raises(ValueError, match="data.fold must be in 0..2"):
        fold_splits(df, 3, 3)


def test_datamodule_serves_fold_splits_and_ignores_presets(tmp_path):
    videos = [(f"p{g}_{v}", int(v > 0), f"p{g}") for g in range(3) for v in range(3)]
    videos += [(f"a{g}", 0, f"a{g}") for g in range(3)]
    write_jpeg_store(tmp_path, videos, clips_per_video=1, frames_per_clip=1, size=16)
    tested = []
    for i in range(3):
        dm = ClipDataModule(tmp_path, image_size=16, folds=3, fold=i)
        dm.setup()
        m = dm.manifest
        assert m.groupby("group")["split"].nunique().max() == 1
        dm.check_splits(["train", "val", "test"])
        tested += dm.split_frame("test")["video_id"].tolist()
    assert sorted(tested) == sorted(v for v, _, _ in videos)
    with pytest.raises(ValueError, match="data.fold must be in 0..2"):
        ClipDataModule(tmp_path, folds=3, fold=3)


def test_a_fold_without_both_classes_names_a_fold_seed_that_works(tmp_path):
    # 4 groups, one fake video among them: with 3 folds two folds lack fakes whatever the seed
    videos = [("f0", 1, "g0"), ("r0", 0, "g0"), ("r1", 0, "g1"), ("r2", 0, "g2"), ("r3", 0, "g3")]
    write_jpeg_store(tmp_path, videos, clips_per_video=1, frames_per_clip=1, size=16)
    dm = ClipDataModule(tmp_path, image_size=16, folds=3, fold=0)
    with pytest.raises(SplitError, match="has no fake clips") as err:
        dm.check_splits(["train", "val", "test"])
    assert "data.fold_seed=" not in str(err.value)  # no seed can give every fold a fake


def test_the_fold_seed_named_in_the_error_makes_every_fold_usable(tmp_path):
    # (real, fake) videos per group; fold seed 0 leaves a fold without fakes, a later one does not
    counts = [(2, 0), (1, 1), (0, 2), (2, 1), (2, 0), (1, 0)]
    videos = [
        (f"g{g}_{label}{v}", label, f"g{g}")
        for g, c in enumerate(counts)
        for label in (0, 1)
        for v in range(c[label])
    ]
    write_jpeg_store(tmp_path, videos, clips_per_video=1, frames_per_clip=1, size=16)

    def first_error(seed: int) -> SplitError | None:
        for i in range(3):
            try:
                ClipDataModule(tmp_path, image_size=16, folds=3, fold=i, fold_seed=seed).check_splits(
                    ["train", "val", "test"]
                )
            except SplitError as err:
                return err
        return None

    err = first_error(0)
    assert err is not None
    named = int(str(err).split("data.fold_seed=")[1].split()[0])
    assert named > 0 and first_error(named) is None


def test_fitting_on_a_validation_fold_of_one_pair_splits_its_videos_by_class(tmp_path):
    # 3 pair groups (2 real + 3 fake videos each) and 3 one-video actors, 3 folds: each validation
    # fold holds one pair, so no grouped fit/select partition gives both parts a fake
    videos = [(f"p{g}_{v}", int(v >= 2), f"p{g}") for g in range(3) for v in range(5)]
    videos += [(f"a{g}", 0, f"a{g}") for g in range(3)]
    write_jpeg_store(tmp_path, videos, clips_per_video=1, frames_per_clip=1, size=16)
    for i in range(3):
        plain = ClipDataModule(tmp_path, image_size=16, folds=3, fold=i)
        plain.setup()
        dm = ClipDataModule(tmp_path, image_size=16, folds=3, fold=i, fit_on="val")
        dm.check_splits(["train", "val"])  # both parts hold both classes
        assert dm.fit_select_unit == "video"
        m = dm.manifest
        fit, select = (
            set(m.loc[m["split"] == "train", "video_id"]),
            set(m.loc[m["split"] == "val", "video_id"]),
        )
        val_videos = set(plain.split_frame("val")["video_id"])
        assert fit | select == val_videos and not fit & select  # by video, within the validation fold
        assert set(dm.split_frame("test")["video_id"]) == set(plain.split_frame("test")["video_id"])
        for part in ("train", "val"):
            assert sorted(m.loc[m["split"] == part, "label"].unique()) == [0, 1]
        # the pair's videos: each class split on its own (2 real, 3 fake: both parts get both)
        assert m.loc[m["split"] == "val", "group"].isin(m.loc[m["split"] == "train", "group"]).any()


def test_fitting_on_validation_keeps_groups_apart_where_they_allow(tmp_path):
    videos = [(f"p{g}_{v}", int(v >= 1), f"p{g}") for g in range(8) for v in range(2)]
    write_jpeg_store(tmp_path, videos, clips_per_video=1, frames_per_clip=1, size=16)
    dm = ClipDataModule(tmp_path, image_size=16, folds=3, fold=0, fit_on="val")
    dm.check_splits(["train", "val"])
    assert dm.fit_select_unit == "group"
    assert dm.manifest.groupby("group")["split"].nunique().max() == 1


def test_stores_of_the_same_videos_deal_the_same_folds_whatever_their_clips_per_video():
    # ABNet reads a store of 8 long clips per video, the other nets one of 16 short clips: the
    # fold a video lands in must not depend on that (pooled rows compare the same test videos)
    df16 = ffpp_like_manifest(0)
    df8 = df16.groupby("video_id", sort=False).head(8).reset_index(drop=True)
    for seed in range(3):
        a = df16.assign(fold=assign_grouped_folds(df16, 5, seed)).groupby("video_id")["fold"].first()
        b = df8.assign(fold=assign_grouped_folds(df8, 5, seed)).groupby("video_id")["fold"].first()
        assert a.equals(b.reindex(a.index))


ROOT = Path(__file__).resolve().parents[1]
FFPP_MINI_STORES = (ROOT / "data/stores/ffpp_mini", ROOT / "outputs/stores/ffpp_mini_seg64")


@pytest.mark.skipif(
    not all((s / "manifest.parquet").exists() for s in FFPP_MINI_STORES), reason="ffpp_mini stores not built"
)
def test_the_two_ffpp_mini_stores_deal_the_same_folds():
    from dfdetect.data.manifest import read_manifest

    folds = []
    for store in FFPP_MINI_STORES:
        m = read_manifest(store)
        folds.append(m.assign(fold=assign_grouped_folds(m, 5, 0)).groupby("video_id")["fold"].first())
    assert len(folds[0]) == 60 and folds[0].equals(folds[1].reindex(folds[0].index))
