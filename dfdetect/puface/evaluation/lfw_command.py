"""``dfdetect puface lfw``: the issue #26 protocol on LFW. Roles drawn once per results_dir (kept in
``roles.json`` there, copied into the run), the protocol run resumably, and into the run directory:
``results.csv`` (per user and seed), ``table.md`` (mean [95 % CI] over users per setting x attack
x FR model x defense), ``perturbation.csv`` (each attack's DSSIM / L-inf / L2 / PSNR on the
evaluated cloaks), ``grid_<attack>.png`` (natural, cloaked, x10 cloak, defended, x10 residual),
``run.json`` (users, seconds, load average)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import hydra
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from dfdetect.puface.cloak.extractors import build_extractors
from dfdetect.puface.cloak.runner import pick_device
from dfdetect.puface.data.roles import draw_roles, read_roles, write_roles
from dfdetect.puface.evaluation.cloak_cache import read_cloaks
from dfdetect.puface.evaluation.evaluate import Evaluation
from dfdetect.puface.evaluation.grid import picture_grid
from dfdetect.puface.evaluation.protocol import ci_table, perturbation_stats, run_protocol
from dfdetect.puface.faceid.features import frozen_dlib
from dfdetect.puface.faceid.finetune import EndToEnd
from dfdetect.puface.purifier.defenses import build_defenses
from dfdetect.puface.purifier.load import load_purifier
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import atomic_path, write_json

log = logging.getLogger(__name__)


def roles_for(cfg: DictConfig, results_dir: Path) -> dict:
    path = results_dir / "roles.json"
    if path.is_file():
        return read_roles(path)
    faces = hydra.utils.instantiate(cfg.data)
    table = faces.prepare()
    tests = table[table["split"] == "test"].groupby("identity").size().to_dict()
    r = cfg.roles
    roles = draw_roles(
        sorted(table["identity"].unique()), int(r.n_fr), int(r.n_pool), int(r.n_users), int(r.seed), tests
    )
    write_roles(path, roles)
    return roles


def lfw_from_config(cfg: DictConfig) -> dict:
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    start = time.time()
    out_dir, results_dir = Path(cfg.paths.output_dir), Path(cfg.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    roles = roles_for(cfg, results_dir)
    shutil.copyfile(results_dir / "roles.json", out_dir / "roles.json")
    faces = hydra.utils.instantiate(cfg.data, identities=roles["fr_classes"])
    pool_faces = hydra.utils.instantiate(cfg.data, identities=roles["target_pool"])
    pool = {
        p: torch.cat([pool_faces.identity_chips("train", p), pool_faces.identity_chips("test", p)])
        for p in roles["target_pool"]
    }
    attacks = {n: hydra.utils.instantiate(s) for n, s in cfg.attacks.items() if n in cfg.run_attacks}
    if set(cfg.run_attacks) - set(attacks):
        raise UserError(
            f"run_attacks names attacks without a config: {sorted(set(cfg.run_attacks) - set(attacks))}"
        )
    specs = OmegaConf.to_container(cfg.defenses, resolve=True)
    defenses = build_defenses(specs, load_purifier, device)
    net, extractors = frozen_dlib(), build_extractors(["dlib"])
    adaptive = {}
    for name, spec in (cfg.get("adaptive") or {}).items():
        ckpt = specs.get(spec.defense, {}).get("ckpt")
        if spec.attack not in attacks or not ckpt:
            raise UserError(
                f"adaptive {name!r}: needs an attack of run_attacks and a purifier defense with a ckpt"
            )
        adaptive[name] = {"attack": spec.attack, "defense": spec.defense, "purifier": load_purifier(ckpt).net,
                          "ensemble": bool(spec.get("ensemble", False))}  # fmt: skip

    def make_e2e(seed: int):
        return EndToEnd(
            net, **OmegaConf.to_container(cfg.e2e, resolve=True), device=str(device), seed=int(seed)
        )

    ev = Evaluation(faces, net, defenses, [], None, [], device)
    users = roles["users"][: cfg.max_users] if cfg.get("max_users") else roles["users"]
    if cfg.get("only_users"):
        stray = sorted(set(cfg.only_users) - set(roles["users"]))
        if stray:
            raise UserError(f"only_users must be protected users of roles.json; not: {stray}")
        users = [u for u in roles["users"] if u in set(cfg.only_users)]
    results = run_protocol(ev, attacks, users, Path(cfg.cloak_dir), pool, extractors, results_dir,
                           list(cfg.models), make_e2e, list(cfg.e2e_seeds), list(cfg.e2e_defenses), adaptive,
                           cfg.natural, device, int(cfg.cloak_batch), int(cfg.seed),
                           list(cfg.get("amplify_ks") or []), bool(cfg.get("e2e_joint")))  # fmt: skip
    results.to_csv(out_dir / "results.csv", index=False)
    table = ci_table(results)
    with atomic_path(out_dir / "table.md") as tmp:
        tmp.write_text(table + "\n")
    stats, shown_name = [], "puface" if "puface" in defenses else "none"
    shown = defenses[shown_name]
    for name in [*attacks, *adaptive]:
        folder = Path(cfg.cloak_dir) / name
        nat, clo = [], []
        for u in users:
            names = faces.rows("train", u)["name"].tolist()
            nat.append(faces.identity_chips("train", u))
            clo.append(read_cloaks(folder / u, names))
        stats.append({"attack": name, **perturbation_stats(torch.cat(nat), torch.cat(clo))})
        k = int(cfg.grid_images)
        picture_grid(
            nat[0][:k],
            clo[0][:k],
            shown(clo[0][:k]),
            out_dir / f"grid_{name}.png",
            "no defense" if shown_name == "none" else shown_name,
        )
    pd.DataFrame(stats).to_csv(out_dir / "perturbation.csv", index=False)
    write_json(out_dir / "run.json", {"users": users, "attacks": list(attacks), "adaptive": list(adaptive),
                                      "models": list(cfg.models), "defenses": list(defenses),
                                      "seconds": round(time.time() - start, 1), "load_average": os.getloadavg(),
                                      "device": str(device), "threads": torch.get_num_threads()})  # fmt: skip
    return {"table": table, "perturbation": pd.DataFrame(stats).round(4).to_string(index=False),
            "out": str(out_dir), "seconds": round(time.time() - start, 1), "users": len(users)}  # fmt: skip
