"""Defense ensembles DD1/DD2/DD3 over trained detectors (paper §6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dfdetect.ensemble.members import FrozenMembers, load_members
from dfdetect.ensemble.nets import RuleEnsemble, StackingEnsemble
from dfdetect.models.lightning import DetectorModule

KINDS = {"dd1": "single", "dd2": "all_real", "dd3": "stacking"}


def build_ensemble(
    kind: str,
    members: Sequence[str],
    optimizer: Callable | None = None,
    threshold: float = 0.5,
    stacking: dict | None = None,
):
    """A DetectorModule whose net is the ensemble; only DD3 has weights to fit."""
    if kind not in KINDS:
        raise ValueError(f"unknown ensemble {kind!r}; known: {', '.join(KINDS)}")
    frozen = load_members(list(members))
    if kind == "dd3":
        net = StackingEnsemble(frozen, **(stacking or {}))
    else:
        net = RuleEnsemble(frozen, KINDS[kind])
    return DetectorModule(
        net=net, optimizer=optimizer, scheduler=None, channels_last=False, threshold=threshold
    )


def needs_fitting(kind: str) -> bool:
    return kind == "dd3"


__all__ = [
    "FrozenMembers",
    "RuleEnsemble",
    "StackingEnsemble",
    "build_ensemble",
    "load_members",
    "needs_fitting",
]
