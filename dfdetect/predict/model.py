"""Which detector a run scores (a checkpoint, a configured model with published weights, or a
defense ensemble), what it is called and its fingerprint, and the threshold and temperature its
verdicts use (``threshold=``, else a calibration.json, else 0.5)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from dfdetect.ensemble import needs_fitting
from dfdetect.models.lightning import DetectorModule
from dfdetect.models.lightning.checkpoint import build_detector, load_detector
from dfdetect.scoring.calibration import OPERATING_POINTS, calibration_beside, read_calibration
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import file_sha256

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5


class NoDetectorError(UserError, ValueError):
    """Nothing names a detector, or an ensemble that needs fitting was not fitted."""


@dataclass(frozen=True)
class DetectorRequest:
    """What a run asks to score, read once from its config at the entry: a checkpoint
    (``ckpt_path``), a defense ensemble or a configured model (the config nodes the checkpoint
    loader builds from), and how its verdicts are cut (``threshold=``, ``calibration=``,
    ``predict.operating_point``)."""

    ckpt_path: str | None = None
    model: DictConfig | None = None
    ensemble: DictConfig | None = None
    threshold: float | None = None
    calibration: str | None = None
    operating_point: str = "frr"

    @classmethod
    def from_config(cls, cfg: DictConfig) -> DetectorRequest:
        ckpt, threshold, calibration = cfg.get("ckpt_path"), cfg.get("threshold"), cfg.get("calibration")
        return cls(
            ckpt_path=str(ckpt) if ckpt else None,
            model=cfg.get("model"),
            ensemble=cfg.get("ensemble"),
            threshold=checked_threshold(threshold) if threshold is not None else None,
            calibration=str(calibration) if calibration else None,
            operating_point="eer" if cfg.get("predict", {}).get("operating_point") == "eer" else "frr",
        )


def scored_model(request: DetectorRequest) -> DetectorModule:
    """A checkpoint (``ckpt_path=``), or a defense ensemble (``ensemble=``) built from members, or
    a configured model (``model=<name>``, e.g. with ``model.net.weights=<file>``)."""
    ensemble = request.ensemble
    if ensemble is not None:
        if request.ckpt_path:
            return load_detector(request.ckpt_path, ensemble)
        if needs_fitting(ensemble.kind):
            raise NoDetectorError(
                f"{ensemble.kind} must be fitted first (python train.py ensemble={ensemble.kind} ...); "
                "then pass its checkpoint as ckpt_path"
            )
        return build_detector(ensemble)
    if request.ckpt_path:
        return load_detector(request.ckpt_path, request.model)
    if request.model is not None:
        return build_detector(request.model)
    raise NoDetectorError(
        "nothing to evaluate: pass ckpt_path=<checkpoint>, model=<name> (with model.net.weights=<file>) "
        "or ensemble=<dd1|dd2|dd3> 'ensemble.members=[...]'"
    )


def state_sha256(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    sha256: str
    kind: str  # checkpoint, weights, ensemble or untrained
    members: tuple[str, ...] = ()
    source: str | None = None  # the file it came from

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.sha256[:12]}"

    def as_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "kind": self.kind, "members": list(self.members)}


def model_identity(request: DetectorRequest, model: torch.nn.Module) -> ModelIdentity:
    """Named after its file (or ensemble kind, or net); the sha256 of the checkpoint or weights file
    (of the member checkpoints, in order, for an unfitted ensemble; of the parameters for an
    untrained net)."""
    ensemble, ckpt = request.ensemble, request.ckpt_path
    if ensemble is not None:
        members = tuple(str(m) for m in ensemble.members)
        shas = [file_sha256(m) for m in members] + ([file_sha256(ckpt)] if ckpt else [])
        sha = hashlib.sha256(json.dumps([ensemble.kind, shas]).encode()).hexdigest()
        return ModelIdentity(ensemble.kind, sha, "ensemble", members, str(ckpt) if ckpt else None)
    if ckpt:
        return ModelIdentity(Path(ckpt).stem, file_sha256(ckpt), "checkpoint", source=str(ckpt))
    net = request.model.net
    weights = net.get("weights")
    if weights:
        sha = hashlib.sha256(f"{net.name}:{file_sha256(weights)}".encode()).hexdigest()
        return ModelIdentity(f"{net.name}+{Path(weights).stem}", sha, "weights", source=str(weights))
    return ModelIdentity(f"{net.name}(untrained)", state_sha256(model), "untrained")


@dataclass(frozen=True)
class Decision:
    threshold: float
    temperature: float
    source: str  # where the threshold comes from


class ThresholdError(UserError, ValueError):
    """``threshold=`` that is no probability: NaN would call every file real (a gate failing open)."""


def checked_threshold(value) -> float:
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = math.nan
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ThresholdError(f"threshold={value}: give a number from 0 to 1 (P(fake) at or above it is fake)")
    return threshold


def decision_rule(request: DetectorRequest, identity: ModelIdentity) -> Decision:
    """``threshold=`` wins; else ``calibration=<file>``, else a calibration.json beside the
    checkpoint or weights (``<stem>.calibration.json`` or ``calibration.json``); else 0.5 with
    temperature 1."""
    given = request.calibration
    path = Path(given) if given else calibration_beside(identity.source) if identity.source else None
    calibration = read_calibration(path, identity.sha256, identity.tag) if path is not None else None
    temperature = float(calibration.temperature) if calibration else 1.0
    if request.threshold is not None:
        return Decision(checked_threshold(request.threshold), temperature, "threshold=")
    if calibration:
        point = request.operating_point
        return Decision(calibration.threshold_at(point), temperature, f"{path} ({OPERATING_POINTS[point]})")
    return Decision(DEFAULT_THRESHOLD, 1.0, "default 0.5 (no calibration.json)")


@dataclass(frozen=True)
class ScoredDetector:
    """The detector verdicts come from: its module, who it is (``identity.tag``: name@sha256) and
    where its scores are cut (``decision``: threshold, its source, temperature)."""

    module: DetectorModule
    identity: ModelIdentity
    decision: Decision


def load_scored_detector(request: DetectorRequest) -> ScoredDetector:
    module = scored_model(request)
    identity = model_identity(request, module)
    return ScoredDetector(module, identity, decision_rule(request, identity))
