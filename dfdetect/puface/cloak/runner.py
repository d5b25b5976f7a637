"""Cloak many chips in device batches, and a user's images into a folder (``scripts/cloak.py``).

``cloak_chips`` runs an attack over uint8 chips in batches on a device. ``cloak_user`` picks the
target of a targeted attack (Fawkes v0.3: among the other identities), and ``cloak_to_folder``
writes one lossless PNG per chip; it is resumable: the target chosen first is kept in
``cloak.json``, chips already written are not cloaked again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from dfdetect.puface.cloak.fawkes import pair_targets, select_target
from dfdetect.puface.data.identity_datamodule import write_png
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import write_json

log = logging.getLogger(__name__)
META = "cloak.json"


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def attack_facts(attack) -> dict:
    return {
        "attack": type(attack).__name__,
        **{k: v for k, v in vars(attack).items() if isinstance(v, (int, float, str))},
    }


def cloak_chips(attack, chips: torch.Tensor, extractors: Sequence, targets: torch.Tensor | None = None,
                batch_size: int = 32, device: str | torch.device = "cpu",
                progress: Callable[[int, int], None] | None = None) -> torch.Tensor:  # fmt: skip
    """uint8 ``(N, 3, H, W)`` chips cloaked, uint8 (rounded). ``targets``: one target chip per chip
    for a targeted attack."""
    device = torch.device(device)
    if getattr(attack, "targeted", False) and targets is None:
        raise ValueError(f"{type(attack).__name__} is targeted: give one target chip per chip")
    for f in extractors:
        f.to(device)
    out = []
    for start in range(0, len(chips), batch_size):
        x = chips[start : start + batch_size].to(device).float()
        xt = None if targets is None else targets[start : start + batch_size].to(device).float()
        out.append(attack(x, extractors, xt).round().clamp(0, 255).to(torch.uint8).cpu())
        if progress:
            progress(min(start + batch_size, len(chips)), len(chips))
    return torch.cat(out) if out else chips.clone()


@torch.no_grad()
def descriptors(extractors: Sequence, chips: torch.Tensor, device, batch: int = 64) -> torch.Tensor:
    """Descriptors concatenated over the extractors."""
    outs = []
    for i in range(0, len(chips), batch):
        x = chips[i : i + batch].to(device).float()
        outs.append(torch.cat([f(x) for f in extractors], 1).cpu())
    return torch.cat(outs)


def choose_target(user_chips: torch.Tensor, candidates: Mapping[str, torch.Tensor], extractors: Sequence,
                  device, top: int = 20, seed: int = 0) -> str:  # fmt: skip
    feats = {name: descriptors(extractors, c, device) for name, c in candidates.items() if len(c)}
    return select_target(descriptors(extractors, user_chips, device), feats, top, np.random.default_rng(seed))


def target_chips(attack, n_user: int, target_pool: torch.Tensor, seed: int = 0) -> torch.Tensor:
    idx = pair_targets(
        n_user, len(target_pool), getattr(attack, "max_target_images", 10), np.random.default_rng(seed)
    )
    return target_pool[torch.as_tensor(idx)]


def cloak_user(attack, user_chips: torch.Tensor, candidates: Mapping[str, torch.Tensor], extractors: Sequence,
               device="cpu", batch_size: int = 32, seed: int = 0, target: str | None = None,
               progress=None) -> tuple[torch.Tensor, str | None]:  # fmt: skip
    """The user's chips cloaked, and the target identity (targeted attacks) or None."""
    if len(user_chips) == 0:
        raise UserError("the user has no images to cloak")
    targets = None
    if getattr(attack, "targeted", False):
        if target is None:
            if not candidates:
                raise UserError("a targeted attack needs other identities to choose a target from")
            target = choose_target(
                user_chips, candidates, extractors, device, getattr(attack, "top_targets", 20), seed
            )
        targets = target_chips(attack, len(user_chips), candidates[target], seed)
    return cloak_chips(attack, user_chips, extractors, targets, batch_size, device, progress), target


def cloak_to_folder(attack, names: Sequence[str], chips: torch.Tensor, out_dir: str | Path,
                    candidates: Mapping[str, torch.Tensor], extractors: Sequence,
                    device="cpu", batch_size: int = 32, seed: int = 0, facts: Mapping | None = None) -> dict:  # fmt: skip
    """Cloak ``chips`` into ``out_dir/<name>`` (PNG), skipping names already there."""
    out_dir = Path(out_dir)
    meta_path = out_dir / META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    settings = {**attack_facts(attack), **(facts or {})}
    if meta and meta.get("settings") != settings:
        raise UserError(
            f"{out_dir} holds cloaks made with other settings ({meta_path}); choose another out folder"
        )
    todo = [i for i, n in enumerate(names) if not (out_dir / n).is_file()]
    target = meta.get("target")
    if todo and getattr(attack, "targeted", False) and target is None:
        target = choose_target(
            chips, candidates, extractors, device, getattr(attack, "top_targets", 20), seed
        )
    write_json(meta_path, {"settings": settings, "target": target, "images": len(names)})
    log.info(
        "cloaking %d of %d images into %s (%d already there)",
        len(todo),
        len(names),
        out_dir,
        len(names) - len(todo),
    )
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        cloaked, _ = cloak_user(
            attack, chips[batch], candidates, extractors, device, batch_size, seed + start, target
        )
        for i, chip in zip(batch, cloaked, strict=True):
            write_png(out_dir / names[i], chip.permute(1, 2, 0).numpy())
        log.info("%d/%d cloaked", start + len(batch), len(todo))
    return {"out": str(out_dir), "cloaked": len(todo), "skipped": len(names) - len(todo), "target": target}
