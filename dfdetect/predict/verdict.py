"""From clip scores to a file's verdict.

Our rule (``aggregation=mean``): a face track's P(fake) is the mean of its clips' P(fake) (each
temperature-scaled when a calibration gives a temperature), as ``evaluate.py`` scores a video; a
file's P(fake) is the maximum over its tracks (a video is fake if any face in it is). A still is a
clip of one frame.

``aggregation=confident``: the rule of the DFDC winner (Seferbekov, ``confident_strategy``) over
all of a file's clip scores: when more than ``fake_share`` of them, and at least ``min_fake``, are
above ``high``, the mean of those; else when more than ``real_share`` are below ``low``, the mean of
those; else the mean of all. The winner's ``min_fake`` of 11 was for 32 frames; null scales it to
the number of clips (ceil(11 / 32 * n)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from dfdetect.scoring.video import video_prob

AGGREGATIONS = ("mean", "confident")
VERDICTS = ("fake", "real", "unknown")
# ``cached``: the score came from predict.cache (the same bytes, scored before by the same model)
CSV_COLUMNS = (
    "path",
    "kind",
    "verdict",
    "p_fake",
    "threshold",
    "n_faces",
    "n_clips",
    "reason",
    "model",
    "cached",
)


@dataclass(frozen=True)
class ConfidentRule:
    high: float = 0.8
    low: float = 0.2
    fake_share: float = 1 / 2.5
    real_share: float = 0.9
    min_fake: int | None = None

    def __call__(self, scores: np.ndarray) -> float:
        n = len(scores)
        min_fake = self.min_fake if self.min_fake is not None else math.ceil(11 / 32 * n)
        fakes = scores[scores > self.high]
        if len(fakes) > self.fake_share * n and len(fakes) >= min_fake:
            return float(fakes.mean())
        reals = scores[scores < self.low]
        if len(reals) > self.real_share * n:
            return float(reals.mean())
        return float(scores.mean())


def file_score(tracks: list[dict], aggregation: str = "mean", rule: ConfidentRule | None = None) -> float:
    """``tracks``: ``[{"clips": [{"p_fake": x, ...}, ...]}, ...]``; sets each track's ``p_fake``."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"predict.aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    for track in tracks:
        track["p_fake"] = video_prob(c["p_fake"] for c in track["clips"])
    if aggregation == "confident":
        every = np.array([c["p_fake"] for t in tracks for c in t["clips"]], dtype=np.float64)
        return (rule or ConfidentRule())(every)
    return max(t["p_fake"] for t in tracks)


@dataclass
class FileVerdict:
    path: str
    kind: str
    verdict: str
    p_fake: float | None
    threshold: float
    n_faces: int
    n_clips: int
    reason: str
    model: str
    label: int | None = None
    note: str = ""
    tracks: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    cached: bool = False

    def row(self) -> dict:
        return {k: getattr(self, k) for k in CSV_COLUMNS}

    def record(self) -> dict:
        return asdict(self)


def decide(p_fake: float | None, threshold: float) -> str:
    if p_fake is None:
        return "unknown"
    return "fake" if p_fake >= threshold else "real"
