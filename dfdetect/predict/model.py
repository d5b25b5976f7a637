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
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import file_sha256

log = logging.getLogger(__name__)

CALIBRATION_NAME = "calibration.json"
DEFAULT_THRESHOLD = 0.5


class NoDetectorError(UserError, ValueError):
    """Nothing names a detector, or an ensemble that needs fitting was not fitted."""


class CalibrationFileError(UserError, ValueError):
    """A calibration.json that cannot be used for this model."""


def scored_model(cfg: DictConfig) -> DetectorModule:
    """A checkpoint (``ckpt_path=``), or a defense ensemble (``ensemble=``) built from members, or
    a configured model (``model=<name>``, e.g. with ``model.net.weights=<file>``)."""
    ensemble = cfg.get("ensemble")
    if ensemble is not None:
        if cfg.get("ckpt_path"):
            return load_detector(cfg.ckpt_path, ensemble)
        if needs_fitting(ensemble.kind):
            raise NoDetectorError(
                f"{ensemble.kind} must be fitted first (python train.py ensemble={ensemble.kind} ...); "
                "then pass its checkpoint as ckpt_path"
            )
        return build_detector(ensemble)
    if cfg.get("ckpt_path"):
        return load_detector(cfg.ckpt_path, cfg.get("model"))
    if cfg.get("model") is not None:
        return build_detector(cfg.model)
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


def model_identity(cfg: DictConfig, model: torch.nn.Module) -> ModelIdentity:
    """Named after its file (or ensemble kind, or net); the sha256 of the checkpoint or weights file
    (of the member checkpoints, in order, for an unfitted ensemble; of the parameters for an
    untrained net)."""
    ensemble, ckpt = cfg.get("ensemble"), cfg.get("ckpt_path")
    if ensemble is not None:
        members = tuple(str(m) for m in ensemble.members)
        shas = [file_sha256(m) for m in members] + ([file_sha256(ckpt)] if ckpt else [])
        sha = hashlib.sha256(json.dumps([ensemble.kind, shas]).encode()).hexdigest()
        return ModelIdentity(ensemble.kind, sha, "ensemble", members, str(ckpt) if ckpt else None)
    if ckpt:
        return ModelIdentity(Path(ckpt).stem, file_sha256(ckpt), "checkpoint", source=str(ckpt))
    net = cfg.model.net
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


def calibration_beside(identity: ModelIdentity) -> Path | None:
    if identity.source is None:
        return None
    source = Path(identity.source)
    for candidate in (
        source.with_name(f"{source.stem}.{CALIBRATION_NAME}"),
        source.parent / CALIBRATION_NAME,
    ):
        if candidate.is_file():
            return candidate
    return None


def read_calibration(path: Path, identity: ModelIdentity) -> dict:
    try:
        calibration = json.loads(path.read_text())
        threshold = float(calibration["threshold"])
        temperature = float(calibration.get("temperature", 1.0))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CalibrationFileError(
            f"{path}: not a usable calibration.json ({type(e).__name__}: {e})"
        ) from None
    if not (math.isfinite(threshold) and math.isfinite(temperature) and temperature > 0):
        raise CalibrationFileError(
            f"{path}: threshold {threshold} / temperature {temperature} are not usable"
        )
    fitted_for = (calibration.get("model") or {}).get("sha256")
    if fitted_for and fitted_for != identity.sha256:
        raise CalibrationFileError(
            f"{path} was fitted for model {fitted_for[:12]}, not this one ({identity.tag}); "
            "pass the calibration of this model or threshold=<value>"
        )
    return calibration


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


def decision_rule(cfg: DictConfig, identity: ModelIdentity) -> Decision:
    """``threshold=`` wins; else ``calibration=<file>``, else a calibration.json beside the
    checkpoint or weights (``<stem>.calibration.json`` or ``calibration.json``); else 0.5 with
    temperature 1."""
    given = cfg.get("calibration")
    path = Path(given) if given else calibration_beside(identity)
    calibration = read_calibration(path, identity) if path is not None else None
    temperature = float(calibration["temperature"]) if calibration else 1.0
    if cfg.get("threshold") is not None:
        return Decision(checked_threshold(cfg.threshold), temperature, "threshold=")
    if calibration:
        key = "eer_threshold" if cfg.get("predict", {}).get("operating_point") == "eer" else "threshold"
        return Decision(float(calibration[key]), temperature, f"{path} ({key})")
    return Decision(DEFAULT_THRESHOLD, 1.0, "default 0.5 (no calibration.json)")
