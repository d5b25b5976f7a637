"""Face embeddings per second: our PyTorch port of dlib's face-recognition ResNet against dlib's own
C++ (``dlib.face_recognition_model_v1.compute_face_descriptor``), same chips, same process.

The chips are the shared sample faces (``../shared/data/samples``) resized to 150x150 and repeated
to ``--chips`` (random pixels where the folder is absent; the header says which). Both networks
first embed the chips once and the largest descriptor difference is printed (a parity check, not
timed). Then, alternating the two so that load from other processes hits both alike, each embeds
all chips ``--rounds`` times: ours in batches of ``--batch`` (float32, channels-last, inference
mode, ``--threads`` torch threads), dlib in one batched call (its own mini-batches of 16). The
table gives the median embeddings/s and the process CPU seconds per round; ``--bf16`` adds our
bfloat16 autocast (not parity-exact, not in the ratio). The last line is ``ratio=<ours / dlib>``.

python scripts/benchmark_face_embedding.py [--chips 256] [--batch 64] [--threads 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from dfdetect.models.nets.dlib_face import dlib_resnet
from dfdetect.models.weights.dlib_dat import installed_face_recognition_file
from dfdetect.run.face_verify import embed
from dfdetect.utils.paths import shared_dir

SAMPLES = shared_dir() / "data" / "samples"


def load_chips(n: int, root: Path = SAMPLES) -> tuple[np.ndarray, str]:
    images = [cv2.imread(str(p)) for p in sorted(root.rglob("*")) if p.suffix.lower() in (".png", ".jpg")]
    images = [cv2.resize(cv2.cvtColor(im, cv2.COLOR_BGR2RGB), (150, 150), interpolation=cv2.INTER_AREA)
              for im in images if im is not None]  # fmt: skip
    if not images:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (n, 150, 150, 3), dtype=np.uint8), f"random pixels ({root} not found)"
    return np.stack([images[i % len(images)] for i in range(n)]), f"{len(images)} sample faces from {root}"


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chips", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also time bfloat16 autocast (not in the ratio)")
    args = parser.parse_args(argv)
    try:
        import dlib
    except ImportError as e:
        parser.exit(
            2, f"benchmark_face_embedding: error: dlib cannot be imported ({e}); pip install dlib-bin\n"
        )
    torch.set_num_threads(args.threads)
    chips, source = load_chips(args.chips)
    net = dlib_resnet().eval().to(memory_format=torch.channels_last)
    reference = dlib.face_recognition_model_v1(str(installed_face_recognition_file()))
    chip_list = [np.ascontiguousarray(c) for c in chips]

    def ours():
        return embed(net, chips, args.batch)

    def ours_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return embed(net, chips, args.batch)

    def theirs():
        return np.array(reference.compute_face_descriptor(chip_list))

    diff = float(np.abs(ours() - theirs()).max())  # also the warm-up
    runs = {"ours": ours, "dlib": theirs} | ({"ours_bf16": ours_bf16} if args.bf16 else {})
    if args.bf16:
        ours_bf16()
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            times[name].append(timed(fn))
    print(
        f"# {len(chips)} chips: {source}; torch {torch.__version__}, {args.threads} threads, batch {args.batch}; "
        f"dlib {dlib.__version__} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"
    )
    print(f"# parity: max abs descriptor difference ours vs dlib {diff:.3g}")
    print(f"{'net':<10} {'emb/s':>8} {'wall_s':>8} {'cpu_s':>8}")
    rate = {}
    for name, ts in times.items():
        wall = statistics.median(t[0] for t in ts)
        rate[name] = len(chips) / wall
        print(f"{name:<10} {rate[name]:8.2f} {wall:8.3f} {statistics.median(t[1] for t in ts):8.3f}")
    print(f"ratio={rate['ours'] / rate['dlib']:.3f}")


if __name__ == "__main__":
    main()
