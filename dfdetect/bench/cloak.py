"""Cloaked images per second: the batched attack on the device against one image at a time (as
Fawkes' and LowKey's tools run), same chips, same attack, same process.

The chips are the shared sample faces (``../shared/data/samples``) resized to 150x150 and repeated
to ``--images`` (random pixels where the folder is absent; the header says which). The attack is
``--attack`` (fawkes_low, fawkes_mid, fawkes_high, fawkes_v1_high or lowkey) against dlib's
ResNet, with ``--steps`` steps instead of its mode's (the time per step does not depend on the
count). Alternating the two ways so that load from other processes hits both alike, each cloaks
all images ``--rounds`` times: batched in batches of ``--batch``, and image by image. The table
gives the median images/s; the last line is ``ratio=<batched / one at a time>``.

python scripts/benchmark_cloak.py [--attack fawkes_high] [--images 32] [--batch 32] [--steps 10] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from dfdetect.puface.cloak.extractors import build_extractors
from dfdetect.puface.cloak.fawkes import FawkesTargeted, FawkesUntargeted
from dfdetect.puface.cloak.lowkey import LowKey
from dfdetect.puface.cloak.runner import cloak_chips, pick_device
from dfdetect.utils.paths import shared_dir

SAMPLES = shared_dir() / "data" / "samples"


def load_chips(n: int, root: Path = SAMPLES) -> tuple[torch.Tensor, str]:
    images = [cv2.imread(str(p)) for p in sorted(root.rglob("*")) if p.suffix.lower() in (".png", ".jpg")]
    images = [cv2.resize(cv2.cvtColor(im, cv2.COLOR_BGR2RGB), (150, 150), interpolation=cv2.INTER_AREA)
              for im in images if im is not None]  # fmt: skip
    source = f"{len(images)} shared sample faces, repeated"
    if not images:
        images = list(np.random.default_rng(0).integers(0, 256, (n, 150, 150, 3), dtype=np.uint8))
        source = "random pixels (no shared samples)"
    chips = np.stack([images[i % len(images)] for i in range(n)])
    return torch.from_numpy(chips).permute(0, 3, 1, 2).contiguous(), source


def make_attack(name: str, steps: int):
    if name.startswith("fawkes_v1_"):
        return FawkesUntargeted(name.removeprefix("fawkes_v1_"), steps=steps)
    if name.startswith("fawkes_"):
        return FawkesTargeted(name.removeprefix("fawkes_"), steps=steps)
    if name == "lowkey":
        return LowKey(steps=steps)
    raise SystemExit(f"unknown attack {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attack", default="fawkes_high")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    chips, source = load_chips(args.images)
    targets = chips.flip(0)
    attack = make_attack(args.attack, args.steps)
    extractors = build_extractors(["dlib"])
    print(f"{args.attack}, {args.steps} steps, {args.images} chips ({source}), device {device}, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip

    def run(batch: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        cloak_chips(attack, chips, extractors, targets, batch, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return args.images / (time.perf_counter() - start)

    run(args.batch)  # warm-up (kernels, allocator)
    rates: dict[str, list[float]] = {"batched": [], "one_at_a_time": []}
    for _ in range(args.rounds):
        rates["batched"].append(run(args.batch))
        rates["one_at_a_time"].append(run(1))
    print("| way | images/s |\n|---|---|")
    for name, values in rates.items():
        print(f"{name} {statistics.median(values):.3f}")
    print(f"ratio={statistics.median(rates['batched']) / statistics.median(rates['one_at_a_time']):.3f}")


if __name__ == "__main__":
    main()
