"""Command-line options of the face pipeline's box refinement, shared by the benchmarks that run it."""

from __future__ import annotations

import argparse

from dfdetect.preprocess.settings import ClipSettings


def add_refine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--refine-small``, ``--refine-motion-iou``, ``--refine-lost``, ``--refine-edge`` (defaults:
    ClipSettings'; the booleans also as ``--no-...``)."""
    parser.add_argument(
        "--refine-small",
        action=argparse.BooleanOptionalAction,
        default=ClipSettings.refine_small,
        help="face.refine_small",
    )
    parser.add_argument(
        "--refine-motion-iou",
        type=float,
        default=ClipSettings.refine_motion_iou,
        help="face.refine_motion_iou (0: off)",
    )

    for name in ("refine_lost", "refine_edge"):
        parser.add_argument(
            "--" + name.replace("_", "-"),
            action=argparse.BooleanOptionalAction,
            default=getattr(ClipSettings, name),
            help=f"face.{name}",
        )


REFINE_FIELDS = ("refine_small", "refine_motion_iou", "refine_lost", "refine_edge")


def refine_settings(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in REFINE_FIELDS}


def refine_line(settings: dict | ClipSettings) -> str:
    """``face.refine_small=True, ...`` for a benchmark's header."""
    get = settings.get if isinstance(settings, dict) else lambda k: getattr(settings, k)
    return ", ".join(f"face.{name}={get(name)}" for name in REFINE_FIELDS)
