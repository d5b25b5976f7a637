"""One registry of detector nets, in the manner of timm: each net registers itself where it is
defined, with the facts about it beside it (``@register_net(name, NetInfo(...))``), and is built by
name with ``create_net("mesoinception4", ...)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

KINDS = ("frame", "clip")
WEIGHT_FORMATS = ("keras_h5", "torch_state_dict", "safetensors", "facenet_state_dict", "dlib_dat")
UNIT_SCALE = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # mean and std of frames scaled to [0, 1]


@dataclass(frozen=True)
class NetInfo:
    """What a user needs to know about a net before using it.

    ``params`` counts trainable parameters at ``input_size`` (frozen sub-networks and BatchNorm
    running statistics excluded, as Keras' "trainable params"). ``kind`` is ``frame`` for
    single-frame detectors (T folded into the batch, logits averaged) and ``clip`` for nets that
    see time. ``weight_formats`` lists the files ``weights=`` accepts; empty when none.
    """

    paper: str
    code: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    kind: str
    params: int
    weight_formats: tuple[str, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"NetInfo.kind must be one of {KINDS}, got {self.kind!r}")
        unknown = set(self.weight_formats) - set(WEIGHT_FORMATS)
        if unknown:
            raise ValueError(f"unknown weight formats {sorted(unknown)}; known: {WEIGHT_FORMATS}")


_REGISTRY: dict[str, tuple[Callable[..., nn.Module], NetInfo]] = {}


def register_net(name: str, info: NetInfo) -> Callable:
    """Class (or factory) decorator: make it buildable as ``create_net(name)``, described by ``info``;
    a class gets ``info`` and its ``mean`` / ``std`` as class attributes."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"detector {name!r} is registered twice")
        named = NetInfo(**{**info.__dict__, "name": name})
        _REGISTRY[name] = (factory, named)
        if isinstance(factory, type):
            # a registered class reads its native input size and normalisation from here only
            factory.info = named
            factory.mean, factory.std = named.mean, named.std
        return factory

    return wrap


def list_nets() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> tuple[Callable[..., nn.Module], NetInfo]:
    if name not in _REGISTRY:
        raise KeyError(f"unknown detector {name!r}; registered: {', '.join(list_nets())}")
    return _REGISTRY[name]


def net_info(name: str) -> NetInfo:
    return _entry(name)[1]


def create_net(name: str, **kwargs) -> nn.Module:
    """Build a registered net; ``input_size=None`` (a data config without a working resolution)
    means the net's native input size."""
    if "input_size" in kwargs and kwargs["input_size"] is None:
        del kwargs["input_size"]
    return _entry(name)[0](**kwargs)


def detector_table() -> str:
    """The registry as the Markdown table of the README (a test keeps the two equal)."""
    rows = [
        "| name | frames or clips | native input | trainable parameters | paper | code it follows | weights it loads |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in list_nets():
        info = net_info(name)
        formats = ", ".join(f"`{f}`" for f in info.weight_formats) or "–"
        rows.append(
            f"| `{name}` | {info.kind} | {info.input_size}×{info.input_size} | {info.params:,} | "
            f"{info.paper} | {info.code} | {formats} |"
        )
    return "\n".join(rows)
