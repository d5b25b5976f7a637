"""Face verification with dlib's ResNet: same-person and different-person pairs of real faces,
scored by Euclidean descriptor distance (``scripts/face_verify.py``; docs/face_recognition.md).

Faces come from videos (a few frames each, evenly spaced; identity from the file name: the actor
id before ``__`` for FaceForensics++'s actor recordings, else the file stem, prefixed by the
folder, e.g. ``actors/08`` or ``youtube/183``) or from a clip store's real clips (its ``identity``
column). Each face is re-detected with MTCNN, cut into dlib's 150x150 chip and embedded.

Pairs: every two faces of different identities is a different-person pair; two faces of the same
identity are a same-person pair when they are at least ``min_gap_s`` seconds apart or from
different videos (neighbouring frames would make the task trivial). Reported: ROC AUC (score =
-distance), the equal error rate and its distance, and at dlib's distance 0.6 the accuracy over
all pairs, the share of same pairs accepted, of different pairs rejected, and their mean
(balanced accuracy); the same figures for the same-person pairs across videos only, where any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from dfdetect.data.manifest import read_manifest
from dfdetect.models.layers.dlib_resnet import DLIB_DISTANCE_THRESHOLD, DlibResNet
from dfdetect.preprocess.face_chips import frame_chips
from dfdetect.preprocess.media import iter_frames, probe_video
from dfdetect.scoring.roc import auc, eer_point

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass
class FaceSample:
    identity: str
    video_id: str
    time_s: float
    chip: np.ndarray  # (150, 150, 3) uint8 RGB


def video_identity(path: Path) -> str:
    """``actors/08`` for ``.../actors/08__kitchen_pan.mp4``, ``youtube/183`` for ``.../youtube/183.mp4``."""
    return f"{path.parent.name}/{path.stem.split('__')[0]}"


def faces_from_videos(paths: Sequence[Path], detector, frames_per_video: int = 8) -> list[FaceSample]:
    samples = []
    for path in paths:
        info = probe_video(path)
        n = max(info.n_frames, 1)
        wanted = np.unique(np.linspace(0, n - 1, frames_per_video + 2).round().astype(int)[1:-1])
        frames = list(iter_frames(path, wanted))
        found = frame_chips(detector, [frame for _, frame in frames]) if frames else []
        for (index, _), faces in zip(frames, found, strict=True):
            for _, chip in faces:
                samples.append(FaceSample(video_identity(path), str(path), index / (info.fps or 25.0), chip))
    return samples


def faces_from_store(
    store_dir: Path, detector, frames_per_video: int = 8, fps: float = 25.0
) -> list[FaceSample]:
    """Real clips of a clip store: evenly spaced stored crops per video, re-detected and chipped."""
    df = read_manifest(store_dir)
    df = df[df["label"] == 0]
    samples = []
    for video_id, rows in df.groupby("video_id", sort=True):
        crops = [
            (int(i), p)
            for _, r in rows.iterrows()
            for i, p in zip(r["frame_indices"], r["paths"], strict=True)
        ]
        crops = sorted(dict(crops).items())
        keep = np.unique(
            np.linspace(0, len(crops) - 1, min(frames_per_video, len(crops))).round().astype(int)
        )
        images = [(crops[k][0], cv2.imread(str(Path(store_dir) / crops[k][1]))) for k in keep]
        images = [(i, im) for i, im in images if im is not None]
        found = frame_chips(detector, [im for _, im in images]) if images else []
        for (index, _), faces in zip(images, found, strict=True):
            for _, chip in faces:
                samples.append(FaceSample(str(rows["identity"].iloc[0]), str(video_id), index / fps, chip))
    return samples


def embed(net: DlibResNet, chips: np.ndarray, batch: int = 64) -> np.ndarray:
    """Descriptors of ``(N, 150, 150, 3)`` uint8 RGB chips."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(chips), batch):
            x = torch.from_numpy(np.ascontiguousarray(chips[start : start + batch])).permute(0, 3, 1, 2)
            out.append(net(x.float().contiguous(memory_format=torch.channels_last)).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 128), np.float32)


def make_pairs(
    samples: Sequence[FaceSample], min_gap_s: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs ``(P, 2)``, whether each is a same-person pair, and whether it spans two videos."""
    ident = np.array([s.identity for s in samples])
    video = np.array([s.video_id for s in samples])
    time = np.array([s.time_s for s in samples])
    i, j = np.triu_indices(len(samples), k=1)
    same = ident[i] == ident[j]
    cross = video[i] != video[j]
    keep = ~same | cross | (np.abs(time[i] - time[j]) >= min_gap_s)
    return np.stack([i[keep], j[keep]], axis=1), same[keep], cross[keep]


def verification_metrics(
    distance: np.ndarray, same: np.ndarray, threshold: float = DLIB_DISTANCE_THRESHOLD
) -> dict:
    """ROC AUC, EER (and its distance) and the accuracies at ``threshold`` (same iff distance < it)."""
    distance, same = np.asarray(distance, float), np.asarray(same, bool)
    n_same, n_diff = int(same.sum()), int((~same).sum())
    if n_same == 0 or n_diff == 0:
        raise ValueError(f"need same- and different-person pairs, got {n_same} and {n_diff}")
    at_eer, eer = eer_point(-distance, same)
    accepted = distance < threshold
    tar, trr = float(accepted[same].mean()), float((~accepted[~same]).mean())
    return {
        "pairs_same": n_same,
        "pairs_diff": n_diff,
        "auc": auc(-distance, same),
        "eer": eer,
        # no distance where every pair is called a different person
        "eer_distance": -at_eer if at_eer <= -distance.min() else float("nan"),
        "acc": float((accepted == same).mean()),
        "tar": tar,
        "trr": trr,
        "balanced_acc": (tar + trr) / 2,
    }


def verify(samples: Sequence[FaceSample], net: DlibResNet, min_gap_s: float = 2.0, batch: int = 64) -> dict:
    """Metrics over all pairs and, where there are any, with same-person pairs across videos only."""
    if not samples:
        raise ValueError("no faces found")
    emb = embed(net, np.stack([s.chip for s in samples]), batch)
    pairs, same, cross = make_pairs(samples, min_gap_s)
    distance = np.linalg.norm(emb[pairs[:, 0]] - emb[pairs[:, 1]], axis=1)
    results = {"all pairs": verification_metrics(distance, same)}
    if (same & cross).any():
        keep = ~same | cross
        results["same person across videos"] = verification_metrics(distance[keep], same[keep])
    return results


def format_results(results: dict, faces: int, identities: int) -> str:
    lines = [
        f"{faces} faces, {identities} identities; distance threshold {DLIB_DISTANCE_THRESHOLD}",
        "| pairs | same | different | ROC AUC | EER | EER distance | acc@0.6 | same accepted | "
        "different rejected | balanced acc@0.6 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results.items():
        lines.append(
            f"| {name} | {m['pairs_same']} | {m['pairs_diff']} | {m['auc']:.4f} | {m['eer']:.4f} | "
            f"{m['eer_distance']:.3f} | {m['acc']:.4f} | {m['tar']:.4f} | {m['trr']:.4f} | {m['balanced_acc']:.4f} |"
        )
    return "\n".join(lines)


def list_videos(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
