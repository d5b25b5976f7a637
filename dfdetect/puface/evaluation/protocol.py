"""The many-user protocol of issue #26: every protected user in turn (all its training photos
cloaked, all its natural test photos scored), resumable per (attack, user), with the setting of each
row stated.

Settings: ``white-box`` = linear probe / 1-NN on the frozen dlib descriptors the attack optimised
against; ``grey-box`` = the end-to-end fine-tuned network (``e2e``, one fit per seed; the attacker
optimised against frozen dlib, not against it); ``adaptive`` = the attacker optimised the cloak
through the defense's purifier (``x' = argmax loss(F(P(x')))`` within the attack's own budget),
scored under that defense. Rows land in ``results_dir/<attack>/<user>.csv`` (atomic); a rerun reads
the ones there and computes only the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dfdetect.puface.cloak.amplify import amplify
from dfdetect.puface.cloak.extractors import adaptive_extractors
from dfdetect.puface.evaluation.bootstrap import cell, summarise
from dfdetect.puface.evaluation.cloak_cache import cloak_users, read_cloaks
from dfdetect.puface.evaluation.evaluate import NATURAL, Evaluation, check_users
from dfdetect.puface.evaluation.greybox_joint import joint_rows
from dfdetect.puface.faceid.classifiers import FeatureClassifier
from dfdetect.puface.faceid.metrics import attack_success_rate, normal_accuracy
from dfdetect.utils.io import atomic_path

log = logging.getLogger(__name__)
SETTING = {"linear": "white-box", "nn": "white-box", "e2e": "grey-box"}


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _scores(pred, y, label) -> dict:
    return {"asr": attack_success_rate(pred, y, [label]), "normal_accuracy": normal_accuracy(pred, y, [label]),
            "user_test": int((y == label).sum()), "other_test": int((y != label).sum())}  # fmt: skip


def user_rows(ev: Evaluation, user: str, cloaked: torch.Tensor | None, defenses: Sequence[str], models: Sequence[str],
              make_e2e: Callable | None, e2e_seeds: Sequence[int], e2e_defenses: Sequence[str],
              adaptive: bool = False) -> list[dict]:  # fmt: skip
    label = ev.faces.identities.index(user)
    y, ytr = ev.yte.numpy(), ev.ytr.numpy()
    rows = []
    for defense in defenses:
        chips, feats = ev.training_set({} if cloaked is None else {user: cloaked}, defense)
        for model in models:
            setting = "adaptive" if adaptive else SETTING[model]
            if model in ("linear", "nn"):
                pred = (
                    FeatureClassifier(ev.net, model).fit_features(feats, ytr).predict_features(ev.test_feats)
                )
                rows.append(
                    {
                        "setting": setting,
                        "model": model,
                        "defense": defense,
                        "seed": 0,
                        **_scores(pred, y, label),
                    }
                )
            elif model == "e2e" and make_e2e is not None and defense in e2e_defenses:
                for seed in e2e_seeds:
                    pred = make_e2e(seed).fit(chips, ytr, features=feats).predict(ev.xte)
                    rows.append({"setting": setting, "model": model, "defense": defense, "seed": int(seed),
                                 **_scores(pred, y, label)})  # fmt: skip
    return [{"user": user, **r} for r in rows]


def run_protocol(ev: Evaluation, attacks: Mapping, users: Sequence[str], cloak_root: str | Path,
                 target_pool: Mapping[str, torch.Tensor], extractors: Sequence, results_dir: str | Path,
                 models: Sequence[str] = ("linear", "nn"), make_e2e: Callable | None = None,
                 e2e_seeds: Sequence[int] = (0, 1), e2e_defenses: Sequence[str] = ("none",),
                 adaptive: Mapping[str, Mapping] | None = None, natural: bool = True, device="cpu",
                 batch_size: int = 32, seed: int = 0, ks: Sequence[float] = (),
                 e2e_joint: bool = False) -> pd.DataFrame:  # fmt: skip
    """Every (attack, user) cell, resumable. ``adaptive``: ``{name: {attack, defense, purifier,
    ensemble}}`` with ``purifier`` a differentiable ``[0, 1]`` network: ``attack`` cloaks through it
    (``ensemble``: through it and without it at once), scored under ``defense`` (and ``none``).
    ``ks``: the attacker's amplified cloaks ``x + k (x' - x)`` of every attack, rows
    ``<attack>_x<k>`` (k = 1 is the attack itself). ``e2e_joint``: the grey-box model fine-tuned once
    per (attack, defense, seed) with every user cloaked at once (``greybox_joint.py``) instead of
    once per user."""
    users = check_users(ev.faces, users)
    results_dir, cloak_root = Path(results_dir), Path(cloak_root)
    defenses = list(ev.defenses)
    joint = e2e_joint and "e2e" in models and make_e2e is not None
    user_models = [m for m in models if not (joint and m == "e2e")]
    plan: list[tuple[str, object, Sequence, list[str], bool, dict]] = (
        [(NATURAL, None, extractors, defenses, False, {})] if natural else []
    )
    plan += [(name, attack, extractors, defenses, False, {}) for name, attack in attacks.items()]
    for name, spec in (adaptive or {}).items():
        scored = list(dict.fromkeys(["none", spec["defense"]]))
        ensemble = bool(spec.get("ensemble"))
        exts = adaptive_extractors(extractors, spec["purifier"], ensemble)
        plan.append(
            (name, attacks[spec["attack"]], exts, scored, True, {"ensemble": True} if ensemble else {})
        )
    frames = []
    for name, attack, exts, scored, is_adaptive, facts in plan:
        variants = [(name, 1.0)] + (
            [(f"{name}_x{k:g}", float(k)) for k in ks if float(k) != 1.0] if attack is not None else []
        )
        todo = [u for u in users if any(not (results_dir / v / f"{u}.csv").is_file() for v, _ in variants)]
        start = time.time()
        cloaks: dict[str, torch.Tensor] = {}
        if attack is not None and todo:
            chips = {
                u: (ev.faces.rows("train", u)["name"].tolist(), ev.faces.identity_chips("train", u))
                for u in todo
            }
            cloaks = cloak_users(attack, chips, cloak_root / name, target_pool, exts, device, batch_size, seed,
                                 facts={"extractors": "dlib", "adaptive": is_adaptive, **facts})  # fmt: skip
        cloak_s = time.time() - start
        for variant, k in variants:
            for u in [u for u in todo if not (results_dir / variant / f"{u}.csv").is_file()]:
                t0 = time.time()
                cloaked = cloaks.get(u)
                if cloaked is not None and k != 1.0:
                    cloaked = amplify(ev.faces.identity_chips("train", u), cloaked, k)
                rows = user_rows(
                    ev, u, cloaked, scored, user_models, make_e2e, e2e_seeds, e2e_defenses, is_adaptive
                )
                df = pd.DataFrame(
                    [{"attack": variant, **r, "seconds": round(time.time() - t0, 1)} for r in rows]
                )
                _write_csv(results_dir / variant / f"{u}.csv", df)
                log.info("%s / %s: %d rows (%.0f s)", variant, u, len(df), time.time() - t0)
            frames += [pd.read_csv(results_dir / variant / f"{u}.csv") for u in users]
            if joint and not is_adaptive:
                frames.append(_joint(ev, variant, k, attack, users, cloak_root / name, results_dir,
                                     [d for d in scored if d in e2e_defenses], e2e_seeds, make_e2e))  # fmt: skip
        if todo:
            log.info("%s: %d users in %.0f s (cloaks %.0f s)", name, len(todo), time.time() - start, cloak_s)
    return pd.concat(frames, ignore_index=True)


def _joint(ev: Evaluation, variant: str, k: float, attack, users: Sequence[str], cache: Path, results_dir: Path,
           defenses: Sequence[str], seeds: Sequence[int], make_e2e: Callable) -> pd.DataFrame:  # fmt: skip
    def load() -> dict[str, torch.Tensor]:
        cloaks = {}
        for u in users:
            cloaked = read_cloaks(cache / u, ev.faces.rows("train", u)["name"].tolist())
            cloaks[u] = amplify(ev.faces.identity_chips("train", u), cloaked, k) if k != 1.0 else cloaked
        return cloaks

    return joint_rows(ev, variant, load if attack is not None else None, users, defenses, seeds, make_e2e,
                      results_dir)  # fmt: skip


def per_user(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, attack, model, defense, user): the end-to-end seeds averaged first."""
    keys = ["setting", "attack", "model", "defense", "user"]
    return results.groupby(keys, sort=False)[["asr", "normal_accuracy"]].mean().reset_index()


