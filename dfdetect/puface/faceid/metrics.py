"""Attack success rate (share of the cloaked users' natural test images misidentified) and normal
accuracy (accuracy on every other identity's test images)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dfdetect.utils.errors import UserError


def _users_mask(labels: np.ndarray, users: Iterable[int]) -> np.ndarray:
    return np.isin(labels, np.fromiter(users, dtype=np.int64))


def attack_success_rate(pred, labels, users: Iterable[int]) -> float:
    pred, labels, users = np.asarray(pred), np.asarray(labels), list(users)
    mask = _users_mask(labels, users)
    if not mask.any():
        raise UserError(
            f"the cloaked user(s) {users} have no test images: the attack success rate is undefined"
        )
    return float((pred[mask] != labels[mask]).mean())


def normal_accuracy(pred, labels, users: Iterable[int]) -> float:
    pred, labels, users = np.asarray(pred), np.asarray(labels), list(users)
    mask = ~_users_mask(labels, users)
    if not mask.any():
        raise UserError(
            "no test images of identities other than the cloaked user(s): normal accuracy is undefined"
        )
    return float((pred[mask] == labels[mask]).mean())
