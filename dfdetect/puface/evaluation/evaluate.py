"""The protection evaluation (FaceCure's protocol, PuFace's figures).

For each attack and each user (one at a time; figures averaged over users): the user's training
chips are cloaked (resumable, ``cloak_dir/<attack>/<user>/``); every training chip of every
identity, the user's cloaked ones included, goes through a defense; an FR model is trained on the
result and tested on natural test chips. ASR = share of the user's test chips misidentified;
normal accuracy = accuracy on every other identity's test chips. ``attack="natural"`` rows train on
natural chips (no cloak): the models' normal accuracy and the defenses' cost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dfdetect.puface.cloak.amplify import amplify
from dfdetect.puface.cloak.runner import cloak_to_folder
from dfdetect.puface.data.identity_datamodule import read_image
from dfdetect.puface.faceid.classifiers import FeatureClassifier
from dfdetect.puface.faceid.features import embed
from dfdetect.puface.faceid.metrics import attack_success_rate, normal_accuracy
from dfdetect.utils.errors import UserError

log = logging.getLogger(__name__)
NATURAL = "natural"


def user_cloaks(
    faces, attack_name: str, attack, user: str, cloak_dir: Path, extractors, device, seed: int
) -> torch.Tensor:
    rows = faces.rows("train", user)
    chips = faces.identity_chips("train", user)
    candidates = {i: faces.identity_chips("train", i) for i in faces.identities if i != user}
    out = Path(cloak_dir) / attack_name / user
    cloak_to_folder(attack, rows["name"].tolist(), chips, out, candidates, extractors, device, 32, seed,
                    facts={"extractors": "dlib"})  # fmt: skip
    return (
        torch.from_numpy(np.stack([read_image(out / n) for n in rows["name"]]))
        .permute(0, 3, 1, 2)
        .contiguous()
    )


class Evaluation:
    """Holds the data, the frozen net and caches (defended natural chips and their descriptors)."""

    def __init__(self, faces, net, defenses: Mapping[str, Callable], models: Sequence[str],
                 make_e2e: Callable | None = None, e2e_defenses: Sequence[str] = (), device="cpu"):  # fmt: skip
        self.faces, self.net, self.defenses, self.models = faces, net, dict(defenses), list(models)
        self.make_e2e, self.e2e_defenses, self.device = make_e2e, set(e2e_defenses), device
        self.xtr, self.ytr = faces.chips("train")
        self.xte, self.yte = faces.chips("test")
        self.test_feats = embed(net, self.xte, device=device).numpy()
        self._defended: dict[str, torch.Tensor] = {}
        self._feats: dict[str, np.ndarray] = {}
        self._natural_e2e: dict[str, np.ndarray] = {}  # every user's natural rows share one fine-tuning

    def defended(self, defense: str) -> tuple[torch.Tensor, np.ndarray]:
        if defense not in self._defended:
            log.info("defense %s over %d training chips", defense, len(self.xtr))
            self._defended[defense] = self.defenses[defense](self.xtr)
            self._feats[defense] = embed(self.net, self._defended[defense], device=self.device).numpy()
        return self._defended[defense], self._feats[defense]

    def training_set(
        self, cloaks: Mapping[str, torch.Tensor], defense: str
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Every identity's training chips through ``defense``, each user of ``cloaks`` with its
        training chips replaced by its defended cloaks, and their frozen descriptors."""
        chips, feats = self.defended(defense)
        if cloaks:
            chips, feats = chips.clone(), feats.copy()
        for user, cloaked in cloaks.items():
            mine = (self.ytr == self.faces.identities.index(user)).numpy()
            guarded = self.defenses[defense](cloaked)
            chips[torch.from_numpy(mine)] = guarded
            feats[mine] = embed(self.net, guarded, device=self.device).numpy()
        return chips, feats

    def run_cell(self, user: str, cloaked: torch.Tensor | None, defense: str) -> list[dict]:
        label = self.faces.identities.index(user)
        chips, feats = self.training_set({} if cloaked is None else {user: cloaked}, defense)
        rows = []
        for model in self.models:
            if model in ("linear", "nn"):
                pred = (
                    FeatureClassifier(self.net, model)
                    .fit_features(feats, self.ytr.numpy())
                    .predict_features(self.test_feats)
                )
            elif model == "e2e" and self.make_e2e is not None and defense in self.e2e_defenses:
                if cloaked is None and defense in self._natural_e2e:
                    pred = self._natural_e2e[defense]
                else:
                    pred = self.make_e2e().fit(chips, self.ytr.numpy(), features=feats).predict(self.xte)
                    if cloaked is None:
                        self._natural_e2e[defense] = pred
            else:
                continue
            y = self.yte.numpy()
            rows.append({"model": model, "defense": defense, "user": user,
                         "asr": attack_success_rate(pred, y, [label]),
                         "normal_accuracy": normal_accuracy(pred, y, [label]),
                         "user_test": int((y == label).sum()), "other_test": int((y != label).sum())})  # fmt: skip
        return rows


