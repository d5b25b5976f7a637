"""Sanity baselines for a clip store: two hand-made per-clip features and a linear probe.

* mean RGB colour of the clip: should carry (almost) no signal on the demo data;
* high-frequency energy (log mean squared Laplacian) inside the inner face vs. around it: detects
  the demo fakes' resolution mismatch, so it measures how strong the artifacts are.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dfdetect.demo.render import INNER_AXES, INNER_CENTRE_Y
from dfdetect.scoring.roc import auc


def _face_region_masks(box, shape) -> tuple[np.ndarray, np.ndarray]:
    """Inner-face mask, and a ring of outer face skin around it, from a face-ellipse box (uint8 masks)."""
    x1, y1, x2, y2 = box
    cx, cy, ax, ay = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    ys = np.arange(shape[0], dtype=np.float32)[:, None]
    xs = np.arange(shape[1], dtype=np.float32)[None, :]
    face_r2 = ((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2
    inner_r2 = ((xs - cx) / (INNER_AXES[0] * ax)) ** 2 + (
        (ys - cy - INNER_CENTRE_Y * ay) / (INNER_AXES[1] * ay)
    ) ** 2
    inner = inner_r2 < 0.8**2
    ring = (inner_r2 > 1.15**2) & (face_r2 < 0.9**2)
    return inner.view(np.uint8), ring.view(np.uint8)


def _clip_features(store_dir: Path, paths, boxes) -> tuple[np.ndarray, np.ndarray]:
    colours, energies = [], []
    for path, box in zip(paths, boxes, strict=True):
        bgr = cv2.imread(str(store_dir / path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(store_dir / path)
        colours.append(cv2.mean(bgr)[2::-1])
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
        laplacian_sq = cv2.Laplacian(gray, cv2.CV_32F) ** 2
        inner, ring = _face_region_masks(box, gray.shape)
        energies.append([np.log(cv2.mean(laplacian_sq, mask)[0] + 1e-3) for mask in (inner, ring)])
    energy = np.mean(energies, axis=0)
    return np.mean(colours, axis=0), np.array([*energy, energy[0] - energy[1]])


def clip_features(
    store_dir: str | os.PathLike, manifest: pd.DataFrame, num_workers: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: mean RGB over all pixels and frames (n, 3), and high-frequency energy features (n, 3):
    log Laplacian energy inside the inner face, in the outer face ring, and their difference."""
    store_dir = Path(store_dir)
    with ThreadPoolExecutor(num_workers) as pool:
        features = list(
            pool.map(
                lambda row: _clip_features(store_dir, row[0], row[1]),
                zip(manifest["paths"], manifest["face_boxes"], strict=True),
            )
        )
    colour, highfreq = zip(*features, strict=True)
    return np.stack(colour), np.stack(highfreq)


def baseline_test_auc(features: np.ndarray, labels, splits) -> float:
    """Fit a logistic regression on the train rows; ROC AUC on the test rows."""
    labels, splits = np.asarray(labels), np.asarray(splits)
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(features[splits == "train"], labels[splits == "train"])
    test = splits == "test"
    return float(auc(model.predict_proba(features[test])[:, 1], labels[test]))
