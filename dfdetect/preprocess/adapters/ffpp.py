"""FaceForensics++ (official download layout) and the ffpp_c40_mini subset in ../shared/data.

Names: a youtube original ``A.mp4``; an actor recording ``NN__scene.mp4`` (actor = ``NN``); a fake
``A_B.mp4`` = target video A manipulated with source B; a DeepFakeDetection fake
``NN_MM__scene__HASH.mp4`` = actor NN's scene with actor MM's face. In face swaps (Deepfakes,
FaceSwap, FaceShifter, DeepFakeDetection) the face shown is B's, in reenactments (Face2Face,
NeuralTextures) it stays A's, driven by B. Either way the fake shares its split group with
everything of A and of B.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from dfdetect.preprocess.adapters.base import (
    REAL_METHOD,
    AdapterError,
    SourceItem,
    find_dir,
    finish,
    make_item,
    require_dir,
    walk_media,
)

REENACTMENT_METHODS = ("Face2Face", "NeuralTextures")
_YOUTUBE = re.compile(r"^(\d+)$")
_ACTOR = re.compile(r"^(\d+)__")
_YOUTUBE_FAKE = re.compile(r"^(\d+)_(\d+)$")
_ACTOR_FAKE = re.compile(r"^(\d+)_(\d+)__")


def _yt(number: str) -> str:
    return f"yt{int(number):03d}"


def _original(root: Path, path: Path, dataset: str, source: str) -> SourceItem:
    stem = path.stem
    match = (_ACTOR if source == "actors" else _YOUTUBE).match(stem)
    if not match:
        raise AdapterError(f"{path}: not an FF++ {source} original name")
    person = f"actor{match.group(1)}" if source == "actors" else _yt(match.group(1))
    return make_item(
        root, path, dataset=dataset, method=REAL_METHOD, label=0, identity=person, source_identity=person
    )


def _fake(root: Path, path: Path, dataset: str, method: str, reenactment: Sequence[str]) -> SourceItem:
    stem = path.stem
    if m := _YOUTUBE_FAKE.match(stem):
        target, source = _yt(m.group(1)), _yt(m.group(2))
    elif m := _ACTOR_FAKE.match(stem):
        target, source = f"actor{m.group(1)}", f"actor{m.group(2)}"
    else:
        raise AdapterError(f"{path}: not an FF++ fake name (A_B or NN_MM__scene__hash)")
    shown = target if method in reenactment else source
    return make_item(
        root,
        path,
        dataset=dataset,
        method=method,
        label=1,
        identity=shown,
        source_identity=target,
        group_keys=(f"id:{target}", f"id:{source}"),
    )


def _official_splits(splits_dir: str | None) -> dict[str, str]:
    """yt id -> split, from FF++'s ``{train,val,test}.json`` (lists of [A, B] pairs)."""
    if not splits_dir:
        return {}
    out = {}
    for split in ("train", "val", "test"):
        path = Path(splits_dir) / f"{split}.json"
        if not path.is_file():
            raise AdapterError(f"FF++ splits: {path} not found (expected train/val/test.json)")
        for pair in json.loads(path.read_text()):
            for yt in pair:
                out[_yt(yt)] = split
    return out


def _with_split(items: list[SourceItem], splits: dict[str, str]) -> list[SourceItem]:
    """A youtube original and its fakes take the split of their (target) video's pair."""
    return [replace(it, split=splits.get(it.source_identity, "")) for it in items]


def scan_ffpp(
    raw_dir: str,
    dataset: str = "ffpp",
    compression: str = "c23",
    methods: Sequence[str] | None = None,
    originals: Sequence[str] = ("youtube", "actors"),
    splits_dir: str | None = None,
    reenactment_methods: Sequence[str] = REENACTMENT_METHODS,
) -> list[SourceItem]:
    """``original_sequences/{youtube,actors}/<compression>/videos/*.mp4`` and
    ``manipulated_sequences/<method>/<compression>/videos/*.mp4``; ``splits_dir`` holds the official
    ``train/val/test.json`` (preset splits for youtube pairs; actors and DFD fakes stay open)."""
    root = require_dir(raw_dir, dataset)
    items: list[SourceItem] = []
    originals_dir = find_dir(root, "original_sequences")
    manipulated_dir = find_dir(root, "manipulated_sequences")
    if originals_dir is None and manipulated_dir is None:
        raise AdapterError(f"{dataset}: {root} has neither original_sequences/ nor manipulated_sequences/")
    for source in originals:
        folder = find_dir(find_dir(originals_dir, source) or Path("/nonexistent"), compression)
        for path in walk_media(folder) if folder else ():
            items.append(_original(root, path, dataset, source))
    if manipulated_dir is not None:
        for method_dir in sorted(p for p in manipulated_dir.iterdir() if p.is_dir()):
            if methods and method_dir.name not in methods:
                continue
            folder = find_dir(method_dir, compression)
            for path in walk_media(folder) if folder else ():
                items.append(_fake(root, path, dataset, method_dir.name, reenactment_methods))
    return finish(_with_split(items, _official_splits(splits_dir)), dataset)


def scan_ffpp_mini(
    raw_dir: str,
    dataset: str = "ffpp_mini",
    methods: Sequence[str] | None = None,
    reenactment_methods: Sequence[str] = REENACTMENT_METHODS,
) -> list[SourceItem]:
    """``original/youtube/A.mp4``, ``original/actors/NN__scene.mp4``, ``manipulated/<method>/A_B.mp4``
    (the layout of ../shared/data/ffpp_c40_mini)."""
    root = require_dir(raw_dir, dataset)
    items: list[SourceItem] = []
    for source in ("youtube", "actors"):
        folder = root / "original" / source
        for path in walk_media(folder) if folder.is_dir() else ():
            items.append(_original(root, path, dataset, source))
    manipulated = root / "manipulated"
    for method_dir in sorted(p for p in manipulated.iterdir() if p.is_dir()) if manipulated.is_dir() else ():
        if methods and method_dir.name not in methods:
            continue
        for path in walk_media(method_dir):
            items.append(_fake(root, path, dataset, method_dir.name, reenactment_methods))
    return finish(items, dataset)
