"""``predict.plot=true``: per scored file a PNG of its sampled face crops (one frame per clip) over
the per-clip P(fake) against the frame index, and a contact sheet of the most fake and most real
files; written under ``plots/`` in the run dir."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dfdetect.predict.prepared import PreparedFile
from dfdetect.predict.verdict import FileVerdict
from dfdetect.utils.io import atomic_path

THUMB = 96


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_name(path: str) -> str:
    return re.sub(r"[^\w.-]+", "_", "/".join(Path(path).parts[-3:]))[-150:] + ".png"


def thumbnail(prepared: PreparedFile) -> np.ndarray | None:
    """The middle frame of the middle clip, small (kept for the contact sheet)."""
    if not prepared.clips:
        return None
    clip = prepared.clips[len(prepared.clips) // 2].frames
    frame = clip[len(clip) // 2]
    step = max(1, frame.shape[0] // THUMB)
    return np.ascontiguousarray(frame[::step, ::step])


def plot_file(folder: Path, prepared: PreparedFile, verdict: FileVerdict, max_crops: int = 16) -> Path:
    plt = _pyplot()
    clips = prepared.clips[:max_crops]
    fig = plt.figure(figsize=(max(6, 1.1 * len(clips)), 4.2))
    grid = fig.add_gridspec(2, max(1, len(clips)), height_ratios=[1, 1.4])
    scores = {(c["start"], t["track"]): c["p_fake"] for t in verdict.tracks for c in t["clips"]}
    for i, clip in enumerate(clips):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(clip.frames[len(clip.frames) // 2])
        ax.set_title(f"{scores.get((clip.start, clip.track), float('nan')):.2f}", fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    for track in verdict.tracks:
        xs = [c["frame_indices"][0] for c in track["clips"]]
        ax.plot(xs, [c["p_fake"] for c in track["clips"]], "o-", label=f"face {track['track']}")
    ax.axhline(verdict.threshold, color="red", linestyle="--", linewidth=1, label="threshold")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("frame")
    ax.set_ylabel("P(fake) per clip")
    ax.legend(fontsize=7, loc="upper right")
    score = "" if verdict.p_fake is None else f", P(fake) {verdict.p_fake:.3f}"
    fig.suptitle(f"{Path(verdict.path).name}: {verdict.verdict}{score}", fontsize=9)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / plot_name(verdict.path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return out


def contact_sheet(
    path: Path, verdicts: Sequence[FileVerdict], thumbs: dict[str, np.ndarray], top: int = 8
) -> Path | None:
    """The ``top`` most fake and ``top`` most real scored files, with their P(fake)."""
    scored = sorted((v for v in verdicts if v.p_fake is not None), key=lambda v: v.p_fake, reverse=True)
    if not scored:
        return None
    rows = [("most fake", scored[:top]), ("most real", scored[::-1][:top])]
    plt = _pyplot()
    cols = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(2, cols, figsize=(1.4 * cols, 3.4), squeeze=False)
    for r, (title, chosen) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(chosen):
                continue
            v = chosen[c]
            image = thumbs.get(v.path)
            ax.imshow(image if image is not None else np.full((THUMB, THUMB, 3), 128, np.uint8))
            ax.set_title(f"{Path(v.path).name[:14]}\n{v.p_fake:.3f}", fontsize=6)
        axes[r][0].text(-0.1, 0.5, title, transform=axes[r][0].transAxes, rotation=90, va="center", ha="right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path
