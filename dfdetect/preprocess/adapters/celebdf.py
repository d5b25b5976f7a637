"""Celeb-DF v2: ``Celeb-real/idX_NNNN.mp4`` (real, celebrity X), ``Celeb-synthesis/idX_idY_NNNN.mp4``
(video ``idX_NNNN`` with the face of Y swapped in), ``YouTube-real/NNNNN.mp4`` (real, one unknown
person per video) and ``List_of_testing_videos.txt`` (``<1 real | 0 fake> <folder>/<file>`` per line,
the official test set). Each folder may hold its videos directly or in a ``videos/`` subfolder.

Grouping: ``group_by=video`` (default) links a fake to the real video it was made from, which
keeps the official test list intact (its celebrities also appear in training videos);
``group_by=identity`` links everything sharing a celebrity, a stricter split that leaves the
official test list aside (its presets would pull whole identity groups into test).
"""

from __future__ import annotations

import logging
import re
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

log = logging.getLogger(__name__)

FAKE_METHOD = "celeb_synthesis"
TEST_LIST = "List_of_testing_videos.txt"
_REAL = re.compile(r"^(id\d+)_(\d+)$")
_FAKE = re.compile(r"^(id\d+)_(id\d+)_(\d+)$")


def read_test_list(path: Path) -> set[str]:
    """Lower-cased ``<folder>/<file name>`` of every listed video."""
    listed = set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise AdapterError(f"{path}:{n}: expected '<0|1> <folder>/<file>', got {line!r}")
        folder, _, name = parts[1].replace("\\", "/").partition("/")
        listed.add(f"{folder}/{Path(name).name}".lower())
    return listed


def _item(root: Path, path: Path, folder: str, dataset: str, group_by: str) -> SourceItem:
    stem = path.stem
    if folder == "synthesis":
        m = _FAKE.match(stem)
        if not m:
            raise AdapterError(f"{path}: not a Celeb-synthesis name idX_idY_NNNN")
        target, face, number = m.groups()
        keys = (f"video:{target}_{number}",) if group_by == "video" else (f"id:{target}", f"id:{face}")
        return make_item(
            root,
            path,
            dataset=dataset,
            method=FAKE_METHOD,
            label=1,
            identity=face,
            source_identity=target,
            group_keys=keys,
        )
    if folder == "celeb":
        m = _REAL.match(stem)
        if not m:
            raise AdapterError(f"{path}: not a Celeb-real name idX_NNNN")
        person = m.group(1)
        keys = (f"video:{stem}",) if group_by == "video" else (f"id:{person}",)
    else:
        person = f"youtube_{stem}"
        keys = (f"video:{person}",)
    return make_item(
        root,
        path,
        dataset=dataset,
        method=REAL_METHOD,
        label=0,
        identity=person,
        source_identity=person,
        group_keys=keys,
    )


def scan_celebdf(
    raw_dir: str, dataset: str = "celebdf", official_test: bool = True, group_by: str = "video"
) -> list[SourceItem]:
    if group_by not in ("video", "identity"):
        raise AdapterError(f"{dataset}: group_by must be 'video' or 'identity', got {group_by!r}")
    root = require_dir(raw_dir, dataset)
    folders = {
        "celeb": find_dir(root, "Celeb-real"),
        "synthesis": find_dir(root, "Celeb-synthesis"),
        "youtube": find_dir(root, "YouTube-real"),
    }
    if not any(folders.values()):
        raise AdapterError(f"{dataset}: {root} has none of Celeb-real/, Celeb-synthesis/, YouTube-real/")
    test_list = root / TEST_LIST
    listed = (
        read_test_list(test_list) if official_test and group_by == "video" and test_list.is_file() else set()
    )
    if official_test and group_by == "video" and not test_list.is_file():
        log.warning("%s: %s not found; no preset test split", dataset, test_list)
    items = []
    for kind, folder in folders.items():
        for path in walk_media(folder) if folder else ():
            item = _item(root, path, kind, dataset, group_by)
            if f"{folder.name}/{path.name}".lower() in listed:
                item = replace(item, split="test")
            items.append(item)
    return finish(items, dataset)
