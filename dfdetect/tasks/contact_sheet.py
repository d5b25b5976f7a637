"""A PNG of random face crops from a clip store, one row per dataset / method / label:

    python scripts/contact_sheet.py <store_dir> [--out sheet.png] [--per-row 8] [--size 120] [--seed 0]

Each tile is the middle frame of a random clip (``--frames`` shows a whole clip per tile instead,
its frames side by side). Written to ``<store_dir>/contact_sheet.png`` unless ``--out`` is given.

``--synthesis sbi`` shows what ``data.synthesis=sbi`` trains on instead: for random real clips,
triplets of the real (the pair's target), its self-blended pseudo-fake and the blend mask (middle
frame; ``--frames``: every frame), one triplet per row; ``--no-face crop_box`` as data.sbi.no_face.
Clips where dlib finds no face are listed and left out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from dfdetect.data.manifest import read_manifest

LABEL_WIDTH = 160


def tile(store: Path, paths: list[str], size: int, whole_clip: bool) -> np.ndarray:
    chosen = paths if whole_clip else [paths[len(paths) // 2]]
    frames = []
    for p in chosen:
        img = cv2.imread(str(store / p), cv2.IMREAD_COLOR)
        frames.append(np.zeros((size, size, 3), np.uint8) if img is None else cv2.resize(img, (size, size)))
    return np.concatenate(frames, axis=1)


def label_panel(text: list[str], height: int) -> np.ndarray:
    panel = np.full((height, LABEL_WIDTH, 3), 255, np.uint8)
    for i, line in enumerate(text):
        cv2.putText(panel, line, (6, 22 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def contact_sheet(store: Path, per_row: int, size: int, seed: int, whole_clip: bool) -> np.ndarray:
    manifest = read_manifest(store)
    rng = np.random.default_rng(seed)
    rows = []
    for (dataset, method, label), group in manifest.groupby(["dataset", "method", "label"], sort=True):
        picks = group.iloc[rng.choice(len(group), size=min(per_row, len(group)), replace=False)]
        tiles = [tile(store, list(p), size, whole_clip) for p in picks["paths"]]
        width = tiles[0].shape[1]
        tiles += [np.full((size, width, 3), 255, np.uint8)] * (per_row - len(tiles))
        text = [str(dataset), str(method), "fake" if label == 1 else "real", f"{len(group)} clips"]
        rows.append(np.concatenate([label_panel(text, size), *tiles], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows, axis=0)


def sbi_sheet(store: Path, rows: int, size: int, seed: int, whole_clip: bool, no_face: str) -> np.ndarray:
    from dfdetect.data.frames import read_frame
    from dfdetect.data.landmarks import clip_landmarks
    from dfdetect.data.sbi import self_blend_clip

    manifest = read_manifest(store)
    reals = manifest[manifest["label"] == 0]
    rng = np.random.default_rng(seed)
    out, skipped = [], []
    for i in rng.permutation(len(reals)):
        if len(out) >= 2 * rows:  # a triplet and a spacer per row
            break
        row = reals.iloc[i]
        frames = np.stack([read_frame(store / p, None) for p in row["paths"]])
        points, why = clip_landmarks(frames, no_face=no_face)
        if points is None:
            skipped.append(f"{row['clip_id']}: {why}")
            continue
        real, fake, mask = self_blend_clip(frames, points, rng)
        mask = np.repeat((mask[..., None] * 255).round().astype(np.uint8), 3, axis=-1)
        chosen = range(len(frames)) if whole_clip else [len(frames) // 2]
        tiles = [
            np.concatenate([cv2.resize(part[k][:, :, ::-1], (size, size)) for k in chosen], axis=1)
            for part in (real, fake, mask)
        ]
        text = [str(row["clip_id"])[:18], "real | pseudo-fake", "| mask"]
        out.append(np.concatenate([label_panel(text, size), *tiles], axis=1))
        out.append(np.full((4, out[-1].shape[1], 3), 255, np.uint8))
    for line in skipped:
        print(f"no landmarks, left out: {line}")
    if not out:
        raise SystemExit(f"no real clip of {store} has landmarks (try --no-face crop_box)")
    return np.concatenate(out, axis=0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--per-row", type=int, default=8)
    parser.add_argument("--size", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", action="store_true", help="show every frame of each clip")
    parser.add_argument(
        "--synthesis", choices=["sbi"], default=None, help="real / pseudo-fake / mask triplets"
    )
    parser.add_argument("--no-face", choices=["skip", "crop_box"], default="skip")
    args = parser.parse_args(argv)
    if args.synthesis == "sbi":
        sheet = sbi_sheet(args.store, args.per_row, args.size, args.seed, args.frames, args.no_face)
    else:
        sheet = contact_sheet(args.store, args.per_row, args.size, args.seed, args.frames)
    out = args.out or args.store / "contact_sheet.png"
    if not cv2.imwrite(str(out), sheet):
        raise SystemExit(f"cannot write {out}")
    print(f"contact sheet: {out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
