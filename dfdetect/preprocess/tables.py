"""The store's tables, rebuilt from the per-file records: ``manifest.parquet`` (one row per clip,
see dfdetect/data/manifest.py) and ``status.parquet`` (one row per source file)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dfdetect.data.manifest import MANIFEST_COLUMNS
from dfdetect.preprocess.adapters.base import SourceItem
from dfdetect.preprocess.store import ClipStoreWriter

STATUS_COLUMNS = [
    "video_id",
    "source",
    "kind",
    "dataset",
    "method",
    "label",
    "identity",
    "group",
    "split",
    "status",
    "reason",
    "clips",
    "frames_sampled",
    "frames_with_face",
    "n_frames",
    "width",
    "height",
    "seconds",
]
PENDING = "pending"


def _meta(item: SourceItem) -> dict:
    return {
        "video_id": item.video_id,
        "dataset": item.dataset,
        "method": item.method,
        "label": int(item.label),
        "identity": item.identity,
        "source_identity": item.source_identity,
        "group": item.group,
        "split": item.split,
    }


def build_tables(items: Sequence[SourceItem], store: ClipStoreWriter) -> tuple[pd.DataFrame, pd.DataFrame]:
    clip_rows, status_rows = [], []
    for item in items:
        record = store.load_record(item.key) or {
            "status": PENDING,
            "reason": "not processed yet",
            "stats": {},
        }
        stats = record.get("stats", {})
        meta = _meta(item)
        status_rows.append(
            {
                **{
                    k: meta[k]
                    for k in ("video_id", "dataset", "method", "label", "identity", "group", "split")
                },
                "source": item.path,
                "kind": item.kind,
                "status": record["status"],
                "reason": record.get("reason", ""),
                "clips": len(record.get("clips", [])),
                **{
                    k: stats.get(k)
                    for k in ("frames_sampled", "frames_with_face", "n_frames", "width", "height", "seconds")
                },
            }
        )
        if record["status"] != "ok":
            continue
        for clip in record["clips"]:
            clip_rows.append(
                {
                    **meta,
                    "clip_id": f"{item.video_id}/{clip['start']}",
                    "frame_indices": clip["frame_indices"],
                    "face_boxes": clip["face_boxes"],
                    "det_prob": clip["det_prob"],
                    "paths": clip["paths"],
                }
            )
    manifest = pd.DataFrame(clip_rows, columns=MANIFEST_COLUMNS)
    status = pd.DataFrame(status_rows, columns=STATUS_COLUMNS)
    for column in ("clips", "frames_sampled", "frames_with_face", "n_frames", "width", "height"):
        status[column] = status[column].fillna(0).astype("int64")
    status["seconds"] = status["seconds"].astype("float64")
    return manifest, status
