"""Export a clip store to LitData chunks for streaming (local disk or object storage).

Layout of an export directory::

    <out>/train/ val/ test/      LitData chunk folders (``index.json`` + ``chunk-*.bin``), one per split
    <out>/manifest.parquet       the store's manifest with the split assigned at export, plus
                                 ``litdata_split`` / ``litdata_index``: where each clip's sample lives
    <out>/export.json            source store, split settings and filters, clips per split

A sample holds a clip's original JPEG bytes (concatenated, with their sizes), so a streamed clip
decodes to exactly the pixels the store path reads. Splits are fixed at export: the grouped split
assignment of the datamodule (same fractions, seed, group column and dataset/method filters) runs
here, and the exported manifest carries it as preset splits. Each split folder is written under a
temporary name and renamed when complete; a rerun with the same settings skips finished splits.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from dfdetect.data.manifest import MANIFEST_COLUMNS, MANIFEST_NAME, SPLITS, read_manifest, validate_manifest
from dfdetect.data.splits import assign_grouped_splits, check_no_group_leak
from dfdetect.utils.io import atomic_path, write_json

EXPORT_VERSION = 1
EXPORT_META = "export.json"
INDEX_NAME = "index.json"


class ExportMismatchError(RuntimeError):
    pass


def split_manifest(
    df: pd.DataFrame,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
    group_column: str = "group",
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The clips the datamodule would use, with their grouped splits (as ``ClipDataModule.load_manifest``)."""
    if datasets:
        df = df[df["dataset"].isin(list(datasets))]
    if methods:
        df = df[df["method"].isin([*methods, "real"])]
    if df.empty:
        raise ValueError("no clips left after the dataset/method filters")
    df = df.copy()
    df["split"] = assign_grouped_splits(df, tuple(split_fractions), split_seed, group_column)
    check_no_group_leak(df, group_column)
    return df


def _manifest_digest(store_dir: Path) -> str:
    return hashlib.sha256((store_dir / MANIFEST_NAME).read_bytes()).hexdigest()


def clip_sample(store_dir: Path, row) -> dict:
    """One LitData sample: the clip's JPEG files as stored, concatenated, and their sizes."""
    blobs = [(store_dir / p).read_bytes() for p in row.paths]
    return {
        "clip_id": row.clip_id,
        "video_id": row.video_id,
        "label": int(row.label),
        "frames": b"".join(blobs),
        "frame_sizes": np.array([len(b) for b in blobs], dtype=np.int64),
    }


def _write_split(
    store_dir: Path, rows: pd.DataFrame, split_dir: Path, chunk_bytes: str, progress: bool
) -> None:
    from litdata.streaming.writer import BinaryWriter

    partial = split_dir.with_name(f".{split_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    writer = BinaryWriter(str(partial), chunk_bytes=chunk_bytes)
    for i, row in enumerate(
        tqdm(rows.itertuples(), total=len(rows), desc=split_dir.name, disable=not progress)
    ):
        writer[i] = clip_sample(store_dir, row)
    writer.done()
    writer.merge()
    os.replace(partial, split_dir)


def export_litdata(
    store_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
    group_column: str = "group",
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    chunk_bytes: str = "64MB",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the clips of ``store_dir`` as LitData chunks under ``output_dir`` (a local folder).

    To stream from object storage, upload the finished folder as it is (e.g. ``aws s3 sync``)
    and point ``data.litdata_uri`` at it.
    """
    store_dir, out = Path(store_dir), Path(output_dir)
    df = split_manifest(
        read_manifest(store_dir), split_fractions, split_seed, group_column, datasets, methods
    ).reset_index(drop=True)
    meta = {
        "version": EXPORT_VERSION,
        "source_store": str(store_dir.resolve()),
        "source_manifest_sha256": _manifest_digest(store_dir),
        "split_fractions": [float(f) for f in split_fractions],
        "split_seed": int(split_seed),
        "group_column": group_column,
        "datasets": list(datasets) if datasets else None,
        "methods": list(methods) if methods else None,
        "clips": {s: int((df["split"] == s).sum()) for s in SPLITS},
    }
    meta_path = out / EXPORT_META
    if meta_path.is_file():
        previous = json.loads(meta_path.read_text())
        if previous != meta:
            if not overwrite:
                raise ExportMismatchError(
                    f"{out} holds an export with other settings or another source ({meta_path}); "
                    "pass overwrite=True (--overwrite) to replace it"
                )
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(meta_path, meta)

    df["litdata_split"] = df["split"]
    df["litdata_index"] = df.groupby("split").cumcount().astype("int64")
    for split in SPLITS:
        rows = df[df["split"] == split]
        if len(rows) and not (out / split / INDEX_NAME).is_file():
            _write_split(store_dir, rows, out / split, chunk_bytes, progress)
    columns = [*MANIFEST_COLUMNS, "litdata_split", "litdata_index"]
    with atomic_path(out / MANIFEST_NAME) as tmp:  # written last: its presence marks a complete export
        validate_manifest(df[columns]).to_parquet(tmp, index=False)
    return out
