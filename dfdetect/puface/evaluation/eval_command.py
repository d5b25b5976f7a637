"""``scripts/evaluate_puface.py``: the table (attack x FR model x defense), the attacker's
amplification sweep, Fig. 4's sweep over purifiers trained per k, and the pictures, into the run
directory (results.csv, table.md, sweep.csv, purifier_sweep.csv, grid_<attack>.png,
purifier_strip.png)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from dfdetect.puface.cloak.extractors import build_extractors
from dfdetect.puface.cloak.runner import pick_device
from dfdetect.puface.evaluation.evaluate import (
    Evaluation,
    amplification_sweep,
    evaluate,
    purifier_sweep,
    summary_table,
    user_cloaks,
)
from dfdetect.puface.evaluation.grid import picture_grid, purifier_strip
from dfdetect.puface.faceid.features import frozen_dlib
from dfdetect.puface.faceid.finetune import EndToEnd
from dfdetect.puface.purifier.defenses import build_defenses, purify_chips
from dfdetect.puface.purifier.load import load_purifier
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import atomic_path

log = logging.getLogger(__name__)


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def sweep_checkpoints(ks, pattern: str | None, explicit: Mapping | None = None) -> dict[float, Path]:
    """``{k: checkpoint}``: ``explicit[k]`` where given, else ``pattern`` with ``{k}`` replaced by k
    (``1``, ``2.5``); every file must exist."""
    explicit = {float(k): v for k, v in (explicit or {}).items()}
    out = {}
    for k in map(float, ks):
        path = explicit.get(k) or (pattern.replace("{k}", f"{k:g}") if pattern else None)
        if not path or not Path(path).is_file():
            raise UserError(f"purifier_sweep: no purifier checkpoint for k={k:g} ({path}); train one with "
                            f"`python train.py experiment=puface` experiment=puface 'purifier.k_range=[{k:g},{k:g}]'")  # fmt: skip
        out[k] = Path(path)
    return out


def run_purifier_sweep(
    cfg: DictConfig, ev: Evaluation, attacks: dict, cloak_dir: Path, extractors, device
) -> str:
    spec = cfg.purifier_sweep
    if spec.attack not in attacks:
        raise UserError(f"purifier_sweep.attack {spec.attack!r} is not in run_attacks {list(attacks)}")
    ckpts = sweep_checkpoints(spec.ks, spec.get("ckpt"), spec.get("ckpts"))
    purifiers = {k: partial(purify_chips, load_purifier(path), device=device) for k, path in ckpts.items()}
    attack = attacks[spec.attack]
    rows = purifier_sweep(
        ev, spec.attack, attack, list(cfg.users), purifiers, cloak_dir, extractors, device, cfg.seed
    )
    out_dir = Path(cfg.paths.output_dir)
    rows.to_csv(out_dir / "purifier_sweep.csv", index=False)
    user = str(cfg.users[0])
    natural = ev.faces.identity_chips("train", user)[: cfg.grid_images]
    cloaked = user_cloaks(ev.faces, spec.attack, attack, user, cloak_dir, extractors, device, cfg.seed)[
        : cfg.grid_images
    ]
    purifier_strip(
        natural,
        cloaked,
        {f"k={k:g}": fn(cloaked) for k, fn in purifiers.items()},
        out_dir / "purifier_strip.png",
    )
    return rows.groupby(["k_train"])[["asr", "normal_accuracy"]].mean().round(4).to_string()


def evaluate_from_config(cfg: DictConfig) -> dict:
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    start = time.time()
    out_dir = Path(cfg.paths.output_dir)
    device = pick_device(cfg.device)
    faces = hydra.utils.instantiate(cfg.data)
    attacks = {
        name: hydra.utils.instantiate(spec) for name, spec in cfg.attacks.items() if name in cfg.run_attacks
    }
    unknown = set(cfg.run_attacks) - set(attacks)
    if unknown:
        raise UserError(
            f"run_attacks names attacks without a config: {sorted(unknown)}; known: {sorted(cfg.attacks)}"
        )
    defenses = build_defenses(OmegaConf.to_container(cfg.defenses, resolve=True), load_purifier, device)
    left_out = sorted(set(cfg.defenses) - set(defenses))
    if left_out:
        log.warning("defenses without a checkpoint left out: %s", left_out)
    net = frozen_dlib()
    extractors = build_extractors(["dlib"])

    def make_e2e():
        return EndToEnd(net, **OmegaConf.to_container(cfg.e2e, resolve=True), device=str(device))

    ev = Evaluation(faces, net, defenses, list(cfg.models), make_e2e, list(cfg.e2e_defenses), device)
    cloak_dir = Path(cfg.cloak_dir)
    results = evaluate(
        ev, attacks, list(cfg.users), cloak_dir, extractors, device, cfg.seed, cfg.get("natural", True)
    )
    results.to_csv(out_dir / "results.csv", index=False)
    table = summary_table(results)
    _write_text(out_dir / "table.md", table + "\n")
    summary = {"table": table, "out": str(out_dir)}
    sweep = cfg.get("sweep")
    if sweep and sweep.attack in attacks:
        sweep_defenses = [d for d in sweep.defenses if d in defenses]
        rows = amplification_sweep(ev, sweep.attack, attacks[sweep.attack], list(cfg.users), list(sweep.ks),
                                   sweep_defenses, cloak_dir, extractors, device, cfg.seed)  # fmt: skip
        rows.to_csv(out_dir / "sweep.csv", index=False)
        summary["sweep"] = (
            rows.groupby(["k", "defense"])[["asr", "normal_accuracy"]].mean().round(4).to_string()
        )
    if cfg.get("purifier_sweep") and cfg.purifier_sweep.ks:
        summary["purifier_sweep"] = run_purifier_sweep(cfg, ev, attacks, cloak_dir, extractors, device)
    grid_defense = cfg.get("grid_defense")
    if grid_defense in defenses:
        user = str(cfg.users[0])
        natural = faces.identity_chips("train", user)[: cfg.grid_images]
        for name, attack in attacks.items():
            cloaked = user_cloaks(faces, name, attack, user, cloak_dir, extractors, device, cfg.seed)[
                : cfg.grid_images
            ]
            picture_grid(natural, cloaked, defenses[grid_defense](cloaked), out_dir / f"grid_{name}.png")
    summary["seconds"] = round(time.time() - start, 1)
    return summary
