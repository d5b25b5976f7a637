"""Which parameters of a detector train: one policy for every backbone (``model.finetune``).

- ``full``: every parameter the net leaves trainable (sub-networks a net freezes itself, such as
  ABNet's face-recognition network, stay frozen under every policy);
- ``head``: the classifier head only (a linear probe);
- ``norm``: the normalisation layers' affine parameters (LayerNorm, BatchNorm, GroupNorm, RMSNorm
  ...) plus the head: the LNCLIP-DF / GenD recipe (Yermakov, Čech & Matas, 2025), with the features L2-normalised before the head
  (``TimmDetector.l2_normalize``).

The head is what the net's ``head_modules()`` returns, or else its last ``nn.Linear``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

POLICIES = ("full", "head", "norm")
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    _NORM_TYPES = (*_NORM_TYPES, nn.RMSNorm)


def is_norm(module: nn.Module) -> bool:
    """A normalisation layer: torch's, or any class named ``*Norm``/``*Norm2d``/``*NormAct2d`` (timm's)."""
    name = type(module).__name__
    return isinstance(module, _NORM_TYPES) or name.endswith(("Norm", "Norm1d", "Norm2d", "NormAct2d"))


def head_modules(net: nn.Module) -> list[nn.Module]:
    if hasattr(net, "head_modules"):
        return list(net.head_modules())
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(net).__name__} has no head_modules() and no nn.Linear to use as its head")
    return [linears[-1]]


def _ids(modules: list[nn.Module], direct_only: bool = False) -> set[int]:
    return {id(p) for m in modules for p in m.parameters(recurse=not direct_only)}


@dataclass(frozen=True)
class FinetuneCounts:
    """Parameter counts: every parameter, what each policy would train, and what trains now."""

    policy: str
    total: int
    full: int
    head: int
    norm: int
    trainable: int

    def line(self) -> str:
        return (
            f"finetune={self.policy}: {self.trainable:,} of {self.total:,} parameters train "
            f"(full {self.full:,}, head {self.head:,}, norm+head {self.norm:,})"
        )


def finetune_sets(net: nn.Module) -> dict[str, set[int]]:
    """The parameter ids each policy trains (among those the net leaves trainable)."""
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    try:
        head = _ids(head_modules(net)) & trainable
    except ValueError:  # no head to name (an ensemble rule, a parameter-free net): full only
        head = set()
    norms = _ids([m for m in net.modules() if is_norm(m)], direct_only=True) & trainable
    return {"full": trainable, "head": head, "norm": norms | head}


def apply_finetune(net: nn.Module, policy: str) -> FinetuneCounts:
    """Freeze every parameter the policy does not train; returns the counts."""
    if policy not in POLICIES:
        raise ValueError(f"model.finetune must be one of {POLICIES}, got {policy!r}")
    sets = finetune_sets(net)
    if policy != "full" and not sets["head"]:
        head_modules(net)  # raises, naming the net
        raise ValueError(f"model.finetune={policy}: {type(net).__name__}'s head has no trainable parameters")
    params = {id(p): p for p in net.parameters()}
    for pid, p in params.items():
        if pid not in sets[policy]:
            p.requires_grad_(False)

    def count(ids: set[int]) -> int:
        return sum(params[i].numel() for i in ids)

    return FinetuneCounts(
        policy=policy,
        total=sum(p.numel() for p in params.values()),
        full=count(sets["full"]),
        head=count(sets["head"]),
        norm=count(sets["norm"]),
        trainable=sum(p.numel() for p in params.values() if p.requires_grad),
    )
