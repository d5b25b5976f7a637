"""One registry of detector nets, in the manner of timm: ``create_net("mesoinception4", ...)``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_net(name: str) -> Callable:
    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"detector {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return wrap


def list_nets() -> list[str]:
    return sorted(_REGISTRY)


def create_net(name: str, **kwargs) -> nn.Module:
    """Build a registered net; ``input_size=None`` (a data config without a working resolution)
    means the net's native input size."""
    if "input_size" in kwargs and kwargs["input_size"] is None:
        del kwargs["input_size"]
    if name not in _REGISTRY:
        raise KeyError(f"unknown detector {name!r}; registered: {', '.join(list_nets())}")
    return _REGISTRY[name](**kwargs)
