"""The attack's input: pairs of a fake image X_D and a real image X_T of the identity it
impersonates, from a CSV (``fake_path,real_path,identity``) or from a clip store's manifest."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dfdetect.data.manifest import read_manifest, store_image_key
from dfdetect.measure.records import AttackDataError


@dataclass(frozen=True)
class Pair:
    fake_path: Path
    real_path: Path
    identity: str
    dataset: str
    fake_key: str
    real_key: str
    source_identity: str = ""


def pairs_from_csv(csv_path: str | os.PathLike, dataset: str) -> list[Pair]:
    """Relative paths are relative to the CSV's folder; the image keys are the paths as written."""
    csv_path = Path(csv_path)
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [c for c in ("fake_path", "real_path", "identity") if c not in df.columns]
    if missing:
        raise AttackDataError(f"{csv_path}: missing columns {missing} (need fake_path,real_path,identity)")
    pairs = []
    for i, row in enumerate(df.itertuples(index=False), start=2):
        paths = []
        for column in ("fake_path", "real_path"):
            value = getattr(row, column).strip()
            if not value:
                raise AttackDataError(f"{csv_path}:{i}: empty {column}")
            path = Path(value) if Path(value).is_absolute() else csv_path.parent / value
            if not path.is_file():
                raise AttackDataError(f"{csv_path}:{i}: {column} {path} does not exist")
            paths.append(path)
        if not row.identity.strip():
            raise AttackDataError(f"{csv_path}:{i}: empty identity")
        pairs.append(
            Pair(
                paths[0],
                paths[1],
                row.identity.strip(),
                dataset,
                row.fake_path.strip(),
                row.real_path.strip(),
                getattr(row, "source_identity", "") or "",
            )
        )
    if not pairs:
        raise AttackDataError(f"{csv_path}: no pairs")
    return pairs


def _middle_frame(paths) -> str:
    paths = list(paths)
    return paths[len(paths) // 2]


def pairs_from_store(store_dir: str | os.PathLike, images_per_video: int = 1) -> tuple[list[Pair], list[str]]:
    """One image per clip (its middle frame) for ``images_per_video`` clips spread over each fake
    video; the target is the middle frame of the middle clip of the first real video (by id) of
    the fake's identity. Image keys are ``<dataset>/<video_id>`` (``<dataset>/<clip_id>`` with
    several images per video), the keys of ``predictions.parquet``, so attack records join the
    detector's predictions. Returns the pairs and the identities that have fakes but no real video."""
    store_dir = Path(store_dir)
    manifest = read_manifest(store_dir).sort_values("clip_id")
    reals = {}
    for identity, rows in manifest[manifest["label"] == 0].groupby("identity", sort=True):
        first_video = rows[rows["video_id"] == sorted(rows["video_id"])[0]]
        clip = first_video.iloc[len(first_video) // 2]
        reals[identity] = (store_image_key(clip["dataset"], clip["video_id"]), _middle_frame(clip["paths"]))
    pairs, orphans = [], []
    for video_id, rows in manifest[manifest["label"] == 1].groupby("video_id", sort=True):
        identity = rows["identity"].iloc[0]
        if identity not in reals:
            if identity not in orphans:
                orphans.append(identity)
            continue
        n = min(int(images_per_video), len(rows))
        picks = [rows.iloc[round((i + 0.5) * len(rows) / n - 0.5)] for i in range(n)]
        real_key, real_rel = reals[identity]
        for clip in picks:
            pairs.append(
                Pair(
                    store_dir / _middle_frame(clip["paths"]),
                    store_dir / real_rel,
                    identity,
                    str(clip["dataset"]),
                    store_image_key(clip["dataset"], video_id if n == 1 else clip["clip_id"]),
                    real_key,
                    str(clip["source_identity"]),
                )
            )
    return pairs, orphans
