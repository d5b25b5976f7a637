"""Command-line options of the face pipeline's box refinement, shared by the benchmarks that run it."""

from __future__ import annotations

import argparse

from dfdetect.preprocess.settings import ClipSettings

REFINE_FIELDS = ("refine_small", "refine_motion_iou", "refine_lost", "refine_edge")


def add_refine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--refine-small``, ``--refine-motion-iou``, ``--refine-lost``, ``--refine-edge`` (defaults:
    ClipSettings'; the booleans also as ``--no-...``)."""
    for name in REFINE_FIELDS:
        default = getattr(ClipSettings, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=f"face.{name}"
            )
        else:
            parser.add_argument(flag, type=float, default=default, help=f"face.{name} (0: off)")


def refine_settings(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in REFINE_FIELDS}


def refine_line(settings: ClipSettings) -> str:
    """``face.refine_small=True, ...`` for a benchmark's header."""
    return ", ".join(f"face.{name}={getattr(settings, name)}" for name in REFINE_FIELDS)
