"""Dataset adapters on fabricated trees: which files, labels, identities, groups and preset splits."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dfdetect.data.splits import assign_grouped_splits, check_no_group_leak
from dfdetect.preprocess.adapters import AdapterError, scan


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def by_key(items) -> dict:
    return {it.key: it for it in items}


def frame(items) -> pd.DataFrame:
    return pd.DataFrame([{**it.__dict__, "split": it.split} for it in items])


def test_ffpp_mini_layout_links_pairs_and_actors(tmp_path):
    touch(
        tmp_path,
        "original/youtube/183.mp4",
        "original/youtube/253.mp4",
        "original/youtube/469.mp4",
        "original/actors/08__talking.mp4",
        "original/actors/08__podium.mp4",
        "original/actors/13__kitchen.mp4",
        "manipulated/Deepfakes/183_253.mp4",
        "manipulated/Face2Face/253_183.mp4",
        "manipulated/Face2Face/notes.txt",
    )
    items = by_key(scan("ffpp_mini", str(tmp_path)))
    assert len(items) == 8  # the .txt is not media
    swap, reenact = items["manipulated/Deepfakes/183_253.mp4"], items["manipulated/Face2Face/253_183.mp4"]
    assert (swap.label, swap.method, swap.identity, swap.source_identity) == (
        1,
        "Deepfakes",
        "yt253",
        "yt183",
    )
    assert (reenact.identity, reenact.source_identity) == ("yt253", "yt253")  # reenactment keeps A's face
    pair = {items[k].group for k in ("original/youtube/183.mp4", "original/youtube/253.mp4")}
    assert pair == {swap.group} == {reenact.group}
    assert items["original/youtube/469.mp4"].group != swap.group
    assert items["original/actors/08__talking.mp4"].group == items["original/actors/08__podium.mp4"].group
    assert items["original/actors/08__talking.mp4"].identity == "actor08"
    assert items["original/actors/13__kitchen.mp4"].group != items["original/actors/08__podium.mp4"].group
    assert all(it.split == "" and it.video_id == it.key[:-4] for it in items.values())


def test_grouped_splits_never_share_an_identity(tmp_path):
    pairs = [(100 + 2 * i, 101 + 2 * i) for i in range(12)]
    names = [f"original/youtube/{a}.mp4" for p in pairs for a in p]
    names += [f"manipulated/{m}/{a}_{b}.mp4" for m in ("Deepfakes", "Face2Face") for a, b in pairs]
    names += [f"manipulated/FaceSwap/{b}_{a}.mp4" for a, b in pairs]
    touch(tmp_path, *names)
    df = frame(scan("ffpp_mini", str(tmp_path)))
    for seed in range(3):
        df["split"] = assign_grouped_splits(df, (0.6, 0.2, 0.2), seed)
        check_no_group_leak(df)
        assert set(df["split"]) == {"train", "val", "test"}
        assert df.groupby("identity")["split"].nunique().max() == 1
        assert df.groupby("source_identity")["split"].nunique().max() == 1


def test_ffpp_official_layout_compression_methods_and_splits(tmp_path):
    touch(
        tmp_path,
        "original_sequences/youtube/c23/videos/000.mp4",
        "original_sequences/youtube/c23/videos/003.mp4",
        "original_sequences/youtube/c40/videos/000.mp4",
        "original_sequences/actors/c23/videos/01__walk.mp4",
        "original_sequences/actors/c23/videos/02__walk.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
        "manipulated_sequences/NeuralTextures/c23/videos/003_000.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walk__ABCDEFGH.mp4",
        "manipulated_sequences/FaceShifter/c40/videos/000_003.mp4",
    )
    splits = tmp_path / "splits"
    splits.mkdir()
    for name, pairs in (("train", []), ("val", []), ("test", [["000", "003"]])):
        (splits / f"{name}.json").write_text(json.dumps(pairs))
    items = by_key(scan("ffpp", str(tmp_path), compression="c23", splits_dir=str(splits)))
    assert len(items) == 7  # c40 files left out
    dfd = items["manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walk__ABCDEFGH.mp4"]
    assert (dfd.identity, dfd.source_identity, dfd.label) == ("actor02", "actor01", 1)
    assert dfd.group == items["original_sequences/actors/c23/videos/01__walk.mp4"].group
    assert dfd.group == items["original_sequences/actors/c23/videos/02__walk.mp4"].group and dfd.split == ""
    yt = [it for k, it in items.items() if "actors" not in k and "DeepFakeDetection" not in k]
    assert {it.split for it in yt} == {"test"} and len({it.group for it in yt}) == 1
    only_df = scan("ffpp", str(tmp_path), methods=["Deepfakes"])
    assert {it.method for it in only_df} == {"real", "Deepfakes"}
    with pytest.raises(AdapterError, match="neither"):
        scan("ffpp", str(tmp_path / "splits"))


def test_celebdf_identities_and_official_test_list(tmp_path):
    touch(
        tmp_path,
        "Celeb-real/id0_0000.mp4",
        "Celeb-real/id1_0003.mp4",
        "Celeb-synthesis/id0_id1_0000.mp4",
        "Celeb-synthesis/id1_id0_0003.mp4",
        "YouTube-real/00007.mp4",
    )
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00007.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n"
    )
    items = by_key(scan("celebdf", str(tmp_path)))
    fake = items["Celeb-synthesis/id0_id1_0000.mp4"]
    assert (fake.label, fake.identity, fake.source_identity) == (1, "id1", "id0")
    assert fake.split == "test" and items["YouTube-real/00007.mp4"].split == "test"
    assert items["Celeb-real/id1_0003.mp4"].split == ""
    assert fake.group == items["Celeb-real/id0_0000.mp4"].group  # made from that video
    assert items["YouTube-real/00007.mp4"].identity == "youtube_00007"
    strict = by_key(scan("celebdf", str(tmp_path), group_by="identity"))
    assert len({it.group for k, it in strict.items() if "YouTube" not in k}) == 1  # id0, id1 linked by swaps
    assert all(it.split == "" for it in strict.values())
    (tmp_path / "List_of_testing_videos.txt").write_text("YouTube-real/00007.mp4\n")
    with pytest.raises(AdapterError, match="expected"):
        scan("celebdf", str(tmp_path))


@pytest.mark.parametrize(("adapter", "method"), [("voxcelebth", "talking_head"), ("fcelebdf", "face_swap")])
def test_per_celebrity_folders(tmp_path, adapter, method):
    touch(
        tmp_path,
        "real/Paul Scheer/a.jpg",
        "real/Paul Scheer/clip.mp4",
        "fake/Paul Scheer/BlPusL_Bv6k/1.6/0008000.jpg",
        "fake/Bae Suzy/95_02498_0.jpg",
        "stray.jpg",
    )
    items = by_key(scan(adapter, str(tmp_path)))
    assert "stray.jpg" not in items  # outside real/ and fake/: left out with a warning
    deep = items["fake/Paul Scheer/BlPusL_Bv6k/1.6/0008000.jpg"]
    assert (deep.label, deep.method, deep.identity, deep.kind) == (1, method, "Paul Scheer", "image")
    assert items["real/Paul Scheer/clip.mp4"].kind == "video"
    assert deep.group == items["real/Paul Scheer/a.jpg"].group != items["fake/Bae Suzy/95_02498_0.jpg"].group


def test_celebfom_nested_and_flat_names(tmp_path):
    touch(
        tmp_path,
        "Emma Watson/id11_0009/Gal Gadot_fake.png",
        "Emma Watson/id11_0009/Emma Watson_real.png",
        "Gal Gadot/id3_0001/Emma Watson_fake.png",
        "Will Smith_real.png",
        "Megan Fox_fake.png",
    )
    items = by_key(scan("celebfom", str(tmp_path)))
    nested = items["Emma Watson/id11_0009/Gal Gadot_fake.png"]
    assert (nested.label, nested.identity, nested.source_identity) == (1, "Emma Watson", "Gal Gadot")
    assert items["Emma Watson/id11_0009/Emma Watson_real.png"].label == 0
    assert items["Will Smith_real.png"].identity == "Will Smith"
    assert items["Megan Fox_fake.png"].label == 1
    # linked through both people
    assert nested.group == items["Gal Gadot/id3_0001/Emma Watson_fake.png"].group


def test_celebblend_sources_and_default_label(tmp_path):
    touch(
        tmp_path,
        "fake/Emma Watson/IU.jpg",
        "fake/Emma Watson/Emma Stone.jpg",
        "real/IU/1.jpg",
        "FaceApp_1.jpg",
    )
    items = by_key(scan("celebblend", str(tmp_path)))
    blend = items["fake/Emma Watson/IU.jpg"]
    assert (blend.method, blend.identity, blend.source_identity) == ("faceapp", "Emma Watson", "IU")
    assert blend.group == items["real/IU/1.jpg"].group == items["fake/Emma Watson/Emma Stone.jpg"].group
    assert "FaceApp_1.jpg" not in items
    flat = by_key(scan("celebblend", str(tmp_path), default_label=1))
    assert flat["FaceApp_1.jpg"].label == 1


def test_folder_adapter_tree_and_csv(tmp_path):
    touch(tmp_path, "data/real/a.mp4", "data/real/x/b.png", "data/fake/c.avi", "data/fake/c.mp4")
    items = by_key(scan("folder", str(tmp_path / "data")))
    assert {k: it.label for k, it in items.items()} == {
        "real/a.mp4": 0,
        "real/x/b.png": 0,
        "fake/c.avi": 1,
        "fake/c.mp4": 1,
    }
    assert items["fake/c.avi"].video_id == "fake/c.avi"  # same stem twice: the extension disambiguates
    # no identities: one group per file, except that files differing only in extension (likely the
    # same footage) share one
    assert len({it.group for it in items.values()}) == 3
    assert items["fake/c.avi"].group == items["fake/c.mp4"].group
    (tmp_path / "list.csv").write_text(
        "path,label,identity,group\ndata/real/a.mp4,real,alice,\ndata/fake/c.mp4,1,bob,g1\ndata/real/x/b.png,0,,g1\n"
    )
    listed = by_key(scan("folder", str(tmp_path / "list.csv")))
    assert (
        listed["data/fake/c.mp4"].group
        == listed["data/real/x/b.png"].group
        != listed["data/real/a.mp4"].group
    )
    assert listed["data/real/a.mp4"].identity == "alice"
    (tmp_path / "bad.csv").write_text("path,label\ndata/real/a.mp4,maybe\n")
    with pytest.raises(AdapterError, match="label must be"):
        scan("folder", str(tmp_path / "x"), csv=str(tmp_path / "bad.csv"))
    with pytest.raises(AdapterError, match="no real/ or fake/"):
        scan("folder", str(tmp_path))
    with pytest.raises(AdapterError, match="does not exist"):
        scan("folder", str(tmp_path / "missing"))
    with pytest.raises(AdapterError, match="unknown adapter"):
        scan("nope", str(tmp_path))
