"""The shared clip datamodule: a clip store in, grouped and seeded train/val/test loaders out."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset, WeightedRandomSampler

from dfdetect.data.augment import build_clip_augmentation
from dfdetect.data.clip_dataset import ClipDataset
from dfdetect.data.folds import fold_splits
from dfdetect.data.frames import SkipCounter, check_policy
from dfdetect.data.manifest import ALL, SPLITS, read_manifest
from dfdetect.data.sbi import SYNTHESES, SelfBlendedClipDataset
from dfdetect.data.split_check import (
    EVEN_SHARES,
    SEEDS_TRIED,
    SplitError,
    split_counts,
    split_error,
    unusable,
    working_seed,
)
from dfdetect.data.splits import assign_grouped_splits, check_no_group_leak

log = logging.getLogger(__name__)

StoreSource = str | os.PathLike | Callable[[], os.PathLike]
FORMATS = ("store", "litdata")


def balanced_sampler(labels: torch.Tensor, seed: int) -> WeightedRandomSampler:
    """Draw real and fake clips equally often, with replacement; no clip is discarded."""
    counts = torch.bincount(labels, minlength=2).clamp(min=1).double()
    weights = (1.0 / counts)[labels]
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(weights, num_samples=len(labels), replacement=True, generator=generator)


class ClipDataModule(pl.LightningDataModule):
    """Yields batches ``clip uint8 (B, T, C, H, W)``, ``label``, ``clip_id``, ``video_id``.

    ``store`` is a clip store directory, or a callable that builds one and returns its path
    (called once in ``prepare_data``, then again to find it; it must be cached and idempotent).
    Augmentations apply to the train split only.

    ``folds=k, fold=i``: grouped k-fold cross-validation (``dfdetect.data.folds``). Whole groups are
    dealt to k folds (seeded by ``fold_seed``, class shares balanced); fold i is the test split, fold
    (i + 1) % k the validation split, the others the training split. Over i = 0..k-1 every clip is
    tested exactly once. ``split_fractions``, ``split_seed`` and preset splits do not apply.

    ``format="litdata"`` streams the clips instead from ``litdata_uri``, a LitData export of a
    store (``scripts/export_litdata.py``; local folder or ``s3://``/``gs://`` URI, credentials from
    the environment): same items and batches, splits as fixed at export, ``store`` is not read.
    ``litdata_storage_options`` go to LitData's object-store client (for S3, boto3's, e.g.
    ``endpoint_url`` of an S3-compatible store); keys never belong there.

    ``on_bad_frame``: a clip with a missing, truncated or undecodable frame stops the run
    (``"fail"``, one line naming the file) or is left out of its batch, counted and logged
    (``"skip"``; ``skipped_clips()``).
    """

    def __init__(
        self,
        store: StoreSource,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        image_size: int | None = 240,
        num_frames: int | None = None,
        frame_stride: int = 1,
        split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
        split_seed: int = 0,
        group_column: str = "group",
        balance: bool = True,
        augment: Mapping[str, Mapping] | None = None,
        datasets: Sequence[str] | None = None,
        methods: Sequence[str] | None = None,
        net_input_size: int | None = None,
        fit_on: str = "train",
        fit_on_val_fractions: Sequence[float] = (0.7, 0.3),
        format: str = "store",
        litdata_uri: str | os.PathLike | None = None,
        litdata_storage_options: Mapping[str, Any] | None = None,
        on_bad_frame: str = "fail",
        folds: int | None = None,
        fold: int = 0,
        fold_seed: int = 0,
        synthesis: str | None = None,
        sbi: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.store = store
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.image_size = image_size
        self.num_frames = num_frames
        if frame_stride < 1:
            raise ValueError(f"data.frame_stride must be at least 1, got {frame_stride}")
        self.frame_stride = frame_stride
        self.split_fractions = tuple(split_fractions)
        self.split_seed = split_seed
        self.group_column = group_column
        self.balance = balance
        self.augment = augment
        self.datasets = list(datasets) if datasets else None
        self.methods = list(methods) if methods else None
        # the resolution this data suggests to single-frame nets (model configs read it)
        self.net_input_size = net_input_size
        if fit_on not in ("train", "val"):
            raise ValueError(f"fit_on must be 'train' or 'val', got {fit_on!r}")
        # "val": fit on a grouped part of the validation split (ensembles), select on the rest
        self.fit_on = fit_on
        self.fit_select_unit = "group"  # "video" when fitting on validation had to split its videos
        self.fit_on_val_fractions = tuple(fit_on_val_fractions)
        if format not in FORMATS:
            raise ValueError(f"data format must be one of {FORMATS}, got {format!r}")
        if format == "litdata" and not litdata_uri:
            raise ValueError("data.format=litdata needs data.litdata_uri (an export folder or URI)")
        self.format = format
        self.litdata_uri = str(litdata_uri) if litdata_uri else None
        self.litdata_storage_options = dict(litdata_storage_options or {})
        self.on_bad_frame = check_policy(on_bad_frame)
        # grouped k-fold: fold `fold` of `folds` is the test split, val is carved from the others
        if folds is not None and format == "litdata":
            raise ValueError("data.folds needs data.format=store (a LitData export fixes its splits)")
        if folds is not None and not 0 <= fold < folds:
            raise ValueError(f"data.fold must be in 0..{folds - 1} for data.folds={folds}, got {fold}")
        self.folds, self.fold, self.fold_seed = folds, fold, fold_seed
        # synthesis=sbi: the train (and, by default, val) split become real clips and their
        # self-blended pseudo-fakes (dfdetect.data.sbi); the test split is read as stored
        if synthesis is not None and synthesis not in SYNTHESES:
            raise ValueError(f"data.synthesis must be null or one of {SYNTHESES}, got {synthesis!r}")
        if synthesis is not None and format == "litdata":
            raise ValueError("data.synthesis needs data.format=store")
        self.synthesis = synthesis
        self.sbi = {"splits": ["train", "val"], "no_face": "skip", "margin": 0.3, **dict(sbi or {})}
        self._skipped: dict[str, SkipCounter] = {}
        self._sbi_datasets: dict[str, SelfBlendedClipDataset] = {}
        self.manifest: pd.DataFrame | None = None
        self.splits: dict[str, ClipDataset] = {}
        self._transform = None

    @property
    def store_dir(self) -> Path:
        return Path(self.store() if callable(self.store) else self.store)

    @property
    def source(self) -> str:
        return self.litdata_uri if self.format == "litdata" else str(self.store_dir)

    def prepare_data(self) -> None:
        if self.format == "store":
            _ = self.store_dir

    def load_manifest(self) -> pd.DataFrame:
        return self._split(self._read_manifest(), self.split_seed)

    def _read_manifest(self) -> pd.DataFrame:
        if self.format == "litdata":
            from dfdetect.data.litdata_source import read_export_manifest

            df = read_export_manifest(self.litdata_uri, self.litdata_storage_options)
        else:
            df = read_manifest(self.store_dir)
        if self.datasets:
            df = df[df["dataset"].isin(self.datasets)]
        if self.methods:
            df = df[df["method"].isin(self.methods + ["real"])]
        if df.empty:
            raise ValueError(f"no clips left in {self.source} after the dataset/method filters")
        return df

    def _split(self, df: pd.DataFrame, seed: int, fractions: Sequence[float] | None = None) -> pd.DataFrame:
        df = df.copy()
        if self.folds is not None:
            df["split"] = fold_splits(df, self.folds, self.fold, self.fold_seed, self.group_column)
        else:
            df["split"] = assign_grouped_splits(
                df, fractions or self.split_fractions, seed, self.group_column
            )
        check_no_group_leak(df, self.group_column)
        if self.fit_on == "val":
            df = self._refit_on_validation(df, seed)
        return df

    def _refit_on_validation(self, df: pd.DataFrame, seed: int) -> pd.DataFrame:
        """Drop the train split; split validation groups into new train (fit) and val (select).

        When no grouped partition gives both parts real and fake clips (a validation fold holding
        one group with fakes, as on ffpp_mini with 5 folds), the validation videos are split instead,
        each class on its own (``fit_select_unit`` = ``"video"``, with a warning): fit and select
        then share groups, the test split is untouched either way."""
        val = df[df["split"] == "val"].assign(split="")
        fit, select = self.fit_on_val_fractions
        shares = (fit, select, 0.0)
        self.fit_select_unit = "group"
        # two group-disjoint parts with both classes need two groups holding each class: without
        # them no seed can work, and the search is skipped (it is nested in the seed search of a fix)
        groups_per_class = val.groupby("label")[self.group_column].nunique().reindex([0, 1], fill_value=0)
        for attempt in range(SEEDS_TRIED if groups_per_class.min() >= 2 else 0):
            val["split"] = assign_grouped_splits(val, shares, seed + 1 + attempt, self.group_column)
            if not unusable(val, ["train", "val"], True, self.group_column):
                return pd.concat([val, df[df["split"] == "test"]])
        if val.groupby("label")["video_id"].nunique().reindex([0, 1], fill_value=0).min() >= 2:
            val["split"] = pd.concat(
                assign_grouped_splits(part.assign(split=""), shares, seed + 1, "video_id")
                for _, part in val.groupby("label")
            ).reindex(val.index)
            self.fit_select_unit = "video"
            log.warning(
                "fitting on validation: its groups cannot be split into fitting and selecting parts "
                "that both hold real and fake clips, so its videos are split by class instead "
                "(fit and select share groups; the test split is not used)"
            )
        else:
            val["split"] = assign_grouped_splits(val, shares, seed + 1, self.group_column)
        return pd.concat([val, df[df["split"] == "test"]])

    def split_names(self) -> dict[str, str]:
        if self.fit_on == "val":
            return {"train": "train (the fitting part of val)", "val": "val (the selecting part of val)"}
        return {}

    def check_splits(self, needed: Sequence[str], both_classes: bool = True) -> None:
        """Raise a ``SplitError`` (naming the split, its counts and the fixes) when one of the
        ``needed`` splits is empty or, with ``both_classes``, lacks real or fake clips."""
        self.setup()
        if not unusable(self.manifest, needed, both_classes, self.group_column):
            for split, c in split_counts(self.manifest, self.group_column).items():
                if split in needed and not (c["real"] and c["fake"]):
                    log.warning(
                        "the %s split of %s holds one class only: its AUC is undefined", split, self.source
                    )
            return
        raw, fix = self._read_manifest(), None
        if self.folds is not None:
            seed = self._working_fold_seed(raw, needed, both_classes)
            fix = None if seed is None else (self.split_fractions, seed)
        for shares, first in ((self.split_fractions, self.split_seed + 1), (EVEN_SHARES, 0)):
            if self.folds is not None:
                break
            seed = working_seed(
                lambda s, f=shares: self._split(raw, s, f), needed, both_classes, self.group_column, first
            )
            if seed is not None:
                fix = (shares, seed)
                break
        raise split_error(
            self.manifest,
            needed,
            both_classes,
            self.source,
            self.split_fractions,
            self.group_column,
            fix=fix,
            names=self.split_names(),
            seed_key="data.split_seed" if self.folds is None else "data.fold_seed",
        )

    def _working_fold_seed(self, raw: pd.DataFrame, needed: Sequence[str], both_classes: bool) -> int | None:
        """The first fold seed after ours whose every fold has usable splits (a new fold seed
        moves every fold, so one fold's being usable is not enough)."""
        for seed in range(self.fold_seed + 1, self.fold_seed + 1 + SEEDS_TRIED):
            if all(
                not unusable(
                    raw.assign(split=fold_splits(raw, self.folds, i, seed, self.group_column)),
                    needed,
                    both_classes,
                    self.group_column,
                )
                for i in range(self.folds)
            ):
                return seed
        return None

    def no_landmark_clips(self) -> dict[str, int]:
        """data.synthesis=sbi: real clips that gave no pseudo-fake (no landmarks), per split."""
        return {s: d.no_landmarks.count for s, d in self._sbi_datasets.items() if d.no_landmarks.count}

    def teardown(self, stage: str | None = None) -> None:
        if self.no_landmark_clips():
            log.warning(
                "data.synthesis=sbi: real clips without landmarks, so without a pseudo-fake: %s "
                "(data.sbi.no_face=crop_box uses the crop's face box instead)",
                self.no_landmark_clips(),
            )
        skipped = self.skipped_clips()
        if skipped:
            log.warning(
                "data.on_bad_frame=skip: %d clip(s) with a bad frame left out so far %s (paths in the "
                "warnings above; python scripts/check_store.py %s lists every bad frame)",
                sum(skipped.values()),
                skipped,
                self.source,
            )

    def skipped_clips(self) -> dict[str, int]:
        """Clips left out so far for a bad frame (``on_bad_frame="skip"``), per split (in this process
        and its DataLoader workers)."""
        return {split: c.count for split, c in self._skipped.items() if c.count}

    def setup(self, stage: str | None = None) -> None:
        if self.manifest is not None:
            return
        self.manifest = self.load_manifest()
        self._transform = build_clip_augmentation(self.augment)
        self.splits = {split: self.dataset(split, augment=split == "train") for split in SPLITS}
        sizes = {s: len(d) for s, d in self.splits.items()}
        fakes = {s: int(d.labels.sum()) for s, d in self.splits.items()}
        log.info("clip %s %s: clips per split %s, fakes %s", self.format, self.source, sizes, fakes)

    def dataset(self, split: str, augment: bool = False) -> ClipDataset:
        """A split's clips; ``all``: every clip of the store whatever its split (cross-dataset
        scoring)."""
        if split not in (*SPLITS, ALL):
            raise ValueError(f"unknown split {split!r}; expected one of {(*SPLITS, ALL)}")
        rows = self.manifest if split == ALL else self.manifest[self.manifest["split"] == split]
        if self.format == "litdata":
            from dfdetect.data.litdata_dataset import StreamingClipDataset

            dataset = StreamingClipDataset(
                rows,
                self.litdata_uri,
                image_size=self.image_size,
                transform=self._transform if augment else None,
                num_frames=self.num_frames,
                frame_stride=self.frame_stride,
                shuffle=augment,
                balance=augment and self.balance,
                seed=self.split_seed,
                storage_options=self.litdata_storage_options,
                on_bad_frame=self.on_bad_frame,
                skipped=self._skip_counter(split),
            )
        elif self.synthesis == "sbi" and split in self.sbi["splits"]:
            dataset = SelfBlendedClipDataset(
                rows,
                self.store_dir,
                no_face=self.sbi["no_face"],
                margin=float(self.sbi["margin"]),
                fixed_draws=not augment,
                image_size=self.image_size,
                transform=self._transform if augment else None,
                num_frames=self.num_frames,
                frame_stride=self.frame_stride,
                on_bad_frame=self.on_bad_frame,
                name=f"the {split} split",
                skipped=SkipCounter(
                    2 * int((rows["label"] == 0).sum()), f"the {split} split of {self.source}"
                ),
            )
            self._sbi_datasets[split] = dataset
        else:
            dataset = ClipDataset(
                rows,
                self.store_dir,
                image_size=self.image_size,
                transform=self._transform if augment else None,
                num_frames=self.num_frames,
                frame_stride=self.frame_stride,
                on_bad_frame=self.on_bad_frame,
                skipped=self._skip_counter(split),
            )
        return dataset

    def _skip_counter(self, split: str) -> SkipCounter:
        """One per split, shared by every dataset of it (training and plain order)."""
        if split not in self._skipped:
            size = len(self.manifest) if split == ALL else int((self.manifest["split"] == split).sum())
            self._skipped[split] = SkipCounter(size, f"the {split} split of {self.source}")
        return self._skipped[split]

    def dataloader(self, split: str, train: bool = False) -> DataLoader:
        """Training order (balanced/shuffled, augmented) or evaluation order (fixed, plain)."""
        if split == ALL and ALL not in self.splits:
            self.splits[ALL] = self.dataset(ALL)
        dataset = self.splits[split] if train or split != "train" else self.dataset(split, augment=False)
        if len(dataset) == 0:
            raise SplitError(f"the {split} split of {self.source} is empty; check data.split_fractions")
        sampler, shuffle = None, train
        if isinstance(dataset, IterableDataset):  # it shuffles and balances itself
            shuffle = False
        elif train and self.balance:
            sampler, shuffle = balanced_sampler(torch.from_numpy(dataset.labels), self.split_seed), False
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def split_frame(self, split: str) -> pd.DataFrame:
        if split == ALL and ALL not in self.splits:
            self.splits[ALL] = self.dataset(ALL)
        return self.splits[split].frame
