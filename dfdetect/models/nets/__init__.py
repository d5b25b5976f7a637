"""Detector nets, one file per family; importing this package registers them all."""

from dfdetect.models.nets import abnet, clrnet, fakespotter, ftdetect, mesonet, shallownet, timm_net, xception  # noqa: F401
from dfdetect.models.nets.base import ClipDetector, FrameDetector
from dfdetect.models.nets.registry import (
    NetInfo,
    create_net,
    detector_table,
    list_nets,
    net_info,
    register_net,
)

__all__ = [
    "ClipDetector",
    "FrameDetector",
    "NetInfo",
    "create_net",
    "detector_table",
    "list_nets",
    "net_info",
    "register_net",
]
