"""Cloaks of many protected users, made in optimisation batches that hold several users' photos at
once and cached per user (issue #26). ``<cache>/<user>/`` holds one PNG per training chip and
``cloak.json`` (settings, target, ``complete``); a rerun cloaks only what is missing, a user whose
folder was made with other settings is refused. Targeted attacks (Fawkes v0.3) draw each user's
target from the attacker's public pool (never the FR classes); the batch's ``groups`` tell the users
apart for an attack that aims per user (Fawkes v0.3 with ``aim_group=user``; its default aims per
image, as Fawkes' ``--batch-size 1``)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from dfdetect.puface.cloak.fawkes import select_target
from dfdetect.puface.cloak.runner import attack_facts, descriptors, target_chips
from dfdetect.puface.data.identity_datamodule import read_image, write_png
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import write_json

log = logging.getLogger(__name__)
META = "cloak.json"


def user_seed(seed: int, user: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{user}".encode()).digest()[:4], "little")


def _meta(folder: Path) -> dict:
    path = folder / META
    return json.loads(path.read_text()) if path.is_file() else {}


def read_cloaks(folder: Path, names: Sequence[str]) -> torch.Tensor:
    return (
        torch.from_numpy(np.stack([read_image(folder / n) for n in names])).permute(0, 3, 1, 2).contiguous()
    )


def cloak_users(attack, users: Mapping[str, tuple[Sequence[str], torch.Tensor]], cache: str | Path,
                target_pool: Mapping[str, torch.Tensor], extractors: Sequence, device="cpu", batch_size: int = 32,
                seed: int = 0, facts: Mapping | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """``{user: (chip names, uint8 chips)}`` -> ``{user: uint8 cloaked chips}``, cached under ``cache``."""
    cache = Path(cache)
    settings = {**attack_facts(attack), **(facts or {})}
    targeted = getattr(attack, "targeted", False)
    if targeted and not target_pool:
        raise UserError("a targeted attack needs the attacker's target pool (roles: target_pool)")
    todo: list[tuple[str, int, torch.Tensor | None]] = []  # (user, image index, target chip)
    pool_feats = None  # the pool's descriptors, computed once for all users
    for user, (names, chips) in users.items():
        folder, meta = cache / user, _meta(cache / user)
        if meta and meta.get("settings") != settings:
            raise UserError(
                f"{folder} holds cloaks made with other settings; remove it or choose another cloak cache"
            )
        if meta.get("complete"):
            continue
        missing = [i for i, n in enumerate(names) if not (folder / n).is_file()]
        targets, target = None, meta.get("target")
        if targeted:
            if target is None:
                if pool_feats is None:
                    pool_feats = {
                        n: descriptors(extractors, c, device) for n, c in target_pool.items() if len(c)
                    }
                rng = np.random.default_rng(user_seed(seed, user))
                target = select_target(descriptors(extractors, chips, device), pool_feats,
                                       getattr(attack, "top_targets", 20), rng)  # fmt: skip
            targets = target_chips(attack, len(chips), target_pool[target], user_seed(seed, user))
        write_json(
            folder / META,
            {"settings": settings, "target": target, "images": len(names), "complete": not missing},
        )
        todo += [(user, i, None if targets is None else targets[i]) for i in missing]
    start = time.time()
    if todo:
        log.info(
            "cloaking %d chips of %d users in batches of %d",
            len(todo),
            len({u for u, _, _ in todo}),
            batch_size,
        )
    user_index = {u: k for k, u in enumerate(users)}
    for b in range(0, len(todo), batch_size):
        part = todo[b : b + batch_size]
        x = torch.stack([users[u][1][i] for u, i, _ in part]).to(device).float()
        if targeted:
            xt = torch.stack([t for _, _, t in part]).to(device).float()
            groups = torch.tensor([user_index[u] for u, _, _ in part], device=device)
            out = attack(x, extractors, xt, groups)
        else:
            out = attack(x, extractors, None)
        out = out.round().clamp(0, 255).to(torch.uint8).cpu()
        for (u, i, _), chip in zip(part, out, strict=True):
            write_png(cache / u / users[u][0][i], chip.permute(1, 2, 0).numpy())
        for u in {u for u, _, _ in part}:
            names = users[u][0]
            if all((cache / u / n).is_file() for n in names):
                write_json(cache / u / META, {**_meta(cache / u), "complete": True})
        log.info("%d/%d chips cloaked (%.0f s)", b + len(part), len(todo), time.time() - start)
    return {u: read_cloaks(cache / u, names) for u, (names, _) in users.items()}
