"""The clip store's manifest: one row per clip (see DESIGN.md, "Clip store").

Columns
    clip_id          unique id of the clip, ``<video_id>/<first frame index>``
    video_id         the video (or still) the clip comes from
    dataset, method  dataset name; manipulation method (``real`` for pristine clips)
    label            1 = fake, 0 = real
    identity         whose face the clip shows (for a fake, the identity it impersonates)
    source_identity  the person of the source video the face was put into (= identity for reals)
    group            leak-free split unit: videos and fakes linked through identities share one
    split            ``train``/``val``/``test``, or empty to let the datamodule assign it
    frame_indices    frame numbers in the video, one per clip frame
    face_boxes       ``[x1, y1, x2, y2]`` per frame in source-frame pixels
    det_prob         face detector confidence per frame
    paths            JPEG paths relative to the store directory, one per frame
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from dfdetect.utils.errors import UserError
from dfdetect.utils.io import atomic_path

MANIFEST_NAME = "manifest.parquet"
MANIFEST_COLUMNS = [
    "clip_id",
    "video_id",
    "dataset",
    "method",
    "label",
    "identity",
    "source_identity",
    "group",
    "split",
    "frame_indices",
    "face_boxes",
    "det_prob",
    "paths",
]
SPLITS = ("train", "val", "test")
# evaluate.py split=all: every clip of a store, whatever its split (cross-dataset scoring)
ALL = "all"


class ManifestError(ValueError):
    pass


class StoreNotFoundError(UserError, FileNotFoundError):
    """No clip store (or export) where the configuration says."""


def store_image_key(dataset, item):
    """The key that joins cached API answers to detector predictions: ``<dataset>/<video or clip id>``.
    Works on strings and, element-wise, on pandas Series."""
    return dataset + "/" + item


def validate_manifest(df: pd.DataFrame, where: str = "manifest") -> pd.DataFrame:
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{where}: missing columns {missing}")
    if df["clip_id"].duplicated().any():
        dup = df.loc[df["clip_id"].duplicated(), "clip_id"].iloc[0]
        raise ManifestError(f"{where}: clip_id {dup!r} appears more than once")
    bad_labels = set(df["label"].unique()) - {0, 1}
    if bad_labels:
        raise ManifestError(f"{where}: labels must be 0 (real) or 1 (fake), found {sorted(bad_labels)}")
    bad_splits = set(df["split"].fillna("").unique()) - set(SPLITS) - {""}
    if bad_splits:
        raise ManifestError(f"{where}: unknown split names {sorted(bad_splits)}")
    lengths = df["paths"].map(len)
    if (lengths == 0).any():
        raise ManifestError(f"{where}: clip {df.loc[lengths == 0, 'clip_id'].iloc[0]!r} has no frames")
    return df


def read_manifest(store_dir: str | os.PathLike) -> pd.DataFrame:
    path = Path(store_dir) / MANIFEST_NAME
    if not path.is_file():
        raise StoreNotFoundError(f"no clip store at {store_dir} (no {MANIFEST_NAME})")
    df = pd.read_parquet(path)
    df["label"] = df["label"].astype("int64")
    df["split"] = df["split"].fillna("")
    return validate_manifest(df, str(path))


def write_manifest(df: pd.DataFrame, store_dir: str | os.PathLike) -> Path:
    df = validate_manifest(df[MANIFEST_COLUMNS].reset_index(drop=True))
    path = Path(store_dir) / MANIFEST_NAME
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path
