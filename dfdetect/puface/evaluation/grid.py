"""Pictures (PNG): Fig. 3-style, per image a row of natural, cloaked, cloak (x' - x, 10x around
grey), purified cloaked image, residual (purified - natural, 10x around grey); and the Fig. 4 strip,
per image natural, cloaked, then the cloaked image purified by each sweep purifier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from dfdetect.puface.data.identity_datamodule import write_png

COLUMNS = ("natural", "cloaked", "cloak x10", "purified", "residual x10")


def _diff(a: torch.Tensor, b: torch.Tensor, gain: float = 10.0) -> torch.Tensor:
    return (128 + gain * (a.float() - b.float())).clamp(0, 255).to(torch.uint8)


def _write(rows: list[list[torch.Tensor]], columns: Sequence[str], path: str | Path) -> Path:
    grid = np.concatenate(
        [np.concatenate([t.permute(1, 2, 0).numpy() for t in row], axis=1) for row in rows], axis=0
    )
    size = rows[0][0].shape[-1]
    header = np.full((28, grid.shape[1], 3), 255, np.uint8)
    for i, name in enumerate(columns):
        cv2.putText(
            header, name, (i * size + 4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
    write_png(path, np.concatenate([header, grid], axis=0))
    return Path(path)


def picture_grid(natural: torch.Tensor, cloaked: torch.Tensor, purified: torch.Tensor, path: str | Path,
                 defended: str = "purified") -> Path:  # fmt: skip
    """uint8 ``(N, 3, S, S)`` each; writes ``path`` (PNG, RGB) and returns it. ``defended`` names the
    fourth column (the defense that made ``purified``)."""
    rows = [
        [x, xc, _diff(xc, x), xp, _diff(xp, x)] for x, xc, xp in zip(natural, cloaked, purified, strict=True)
    ]
    return _write(rows, (*COLUMNS[:3], defended, COLUMNS[4]), path)


def purifier_strip(natural: torch.Tensor, cloaked: torch.Tensor, purified: Mapping[str, torch.Tensor],
                   path: str | Path) -> Path:  # fmt: skip
    """``purified``: ``{column name: uint8 (N, 3, S, S)}``, one column each after natural and cloaked."""
    rows = [
        [x, xc, *(p[i] for p in purified.values())]
        for i, (x, xc) in enumerate(zip(natural, cloaked, strict=True))
    ]
    return _write(rows, ["natural", "cloaked", *purified], path)
