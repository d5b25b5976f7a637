"""The model files a gate serves, pinned by sha256 in its config: a mismatch refuses to start, so
a swapped checkpoint cannot silently change what the gate lets through."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dfdetect.utils.errors import UserError
from dfdetect.utils.io import file_sha256


def served_files(cfg: DictConfig) -> list[str]:
    """The files the predictor loads: the checkpoint, the ensemble's members, or the net's weights."""
    files = []
    if cfg.get("ckpt_path"):
        files.append(str(cfg.ckpt_path))
    members = OmegaConf.select(cfg, "ensemble.members", default=None)
    if members:
        files += [str(m) for m in members]
    weights = OmegaConf.select(cfg, "model.net.weights", default=None)
    if not files and weights:
        files.append(str(weights))
    return files


def check_pins(cfg: DictConfig, pins) -> dict[str, str]:
    """``{file: sha256}`` of the served files. ``pins``: null (nothing checked), one digest (the one
    served file), or ``{file: digest}``; a file without its pin, or a different digest, refuses."""
    digests = {}
    for path in served_files(cfg):
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
        digests[path] = file_sha256(path)
    if pins is None:
        return digests
    if isinstance(pins, str):
        if len(digests) != 1:
            raise UserError(
                f"serve.sha256: one digest given, but {len(digests)} files are served; give {{file: digest}}"
            )
        pins = {next(iter(digests)): pins}
    pins = {str(k): str(v).lower() for k, v in dict(pins).items()}
    for path, digest in digests.items():
        pinned = pins.get(path)
        if pinned is None:
            raise UserError(f"serve.sha256 pins no digest for {path} (its sha256 is {digest})")
        if pinned != digest:
            raise UserError(f"{path}: sha256 {digest} does not match the pinned {pinned}; refusing to start")
    return digests
