"""A sub-network used as a fixed function (a frozen feature extractor)."""

from __future__ import annotations

from torch import nn


def parameters_to_buffers(module: nn.Module) -> None:
    """Turn every parameter into a buffer of the same name: same state-dict keys, moved by
    ``.to()``, but no gradient and not in ``parameters()`` (so optimizers never see it)."""
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is None:
                continue
            del sub._parameters[name]
            sub.register_buffer(name, param.detach())


class Frozen(nn.Module):
    """Wraps a network whose weights stay fixed: they become buffers, and it always runs in eval
    mode (batch-norm statistics frozen, dropout off) whatever mode its owner is in."""

    def __init__(self, module: nn.Module):
        super().__init__()
        parameters_to_buffers(module)
        self.module = module.eval()

    def train(self, mode: bool = True) -> Frozen:
        super().train(mode)
        self.module.eval()
        return self

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
