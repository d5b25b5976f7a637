"""Command-line options of the face pipeline's box refinement, shared by the benchmarks that run it."""

from __future__ import annotations

import argparse

from dfdetect.preprocess.settings import ClipSettings


def add_refine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--refine-small/--no-refine-small`` and ``--refine-motion-iou`` (defaults: ClipSettings')."""
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


def refine_settings(args: argparse.Namespace) -> dict:
    return {"refine_small": args.refine_small, "refine_motion_iou": args.refine_motion_iou}
