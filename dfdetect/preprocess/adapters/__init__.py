"""Dataset adapters: a raw dataset folder in, one ``SourceItem`` per video or still out.

``scan(name, raw_dir, **options)`` runs the adapter registered under ``name``; the layouts each
expects are documented in docs/preprocessing.md and in each adapter's module.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from dfdetect.preprocess.adapters.base import AdapterError, SourceItem, assign_groups
from dfdetect.preprocess.adapters.celebdf import scan_celebdf
from dfdetect.preprocess.adapters.csv_list import scan_csv
from dfdetect.preprocess.adapters.ffpp import scan_ffpp, scan_ffpp_mini
from dfdetect.preprocess.adapters.tree import LABEL_DIRS, scan_labelled_tree


def scan_folder(raw_dir: str, dataset: str = "folder", csv: str | None = None, **options) -> list[SourceItem]:
    """``real/`` and ``fake/`` subfolders (any depth, videos and/or images), or a CSV list given as
    ``csv`` or as ``raw_dir`` itself."""
    if csv or (str(raw_dir).lower().endswith(".csv") and Path(raw_dir).is_file()):
        return scan_csv(csv or raw_dir, dataset=dataset, fake_method=options.get("fake_method", "fake"))
    root = Path(raw_dir).expanduser()
    if (
        root.is_dir()
        and not any((root / d).is_dir() for d in LABEL_DIRS)
        and options.get("default_label") is None
    ):
        raise AdapterError(f"{dataset}: {root} has no real/ or fake/ folder (or pass a CSV list as csv=...)")
    # real/<person>/x.mp4 and fake/<person>/y.mp4 share a group; flat files are groups of one
    options.setdefault("identity_from", "auto")
    return scan_labelled_tree(raw_dir, dataset=dataset, **options)


ADAPTERS: dict[str, Callable[..., list[SourceItem]]] = {
    "ffpp": scan_ffpp,
    "ffpp_mini": scan_ffpp_mini,
    "celebdf": scan_celebdf,
    "voxcelebth": partial(scan_labelled_tree, dataset="voxcelebth", fake_method="talking_head"),
    "celebfom": partial(
        scan_labelled_tree,
        dataset="celebfom",
        fake_method="first_order_motion",
        suffix_labels=True,
        source_from_name=True,
        top_level_identity=True,
    ),
    "celebblend": partial(
        scan_labelled_tree, dataset="celebblend", fake_method="faceapp", source_from_name=True
    ),
    "fcelebdf": partial(scan_labelled_tree, dataset="fcelebdf", fake_method="face_swap"),
    "folder": scan_folder,
}


def scan(name: str, raw_dir: str, **options) -> list[SourceItem]:
    if name not in ADAPTERS:
        raise AdapterError(f"unknown adapter {name!r}; known: {sorted(ADAPTERS)}")
    return ADAPTERS[name](raw_dir, **options)


__all__ = ["ADAPTERS", "AdapterError", "SourceItem", "assign_groups", "scan"]
