"""Face images with identity labels, and their per-identity train/test split (PuFace, FaceCure).

A table has one row per face image: ``identity``, ``group`` (images of one group never straddle the
split: the frames of one clip), ``source`` (the image file) and ``name`` (the chip's file name
under its identity's folder). Two sources:

- a clip store's real clips (``label == 0``): ``frames_per_clip`` evenly spaced frames of each clip,
  identity from a manifest column (``identity`` by default);
- a folder ``<root>/<identity>/<images>`` (any depth below the identity), one group per image.

The split is per identity: ``round(train_fraction * groups)`` of its groups, drawn with
``seed``, are train, the rest test, and each side keeps at least one group.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from dfdetect.data.manifest import read_manifest
from dfdetect.utils.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
TABLE_COLUMNS = ["identity", "group", "source", "name"]


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


def store_faces(
    store: str | os.PathLike, frames_per_clip: int = 2, identity_column: str = "identity"
) -> pd.DataFrame:
    """The real clips' frames of a clip store, ``frames_per_clip`` per clip (evenly spaced)."""
    store = Path(store)
    df = read_manifest(store)
    if identity_column not in df.columns:
        raise UserError(f"{store}: the manifest has no column {identity_column!r} (data.identity_column)")
    if frames_per_clip < 1:
        raise UserError(f"frames_per_clip must be at least 1, got {frames_per_clip}")
    df = df[df["label"] == 0]
    if df.empty:
        raise UserError(f"{store}: the manifest holds no real clips (label 0), so no identities")
    rows = []
    for _, clip in df.sort_values("clip_id").iterrows():
        paths = list(clip["paths"])
        keep = np.unique(np.linspace(0, len(paths) - 1, min(frames_per_clip, len(paths))).round().astype(int))
        for k in keep:
            rel = str(paths[k])
            name = _safe(f"{clip['video_id']}_{int(clip['frame_indices'][k]):06d}") + ".png"
            rows.append((str(clip[identity_column]), str(clip["clip_id"]), str(store / rel), name))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def folder_faces(root: str | os.PathLike) -> pd.DataFrame:
    """Images of ``<root>/<identity>/...``, one group per image."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"no face folder at {root} (expected <identity>/<images> under it)")
    rows = []
    for ident in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(ident.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
                rel = path.relative_to(ident)
                rows.append(
                    (ident.name, f"{ident.name}/{rel}", str(path), _safe(rel.with_suffix("")) + ".png")
                )
    if not rows:
        raise UserError(f"{root}: no images found in <identity>/ subfolders ({', '.join(IMAGE_SUFFIXES)})")
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _draw(identity: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{identity}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def split_per_identity(table: pd.DataFrame, train_fraction: float = 0.7, seed: int = 0) -> pd.DataFrame:
    """The table with a ``split`` column (train/test), drawn per identity over its groups.
    An identity with fewer than two groups (one image, or one clip) cannot be split: UserError."""
    if not 0 < train_fraction < 1:
        raise UserError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    out = table.copy()
    out["split"] = "test"
    for ident, rows in out.groupby("identity", sort=True):
        groups = sorted(rows["group"].unique())
        if len(groups) < 2:
            what = "one image" if len(rows) == 1 else f"{len(rows)} images of one clip"
            raise UserError(
                f"identity {ident!r} has {what}; each identity needs at least two (one for training, "
                "one for testing): add images or leave it out (data.identities)"
            )
        n_train = min(max(round(train_fraction * len(groups)), 1), len(groups) - 1)
        train_groups = set(_draw(str(ident), seed).permutation(groups)[:n_train])
        out.loc[rows.index[rows["group"].isin(train_groups)], "split"] = "train"
    return out


def select_identities(table: pd.DataFrame, identities: list[str] | None) -> pd.DataFrame:
    if not identities:
        return table
    missing = sorted(set(map(str, identities)) - set(table["identity"]))
    if missing:
        raise UserError(f"unknown identities {missing}; known: {sorted(table['identity'].unique())}")
    return table[table["identity"].isin(set(map(str, identities)))].reset_index(drop=True)
