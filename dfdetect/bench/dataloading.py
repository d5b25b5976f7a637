"""Training clips per second: our datamodule against a DeepfakeBench-style loader, and the copy bound.

All three loaders read the train split of the same store, with the same DataLoader settings
(workers, batch size) and, where they augment, the paper's augmentation (rotation, flip, zoom,
brightness, channel shift):

- ours: ``ClipDataModule.train_dataloader()`` (balanced sampler; per clip one sampled transform
  applied to all frames at once; uint8 out, normalisation left to the training device);
- deepfakebench: modelled on DeepfakeBench's ``DeepfakeAbstractBaseDataset`` in its video-level
  mode: per frame ``cv2.imread``, RGB, ``cv2.resize`` (cubic) to the resolution, a PIL round trip,
  the augmentation (an ``A.ReplayCompose`` sampled on the first frame and ``replay``-ed on the
  others), ``ToTensor`` + ``Normalize`` in the worker; frames stacked to a float clip;
- copy bound: the same clips decoded beforehand, handed out as uint8 array copies (what the
  DataLoader itself costs: worker IPC, collation).

Rounds alternate the loaders so that load from other processes hits them alike; each round
times ``--batches`` batches after ``--warmup`` batches (which include starting the workers).
The last line is ``ratio=<ours / deepfakebench>`` (median clips/s over the rounds).

python scripts/benchmark_dataloading.py [--store data/stores/ffpp_mini] [--workers 2] [--batch 16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from tqdm import tqdm

from dfdetect.data import ClipDataModule
from dfdetect.data.augment import PAPER_AUGMENTATIONS, build_albumentations_augmentation
from dfdetect.utils.paths import project_root

ROOT = project_root()
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


class DeepfakeBenchStyleClips(Dataset):
    """One file read, resize and replayed augmentation per frame; float clips out."""

    def __init__(self, frame: pd.DataFrame, store_dir: Path, resolution: int):
        self.paths = [[str(store_dir / p) for p in paths] for paths in frame["paths"]]
        self.labels = frame["label"].tolist()
        self.resolution = resolution
        self.transform = A.ReplayCompose(
            list(build_albumentations_augmentation(PAPER_AUGMENTATIONS).transforms)
        )
        self.to_float = T.Compose([T.ToTensor(), T.Normalize(**IMAGENET)])

    def __len__(self) -> int:
        return len(self.paths)

    def load_rgb(self, path: str) -> Image.Image:
        img = cv2.imread(path)
        if img is None:
            raise ValueError(f"cannot read {path}")
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (self.resolution, self.resolution), interpolation=cv2.INTER_CUBIC)
        return Image.fromarray(np.array(img, dtype=np.uint8))

    def __getitem__(self, index: int) -> dict:
        frames, replay = [], None
        for path in self.paths[index]:
            image = np.array(self.load_rgb(path))
            if replay is None:
                out = self.transform(image=image)
                replay = out["replay"]
            else:
                out = A.ReplayCompose.replay(replay, image=image)
            frames.append(self.to_float(out["image"]))
        return {"clip": torch.stack(frames), "label": self.labels[index]}


class RawClips(Dataset):
    """Clips decoded beforehand: a copy of a uint8 array per item."""

    def __init__(self, clips: list[np.ndarray], labels: list[int]):
        self.clips, self.labels = clips, labels

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        return {"clip": torch.from_numpy(self.clips[index].copy()), "label": self.labels[index]}


def clips_per_second(loader: DataLoader, warmup: int, batches: int) -> float:
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        n += len(next(it)["label"])
    rate = n / (time.perf_counter() - start)
    del it  # stops the workers
    return rate


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=Path, default=ROOT / "data" / "stores" / "ffpp_mini")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per loader and round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    dm = ClipDataModule(
        args.store,
        batch_size=args.batch,
        num_workers=args.workers,
        persistent_workers=False,
        image_size=args.image_size,
        augment=PAPER_AUGMENTATIONS,
    )
    dm.setup("fit")
    train = dm.splits["train"]
    needed = min(len(train), (args.warmup + args.batches) * args.batch * 2)
    plain = dm.dataset("train", augment=False)
    raw = RawClips(
        [plain.frames(i).transpose(0, 3, 1, 2) for i in tqdm(range(needed), desc="decode for the bound")],
        plain.labels[:needed].tolist(),
    )
    baseline = DeepfakeBenchStyleClips(train.frame, dm.store_dir, args.image_size)
    loaders = {
        "ours": lambda: dm.train_dataloader(),
        "deepfakebench": lambda: DataLoader(
            baseline, batch_size=args.batch, shuffle=True, num_workers=args.workers
        ),
        "raw_uint8_copy": lambda: DataLoader(
            raw, batch_size=args.batch, shuffle=True, num_workers=args.workers
        ),
    }
    print(f"store {args.store}: {len(train)} train clips of {train.frames(0).shape} (T, H, W, C)")
    print(f"workers {args.workers}, batch {args.batch}, load average before: {load_average()}")
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in tqdm(range(args.rounds), desc="rounds"):
        for name, make in loaders.items():
            rates[name].append(clips_per_second(make(), args.warmup, args.batches))
    print(f"load average after: {load_average()}")
    print(f"{'loader':<16}{'clips/s (median)':>18}{'all rounds':>30}")
    median = {name: statistics.median(r) for name, r in rates.items()}
    for name, r in rates.items():
        print(f"{name:<16}{median[name]:>18.1f}{'  '.join(f'{x:.1f}' for x in r):>30}")
    print(f"share of the copy bound (ours / raw_uint8_copy): {median['ours'] / median['raw_uint8_copy']:.3f}")
    print(f"ratio={median['ours'] / median['deepfakebench']:.3f}")


if __name__ == "__main__":
    main()
