"""The grey-box setting with every protected user cloaked at once: one end-to-end fine-tuning per
(attack, defense, seed) instead of one per user. On a CPU the per-user protocol costs
users x seeds x defenses fine-tunings of dlib's ResNet per attack (24 x 2 x 2 = 96, minutes each);
this costs seeds x defenses. Each user's ASR is read from the one model, so the users are not
independent draws of the FR model (only of its data): rows say ``grey-box (joint)``. Rows land in
``results_dir/<attack>/e2e_joint/<defense>_s<seed>.csv`` (atomic; a rerun with the same users and
the same fine-tuning recipe reuses them)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from dfdetect.puface.faceid.metrics import attack_success_rate, normal_accuracy
from dfdetect.utils.io import atomic_path

log = logging.getLogger(__name__)
SETTING = "grey-box (joint)"


def joint_rows(ev, attack: str, load_cloaks: Callable[[], Mapping[str, torch.Tensor]] | None, users: Sequence[str],
               defenses: Sequence[str], seeds: Sequence[int], make_e2e: Callable,
               results_dir: str | Path) -> pd.DataFrame:  # fmt: skip
    """``load_cloaks()``: ``{user: uint8 cloaked training chips}`` for every user of ``users``, read
    only if a fit is not on disk yet (None: the natural rows, one fine-tuning shared by every user)."""
    folder = Path(results_dir) / attack / "e2e_joint"
    y = ev.yte.numpy()
    protected = [ev.faces.identities.index(u) for u in users]
    frames, cloaks = [], None
    for defense in defenses:
        for seed in seeds:
            path = folder / f"{defense}_s{int(seed)}.csv"
            model = make_e2e(int(seed))
            recipe = json.dumps(model.recipe() if hasattr(model, "recipe") else {}, sort_keys=True)
            if path.is_file():
                old = pd.read_csv(path)
                if (
                    sorted(old["user"]) == sorted(users)
                    and "recipe" in old
                    and (old["recipe"] == recipe).all()
                ):
                    frames.append(old)
                    continue
            t0 = time.time()
            if cloaks is None:
                cloaks = load_cloaks() if load_cloaks is not None else {}
            chips, feats = ev.training_set(cloaks, defense)
            pred = model.fit(chips, ev.ytr.numpy(), features=feats).predict(ev.xte)
            rows = []
            for user in users:
                label = ev.faces.identities.index(user)
                rows.append({"attack": attack, "user": user, "setting": SETTING, "model": "e2e",
                             "defense": defense, "seed": int(seed),
                             "asr": attack_success_rate(pred, y, [label]),
                             "normal_accuracy": normal_accuracy(pred, y, protected),
                             "user_test": int((y == label).sum()), "other_test": int((y != label).sum()),
                             "seconds": round(time.time() - t0, 1), "recipe": recipe})  # fmt: skip
            df = pd.DataFrame(rows)
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                df.to_csv(tmp, index=False)
            log.info("%s / e2e joint / %s / seed %d: %d users (%.0f s)", attack, defense, seed, len(users),
                     time.time() - t0)  # fmt: skip
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