def check_users(faces, users: Sequence[str]) -> list[str]:
    users = [str(u) for u in users]
    if not users:
        raise UserError("no users to cloak (users=[...])")
    for u in users:
        if u not in faces.identities:
            raise UserError(f"user {u!r} is not an identity of the data; known: {faces.identities}")
        if len(faces.rows("test", u)) == 0:
            raise UserError(f"user {u!r} has no test images: the attack success rate is undefined")
        if len(faces.rows("train", u)) == 0:
            raise UserError(f"user {u!r} has no training images to cloak")
    return users


def evaluate(ev: Evaluation, attacks: Mapping, users: Sequence[str], cloak_dir: Path, extractors, device, seed: int = 0,
             natural: bool = True) -> pd.DataFrame:  # fmt: skip
    users = check_users(ev.faces, users)
    rows = []
    for attack_name, attack in ([(NATURAL, None)] if natural else []) + list(attacks.items()):
        for user in users:
            cloaked = None
            if attack is not None:
                cloaked = user_cloaks(
                    ev.faces, attack_name, attack, user, cloak_dir, extractors, device, seed
                )
            for defense in ev.defenses:
                for row in ev.run_cell(user, cloaked, defense):
                    rows.append({"attack": attack_name, **row})
                    log.info("%s", rows[-1])
    return pd.DataFrame(rows)


def amplification_sweep(ev: Evaluation, attack_name: str, attack, users: Sequence[str], ks: Sequence[float],
                        defenses: Sequence[str], cloak_dir: Path, extractors, device, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """ASR and normal accuracy (linear probe) when the user's cloaks are amplified k times."""
    rows = []
    keep = ev.models
    ev.models = ["linear"]
    try:
        for user in check_users(ev.faces, users):
            cloaked = user_cloaks(ev.faces, attack_name, attack, user, cloak_dir, extractors, device, seed)
            natural = ev.faces.identity_chips("train", user)
            for k in ks:
                for defense in defenses:
                    for row in ev.run_cell(user, amplify(natural, cloaked, float(k)), defense):
                        rows.append({"attack": attack_name, "k": float(k), **row})
    finally:
        ev.models = keep
    return pd.DataFrame(rows)


def purifier_sweep(ev: Evaluation, attack_name: str, attack, users: Sequence[str], purifiers: Mapping[float, Callable],
                   cloak_dir: Path, extractors, device, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Fig. 4: ASR and normal accuracy (linear probe) of the user's real cloaks when the training
    chips pass through the purifier trained on k-amplified cloaks, one purifier per ``k``."""
    rows = []
    keep_models, keep_defenses = ev.models, dict(ev.defenses)
    ev.models = ["linear"]
    try:
        for user in check_users(ev.faces, users):
            cloaked = user_cloaks(ev.faces, attack_name, attack, user, cloak_dir, extractors, device, seed)
            for k, purify in purifiers.items():
                name = f"purifier_k{float(k):g}"
                ev.defenses[name] = purify
                for row in ev.run_cell(user, cloaked, name):
                    rows.append({"attack": attack_name, "k_train": float(k), **row})
    finally:
        ev.models, ev.defenses = keep_models, keep_defenses
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame) -> str:
    """Markdown: one row per attack x model, ASR / normal accuracy (%) per defense, mean over users."""
    mean = results.groupby(["attack", "model", "defense"], sort=False)[["asr", "normal_accuracy"]].mean()
    defenses = list(dict.fromkeys(results["defense"]))
    lines = ["| attack | FR model | " + " | ".join(defenses) + " |", "|---|---|" + "---|" * len(defenses)]
    for (attack, model), _ in results.groupby(["attack", "model"], sort=False):
        cells = []
        for d in defenses:
            if (attack, model, d) in mean.index:
                m = mean.loc[(attack, model, d)]
                cells.append(f"{100 * m['asr']:.1f} / {100 * m['normal_accuracy']:.1f}")
            else:
                cells.append("–")
        lines.append(f"| {attack} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
