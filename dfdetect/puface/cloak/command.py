"""``scripts/cloak.py``: a store identity's chips or a folder of the user's photos, cloaked into a
folder of PNG chips (resumable)."""

from __future__ import annotations

from pathlib import Path

import cv2
import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from dfdetect.data.manifest import StoreNotFoundError
from dfdetect.puface.cloak.extractors import build_extractors
from dfdetect.puface.cloak.runner import cloak_to_folder, pick_device
from dfdetect.puface.data.identity_datamodule import read_image
from dfdetect.puface.data.identity_table import IMAGE_SUFFIXES
from dfdetect.utils.errors import UserError


def folder_chips(folder: Path, chipper, size: int) -> tuple[list[str], torch.Tensor, list[str]]:
    """Chips of a folder's images (names as PNG), and the images without a face."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    images = [read_image(p) for p in paths]
    chips = chipper(images) if chipper is not None else [cv2.resize(im, (size, size)) for im in images]
    no_face = [str(p) for p, c in zip(paths, chips, strict=True) if c is None]
    kept = [(p, c) for p, c in zip(paths, chips, strict=True) if c is not None]
    if not kept:
        raise UserError(f"{folder}: no face found in any of its {len(paths)} images")
    names = [str(p.relative_to(folder).with_suffix(".png")).replace("/", "_") for p, _ in kept]
    return names, torch.from_numpy(np.stack([c for _, c in kept])).permute(0, 3, 1, 2).contiguous(), no_face


def target_candidates(dm, user: str | None) -> dict[str, torch.Tensor]:
    try:
        return {i: dm.identity_chips("train", i) for i in dm.identities if i != user}
    except StoreNotFoundError as e:
        raise UserError(
            f"{e}: a targeted attack draws its target among the identities of data; make the store with "
            f"python scripts/preprocess.py data={getattr(dm, 'name', '<name>').removesuffix('_faces')}, or pass "
            "data=faces_folder data.path=<folder of <identity>/<images>>"
        ) from None


def cloak_from_config(cfg: DictConfig) -> dict:
    if (cfg.user is None) == (cfg.images is None):
        raise UserError("give either user=<identity of data> or images=<folder>")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    dm = hydra.utils.instantiate(cfg.data)
    attack = hydra.utils.instantiate(cfg.cloak)
    device = pick_device(cfg.device)
    extractors = build_extractors(list(cfg.extractors))
    no_face: list[str] = []
    if cfg.user is not None:
        user = str(cfg.user)
        chips = dm.identity_chips(cfg.split, user)
        rows = dm.rows(cfg.split, user)
        names = rows["name"].tolist()
    else:
        user = None
        names, chips, no_face = folder_chips(Path(cfg.images), dm.chipper, dm.chip_size)
    # a targeted attack draws its target among the data's other identities; an untargeted one needs no data
    candidates = target_candidates(dm, user) if getattr(attack, "targeted", False) else {}
    summary = cloak_to_folder(
        attack, names, chips, cfg.out, candidates, extractors, device, cfg.batch_size, cfg.seed,
        facts={"extractors": ",".join(cfg.extractors)},
    )  # fmt: skip
    summary["no_face"] = no_face
    return summary