def ci_table(results: pd.DataFrame, n_boot: int = 10_000, seed: int = 0) -> str:
    """Markdown: setting x attack x FR model rows, per defense ``ASR [95 % CI] / normal accuracy
    [95 % CI]`` (%) over users, and n (users)."""
    summary = summarise(
        per_user(results), ["setting", "attack", "model", "defense"], n_boot=n_boot, seed=seed
    )
    defenses = list(dict.fromkeys(summary["defense"]))
    head = "| setting | attack | FR model | n | " + " | ".join(defenses) + " |"
    lines = [head, "|---|---|---|---|" + "---|" * len(defenses)]
    for (setting, attack, model), part in summary.groupby(["setting", "attack", "model"], sort=False):
        by = {r["defense"]: r for _, r in part.iterrows()}
        n = int(part["users"].max())
        cells = [
            f"{cell(by[d], 'asr')} / {cell(by[d], 'normal_accuracy')}" if d in by else "–" for d in defenses
        ]
        lines.append(f"| {setting} | {attack} | {model} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def perturbation_stats(natural: torch.Tensor, cloaked: torch.Tensor) -> dict:
    """Per-image DSSIM, L-inf and L2 (on [0, 1]) and PSNR (dB), as mean and max over images."""
    from dfdetect.puface.cloak.ssim import dssim

    x, xc = natural.float(), cloaked.float()
    d = dssim(x, xc).numpy()
    diff = (xc - x) / 255
    linf = diff.abs().flatten(1).max(1).values.numpy()
    l2 = diff.flatten(1).norm(dim=1).numpy()
    mse = (diff**2).flatten(1).mean(1).clamp(min=1e-12).numpy()
    psnr = 10 * np.log10(1 / mse)
    return {"n": len(x), "dssim_mean": float(d.mean()), "dssim_max": float(d.max()), "linf_mean": float(linf.mean()),
            "linf_max": float(linf.max()), "l2_mean": float(l2.mean()), "l2_max": float(l2.max()),
            "psnr_mean": float(psnr.mean()), "psnr_min": float(psnr.min())}  # fmt: skip
