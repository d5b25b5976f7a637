"""``scripts/evaluate_puface.py``: the table (attack x FR model x defense), the amplification sweep
and the picture grid, into the run directory (results.csv, table.md, sweep.csv, grid_<attack>.png)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from dfdetect.cloak.extractors import build_extractors
from dfdetect.cloak.runner import pick_device
from dfdetect.faceid.features import frozen_dlib
from dfdetect.faceid.finetune import EndToEnd
from dfdetect.purify.defenses import build_defenses
from dfdetect.purify.evaluate import Evaluation, amplification_sweep, evaluate, summary_table, user_cloaks
from dfdetect.purify.grid import picture_grid
from dfdetect.purify.load import load_purifier
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import atomic_path

log = logging.getLogger(__name__)


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def evaluate_from_config(cfg: DictConfig) -> dict:
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    start = time.time()
    out_dir = Path(cfg.paths.output_dir)
    device = pick_device(cfg.device)
    faces = hydra.utils.instantiate(cfg.data)
    attacks = {name: hydra.utils.instantiate(spec) for name, spec in cfg.attacks.items() if name in cfg.run_attacks}
    unknown = set(cfg.run_attacks) - set(attacks)
    if unknown:
        raise UserError(f"run_attacks names attacks without a config: {sorted(unknown)}; known: {sorted(cfg.attacks)}")
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
    results = evaluate(ev, attacks, list(cfg.users), cloak_dir, extractors, device, cfg.seed, cfg.get("natural", True))
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
        summary["sweep"] = rows.groupby(["k", "defense"])[["asr", "normal_accuracy"]].mean().round(4).to_string()
    grid_defense = cfg.get("grid_defense")
    if grid_defense in defenses:
        user = str(cfg.users[0])
        natural = faces.identity_chips("train", user)[: cfg.grid_images]
        for name, attack in attacks.items():
            cloaked = user_cloaks(faces, name, attack, user, cloak_dir, extractors, device, cfg.seed)[: cfg.grid_images]
            picture_grid(natural, cloaked, defenses[grid_defense](cloaked), out_dir / f"grid_{name}.png")
    summary["seconds"] = round(time.time() - start, 1)
    return summary
