"""``calibration.json``: a temperature for P(fake) and video thresholds, fitted on labelled clips of
a split the test never reads (the validation split by default) for one model, named by its
sha256; written by evaluation, read by predict and the gate.

A verdict is made per video (a still is a one-clip video): the mean of its clips' P(fake), each
clip's P(fake) first scaled by the temperature, is called fake when it is at least the threshold.
Two thresholds are given: the lowest one that rejects at most ``target_frr`` of the real videos
(the false rejection rate of genuine faces a gate in front of a recognition API can accept), and
the one at the equal error rate.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dfdetect.scoring.roc import eer_point
from dfdetect.scoring.temperature import fit_temperature, scaled_probs
from dfdetect.scoring.video import LABEL, PROB, VIDEO, video_scores
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import write_json

CALIBRATION_NAME = "calibration.json"
SCORE_RULE = "mean over a video's clips of the temperature-scaled P(fake)"
OPERATING_POINTS = {"frr": "threshold", "eer": "eer_threshold"}


class CalibrationError(ValueError):
    """Labelled scores that cannot calibrate anything (no real or no fake video)."""


class CalibrationFileError(UserError, ValueError):
    """A calibration.json that cannot be used for this model."""


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """The contents of a calibration.json, in its key order; ``model`` is the identity
    (name, sha256, kind, members) of the model it was fitted for. Read like the JSON:
    ``calibration["threshold"]``."""

    split: str | None = None
    dataset: str | None = None
    unit: str = "video"
    score: str = SCORE_RULE
    n_real_videos: int | None = None
    n_fake_videos: int | None = None
    n_clips: int | None = None
    temperature: float = 1.0
    clip_nll: dict | None = None
    target_frr: float | None = None
    threshold: float
    at_threshold: dict | None = None
    eer_threshold: float | None = None
    eer: float | None = None
    at_eer_threshold: dict | None = None
    model: dict | None = None

    def __getitem__(self, key: str):
        return getattr(self, key)

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        return out if out["model"] is not None else {k: v for k, v in out.items() if k != "model"}

    def for_model(self, model: dict) -> Calibration:
        return dataclasses.replace(self, model=model)

    def threshold_at(self, operating_point: str = "frr") -> float:
        """The threshold of ``operating_point``: ``frr`` (at the target false rejection rate) or
        ``eer``."""
        value = self[OPERATING_POINTS[operating_point]]
        if value is None:
            raise CalibrationFileError(f"this calibration has no {OPERATING_POINTS[operating_point]}")
        return float(value)

    def write(self, path: Path) -> None:
        write_json(path, self.as_dict())


def read_calibration(path: Path, model_sha256: str, model_tag: str) -> Calibration:
    """The calibration in ``path``, refused when it is unreadable, its threshold or temperature is
    unusable, or it names another model than ``model_sha256``."""
    try:
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(Calibration)}
        calibration = Calibration(**{k: v for k, v in raw.items() if k in known})
        threshold, temperature = float(calibration.threshold), float(calibration.temperature)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CalibrationFileError(
            f"{path}: not a usable calibration.json ({type(e).__name__}: {e})"
        ) from None
    if not (math.isfinite(threshold) and math.isfinite(temperature) and temperature > 0):
        raise CalibrationFileError(
            f"{path}: threshold {threshold} / temperature {temperature} are not usable"
        )
    fitted_for = (calibration.model or {}).get("sha256")
    if fitted_for and fitted_for != model_sha256:
        raise CalibrationFileError(
            f"{path} was fitted for model {fitted_for[:12]}, not this one ({model_tag}); "
            "pass the calibration of this model or threshold=<value>"
        )
    return calibration


def calibration_beside(source: str | Path) -> Path | None:
    """The calibration.json of a checkpoint or weights file: ``<stem>.calibration.json`` beside it,
    else ``calibration.json`` in its folder."""
    source = Path(source)
    for candidate in (
        source.with_name(f"{source.stem}.{CALIBRATION_NAME}"),
        source.parent / CALIBRATION_NAME,
    ):
        if candidate.is_file():
            return candidate
    return None


def threshold_at_frr(real_scores: np.ndarray, target_frr: float) -> float:
    """The lowest threshold at which at most ``target_frr`` of the real scores are >= it."""
    if not 0.0 <= target_frr < 1.0:
        raise ValueError(f"target_frr must be in [0, 1), got {target_frr}")
    ranked = np.sort(np.asarray(real_scores, dtype=np.float64))[::-1]
    allowed = math.floor(target_frr * len(ranked) + 1e-9)
    return float(np.nextafter(ranked[allowed], np.inf))


def rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    fake = scores >= threshold
    return {"frr": float(fake[labels == 0].mean()), "far": float((~fake[labels == 1]).mean())}


def calibrate(
    clips: pd.DataFrame, target_frr: float = 0.01, split: str = "val", dataset: str | None = None
) -> Calibration:
    """``clips``: one row per clip with ``prob`` (P(fake)), ``label`` and ``video_id``."""
    for column in (PROB, LABEL, VIDEO):
        if column not in clips:
            raise ValueError(f"calibration needs a {column!r} column")
    counts = clips.groupby(VIDEO)[LABEL].first().value_counts()
    n_real, n_fake = int(counts.get(0, 0)), int(counts.get(1, 0))
    if n_real == 0 or n_fake == 0:
        raise CalibrationError(
            f"the {split} split has {n_real} real and {n_fake} fake videos; calibration needs both"
        )
    temperature, nll_before, nll_after = fit_temperature(clips[PROB], clips[LABEL])
    videos = video_scores(clips.assign(**{PROB: scaled_probs(clips[PROB].to_numpy(), temperature)}))
    labels, scores = videos[LABEL].to_numpy(), videos[PROB].to_numpy()
    at_frr = threshold_at_frr(scores[labels == 0], target_frr)
    at_eer, eer = eer_point(scores, labels)
    return Calibration(
        split=split,
        dataset=dataset,
        n_real_videos=n_real,
        n_fake_videos=n_fake,
        n_clips=len(clips),
        temperature=temperature,
        clip_nll={"before": nll_before, "after": nll_after},
        target_frr=target_frr,
        threshold=at_frr,
        at_threshold=rates(labels, scores, at_frr),
        eer_threshold=at_eer,
        eer=eer,
        at_eer_threshold=rates(labels, scores, at_eer),
    )
